// The default back end: simic's fused single pass for CPU tensors, LibTorch
// operations for tensors on any other device (unless a fused device kernel
// is plugged in for that device: simic::cuda::use_with_auto_backend()).
#pragma once

#include <ATen/ATen.h>

#include <atomic>

#include "simic/reduce/backend.hpp"
#include "simic/reduce/cpu_fused_backend.hpp"
#include "simic/reduce/torch_ops_backend.hpp"

namespace simic {
inline namespace v0 {

namespace detail {
// A reduction for tensors not on the CPU, installed by a higher layer:
// simic::cuda::use_with_auto_backend() (reduce/cuda/fused_backend.hpp) installs
// the fused CUDA kernels. It returns an undefined tensor for requests it
// does not take.
using device_reducer = at::Tensor (*)(const reduce_request&);
inline std::atomic<device_reducer>& device_reducer_slot() noexcept {
  static std::atomic<device_reducer> f{nullptr};
  return f;
}
inline void install_device_reducer(device_reducer f) noexcept { device_reducer_slot().store(f); }
}  // namespace detail

struct auto_backend {
  cpu_fused_backend cpu{};
  torch_ops_backend other{};

  at::Tensor reduce(const reduce_request& r) const {
    if (!r.tensors.empty() && r.tensors[0].defined() && r.tensors[0].is_cpu()) return cpu.reduce(r);
    if (const detail::device_reducer f = detail::device_reducer_slot().load()) {
      at::Tensor t = f(r);
      if (t.defined()) return t;
    }
    return other.reduce(r);
  }
};

static_assert(reduction_backend<cpu_fused_backend>);
static_assert(reduction_backend<torch_ops_backend>);
static_assert(reduction_backend<auto_backend>);

}  // namespace v0
}  // namespace simic
