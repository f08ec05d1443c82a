// The fused CUDA reduction back end, the public face (the runtime is
// runtime.hpp, the enqueue of a request dispatch.hpp): one read of every element of every
// tensor, all statistics of a stat_set at once, per-tensor rows and the
// gradient-health summary finished on the device, in one launch on
// LibTorch's current stream (plus, when the tensor list changed, one 4-40 KB
// host->device copy of launch metadata from pinned memory). Nothing in it
// waits for the device.
//
//   simic::cuda::fused_backend            models reduction_backend (backend.hpp):
//     .reduce(request)                   -> packed [tensors, stat::count] rows on the device
//     .reduce_async(request, vanish, explode)
//                                        -> cuda::pending_stats: rows + summary copied
//                                           into reused pinned memory, one event
//   simic::cuda::pin(pending_report)     any sensor's async result, moved to pinned
//                                        memory behind an event (materialize() waits
//                                        on that event only)
//
//   simic::cuda::use_with_auto_backend()
//                                        makes auto_backend (the sensors' default)
//                                        send CUDA tensors to these kernels; call
//                                        it once. Including this header installs
//                                        nothing: until then, and where the back end
//                                        is not compiled in (config.hpp) or NVRTC or
//                                        the driver do not load at run time, CUDA
//                                        tensors go through torch_ops_backend.
//
// The kernels are compiled from kernel_source() by NVRTC at first use, once
// per process and GPU architecture, and the module is loaded once per device
// (docs/cuda.md). A trainer built by g++ therefore needs no nvcc.
//
// Memory per call: launch metadata (32 B per tensor + 24 B per piece + 4 B per
// block), one 88 B partial per piece, (tensors + 1) rows of 96 B: O(tensors +
// blocks). Non-contiguous tensors are copied once with .contiguous() (one
// extra read and write of that tensor, and its size in temporary memory).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "simic/reduce/gradient_summary.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/reduce/cuda/config.hpp"
#include "simic/reduce/cuda/dispatch.hpp"
#include "simic/reduce/cuda/runtime.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/reduce/torch_ops_backend.hpp"

namespace simic {
inline namespace v0 {

namespace cuda {
// How many times simic has waited for a device (for "host syncs per call").
inline std::uint64_t host_syncs() noexcept { return detail::host_sync_counter().load(); }
// Whether the fused back end is compiled into this build (config.hpp).
inline constexpr bool compiled_in = SIMIC_CUDA != 0;

// The device-finished gradient-health summary of a request: the shared
// summary (reduce/gradient_summary.hpp) the kernel wrote after the rows.
using stats_summary = simic::detail::gradient_summary;

// Rows and summary on their way to pinned host memory. ready() polls,
// wait() blocks on the one event; table()/summary() wait first.
class pending_stats {
 public:
  pending_stats() = default;
  explicit pending_stats(cuda::detail::enqueued e) : e_(std::move(e)) {}

  bool ready() const { return !e_.slot || cuda::detail::slot_ready(*e_.slot); }
  void wait() const {
    if (waited_ || !e_.slot) return;
    cuda::detail::slot_wait(*e_.slot);
    waited_ = true;
  }
  // Host rows [tensors, stat::count] (a view of the pinned memory, which it keeps held).
  stats_table table() const {
    wait();
    if (!e_.slot) return stats_table(simic::detail::empty_stats());
    auto slot = e_.slot;
    at::Tensor host = at::from_blob(
        host_rows(), {static_cast<std::int64_t>(e_.tensors), stat::count}, [slot](void*) {},
        at::TensorOptions().dtype(at::kDouble));
    return stats_table(std::move(host));
  }
  // Without a request (default-constructed): the summary of no tensors.
  stats_summary summary() const {
    wait();
    stats_summary s;
    simic::detail::summary_init(s);
    if (!e_.slot) {
      simic::detail::summary_finish(s);
      return s;
    }
    simic::detail::summary_load(host_rows() + e_.tensors * stat::count, s);
    return s;
  }
  // The device rows (tensors + 1; the last is the summary row).
  at::Tensor device_rows() const { return e_.rows; }

 private:
  double* host_rows() const {
    return reinterpret_cast<double*>(static_cast<unsigned char*>(e_.slot->host) + e_.rows_offset);
  }
  cuda::detail::enqueued e_;
  mutable bool waited_ = false;
};

// The back end. For requests it cannot take (CPU tensors, dtypes other than
// float32/16, bfloat16, float64, or no NVRTC/driver at run time, or compiled
// out) it uses `fallback`.
struct fused_backend {
  torch_ops_backend fallback{};
  bool poison_outputs = false;  // tests: fill the result rows with NaN before the kernels run

  // Whether this request goes to the fused kernels.
  static bool accepts(const reduce_request& r) {
    if constexpr (!cuda::compiled_in) {
      (void)r;
      return false;
    } else {
      if (r.tensors.empty() || !r.tensors[0].defined() || !r.tensors[0].is_cuda()) return false;
      for (const auto& t : r.tensors)
        if (!t.defined() || cuda::detail::dtype_code(t.scalar_type()) < 0) return false;
      return cuda::detail::runtime::get().available();
    }
  }
  // Why the fused path is unavailable in this process ("" when it is).
  static std::string unavailable_reason() {
    if constexpr (!cuda::compiled_in) {
      return "simic was built without LibTorch's CUDA headers/libraries (SIMIC_CUDA=0)";
    } else {
      std::string why;
      return cuda::detail::runtime::get().available(&why) ? std::string() : why;
    }
  }

  at::Tensor reduce(const reduce_request& r) const {
    static constexpr const char* where = "simic::cuda::fused_backend::reduce";
    simic::detail::validate_request(r, where);
    if constexpr (cuda::compiled_in) {  // compiled out: no launch code at all
      if (accepts(r)) {
        cuda::detail::enqueued e = cuda::detail::enqueue(r, defaults::grad_vanishing, defaults::grad_exploding,
                                                         /*to_host=*/false, poison_outputs);
        return e.rows.narrow(0, 0, static_cast<std::int64_t>(e.tensors));
      }
    }
    return fallback.reduce(r);
  }

  // The same, with the rows and the device-finished summary copied into
  // pinned host memory behind one event. Requires accepts(r).
  cuda::pending_stats reduce_async(const reduce_request& r, double vanishing = defaults::grad_vanishing,
                                  double exploding = defaults::grad_exploding) const {
    static constexpr const char* where = "simic::cuda::fused_backend::reduce_async";
    simic::detail::validate_request(r, where);
    simic::detail::require(accepts(r), where, "tensors", "(not fused-CUDA eligible)",
                           "non-empty CUDA tensors of float32, float16, bfloat16 or float64 with NVRTC available; " +
                               unavailable_reason());
    if constexpr (cuda::compiled_in) {
      return cuda::pending_stats(cuda::detail::enqueue(r, vanishing, exploding, /*to_host=*/true, poison_outputs));
    } else {
      (void)vanishing;
      (void)exploding;
      return {};  // not reached: accepts() is false
    }
  }
};

static_assert(reduction_backend<fused_backend>);

// A sensor's pending report whose device stats are moved into pinned host
// memory now (asynchronously) and finished after one event wait.
template <class Report>
class pinned_report {
 public:
  explicit pinned_report(pending_report<Report> p) : p_(std::move(p)) {
    if constexpr (compiled_in) {
      const at::Tensor& s = p_.device_stats();
      if (s.defined() && s.is_cuda()) {
        const at::Tensor src = s.scalar_type() == at::kDouble && s.is_contiguous() ? s : s.to(at::kDouble).contiguous();
        rows_ = src.size(0);
        slot_ = detail::enqueue_host_copy(src);  // null without a driver: materialize() copies plainly
      }
    }
  }
  bool ready() const { return !slot_ || detail::slot_ready(*slot_); }
  Report materialize() const {
    if (!slot_) return p_.materialize();
    detail::slot_wait(*slot_);
    auto slot = slot_;
    at::Tensor host =
        at::from_blob(slot->host, {rows_, stat::count}, [slot](void*) {}, at::TensorOptions().dtype(at::kDouble));
    return p_.finish(stats_table(host));
  }

 private:
  std::shared_ptr<detail::pinned_slot> slot_;
  std::int64_t rows_ = 0;
  pending_report<Report> p_;
};

template <class Report>
pinned_report<Report> pin(pending_report<Report> p) {
  return pinned_report<Report>(std::move(p));
}

namespace detail {
// auto_backend's device hook: take CUDA requests the kernels accept, decline
// (undefined tensor) the rest.
inline at::Tensor auto_device_reduce(const reduce_request& r) {
  if (!cuda::fused_backend::accepts(r)) return {};
  return cuda::fused_backend{}.reduce(r);
}
}  // namespace detail

// Makes auto_backend, the sensors' default back end, send the CUDA requests
// the fused kernels accept to them (the rest, and CPU tensors, go where they
// went before). Call once, e.g. at the start of main(); it is explicit so
// that including a header changes nothing and a program states where its
// reductions run. Process-wide and idempotent; safe to call from any thread.
// Returns whether the back end is compiled in (false: nothing installed).
inline bool use_with_auto_backend() noexcept {
  if constexpr (compiled_in) simic::detail::install_device_reducer(&detail::auto_device_reduce);
  return compiled_in;
}

}  // namespace cuda

}  // namespace v0
}  // namespace simic
