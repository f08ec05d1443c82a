// A device->host copy that nobody waits for when it is made: what a deferred
// check (session_options::check, docs/guide.md "A deferred check") and the
// update guard (recovery/update_guard.hpp) use to bring a step's small result
// tensors (packed stats rows, the guard's verdict) to the host one step later.
//
// On an accelerator: a non_blocking copy into page-locked host memory (CUDA;
// pageable memory elsewhere) on the source's current stream, and an event
// recorded after it; wait() blocks only when the event has not completed,
// and counts that (host_copy_waits()). On the CPU: the plain copy, done
// when the constructor returns, so the CPU tests run every line but the
// event's. Both take the value the source has in stream order at the time
// of the call.
//
// LibTorch's own mechanisms only (c10::Event, the device guard's current
// stream): no CUDA header, so it compiles against every LibTorch; the one
// version difference, waiting for an event, is in sensors/torch_compat.hpp.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include "simic/sensors/torch_compat.hpp"

namespace simic {
inline namespace v0 {

namespace detail {
inline std::atomic<std::uint64_t>& host_copy_wait_counter() noexcept {
  static std::atomic<std::uint64_t> n{0};
  return n;
}
}  // namespace detail

// How many times, process-wide, a host_copy was waited for before its copy
// had completed: the host syncs that deferred reads could not avoid (0 when
// the device keeps up with the host). Always 0 on the CPU.
inline std::uint64_t host_copy_waits() noexcept { return detail::host_copy_wait_counter().load(); }

class host_copy {
 public:
  host_copy() = default;
  // Starts the copy of `src` (any device, any dtype) and returns at once.
  explicit host_copy(const at::Tensor& src) {
    const at::Tensor s = src.detach();  // the copy records no autograd history
    host_ = at::empty(s.sizes(), s.options().device(at::kCPU).pinned_memory(s.is_cuda()));
    host_.copy_(s, /*non_blocking=*/true);  // CPU -> CPU: done here
    if (!s.is_cpu()) {
      const at::Device d = s.device();
      event_.emplace(d.type());
      event_->record(c10::impl::getDeviceGuardImpl(d.type())->getStream(d));
    }
  }

  bool defined() const noexcept { return host_.defined(); }
  // Whether wait() would return without blocking.
  bool ready() const { return !event_ || waited_ || event_->query(); }
  // The host copy; blocks (and counts it) only while the copy is running.
  const at::Tensor& wait() const {
    if (event_ && !waited_) {
      if (!event_->query()) {
        detail::host_copy_wait_counter().fetch_add(1);
        detail::event_wait(*event_);
      }
      waited_ = true;
    }
    return host_;
  }

 private:
  at::Tensor host_;
  std::optional<c10::Event> event_;
  mutable bool waited_ = false;
};

}  // namespace v0
}  // namespace simic
