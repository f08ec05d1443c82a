// The fused CUDA reduction back end: one read of every element of every
// tensor, all statistics of a stat_set at once, per-tensor rows and the
// gradient-health summary finished on the device, in two launches on
// LibTorch's current stream (plus one 4-40 KB host->device copy of launch
// metadata from pinned memory). Nothing in it waits for the device.
//
//   simic::cuda_fused_backend            models reduction_backend (backend.hpp):
//     .reduce(request)                   -> packed [tensors, stat::count] rows on the device
//     .reduce_async(request, vanish, explode)
//                                        -> cuda_pending_stats: rows + summary copied
//                                           into reused pinned memory, one event
//   simic::cuda::pin(pending_report)     any sensor's async result, moved to pinned
//                                        memory behind an event (materialize() waits
//                                        on that event only)
//
// Including this header also installs the back end as auto_backend's choice
// for CUDA tensors (auto_backend.hpp's device hook), when it is compiled in
// (config.hpp) and NVRTC and the driver load at run time; otherwise CUDA
// tensors keep going through torch_ops_backend.
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

#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "simic/core/gradient_summary.hpp"
#include "simic/cuda/config.hpp"
#include "simic/cuda/driver.hpp"
#include "simic/cuda/kernel_source.hpp"
#include "simic/cuda/launch_plan.hpp"
#include "simic/cuda/nvrtc.hpp"
#include "simic/sensors/auto_backend.hpp"
#include "simic/sensors/backend.hpp"
#include "simic/sensors/torch_ops_backend.hpp"

#if SIMIC_CUDA
// Only c10_cuda's exported stream functions: c10's inline CUDA code (device
// guards, events) would make the trainer link libcudart itself.
#include <c10/cuda/CUDAStream.h>
#endif

namespace simic {
inline namespace v0 {
namespace cuda::detail {

// The dtype code of the kernels, or -1 when they do not read this type.
inline int dtype_code(at::ScalarType t) noexcept {
  switch (t) {
    case at::kFloat: return dtype_f32;
    case at::kHalf: return dtype_f16;
    case at::kBFloat16: return dtype_bf16;
    case at::kDouble: return dtype_f64;
    default: return -1;
  }
}

// The kernels' launch constants for a request.
inline launch_params make_params(const reduce_request& r, double vanishing, double exploding) {
  launch_params p{};
  p.small = r.small;
  p.large = r.large;
  p.vanishing = vanishing;
  p.exploding = exploding;
  p.small_f = simic::detail::float_bound_for_less(r.small);
  p.large_f = simic::detail::float_bound_for_greater(r.large);
  p.full = r.set == stat_set::full ? 1 : 0;
  return p;
}

// Threads of the finish kernel: a warp per tensor up to 32 warps.
inline unsigned finish_threads(std::size_t tensors) noexcept {
  const std::size_t w = std::min<std::size_t>(std::max<std::size_t>(tensors, 1), finish_max_threads / 32);
  return static_cast<unsigned>(w * 32);
}

// Host waits simic itself made (event / stream synchronisations), process-wide.
inline std::atomic<std::uint64_t>& host_sync_counter() noexcept {
  static std::atomic<std::uint64_t> n{0};
  return n;
}

}  // namespace cuda::detail

namespace cuda {
// How many times simic has waited for a device (for "host syncs per call").
inline std::uint64_t host_syncs() noexcept { return detail::host_sync_counter().load(); }
// Whether the fused back end is compiled into this build (config.hpp).
inline constexpr bool compiled_in = SIMIC_CUDA != 0;
}  // namespace cuda

#if SIMIC_CUDA
namespace cuda::detail {

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

// A plan and its packed copy on the device, reused while its key matches.
struct cached_plan {
  plan_key key;
  launch_plan plan;
  std::size_t meta_bytes = 0;  // packed size rounded up to 256
  at::Tensor device_meta;      // the packed plan on the device (kept while cached)
};

struct device_kernels {
  driver_api::context ctx = nullptr;
  driver_api::module mod = nullptr;
  driver_api::function partials[2] = {nullptr, nullptr};  // basic, full
  driver_api::function finish = nullptr;
  int max_blocks[2] = {0, 0};  // resident blocks of each partials kernel on the whole device
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
    check(drv_, drv_.module_get_function(&k->partials[0], k->mod, "simic_partials_basic"), "cuModuleGetFunction");
    check(drv_, drv_.module_get_function(&k->partials[1], k->mod, "simic_partials_full"), "cuModuleGetFunction");
    check(drv_, drv_.module_get_function(&k->finish, k->mod, "simic_finish"), "cuModuleGetFunction");
    for (int f = 0; f < 2; ++f) {
      int per_sm = 0;
      check(drv_, drv_.occupancy_max_active_blocks(&per_sm, k->partials[f], partial_threads, 0),
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

  // The cached plan for `device` if it was built from exactly these inputs.
  std::shared_ptr<const cached_plan> find_plan(int device, std::span<const plan_input> in, int max_blocks,
                                               std::uint64_t stream) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = plans_.find(device);
    if (it == plans_.end() || !it->second->key.matches(in, max_blocks, stream)) return nullptr;
    return it->second;
  }
  void store_plan(int device, std::shared_ptr<const cached_plan> p) {
    std::lock_guard<std::mutex> lock(mu_);
    plans_[device] = std::move(p);
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
      compile_output out = nvrtc_compile(nvrtc(), kernel_source(), "sm_" + cc);
      if (!out.ok) {
        compile_output ptx = nvrtc_compile(nvrtc(), kernel_source(), "compute_" + cc);
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
  std::map<int, std::shared_ptr<const cached_plan>> plans_;
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

// What one enqueue produced.
struct enqueued {
  at::Tensor rows;                     // [tensors + 1, stat::count] float64 on the device; last row: summary
  std::shared_ptr<pinned_slot> slot;   // holds the host copy of `rows` when requested
  std::size_t rows_offset = 0;         // byte offset of that copy in slot->host
  std::size_t tensors = 0;
};

// Enqueues the fused reduction of `r` (CUDA tensors of supported dtypes) on
// the current stream of their device. With `to_host`, the rows are also
// copied into pinned memory and the slot's event is recorded after the copy.
// Makes no host sync.
inline enqueued enqueue(const reduce_request& r, double vanishing, double exploding, bool to_host, bool poison) {
  runtime& rt = runtime::get();
  const driver_api& d = rt.driver();
  const at::Device device = r.tensors[0].device();
  const int dev = device.index();
  const device_kernels& k = rt.kernels(dev);
  const context_scope scope(rt, k.ctx);
  const auto stream = reinterpret_cast<driver_api::stream>(c10::cuda::getCurrentCUDAStream(dev).stream());

  const std::size_t n = r.tensors.size();
  std::vector<at::Tensor> keep;  // contiguous copies, alive until their reads are enqueued
  std::vector<plan_input> in(n);
  for (std::size_t i = 0; i < n; ++i) {
    const at::Tensor& t = r.tensors[i];
    const at::Tensor& c = t.is_contiguous() ? t : keep.emplace_back(t.contiguous());
    in[i] = plan_input{reinterpret_cast<std::uint64_t>(c.data_ptr()), c.numel(), dtype_code(c.scalar_type())};
  }
  const launch_params p = make_params(r, vanishing, exploding);
  const std::uint64_t stream_id = reinterpret_cast<std::uint64_t>(stream);
  const int max_blocks = k.max_blocks[p.full];
  const std::size_t rows_bytes = (n + 1) * stat::count * sizeof(double);
  const auto bytes = at::TensorOptions().dtype(at::kByte).device(device);
  enqueued e;
  e.tensors = n;

  // The plan: reused when the tensors are the ones of the last call (no
  // planning, no copy), else built, packed into a pinned slot and copied.
  std::shared_ptr<const cached_plan> cp = rt.find_plan(dev, in, max_blocks, stream_id);
  if (!cp) {
    auto fresh = std::make_shared<cached_plan>();
    fresh->key = plan_key{in, max_blocks, stream_id};
    plan_options po;
    po.max_blocks = max_blocks;
    fresh->plan = make_launch_plan(in, po);
    fresh->meta_bytes = align_up(fresh->plan.packed_bytes(), 256);
    fresh->device_meta = at::empty({static_cast<std::int64_t>(fresh->meta_bytes)}, bytes);
    e.slot = rt.acquire(dev, fresh->meta_bytes + (to_host ? rows_bytes : 0));
    e.rows_offset = fresh->meta_bytes;
    fresh->plan.pack(static_cast<unsigned char*>(e.slot->host));
    check(d,
          d.memcpy_htod_async(reinterpret_cast<driver_api::devptr>(fresh->device_meta.data_ptr()), e.slot->host,
                              fresh->plan.packed_bytes(), stream),
          "cuMemcpyHtoDAsync");
    rt.store_plan(dev, fresh);
    cp = std::move(fresh);
  } else if (to_host) {
    e.slot = rt.acquire(dev, rows_bytes);
    e.rows_offset = 0;
  }
  const launch_plan& plan = cp->plan;

  const std::size_t partial_bytes = std::max<std::size_t>(plan.pieces.size(), 1) * sizeof(accumulator);
  at::Tensor work = at::empty({static_cast<std::int64_t>(partial_bytes)}, bytes);
  e.rows = at::empty({static_cast<std::int64_t>(n + 1), stat::count}, bytes.dtype(at::kDouble));
  if (poison) e.rows.fill_(std::numeric_limits<double>::quiet_NaN());
  auto* base = static_cast<unsigned char*>(cp->device_meta.data_ptr());

  const auto* tensors = reinterpret_cast<const plan_tensor*>(base + plan.tensors_offset());
  const auto* pieces = reinterpret_cast<const plan_piece*>(base + plan.pieces_offset());
  const auto* firsts = reinterpret_cast<const int*>(base + plan.blocks_offset());
  auto* partials = reinterpret_cast<accumulator*>(work.data_ptr());
  auto* rows = e.rows.data_ptr<double>();
  launch_params pv = p;
  if (plan.blocks() > 0) {
    void* args[] = {&tensors, &pieces, &firsts, &partials, &pv};
    check(d, d.launch_kernel(k.partials[p.full], static_cast<unsigned>(plan.blocks()), 1, 1, partial_threads, 1, 1, 0,
                             stream, args, nullptr),
          "cuLaunchKernel(simic_partials)");
  }
  int n_tensors = static_cast<int>(n);
  const accumulator* partials_c = partials;
  void* fargs[] = {&tensors, &n_tensors, &partials_c, &rows, &pv};
  check(d, d.launch_kernel(k.finish, 1, 1, 1, finish_threads(n), 1, 1, 0, stream, fargs, nullptr),
        "cuLaunchKernel(simic_finish)");
  if (to_host) {
    check(d,
          d.memcpy_dtoh_async(static_cast<unsigned char*>(e.slot->host) + e.rows_offset,
                              reinterpret_cast<driver_api::devptr>(rows), rows_bytes, stream),
          "cuMemcpyDtoHAsync");
  }
  // The slot (plan copy and/or rows) is reused only after this event.
  if (e.slot) check(d, d.event_record(e.slot->done, stream), "cuEventRecord");
  return e;
}

}  // namespace cuda::detail
#endif  // SIMIC_CUDA

// The device-finished gradient-health summary of a request: the shared
// summary (core/gradient_summary.hpp) the finish kernel wrote after the rows.
using cuda_stats_summary = detail::gradient_summary;

// Rows and summary on their way to pinned host memory. ready() polls,
// wait() blocks on the one event; table()/summary() wait first.
class cuda_pending_stats {
 public:
  cuda_pending_stats() = default;
#if SIMIC_CUDA
  explicit cuda_pending_stats(cuda::detail::enqueued e) : e_(std::move(e)) {}
#endif
  bool ready() const {
#if SIMIC_CUDA
    if (!e_.slot) return true;
    const auto& d = cuda::detail::runtime::get().driver();
    return d.event_query(e_.slot->done) != cuda::detail::driver_api::not_ready;
#else
    return true;
#endif
  }
  void wait() const {
#if SIMIC_CUDA
    if (waited_ || !e_.slot) return;
    const auto& d = cuda::detail::runtime::get().driver();
    cuda::detail::host_sync_counter().fetch_add(1);
    cuda::detail::check(d, d.event_synchronize(e_.slot->done), "cuEventSynchronize");
    waited_ = true;
#endif
  }
  // Host rows [tensors, stat::count] (a view of the pinned memory, which it keeps held).
  stats_table table() const {
    wait();
#if SIMIC_CUDA
    if (!e_.slot) return stats_table(simic::detail::empty_stats());
    auto slot = e_.slot;
    double* p = reinterpret_cast<double*>(static_cast<unsigned char*>(slot->host) + e_.rows_offset);
    at::Tensor host = at::from_blob(
        p, {static_cast<std::int64_t>(e_.tensors), stat::count}, [slot](void*) {},
        at::TensorOptions().dtype(at::kDouble));
    return stats_table(std::move(host));
#else
    return stats_table(simic::detail::empty_stats());
#endif
  }
  // Without a request (default-constructed): the summary of no tensors.
  cuda_stats_summary summary() const {
    wait();
    cuda_stats_summary s;
    simic::detail::summary_init(s);
#if SIMIC_CUDA
    if (e_.slot) {
      const double* r = reinterpret_cast<const double*>(static_cast<const unsigned char*>(e_.slot->host) + e_.rows_offset) +
                        e_.tensors * stat::count;
      simic::detail::summary_load(r, s);
      return s;
    }
#endif
    simic::detail::summary_finish(s);
    return s;
  }
  // The device rows (tensors + 1; the last is the summary row).
  at::Tensor device_rows() const {
#if SIMIC_CUDA
    return e_.rows;
#else
    return {};
#endif
  }

 private:
#if SIMIC_CUDA
  cuda::detail::enqueued e_;
#endif
  mutable bool waited_ = false;
};

// The back end. For requests it cannot take (CPU tensors, dtypes other than
// float32/16, bfloat16, float64, or no NVRTC/driver at run time, or compiled
// out) it uses `fallback`.
struct cuda_fused_backend {
  torch_ops_backend fallback{};
  bool poison_outputs = false;  // tests: fill the result rows with NaN before the kernels run

  // Whether this request goes to the fused kernels.
  static bool accepts(const reduce_request& r) {
#if SIMIC_CUDA
    if (r.tensors.empty() || !r.tensors[0].defined() || !r.tensors[0].is_cuda()) return false;
    for (const auto& t : r.tensors)
      if (!t.defined() || cuda::detail::dtype_code(t.scalar_type()) < 0) return false;
    return cuda::detail::runtime::get().available();
#else
    (void)r;
    return false;
#endif
  }
  // Why the fused path is unavailable in this process ("" when it is).
  static std::string unavailable_reason() {
#if SIMIC_CUDA
    std::string why;
    return cuda::detail::runtime::get().available(&why) ? std::string() : why;
#else
    return "simic was built without LibTorch's CUDA headers/libraries (SIMIC_CUDA=0)";
#endif
  }

  at::Tensor reduce(const reduce_request& r) const {
    static constexpr const char* where = "simic::cuda_fused_backend::reduce";
    simic::detail::validate_request(r, where);
    if (!accepts(r)) return fallback.reduce(r);
#if SIMIC_CUDA
    cuda::detail::enqueued e = cuda::detail::enqueue(r, defaults::grad_vanishing, defaults::grad_exploding,
                                                     /*to_host=*/false, poison_outputs);
    return e.rows.narrow(0, 0, static_cast<std::int64_t>(e.tensors));
#else
    return fallback.reduce(r);
#endif
  }

  // The same, with the rows and the device-finished summary copied into
  // pinned host memory behind one event. Requires accepts(r).
  cuda_pending_stats reduce_async(const reduce_request& r, double vanishing = defaults::grad_vanishing,
                                  double exploding = defaults::grad_exploding) const {
    static constexpr const char* where = "simic::cuda_fused_backend::reduce_async";
    simic::detail::validate_request(r, where);
    simic::detail::require(accepts(r), where, "tensors", "(not fused-CUDA eligible)",
                           "non-empty CUDA tensors of float32, float16, bfloat16 or float64 with NVRTC available; " +
                               unavailable_reason());
#if SIMIC_CUDA
    return cuda_pending_stats(cuda::detail::enqueue(r, vanishing, exploding, /*to_host=*/true, poison_outputs));
#else
    (void)vanishing;
    (void)exploding;
    return {};
#endif
  }
};

static_assert(reduction_backend<cuda_fused_backend>);

namespace cuda {

// A sensor's pending report whose device stats are moved into pinned host
// memory now (asynchronously) and finished after one event wait.
template <class Report>
class pinned_report {
 public:
  explicit pinned_report(pending_report<Report> p) : p_(std::move(p)) {
#if SIMIC_CUDA
    const at::Tensor& s = p_.device_stats();
    if (s.defined() && s.is_cuda()) {
      at::Tensor src = s.scalar_type() == at::kDouble && s.is_contiguous() ? s : s.to(at::kDouble).contiguous();
      runtime_copy(src);
    }
#endif
  }
  bool ready() const {
#if SIMIC_CUDA
    if (slot_) return detail::runtime::get().driver().event_query(slot_->done) != detail::driver_api::not_ready;
#endif
    return true;
  }
  Report materialize() const {
#if SIMIC_CUDA
    if (slot_) {
      const auto& d = detail::runtime::get().driver();
      detail::host_sync_counter().fetch_add(1);
      detail::check(d, d.event_synchronize(slot_->done), "cuEventSynchronize");
      auto slot = slot_;
      at::Tensor host = at::from_blob(slot->host, {rows_, stat::count}, [slot](void*) {},
                                      at::TensorOptions().dtype(at::kDouble));
      return p_.finish(stats_table(host));
    }
#endif
    return p_.materialize();
  }

 private:
#if SIMIC_CUDA
  void runtime_copy(const at::Tensor& src) {
    auto& rt = detail::runtime::get();
    if (!rt.driver().loaded()) return;  // materialize() falls back to the plain copy
    const int dev = src.device().index();
    const detail::context_scope scope(rt, rt.context(dev));
    const auto stream = reinterpret_cast<detail::driver_api::stream>(c10::cuda::getCurrentCUDAStream(dev).stream());
    rows_ = src.size(0);
    const std::size_t bytes = static_cast<std::size_t>(src.numel()) * sizeof(double);
    slot_ = rt.acquire(dev, bytes);
    const auto& d = rt.driver();
    detail::check(d, d.memcpy_dtoh_async(slot_->host, reinterpret_cast<detail::driver_api::devptr>(src.data_ptr()), bytes,
                                         stream),
                  "cuMemcpyDtoHAsync");
    detail::check(d, d.event_record(slot_->done, stream), "cuEventRecord");
  }
  std::shared_ptr<detail::pinned_slot> slot_;
  std::int64_t rows_ = 0;
#endif
  pending_report<Report> p_;
};

template <class Report>
pinned_report<Report> pin(pending_report<Report> p) {
  return pinned_report<Report>(std::move(p));
}

}  // namespace cuda

#if SIMIC_CUDA
namespace cuda::detail {
// auto_backend's device hook: take CUDA requests the kernels accept, decline
// (undefined tensor) the rest.
inline at::Tensor auto_device_reduce(const reduce_request& r) {
  if (!cuda_fused_backend::accepts(r)) return {};
  return cuda_fused_backend{}.reduce(r);
}
inline const bool auto_hook_installed = (simic::detail::install_device_reducer(&auto_device_reduce), true);
}  // namespace cuda::detail
#endif

}  // namespace v0
}  // namespace simic
