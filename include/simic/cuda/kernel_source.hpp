// The CUDA C++ source of the fused kernels, as NVRTC compiles it: a device
// prelude, the shared code (the very text the host compiles: the stats row
// layout of core/stat_layout.hpp, the gradient-health summary of
// core/gradient_summary.hpp, the accumulation code of accumulate.hpp), and
// the kernels. No LibTorch, no CUDA headers: it is a
// string, and the CPU tests compile it through NVRTC for several
// architectures.
//
// Kernels (extern "C", so their names are stable):
//   simic_partials_basic / simic_partials_full
//       grid = launch_plan::blocks(), 256 threads. Block b reduces its pieces
//       (contiguous element ranges of one tensor, MultiTensorApply-style) to
//       one accumulator each: 16-byte vector loads, four in flight per
//       thread summed by the fast path (a group with NaN / Inf / float32
//       overflow is summed again by the careful one), float32 groups folded
//       into float64 per thread, then a warp shuffle and a shared-memory
//       block merge.
//   simic_finish
//       one block (<= 1024 threads). Warp w merges the pieces of tensors w,
//       w + warps, ... in piece order, writes their packed rows, and the
//       block merges the gradient-health summary into the row after them.
// Both are deterministic: the merge order depends on the plan only.
#pragma once

#include <initializer_list>
#include <string>

#include "simic/cuda/accumulate.hpp"

namespace simic {
inline namespace v0 {
namespace cuda::detail {

inline constexpr int partial_threads = 256;
inline constexpr int finish_max_threads = 1024;

inline constexpr const char kernel_prelude[] = R"SIMIC(
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
#define SIMIC_SHARED_FN __device__ __forceinline__
#define SIMIC_SHARED_CONSTEXPR __device__ __forceinline__
namespace simic_dev {
__device__ __forceinline__ float bits_to_f32(u32 b) { return __int_as_float((int)b); }
__device__ __forceinline__ float half_to_f32(u32 h) {
  float f;
  const unsigned short s = (unsigned short)(h & 0xffffu);
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(s));
  return f;
}
__device__ __forceinline__ float max_f32(float a, float x) { return fmaxf(a, x); }
__device__ __forceinline__ float min_f32(float a, float x) { return fminf(a, x); }
__device__ __forceinline__ double max_f64(double a, double x) { return fmax(a, x); }
__device__ __forceinline__ double min_f64(double a, double x) { return fmin(a, x); }
)SIMIC";

inline constexpr const char kernel_body[] = R"SIMIC(
__device__ __forceinline__ void shfl_merge(accumulator& a, int offset) {
  accumulator b;
  b.sumsq = __shfl_down_sync(0xffffffffu, a.sumsq, offset);
  b.sum_d = __shfl_down_sync(0xffffffffu, a.sum_d, offset);
  b.sumsq_d = __shfl_down_sync(0xffffffffu, a.sumsq_d, offset);
  b.max_abs = __shfl_down_sync(0xffffffffu, a.max_abs, offset);
  b.min = __shfl_down_sync(0xffffffffu, a.min, offset);
  b.max = __shfl_down_sync(0xffffffffu, a.max, offset);
  b.zeros = __shfl_down_sync(0xffffffffu, a.zeros, offset);
  b.nans = __shfl_down_sync(0xffffffffu, a.nans, offset);
  b.infs = __shfl_down_sync(0xffffffffu, a.infs, offset);
  b.small = __shfl_down_sync(0xffffffffu, a.small, offset);
  b.large = __shfl_down_sync(0xffffffffu, a.large, offset);
  merge(a, b);
}
__device__ __forceinline__ void warp_merge(accumulator& a) {
  for (int o = 16; o > 0; o >>= 1) shfl_merge(a, o);
}
// The block's merged accumulator ends in thread 0.
__device__ __forceinline__ void block_merge(accumulator& a, accumulator* sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  warp_merge(a);
  __syncthreads();  // sm may still be read from the previous piece
  if (lane == 0) sm[warp] = a;
  __syncthreads();
  if (warp == 0) {
    if (lane < warps) a = sm[lane]; else acc_init(a);
    warp_merge(a);
  }
}

__device__ __forceinline__ float tensor_shift(const plan_tensor& t) {
  if (t.numel == 0) return 0.0f;
  switch (t.dtype) {
    case dtype_f32: return shift_of((double)*(const float*)t.addr);
    case dtype_f16: return shift_of((double)half_to_f32(*(const unsigned short*)t.addr));
    case dtype_bf16: return shift_of((double)bf16_to_f32(*(const unsigned short*)t.addr));
    default: return shift_of(*(const double*)t.addr);
  }
}

struct f32_traits {
  typedef float4 vec;
  enum { per_vec = 4, bytes = 4 };
  static __device__ __forceinline__ float at(const void* p, i64 j) { return __ldg((const float*)p + j); }
  template <int Full>
  static __device__ __forceinline__ void add(group& g, accumulator& a, const vec& v, float s, bool w, const launch_params& p) {
    add_narrow<Full>(g, a, v.x, s, w, p); add_narrow<Full>(g, a, v.y, s, w, p);
    add_narrow<Full>(g, a, v.z, s, w, p); add_narrow<Full>(g, a, v.w, s, w, p);
  }
  template <int Full>
  static __device__ __forceinline__ void add_fast_vec(group& g, const vec& v, float s, const launch_params& p) {
    add_fast<Full>(g, v.x, s, p); add_fast<Full>(g, v.y, s, p);
    add_fast<Full>(g, v.z, s, p); add_fast<Full>(g, v.w, s, p);
  }
};
template <int Half>
struct h16_traits {
  typedef uint4 vec;
  enum { per_vec = 8, bytes = 2 };
  static __device__ __forceinline__ float conv(u32 h) { return Half ? half_to_f32(h) : bf16_to_f32(h); }
  static __device__ __forceinline__ float at(const void* p, i64 j) {
    return conv((u32)__ldg((const unsigned short*)p + j));
  }
  template <int Full>
  static __device__ __forceinline__ void add2(group& g, accumulator& a, u32 w2, float s, bool w, const launch_params& p) {
    add_narrow<Full>(g, a, conv(w2 & 0xffffu), s, w, p);
    add_narrow<Full>(g, a, conv(w2 >> 16), s, w, p);
  }
  template <int Full>
  static __device__ __forceinline__ void add(group& g, accumulator& a, const vec& v, float s, bool w, const launch_params& p) {
    add2<Full>(g, a, v.x, s, w, p); add2<Full>(g, a, v.y, s, w, p);
    add2<Full>(g, a, v.z, s, w, p); add2<Full>(g, a, v.w, s, w, p);
  }
  template <int Full>
  static __device__ __forceinline__ void fast2(group& g, u32 w2, float s, const launch_params& p) {
    add_fast<Full>(g, conv(w2 & 0xffffu), s, p);
    add_fast<Full>(g, conv(w2 >> 16), s, p);
  }
  template <int Full>
  static __device__ __forceinline__ void add_fast_vec(group& g, const vec& v, float s, const launch_params& p) {
    fast2<Full>(g, v.x, s, p); fast2<Full>(g, v.y, s, p); fast2<Full>(g, v.z, s, p); fast2<Full>(g, v.w, s, p);
  }
};

// The careful path of one four-vector group, out of line so that its
// float64 code does not cost the fast path registers. The float64 sums of
// huge elements come back beside the group (the accumulator's other fields
// are untouched by add_narrow).
struct careful_out { group g; double sumsq; double sum_d; double sumsq_d; };
template <int Full, class T>
__device__ __noinline__ careful_out careful_group(typename T::vec x0, typename T::vec x1, typename T::vec x2,
                                                  typename T::vec x3, float shift, bool sw, launch_params p) {
  careful_out o;
  group_init(o.g);
  accumulator a; acc_init(a);
  T::template add<Full>(o.g, a, x0, shift, sw, p);
  T::template add<Full>(o.g, a, x1, shift, sw, p);
  T::template add<Full>(o.g, a, x2, shift, sw, p);
  T::template add<Full>(o.g, a, x3, shift, sw, p);
  o.sumsq = a.sumsq; o.sum_d = a.sum_d; o.sumsq_d = a.sumsq_d;
  return o;
}

// One piece of a float32 / float16 / bfloat16 tensor: scalar head up to the
// first 16-byte boundary, 16-byte vectors four per thread per step (each
// step one float32 group, <= 32 elements), then a scalar tail.
template <int Full, class T>
__device__ __forceinline__ void run_narrow(const char* base, i64 n, float shift, const launch_params& p, accumulator& a) {
  const int tid = threadIdx.x, B = blockDim.x;
  const bool sw = shift_is_wide(shift);
  i64 head = (i64)(((16u - ((u32)(u64)base & 15u)) & 15u) / (u32)T::bytes);
  if (head > n) head = n;
  group g; group_init(g);
  if (tid < head) {
    add_narrow<Full>(g, a, T::at(base, tid), shift, sw, p);
    fold<Full>(a, g); group_init(g);
  }
  const typename T::vec* v = (const typename T::vec*)(base + head * T::bytes);
  const i64 nv = (n - head) / T::per_vec;
  i64 i = tid;
  for (; i + 3 * B < nv; i += 4 * B) {
    const typename T::vec x0 = __ldg(v + i), x1 = __ldg(v + i + B), x2 = __ldg(v + i + 2 * B), x3 = __ldg(v + i + 3 * B);
    T::template add_fast_vec<Full>(g, x0, shift, p);
    T::template add_fast_vec<Full>(g, x1, shift, p);
    T::template add_fast_vec<Full>(g, x2, shift, p);
    T::template add_fast_vec<Full>(g, x3, shift, p);
    if (sw || needs_careful<Full>(g)) {  // rare: NaN / Inf / float32 overflow in this group
      const careful_out o = careful_group<Full, T>(x0, x1, x2, x3, shift, sw, p);
      g = o.g;
      a.sumsq += o.sumsq; a.sum_d += o.sum_d; a.sumsq_d += o.sumsq_d;
    }
    fold<Full>(a, g); group_init(g);
  }
  for (; i < nv; i += B) T::template add<Full>(g, a, __ldg(v + i), shift, sw, p);  // <= 3 vectors
  for (i64 j = head + nv * T::per_vec + tid; j < n; j += B) add_narrow<Full>(g, a, T::at(base, j), shift, sw, p);
  fold<Full>(a, g);
}

template <int Full>
__device__ __forceinline__ void run_double(const char* base, i64 n, double shift, const launch_params& p, accumulator& a) {
  const double* x = (const double*)base;
  for (i64 j = threadIdx.x; j < n; j += blockDim.x) add_double<Full>(a, __ldg(x + j), shift, p);
}

template <int Full>
__device__ __forceinline__ void partials(const plan_tensor* __restrict__ tensors, const plan_piece* __restrict__ pieces,
                                         const int* __restrict__ block_first_piece, accumulator* __restrict__ out,
                                         const launch_params& p) {
  __shared__ accumulator sm[32];
  const int first = block_first_piece[blockIdx.x], last = block_first_piece[blockIdx.x + 1];
  for (int k = first; k < last; ++k) {
    const plan_piece pc = pieces[k];
    const plan_tensor t = tensors[pc.tensor];
    const float shift = Full ? tensor_shift(t) : 0.0f;
    accumulator a; acc_init(a);
    const i64 n = pc.end - pc.begin;
    const char* base = (const char*)t.addr;
    switch (t.dtype) {
      case dtype_f32: run_narrow<Full, f32_traits>(base + pc.begin * 4, n, shift, p, a); break;
      case dtype_f16: run_narrow<Full, h16_traits<1> >(base + pc.begin * 2, n, shift, p, a); break;
      case dtype_bf16: run_narrow<Full, h16_traits<0> >(base + pc.begin * 2, n, shift, p, a); break;
      default: run_double<Full>(base + pc.begin * 8, n, (double)shift, p, a); break;
    }
    block_merge(a, sm);
    if (threadIdx.x == 0) out[k] = a;
  }
}

__device__ __forceinline__ void shfl_summary(gradient_summary& s, int o) {
  gradient_summary b;
  b.total_sumsq = __shfl_down_sync(0xffffffffu, s.total_sumsq, o);
  b.min_norm = __shfl_down_sync(0xffffffffu, s.min_norm, o);
  b.max_norm = __shfl_down_sync(0xffffffffu, s.max_norm, o);
  b.vanishing = __shfl_down_sync(0xffffffffu, s.vanishing, o);
  b.exploding = __shfl_down_sync(0xffffffffu, s.exploding, o);
  b.elements = __shfl_down_sync(0xffffffffu, s.elements, o);
  b.zeros = __shfl_down_sync(0xffffffffu, s.zeros, o);
  b.nans = __shfl_down_sync(0xffffffffu, s.nans, o);
  b.infs = __shfl_down_sync(0xffffffffu, s.infs, o);
  b.tensors = __shfl_down_sync(0xffffffffu, s.tensors, o);
  summary_merge(s, b);
}

}  // namespace simic_dev

using namespace simic_dev;

extern "C" __global__ void __launch_bounds__(256)
simic_partials_basic(const plan_tensor* tensors, const plan_piece* pieces, const int* block_first_piece,
                     accumulator* out, launch_params p) {
  partials<0>(tensors, pieces, block_first_piece, out, p);
}
extern "C" __global__ void __launch_bounds__(256)
simic_partials_full(const plan_tensor* tensors, const plan_piece* pieces, const int* block_first_piece,
                    accumulator* out, launch_params p) {
  partials<1>(tensors, pieces, block_first_piece, out, p);
}

// rows: [tensors + 1, stat::count] float64; row `tensors` takes the summary.
extern "C" __global__ void __launch_bounds__(1024)
simic_finish(const plan_tensor* tensors, int n_tensors, const accumulator* partials_in, double* rows, launch_params p) {
  __shared__ gradient_summary sm[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  gradient_summary s; summary_init(s);
  for (int t = warp; t < n_tensors; t += warps) {
    const plan_tensor pt = tensors[t];
    accumulator a; acc_init(a);
    for (int j = lane; j < pt.pieces; j += 32) merge(a, partials_in[pt.first_piece + j]);
    warp_merge(a);
    if (lane == 0) {
      double* row = rows + (i64)t * stat::count;
      finish_row(a, pt.numel, p.full ? (double)tensor_shift(pt) : 0.0, p.full, row);
      summary_add_row(s, row, p.vanishing, p.exploding);
    }
  }
  if (lane == 0) sm[warp] = s;
  __syncthreads();
  if (warp == 0) {
    if (lane < warps) s = sm[lane]; else summary_init(s);
    for (int o = 16; o > 0; o >>= 1) shfl_summary(s, o);
    if (lane == 0) {
      summary_finish(s);
      summary_store(s, rows + (i64)n_tensors * stat::count);
    }
  }
}
)SIMIC";

// The complete translation unit handed to NVRTC.
inline std::string kernel_source() {
  std::string s;
  s.reserve(sizeof kernel_prelude + sizeof simic::shared_code::stat_layout +
            sizeof simic::detail::shared_code::gradient_summary + sizeof shared_code::accumulate + sizeof kernel_body +
            16);
  s += kernel_prelude;
  for (const char* code : {simic::shared_code::stat_layout, simic::detail::shared_code::gradient_summary,
                           shared_code::accumulate}) {
    s += code;
    s += "\n";
  }
  s += kernel_body;
  return s;
}

inline constexpr const char* kernel_names[] = {"simic_partials_basic", "simic_partials_full", "simic_finish"};

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
