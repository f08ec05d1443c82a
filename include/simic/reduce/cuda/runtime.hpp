// The fused CUDA back end's process-wide runtime: the driver and NVRTC
// (loaded at run time with dlopen, so it compiles whether or not the back end
// is compiled in, config.hpp), the kernels compiled once per architecture and
// loaded once per device, reusable pinned host memory slots, and the cached
// launch plan of the last request per device. No LibTorch CUDA code: it
// touches the device only through the driver API.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "simic/reduce/cuda/driver.hpp"
#include "simic/reduce/cuda/kernel_source.hpp"
#include "simic/reduce/cuda/launch_plan.hpp"
#include "simic/reduce/cuda/nvrtc.hpp"

namespace simic {
inline namespace v0 {
namespace cuda::detail {

// Host waits simic itself made (event / stream synchronisations), process-wide.
inline std::atomic<std::uint64_t>& host_sync_counter() noexcept {
  static std::atomic<std::uint64_t> n{0};
  return n;
}

[[noreturn]] inline void driver_fail(const driver_api& d, driver_api::result r, const char* what) {
  throw std::runtime_error(std::string("simic::cuda: ") + what + " failed: " + d.error_string(r));
}
inline void check(const driver_api& d, driver_api::result r, const char* what) {
  if (r != 0) driver_fail(d, r, what);
}

// Pinned host memory reused across calls. A slot is handed out when nobody
// holds it and the device has passed its last event (so the metadata or
// results it carried are consumed); otherwise a new slot is made. In steady
// state no allocation happens.
struct pinned_slot {
  const driver_api* drv = nullptr;
  int device = -1;
  void* host = nullptr;
  std::size_t capacity = 0;
  driver_api::event done = nullptr;
  bool held = false;
};

// A plan and its device memory, reused while its key matches: the packed
// plan (with the kernel's completion counters) and the per-piece partials.
// Both are only used by launches on the key's stream, which run one after
// another, so one copy serves every call.
struct cached_plan {
  plan_key key;
  launch_plan plan;
  std::size_t meta_bytes = 0;  // packed size rounded up to 256
  at::Tensor device_meta;      // the packed plan on the device (kept while cached)
  at::Tensor partials;         // one accumulator per piece (kept while cached)
};

// The plans of one device, most recently used first, at most `capacity`:
// a trainer alternates a few request shapes (gradients, the LSTM state,
// weights and gradients for the scan; basic and full sets), and each would
// evict the other from a one-plan cache, paying planning, a metadata copy
// and two allocations on every call. Not thread-safe (the runtime locks).
class plan_cache {
 public:
  static constexpr std::size_t default_capacity = 8;
  explicit plan_cache(std::size_t capacity = default_capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

  // The plan built from exactly these inputs, moved to the front; null if none.
  std::shared_ptr<const cached_plan> find(std::span<const plan_input> in, int max_blocks, std::uint64_t stream) {
    for (std::size_t i = 0; i < plans_.size(); ++i) {
      if (!plans_[i]->key.matches(in, max_blocks, stream)) continue;
      std::rotate(plans_.begin(), plans_.begin() + static_cast<std::ptrdiff_t>(i),
                  plans_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      return plans_.front();
    }
    return nullptr;
  }
  // Puts `p` in front; the least recently used plan beyond capacity is dropped
  // (its device memory returns to LibTorch's allocator, stream-ordered).
  void store(std::shared_ptr<const cached_plan> p) {
    plans_.insert(plans_.begin(), std::move(p));
    if (plans_.size() > capacity_) plans_.pop_back();
  }
  std::size_t size() const noexcept { return plans_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  std::size_t capacity_;
  std::vector<std::shared_ptr<const cached_plan>> plans_;
};

struct device_kernels {
  driver_api::context ctx = nullptr;
  driver_api::module mod = nullptr;
  driver_api::function stats[2] = {nullptr, nullptr};  // basic, full
  int max_blocks[2] = {0, 0};  // resident blocks of each stats kernel on the whole device
  std::string arch;
};

class runtime {
 public:
  static runtime& get() {
    static runtime r;
    return r;
  }

  // Whether the driver and NVRTC loaded; `why` says what is missing.
  bool available(std::string* why = nullptr) const {
    if (why) *why = why_;
    return drv_.loaded() && nvrtc().loaded();
  }
  const driver_api& driver() const noexcept { return drv_; }

  // Makes `ctx` (a device's primary context, the one LibTorch uses)
  // current for this thread and returns the one it replaces.
  driver_api::context make_current(driver_api::context ctx) const {
    driver_api::context cur = nullptr;
    check(drv_, drv_.ctx_get_current(&cur), "cuCtxGetCurrent");
    if (cur != ctx) check(drv_, drv_.ctx_set_current(ctx), "cuCtxSetCurrent");
    return cur;
  }

  // The kernels for `device`: compiled once per architecture, loaded once
  // per device. Throws with NVRTC's log if compilation fails.
  const device_kernels& kernels(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = loaded_.find(device);
    if (it != loaded_.end()) return *it->second;
    auto k = std::make_unique<device_kernels>();
    driver_api::device dev = 0;
    check(drv_, drv_.device_get(&dev, device), "cuDeviceGet");
    k->ctx = context_locked(device);
    const driver_api::context prev = make_current(k->ctx);
    struct restore {
      const driver_api& d;
      driver_api::context prev, ctx;
      ~restore() {
        if (prev != ctx && prev != nullptr) d.ctx_set_current(prev);
      }
    } restore_prev{drv_, prev, k->ctx};
    int major = 0, minor = 0, sms = 0;
    check(drv_, drv_.device_get_attribute(&major, driver_api::attr_compute_capability_major, dev), "cuDeviceGetAttribute");
    check(drv_, drv_.device_get_attribute(&minor, driver_api::attr_compute_capability_minor, dev), "cuDeviceGetAttribute");
    check(drv_, drv_.device_get_attribute(&sms, driver_api::attr_multiprocessor_count, dev), "cuDeviceGetAttribute");
    const std::string cc = std::to_string(major) + std::to_string(minor);
    const std::vector<char>& image = image_for(cc, k->arch);
    check(drv_, drv_.module_load_data(&k->mod, image.data()), "cuModuleLoadData");
    for (int f = 0; f < 2; ++f)
      check(drv_, drv_.module_get_function(&k->stats[f], k->mod, kernel_names[f]), "cuModuleGetFunction");
    for (int f = 0; f < 2; ++f) {
      int per_sm = 0;
      check(drv_, drv_.occupancy_max_active_blocks(&per_sm, k->stats[f], partial_threads, 0),
            "cuOccupancyMaxActiveBlocksPerMultiprocessor");
      k->max_blocks[f] = std::max(1, per_sm) * std::max(1, sms);
    }
    return *(loaded_[device] = std::move(k));
  }

  // The device's primary context (retained once).
  driver_api::context context(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    return context_locked(device);
  }

  std::shared_ptr<pinned_slot> acquire(int device, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : slots_) {
      if (s->held || s->device != device) continue;
      if (drv_.event_query(s->done) == driver_api::not_ready) continue;  // the device still reads or writes it
      if (s->capacity < bytes) {
        check(drv_, drv_.mem_free_host(s->host), "cuMemFreeHost");
        s->host = nullptr;
        s->capacity = 0;
        check(drv_, drv_.mem_host_alloc(&s->host, grow(bytes), 0), "cuMemHostAlloc");
        s->capacity = grow(bytes);
      }
      return hold(s);
    }
    auto s = std::make_shared<pinned_slot>();
    s->drv = &drv_;
    s->device = device;
    check(drv_, drv_.mem_host_alloc(&s->host, grow(bytes), 0), "cuMemHostAlloc");
    s->capacity = grow(bytes);
    check(drv_, drv_.event_create(&s->done, driver_api::event_disable_timing), "cuEventCreate");
    slots_.push_back(s);
    return hold(s);
  }

  // A cached plan for `device` built from exactly these inputs (plan_cache).
  std::shared_ptr<const cached_plan> find_plan(int device, std::span<const plan_input> in, int max_blocks,
                                               std::uint64_t stream) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = plans_.find(device);
    return it == plans_.end() ? nullptr : it->second.find(in, max_blocks, stream);
  }
  void store_plan(int device, std::shared_ptr<const cached_plan> p) {
    std::lock_guard<std::mutex> lock(mu_);
    plans_[device].store(std::move(p));
  }

  std::size_t pinned_slots() const {
    std::lock_guard<std::mutex> lock(mu_);
    return slots_.size();
  }

 private:
  runtime() {
    std::string why;
    drv_ = load_driver("libcuda.so.1", why);
    why_ = why;
    // LibTorch has initialised the driver once CUDA tensors exist; cuInit is idempotent.
    if (drv_.loaded()) {
      if (const driver_api::result r = drv_.init(0); r != 0) {
        why_ = "cuInit: " + drv_.error_string(r);
        drv_ = driver_api{};
      }
    }
    if (!nvrtc().loaded()) why_ += (why_.empty() ? "" : "; ") + std::string("NVRTC: ") + nvrtc_load_error();
  }
  driver_api::context context_locked(int device) {
    auto it = contexts_.find(device);
    if (it != contexts_.end()) return it->second;
    driver_api::device dev = 0;
    check(drv_, drv_.device_get(&dev, device), "cuDeviceGet");
    driver_api::context ctx = nullptr;
    check(drv_, drv_.primary_ctx_retain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    contexts_[device] = ctx;
    return ctx;
  }
  static std::size_t grow(std::size_t bytes) { return std::max<std::size_t>(4096, align_up(bytes, 4096)); }

  std::shared_ptr<pinned_slot> hold(const std::shared_ptr<pinned_slot>& s) {
    s->held = true;
    // The returned handle releases the slot back to the pool; the pool keeps the memory.
    return std::shared_ptr<pinned_slot>(s.get(), [this, keep = s](pinned_slot*) {
      std::lock_guard<std::mutex> lock(mu_);
      keep->held = false;
    });
  }

  const std::vector<char>& image_for(const std::string& cc, std::string& arch) {
    auto it = images_.find(cc);
    if (it == images_.end()) {
      // A CUBIN for this GPU; PTX for it if this NVRTC cannot emit that CUBIN.
      const std::vector<std::string>& extra = extra_nvrtc_options();
      compile_output out = nvrtc_compile(nvrtc(), kernel_source(), "sm_" + cc, extra);
      if (!out.ok) {
        compile_output ptx = nvrtc_compile(nvrtc(), kernel_source(), "compute_" + cc, extra);
        if (!ptx.ok) throw std::runtime_error("simic::cuda: compiling the fused kernels failed: " + out.log);
        out = std::move(ptx);
      }
      it = images_.emplace(cc, std::move(out.image)).first;
      arches_[cc] = out.is_ptx ? "compute_" + cc : "sm_" + cc;
    }
    arch = arches_[cc];
    return it->second;
  }

  driver_api drv_;
  std::string why_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<char>> images_;
  std::map<std::string, std::string> arches_;
  std::map<int, std::unique_ptr<device_kernels>> loaded_;
  std::map<int, driver_api::context> contexts_;
  std::map<int, plan_cache> plans_;
  std::vector<std::shared_ptr<pinned_slot>> slots_;
};

// Makes a device's primary context current for a scope and restores the
// thread's previous one (the CUDA runtime reads its current device from it).
class context_scope {
 public:
  context_scope(const runtime& rt, driver_api::context ctx) : rt_(rt), prev_(rt.make_current(ctx)), ctx_(ctx) {}
  ~context_scope() {
    if (prev_ != ctx_ && prev_ != nullptr) rt_.driver().ctx_set_current(prev_);
  }
  context_scope(const context_scope&) = delete;
  context_scope& operator=(const context_scope&) = delete;

 private:
  const runtime& rt_;
  driver_api::context prev_;
  driver_api::context ctx_;
};

// Whether the device has passed a slot's last event (its copy has landed).
inline bool slot_ready(const pinned_slot& s) {
  return runtime::get().driver().event_query(s.done) != driver_api::not_ready;
}
// Waits for a slot's last event: one host sync, counted.
inline void slot_wait(const pinned_slot& s) {
  const driver_api& d = runtime::get().driver();
  host_sync_counter().fetch_add(1);
  check(d, d.event_synchronize(s.done), "cuEventSynchronize");
}

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
