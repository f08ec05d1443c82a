// How sensors accept parameters: a list of tensors (anything convertible to
// std::span<const at::Tensor>), named parameters (a
// torch::OrderedDict<std::string, at::Tensor> as named_parameters() returns,
// or any range of std::pair<std::string, at::Tensor>), or a module (anything
// with named_parameters(bool recurse), e.g. torch::nn::Module; pass *holder
// for a ModuleHolder). Templates, so this header needs only ATen, not
// <torch/nn/module.h>.
//
// Each sensor declares one templated entry point per mode over
// parameter_source (or named_parameter_source where it needs names) and
// reads its tensors through watch() / watch_tensors() below, so the three
// forms behave alike in every sensor.
#pragma once

#include <ATen/ATen.h>

#include <concepts>
#include <span>
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

// Named parameters or a module (its named_parameters(true)).
template <class P>
concept named_parameter_source = named_parameter_range<P> || parameter_module<P>;

// A list of tensors, taken as given (no names, no filter).
template <class P>
concept tensor_list = std::convertible_to<const P&, std::span<const at::Tensor>>;

// Anything a sensor's measure() takes.
template <class P>
concept parameter_source = tensor_list<P> || named_parameter_source<P>;

template <named_parameter_source P>
watched_parameters watch(const P& source, const param_filter& filter) {
  if constexpr (parameter_module<P> && !named_parameter_range<P>) {
    return watch(source.named_parameters(true), filter);
  } else {
    watched_parameters w;
    for (const auto& it : source) {
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
}

// Which tensor of a named parameter a sensor reads.
enum class parameter_tensor : std::uint8_t { value, gradient };

// The tensors a sensor reads, with their names (empty for a tensor list).
struct watched_tensors {
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;
};

// A tensor list as given (the caller passes values or gradients, as the
// sensor documents); named parameters and modules filtered, giving their
// values or gradients (undefined where a parameter has none).
template <parameter_source P>
watched_tensors watch_tensors(const P& source, const param_filter& filter, parameter_tensor which) {
  watched_tensors out;
  if constexpr (tensor_list<P>) {
    const std::span<const at::Tensor> list = source;
    out.tensors.assign(list.begin(), list.end());
  } else {
    watched_parameters w = watch(source, filter);
    out.names = std::move(w.names);
    out.tensors = which == parameter_tensor::gradient ? std::move(w.grads) : std::move(w.weights);
  }
  return out;
}

}  // namespace v0
}  // namespace simic
