// The fused CUDA back end's dispatch: one request enqueued on LibTorch's
// current stream (plan, metadata copy, one kernel launch, optionally
// the copy of the rows into pinned memory and an event), and a device->host
// copy of any stats tensor into pinned memory. Makes no host sync.
//
// The one place that needs LibTorch's CUDA headers (the current stream):
// without them (SIMIC_CUDA=0, config.hpp) the rest compiles and is never
// reached, since cuda::fused_backend::accepts() refuses every request.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "simic/reduce/cuda/config.hpp"
#include "simic/reduce/cuda/runtime.hpp"
#include "simic/reduce/backend.hpp"

#if SIMIC_CUDA
// Only c10_cuda's exported stream functions: c10's inline CUDA code (device
// guards, events) would make the trainer link libcudart itself.
#include <c10/cuda/CUDAStream.h>
#endif

namespace simic {
inline namespace v0 {
namespace cuda::detail {

// LibTorch's current stream on `device`, as a driver stream.
inline driver_api::stream current_stream(int device) {
#if SIMIC_CUDA
  return reinterpret_cast<driver_api::stream>(c10::cuda::getCurrentCUDAStream(device).stream());
#else
  (void)device;
  throw std::logic_error("simic::cuda: the fused back end is not compiled in (SIMIC_CUDA=0)");
#endif
}

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
  const driver_api::stream stream = current_stream(dev);

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
  // planning, no copy, no allocation but the rows), else built, packed into
  // a pinned slot and copied.
  std::shared_ptr<const cached_plan> cp = rt.find_plan(dev, in, max_blocks, stream_id);
  if (!cp) {
    auto fresh = std::make_shared<cached_plan>();
    fresh->key = plan_key{in, max_blocks, stream_id};
    plan_options po;
    po.max_blocks = max_blocks;
    fresh->plan = make_launch_plan(in, po);
    fresh->meta_bytes = align_up(fresh->plan.packed_bytes(), 256);
    fresh->device_meta = at::empty({static_cast<std::int64_t>(fresh->meta_bytes)}, bytes);
    const std::size_t partial_bytes = std::max<std::size_t>(fresh->plan.pieces.size(), 1) * sizeof(accumulator);
    fresh->partials = at::empty({static_cast<std::int64_t>(partial_bytes)}, bytes);
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

  e.rows = at::empty({static_cast<std::int64_t>(n + 1), stat::count}, bytes.dtype(at::kDouble));
  if (poison) e.rows.fill_(std::numeric_limits<double>::quiet_NaN());
  auto* base = static_cast<unsigned char*>(cp->device_meta.data_ptr());

  const auto* tensors = reinterpret_cast<const plan_tensor*>(base + plan.tensors_offset());
  const auto* pieces = reinterpret_cast<const plan_piece*>(base + plan.pieces_offset());
  const auto* firsts = reinterpret_cast<const int*>(base + plan.blocks_offset());
  auto* counters = reinterpret_cast<int*>(base + plan.counters_offset());
  auto* partials = reinterpret_cast<accumulator*>(cp->partials.data_ptr());
  auto* rows = e.rows.data_ptr<double>();
  int n_tensors = static_cast<int>(n);
  int n_active = plan.active_tensors;
  launch_params pv = p;
  void* args[] = {&tensors, &pieces, &firsts, &counters, &n_tensors, &n_active, &partials, &rows, &pv};
  check(d, d.launch_kernel(k.stats[p.full], static_cast<unsigned>(plan.grid()), 1, 1, partial_threads, 1, 1, 0, stream,
                           args, nullptr),
        "cuLaunchKernel(simic_stats)");
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

// Copies a contiguous float64 device tensor into a pinned slot and records
// the slot's event after the copy; a null slot when the driver is missing.
inline std::shared_ptr<pinned_slot> enqueue_host_copy(const at::Tensor& src) {
  runtime& rt = runtime::get();
  if (!rt.driver().loaded()) return nullptr;
  const int dev = src.device().index();
  const context_scope scope(rt, rt.context(dev));
  const driver_api::stream stream = current_stream(dev);
  const std::size_t bytes = static_cast<std::size_t>(src.numel()) * sizeof(double);
  std::shared_ptr<pinned_slot> slot = rt.acquire(dev, bytes);
  const driver_api& d = rt.driver();
  check(d, d.memcpy_dtoh_async(slot->host, reinterpret_cast<driver_api::devptr>(src.data_ptr()), bytes, stream),
        "cuMemcpyDtoHAsync");
  check(d, d.event_record(slot->done, stream), "cuEventRecord");
  return slot;
}

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
