// Fault injection, apart from training: which faults act at an optimizer step
// (options.hpp parses --inject), and how each one bends the trainer's
// tensors. lm.cpp calls these at the points marked "fault" and nowhere else.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "model.hpp"
#include "options.hpp"

namespace char_lm {

inline constexpr double lr_ramp_growth = 1.02;   // per step, compounding
inline constexpr double lr_collapse_rate = 1e-8;
inline constexpr double loss_scale_factor = 1e6;
inline constexpr int dead_layer_block = 0;       // dead-layer zeroes this block's MLP

// The fault settings in force at one optimizer step.
struct step_faults {
  double lr_factor = 1.0;  // lr-spike x run_options::lr_spike_factor, lr-ramp growth^k on the k-th step of the fault
  bool lr_collapse = false, bad_batch = false, nan_batch = false, loss_scale = false, dead_layer = false,
       label_shuffle = false;

  static step_faults at(const run_options& o, std::uint64_t step) {
    step_faults f;
    for (const injection& i : o.injections) {
      const std::uint64_t first = o.injection_step(i);
      if (step < first || step > o.injection_last(i)) continue;
      const double k = static_cast<double>(step - first + 1);
      switch (i.kind) {
        case fault::lr_spike: f.lr_factor *= o.lr_spike_factor; break;
        case fault::lr_ramp: f.lr_factor *= std::pow(lr_ramp_growth, k); break;
        case fault::bad_batch: f.bad_batch = true; break;
        case fault::nan_batch: f.nan_batch = true; break;
        case fault::loss_scale: f.loss_scale = true; break;
        case fault::dead_layer: f.dead_layer = true; break;
        case fault::lr_collapse: f.lr_collapse = true; break;
        case fault::label_shuffle: f.label_shuffle = true; break;
      }
    }
    return f;
  }

  // The learning rate set for the step, from the schedule's.
  double learning_rate(double scheduled) const noexcept {
    return lr_collapse ? lr_collapse_rate : scheduled * lr_factor;
  }

  // bad-batch: uniformly random bytes in place of the sampled ones ([B, T + 1]).
  torch::Tensor batch(const torch::Tensor& sampled) const {
    return bad_batch ? torch::randint(0, vocab, sampled.sizes(), sampled.options()) : sampled;
  }

  // label-shuffle: each row's targets become another row's (a random cyclic
  // derangement of the rows, so no row keeps its own); one row: unchanged.
  torch::Tensor targets(const torch::Tensor& y) const {
    if (!label_shuffle || y.size(0) < 2) return y;
    const auto perm = torch::randperm(y.size(0), torch::TensorOptions().dtype(torch::kLong).device(y.device()));
    return y.index_select(0, perm.roll(1)).index_select(0, torch::argsort(perm));
  }

  // nan-batch: the embedding output times NaN, so the loss and every gradient are NaN.
  torch::Tensor embedded(const torch::Tensor& x) const {
    return nan_batch ? x * std::numeric_limits<double>::quiet_NaN() : x;
  }

  // loss-scale: the loss (and so its gradients) x1e6.
  torch::Tensor loss(const torch::Tensor& l) const { return loss_scale ? l * loss_scale_factor : l; }

  // dead-layer: the block's MLP weights and biases zeroed, once (the
  // optimizer may revive them: Adam's momentum, and fc2's bias still learns).
  void kill(lm& model) const {
    if (!dead_layer) return;
    torch::NoGradGuard ng;
    const block b = model->layer(dead_layer_block);
    for (auto* l : {&b->fc1, &b->fc2}) {
      (*l)->weight.zero_();
      (*l)->bias.zero_();
    }
  }
};

}  // namespace char_lm
