// How sensors accept parameters: a list of tensors, named parameters (a
// torch::OrderedDict<std::string, at::Tensor> as named_parameters() returns,
// or any range of std::pair<std::string, at::Tensor>), or a module (anything
// with named_parameters(bool recurse), e.g. torch::nn::Module; pass *holder
// for a ModuleHolder). Templates, so this header needs only ATen, not
// <torch/nn/module.h>.
#pragma once

#include <ATen/ATen.h>

#include <concepts>
#include <cstdint>
#include <ranges>
#include <string>
#include <vector>

#include "simic/sensors/param_filter.hpp"

namespace simic {
inline namespace v0 {
namespace detail {

// Items of torch::OrderedDict (key() / value()) or pairs (first / second).
template <class Item>
  requires requires(const Item& it) { it.key(); it.value(); }
const auto& item_name(const Item& it) { return it.key(); }
template <class Item>
  requires requires(const Item& it) { it.first; it.second; }
const auto& item_name(const Item& it) { return it.first; }
template <class Item>
  requires requires(const Item& it) { it.key(); it.value(); }
const auto& item_tensor(const Item& it) { return it.value(); }
template <class Item>
  requires requires(const Item& it) { it.first; it.second; }
const auto& item_tensor(const Item& it) { return it.second; }

}  // namespace detail

template <class R>
concept named_parameter_range = std::ranges::input_range<const R> && requires(const std::ranges::range_value_t<const R>& it) {
  { std::string(detail::item_name(it)) };
  { detail::item_tensor(it) } -> std::convertible_to<const at::Tensor&>;
};

template <class M>
concept parameter_module = requires(const M& m) {
  { m.named_parameters(true) } -> named_parameter_range;
};

// Named parameters after the filter, with their gradients (undefined where a
// parameter has none).
struct watched_parameters {
  std::vector<std::string> names;
  std::vector<at::Tensor> weights;
  std::vector<at::Tensor> grads;
  std::uint64_t filtered_out = 0;
};

template <named_parameter_range R>
watched_parameters watch(const R& named, const param_filter& filter) {
  watched_parameters w;
  for (const auto& it : named) {
    std::string name(detail::item_name(it));
    if (!filter(name)) {
      ++w.filtered_out;
      continue;
    }
    const at::Tensor& p = detail::item_tensor(it);
    w.names.push_back(std::move(name));
    w.weights.push_back(p);
    w.grads.push_back(p.defined() ? p.grad() : at::Tensor());
  }
  return w;
}

}  // namespace v0
}  // namespace simic
