// What the recovery tests share: a small double-precision network, fixed
// batches, one training step, bitwise copies of weights and optimizer state.
#pragma once

#include "support/torch_doctest.hpp"

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim.h>

#include "simic/recovery/training_state.hpp"
#include "simic/sensors/torch_compat.hpp"

namespace simic::test::recovery {

// 3 -> width -> (width ->) 2, optionally with a batch norm after the first layer.
struct net : torch::nn::Module {
  explicit net(std::int64_t width, bool deep = false, bool batch_norm = false) {
    fc1 = register_module("fc1", torch::nn::Linear(3, width));
    if (batch_norm) bn = register_module("bn", torch::nn::BatchNorm1d(width));
    if (deep) mid = register_module("mid", torch::nn::Linear(width, width));
    fc2 = register_module("fc2", torch::nn::Linear(width, 2));
    to(torch::kDouble);
  }
  torch::Tensor forward(torch::Tensor x) {
    x = fc1->forward(x);
    if (bn) x = bn->forward(x);
    x = torch::tanh(x);
    if (mid) x = torch::tanh(mid->forward(x));
    return fc2->forward(x);
  }
  torch::nn::Linear fc1{nullptr}, mid{nullptr}, fc2{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};

inline std::shared_ptr<net> make_net(std::uint64_t seed, std::int64_t width = 8, bool deep = false,
                                     bool batch_norm = false) {
  torch::manual_seed(seed);
  return std::make_shared<net>(width, deep, batch_norm);
}

using batch = std::pair<torch::Tensor, torch::Tensor>;
inline std::vector<batch> make_batches(std::size_t n) {
  std::vector<batch> out;
  for (std::size_t i = 0; i < n; ++i) {
    torch::manual_seed(1000 + i);
    out.emplace_back(torch::randn({16, 3}, torch::kDouble), torch::randn({16, 2}, torch::kDouble));
  }
  return out;
}

inline void train_step(net& m, torch::optim::Optimizer& opt, const batch& b) {
  opt.zero_grad();
  torch::mse_loss(m.forward(b.first), b.second).backward();
  opt.step();
}

// Same dtype, shape and bytes (undefined equals only undefined).
inline bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.detach().cpu().contiguous(), cb = b.detach().cpu().contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

using tensors = std::vector<std::pair<std::string, at::Tensor>>;

inline bool bitwise_equal(const tensors& a, const tensors& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !bitwise_equal(a[i].second, b[i].second)) return false;
  return true;
}

inline at::Tensor copy(const at::Tensor& t) { return t.defined() ? t.detach().clone() : at::Tensor(); }

// Every parameter and buffer, copied.
inline tensors weights(net& m) {
  tensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), copy(p.value()));
  for (const auto& b : m.named_buffers()) out.emplace_back("buffer " + b.key(), copy(b.value()));
  return out;
}

inline tensors grads(torch::optim::Optimizer& opt) {
  tensors out;
  for (auto& g : opt.param_groups())
    for (auto& p : g.params()) out.emplace_back("grad", copy(p.grad()));
  return out;
}

inline at::Tensor count(std::int64_t v) { return at::full({}, v, at::TensorOptions().dtype(at::kLong)); }

// The optimizer's state of every parameter, in group order, as named copies
// (an empty list for a parameter without state).
inline std::vector<tensors> optimizer_state(torch::optim::Optimizer& opt) {
  namespace o = torch::optim;
  std::vector<tensors> out;
  for (auto& g : opt.param_groups())
    for (auto& p : g.params()) {
      tensors f;
      auto* st = simic::detail::optimizer_param_state(opt, p);
      if (st == nullptr) {
      } else if (auto* a = dynamic_cast<o::AdamParamState*>(st)) {
        f = {{"step", count(a->step())}, {"exp_avg", copy(a->exp_avg())}, {"exp_avg_sq", copy(a->exp_avg_sq())},
             {"max_exp_avg_sq", copy(a->max_exp_avg_sq())}};
      } else if (auto* w = dynamic_cast<o::AdamWParamState*>(st)) {
        f = {{"step", count(w->step())}, {"exp_avg", copy(w->exp_avg())}, {"exp_avg_sq", copy(w->exp_avg_sq())},
             {"max_exp_avg_sq", copy(w->max_exp_avg_sq())}};
      } else if (auto* s = dynamic_cast<o::SGDParamState*>(st)) {
        f = {{"momentum_buffer", copy(s->momentum_buffer())}};
      } else if (auto* r = dynamic_cast<o::RMSpropParamState*>(st)) {
        f = {{"step", count(r->step())}, {"square_avg", copy(r->square_avg())},
             {"momentum_buffer", copy(r->momentum_buffer())}, {"grad_avg", copy(r->grad_avg())}};
      } else if (auto* ag = dynamic_cast<o::AdagradParamState*>(st)) {
        f = {{"step", count(static_cast<std::int64_t>(ag->step()))}, {"sum", copy(ag->sum())}};
      } else {
        FAIL("an optimizer state type this test does not know");
      }
      out.push_back(std::move(f));
    }
  return out;
}

inline bool bitwise_equal(const std::vector<tensors>& a, const std::vector<tensors>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!bitwise_equal(a[i], b[i])) return false;
  return true;
}

// Every optimizer the recovery layer knows by type, each with the options
// that give it state (moments, momentum buffers, sums), made over a list of
// parameters: the snapshot tests and the update guard's run the same cases.
using optimizer_factory = std::function<std::unique_ptr<torch::optim::Optimizer>(const std::vector<at::Tensor>&)>;
struct optimizer_case {
  const char* name;
  optimizer_factory make;
};
inline std::vector<optimizer_case> optimizer_cases() {
  namespace o = torch::optim;
  return {
      {"Adam", [](const auto& p) { return std::make_unique<o::Adam>(p, o::AdamOptions(1e-2)); }},
      {"Adam amsgrad, weight decay",
       [](const auto& p) { return std::make_unique<o::Adam>(p, o::AdamOptions(1e-2).amsgrad(true).weight_decay(0.01)); }},
      {"AdamW", [](const auto& p) { return std::make_unique<o::AdamW>(p, o::AdamWOptions(1e-2).weight_decay(0.1)); }},
      {"SGD momentum", [](const auto& p) { return std::make_unique<o::SGD>(p, o::SGDOptions(0.05).momentum(0.9)); }},
      {"SGD Nesterov, weight decay",
       [](const auto& p) {
         return std::make_unique<o::SGD>(p, o::SGDOptions(0.05).momentum(0.9).nesterov(true).weight_decay(1e-3));
       }},
      {"RMSprop momentum", [](const auto& p) { return std::make_unique<o::RMSprop>(p, o::RMSpropOptions(1e-2).momentum(0.5)); }},
      {"RMSprop centered, momentum",
       [](const auto& p) {
         return std::make_unique<o::RMSprop>(p, o::RMSpropOptions(1e-2).momentum(0.5).centered(true));
       }},
      {"Adagrad", [](const auto& p) { return std::make_unique<o::Adagrad>(p, o::AdagradOptions(0.1).lr_decay(0.01)); }},
  };
}

}  // namespace simic::test::recovery
