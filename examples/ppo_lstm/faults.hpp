// Fault injection, apart from training: which faults act in an update
// (options.hpp parses --inject), and how each one bends the trainer's
// tensors. ppo.cpp calls these at the marked points and nowhere else.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "options.hpp"

namespace ppo_lstm {

// Slow faults: growth of the learning rate and decay of the reward per update.
inline constexpr double lr_ramp_growth = 1.05;
inline constexpr double reward_decay_rate = 0.99;
// entropy-collapse: the greedy action's logit raised by this margin, so the
// policy is near-deterministic (normalised entropy ~1e-3) while it lasts.
inline constexpr double logit_collapse_margin = 10.0;
inline constexpr double lstm_explode_factor = 1e3;
inline constexpr double value_noise = 50.0;  // in units of scaled return (at most 10)
// core-vanish: the LSTM core's gradients scaled by this (a core that stopped learning).
inline constexpr double core_vanish_factor = 1e-6;
// grad-drift: the k-th step into the fault scales gradients by min(2^k, 8).
inline constexpr double drift_growth = 2.0;
inline constexpr double drift_cap = 8.0;
inline constexpr double loss_scale_factor = 1e6;  // loss-scale, at the update's first optimizer step

// The fault settings in force for one update.
struct faults {
  bool nan_grad = false, grad_explode = false, grad_vanish = false, grad_drift = false, lr_spike = false,
       entropy_collapse = false, value_collapse = false, lstm_explode = false, reward_drop = false,
       core_vanish = false, loss_scale = false;
  double lr_factor = 1.0;      // lr-ramp: growth^k on the k-th update of the fault
  double reward_factor = 1.0;  // reward-decay: rate^k on the k-th update of the fault
  double spike_factor = default_lr_spike_factor;  // lr-spike's (run_options::lr_spike_factor)
  int spike_steps = 0;  // lr-spike on the update's first steps only (run_options::lr_spike_steps; 0: all)

  static faults at(const std::vector<injection>& inj, std::uint64_t update,
                   double lr_spike_factor = default_lr_spike_factor, int lr_spike_steps = 0) {
    faults f;
    f.spike_factor = lr_spike_factor;
    f.spike_steps = lr_spike_steps;
    for (const auto& i : inj) {
      if (!i.covers(update)) continue;
      const double k = static_cast<double>(update - i.first + 1);
      switch (i.kind) {
        case fault::nan_grad: f.nan_grad = true; break;
        case fault::grad_explode: f.grad_explode = true; break;
        case fault::grad_vanish: f.grad_vanish = true; break;
        case fault::grad_drift: f.grad_drift = true; break;
        case fault::lr_spike: f.lr_spike = true; break;
        case fault::entropy_collapse: f.entropy_collapse = true; break;
        case fault::value_collapse: f.value_collapse = true; break;
        case fault::lstm_explode: f.lstm_explode = true; break;
        case fault::reward_drop: f.reward_drop = true; break;
        case fault::core_vanish: f.core_vanish = true; break;
        case fault::lr_ramp: f.lr_factor *= std::pow(lr_ramp_growth, k); break;
        case fault::reward_decay: f.reward_factor *= std::pow(reward_decay_rate, k); break;
        case fault::loss_scale: f.loss_scale = true; break;
      }
    }
    return f;
  }

  double reward_scale() const noexcept { return reward_drop ? 0.0 : reward_factor; }
  // The learning rate of the update's optimizer step `step` (0-based).
  double learning_rate(double lr, int step) const noexcept {
    const bool spiked = lr_spike && (spike_steps == 0 || step < spike_steps);
    return (spiked ? lr * spike_factor : lr) * lr_factor;
  }
  // loss-scale: the loss (and so its gradients) x1e6 at the update's first optimizer step (`step` 0).
  torch::Tensor loss(const torch::Tensor& l, int step) const {
    return loss_scale && step == 0 ? l * loss_scale_factor : l;
  }

  // entropy-collapse: a near-deterministic policy (the greedy logit raised).
  torch::Tensor logits(const torch::Tensor& logits, std::int64_t dim) const {
    if (!entropy_collapse) return logits;
    const auto greedy = torch::one_hot(logits.detach().argmax(dim), logits.size(dim)).to(logits.scalar_type());
    return logits + logit_collapse_margin * greedy;
  }
  // value-collapse: a broken critic during the rollout.
  torch::Tensor value(const torch::Tensor& v) const {
    return value_collapse ? v + value_noise * torch::randn_like(v) : v;
  }
  // lstm-explode: a blown-up cell state at the rollout's first step.
  torch::Tensor cell(const torch::Tensor& c, int t) const {
    return lstm_explode && t == 0 ? (c + 1.0) * lstm_explode_factor : c;
  }
};

// Faults that act on the gradients, after backward(). Keeps grad-drift's
// step count across steps and updates.
class gradient_faults {
 public:
  // `core`: the LSTM core, whose gradients core-vanish scales alone.
  void apply(const faults& f, torch::nn::Module& model, torch::nn::Module& core, const torch::Tensor& nan_target) {
    torch::NoGradGuard ng;
    const auto params = model.parameters();
    if (f.core_vanish)
      for (auto& p : core.parameters()) p.grad().mul_(core_vanish_factor);
    if (f.nan_grad) nan_target.grad().view({-1})[0] = std::nan("");
    if (f.grad_explode)
      for (auto& p : params) p.grad().mul_(1e3);
    if (f.grad_vanish)
      for (auto& p : params) p.grad().mul_(1e-9);
    if (f.grad_drift) {
      ++drift_steps_;
      const double k = std::min(std::pow(drift_growth, static_cast<double>(drift_steps_)), drift_cap);
      for (auto& p : params) p.grad().mul_(k);
    } else {
      drift_steps_ = 0;
    }
  }

  // Optimizer steps into a grad-drift ramp (a checkpoint keeps it).
  std::uint64_t drift_steps() const noexcept { return drift_steps_; }
  void set_drift_steps(std::uint64_t n) noexcept { drift_steps_ = n; }

 private:
  std::uint64_t drift_steps_ = 0;  // optimizer steps into a grad-drift ramp
};

}  // namespace ppo_lstm
