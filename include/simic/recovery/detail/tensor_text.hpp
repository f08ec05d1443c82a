// How the recovery layer spells a tensor and an optimizer in its errors: one
// spelling for the snapshot archive (training_state.hpp) and the update
// guard (update_guard.hpp), so a user comparing their messages reads the
// same "[2, 3]" and the same optimizer name in both.
#pragma once

#include <string>
#include <typeinfo>

#include <ATen/ATen.h>
#include <c10/util/Type.h>
#include <torch/optim/optimizer.h>

namespace simic {
inline namespace v0 {
namespace detail {

// "[2, 3]"; "[]" for a 0-dim tensor.
inline std::string shape_text(at::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

// "Float [2, 3] on cpu"; "undefined" for an undefined tensor.
inline std::string tensor_text(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  return std::string(c10::toString(t.scalar_type())) + " " + shape_text(t.sizes()) + " on " + t.device().str();
}

// The dynamic type's demangled name, e.g. "torch::optim::Adam".
inline std::string optimizer_type_name(const torch::optim::Optimizer& optimizer) {
  return c10::demangle(typeid(optimizer).name());
}

}  // namespace detail
}  // namespace v0
}  // namespace simic
