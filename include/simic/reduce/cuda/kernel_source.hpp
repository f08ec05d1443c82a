// The CUDA C++ source of the fused kernels, as NVRTC compiles it: a device
// prelude, the shared code (the very text the host compiles: the stats row
// layout of reduce/stat_layout.hpp, the gradient-health summary of
// reduce/gradient_summary.hpp, the accumulation code of accumulate.hpp), and
// the kernels. No LibTorch, no CUDA headers: it is a
// string, and the CPU tests compile it through NVRTC for several
// architectures.
//
// Kernels (extern "C", so their names are stable), one launch per request:
//   simic_stats_basic / simic_stats_full
//       grid = launch_plan::blocks() (at least 1), partial_threads threads.
//       Block b reduces its pieces (contiguous element ranges of one tensor,
//       MultiTensorApply-style) to one accumulator each: 16-byte vector
//       loads, four in flight per thread, summed by the fast path (a group
//       with NaN / Inf / float32 overflow is read again and summed by the
//       careful one), float32 groups folded into float64 per thread, a warp
//       shuffle and a shared-memory block merge. The block that counts a
//       tensor's last piece merges that tensor's partials in piece order and
//       writes its packed row; the block that finishes the last tensor
//       writes the rows of empty tensors and the gradient-health summary
//       into the row after them. Counters in the plan's device memory say
//       who is last; the kernel leaves them at 0 for the next launch.
// Deterministic: every merge order depends on the plan only.
#pragma once

#include <initializer_list>
#include <string>

#include "simic/reduce/cuda/accumulate.hpp"

namespace simic {
inline namespace v0 {
namespace cuda::detail {


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
// Accumulator merges across lanes: the basic set moves only its three
// fields; NaN / Inf counts (block-wide counters while a piece is read,
// fused_stats) move only with `counts`.
template <int Full, int Counts>
__device__ __forceinline__ void shfl_merge(accumulator& a, int offset) {
  accumulator b = a;
  b.sumsq = __shfl_down_sync(0xffffffffu, a.sumsq, offset);
  b.max_abs = __shfl_down_sync(0xffffffffu, a.max_abs, offset);
  b.zeros = __shfl_down_sync(0xffffffffu, a.zeros, offset);
  b.nans = Counts ? __shfl_down_sync(0xffffffffu, a.nans, offset) : 0u;
  b.infs = Counts ? __shfl_down_sync(0xffffffffu, a.infs, offset) : 0u;
  if (Full) {
    b.sum_d = __shfl_down_sync(0xffffffffu, a.sum_d, offset);
    b.sumsq_d = __shfl_down_sync(0xffffffffu, a.sumsq_d, offset);
    b.min = __shfl_down_sync(0xffffffffu, a.min, offset);
    b.max = __shfl_down_sync(0xffffffffu, a.max, offset);
    b.small = __shfl_down_sync(0xffffffffu, a.small, offset);
    b.large = __shfl_down_sync(0xffffffffu, a.large, offset);
  }
  merge(a, b);
}
template <int Full, int Counts>
__device__ __forceinline__ void warp_merge(accumulator& a) {
  for (int o = 16; o > 0; o >>= 1) shfl_merge<Full, Counts>(a, o);
}
// The block's merged accumulator (without NaN / Inf counts) ends in thread 0.
template <int Full>
__device__ __forceinline__ void block_merge(accumulator& a, accumulator* sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  warp_merge<Full, 0>(a);
  __syncthreads();  // sm may still be read from the previous piece
  if (lane == 0) sm[warp] = a;
  __syncthreads();
  if (warp == 0) {
    if (lane < partial_threads / 32) a = sm[lane]; else acc_init(a);
    warp_merge<Full, 0>(a);
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

// A thread's running sums over its share of one piece of a float32 /
// float16 / bfloat16 tensor: the accumulator's fields with float32 extremes
// (exact: every value is a float32) and 32-bit counts (a thread reads at most
// 1/partial_threads of a piece, and the planner refuses tensors of 2^40
// elements or more). NaN and Inf counts, which only the careful path finds,
// go to two block-wide counters in shared memory instead (a block's piece
// is at most 1/grid of the bytes, far below 2^32 elements). Together this
// keeps the basic set's loop inside its register budget (basic_blocks_per_sm,
// accumulate.hpp), with the same figures as folding every group into an
// accumulator.
struct thread_acc {
  double sumsq; double sum_d; double sumsq_d;
  float max_abs; float min; float max;
  u32 zeros; u32 small; u32 large;
};
__device__ __forceinline__ void thread_init(thread_acc& t) {
  t.sumsq = 0.0; t.sum_d = 0.0; t.sumsq_d = 0.0;
  t.max_abs = 0.0f; t.min = f32_inf(); t.max = -f32_inf();
  t.zeros = 0u; t.small = 0u; t.large = 0u;
}
// NaN / Inf counts of a group (or a float64 thread's accumulator) into the
// block's counters, leaving them 0 there (rare: careful path only; a
// thread's counts fit 32 bits, see thread_acc).
template <class Counts>
__device__ __forceinline__ void flush_rare(Counts& c, u32* rare) {
  if (c.nans) atomicAdd(rare, (u32)c.nans);
  if (c.infs) atomicAdd(rare + 1, (u32)c.infs);
  c.nans = 0u; c.infs = 0u;
}
template <int Full>
__device__ __forceinline__ void thread_fold(thread_acc& t, const group& g) {
  t.sumsq += (double)g.sumsq;
  t.max_abs = max_f32(t.max_abs, g.max_abs);
  t.zeros += g.zeros;
  if (Full) {
    t.sum_d += (double)g.sum_d;
    t.sumsq_d += (double)g.sumsq_d;
    t.min = min_f32(t.min, g.min);
    t.max = max_f32(t.max, g.max);
    t.small += g.small; t.large += g.large;
  }
}
// After a careful batch: the float64 sums of its huge elements (add_narrow's
// `w`) join t, its NaN / Inf counts go to `rare`.
template <int Full>
__device__ __forceinline__ void join_careful(thread_acc& t, group& g, const accumulator& w, u32* rare) {
  t.sumsq += w.sumsq;
  if (Full) { t.sum_d += w.sum_d; t.sumsq_d += w.sumsq_d; }
  flush_rare(g, rare);
}
// `count` vectors q, q + partial_threads, ... summed on the careful path (from memory) into g.
template <int Full, class T>
__device__ __forceinline__ void careful_vectors(thread_acc& t, group& g, const typename T::vec* q, int count,
                                                float shift, bool sw, const launch_params& p, u32* rare) {
  accumulator w; acc_init(w);
  for (int u = 0; u < count; ++u) T::template add<Full>(g, w, __ldg(q + u * partial_threads), shift, sw, p);
  join_careful<Full>(t, g, w, rare);
}
// Element j of base on the careful path (the head and tail: one per thread).
template <int Full, class T>
__device__ __forceinline__ void careful_scalar(thread_acc& t, group& g, const char* base, i64 j, float shift, bool sw,
                                               const launch_params& p, u32* rare) {
  accumulator w; acc_init(w);
  add_narrow<Full>(g, w, T::at(base, j), shift, sw, p);
  join_careful<Full>(t, g, w, rare);
}
__device__ __forceinline__ void widen(accumulator& a, const thread_acc& t) {
  a.sumsq = t.sumsq; a.sum_d = t.sum_d; a.sumsq_d = t.sumsq_d;
  a.max_abs = (double)t.max_abs; a.min = (double)t.min; a.max = (double)t.max;
  a.zeros = t.zeros; a.nans = 0u; a.infs = 0u; a.small = t.small; a.large = t.large;
}

// One piece of a float32 / float16 / bfloat16 tensor: scalar head up to the
// first 16-byte boundary, 16-byte vectors four per thread per step (each
// step one float32 group, <= 32 elements), then the remaining vectors and a
// scalar tail. A group the fast path cannot vouch for (NaN, Inf, float32
// overflow; rare) is read again from memory and summed on the careful path,
// so the four vectors need not stay in registers for it.
template <int Full, class T>
__device__ __forceinline__ void run_narrow(const char* base, i64 n, float shift, const launch_params& p, u32* rare,
                                           accumulator& out) {
  typedef typename T::vec vec;
  const int tid = threadIdx.x;
  const int B = partial_threads;
  const bool sw = shift_is_wide(shift);
  i64 head = (i64)(((16u - ((u32)(u64)base & 15u)) & 15u) / (u32)T::bytes);
  if (head > n) head = n;
  thread_acc t; thread_init(t);
  group g; group_init(g);
  if (tid < head) careful_scalar<Full, T>(t, g, base, tid, shift, sw, p, rare);
  const vec* v = (const vec*)(base + head * T::bytes);
  const i64 nv = (n - head) / T::per_vec;
  const int tail = (int)(n - head - nv * T::per_vec);  // < per_vec elements after the last vector
  const vec* q = v + tid;
  const vec* const end = v + nv;
  for (; q + 3 * B < end; q += 4 * B) {
    thread_fold<Full>(t, g); group_init(g);
    const vec x0 = __ldg(q), x1 = __ldg(q + B), x2 = __ldg(q + 2 * B), x3 = __ldg(q + 3 * B);
    T::template add_fast_vec<Full>(g, x0, shift, p);
    T::template add_fast_vec<Full>(g, x1, shift, p);
    T::template add_fast_vec<Full>(g, x2, shift, p);
    T::template add_fast_vec<Full>(g, x3, shift, p);
    if (sw || needs_careful<Full>(g)) {
      group_init(g);
      careful_vectors<Full, T>(t, g, q, 4, shift, sw, p, rare);
    }
  }
  thread_fold<Full>(t, g); group_init(g);
  const int left = q < end ? (int)((end - q + B - 1) / B) : 0;  // <= 3 vectors
  if (left > 0) careful_vectors<Full, T>(t, g, q, left, shift, sw, p, rare);
  if (tid < tail) careful_scalar<Full, T>(t, g, (const char*)end, tid, shift, sw, p, rare);
  thread_fold<Full>(t, g);
  widen(out, t);
}

template <int Full>
__device__ __forceinline__ void run_double(const char* base, i64 n, double shift, const launch_params& p, u32* rare,
                                           accumulator& a) {
  const double* x = (const double*)base;
  for (i64 j = threadIdx.x; j < n; j += partial_threads) add_double<Full>(a, __ldg(x + j), shift, p);
  flush_rare(a, rare);
}

// Reads another block's result: from L2 (ld.global.cg), never a stale L1 line.
// Word k of the accumulator (its layout is tied by static_asserts in
// accumulate.hpp): six doubles, then five counts.
__device__ __forceinline__ void load_partial(const accumulator* src, accumulator& a) {
  const double* d = (const double*)src;
  const u64* u = (const u64*)src;
  a.sumsq = __ldcg(d + 0); a.sum_d = __ldcg(d + 1); a.sumsq_d = __ldcg(d + 2);
  a.max_abs = __ldcg(d + 3); a.min = __ldcg(d + 4); a.max = __ldcg(d + 5);
  a.zeros = __ldcg(u + 6); a.nans = __ldcg(u + 7); a.infs = __ldcg(u + 8); a.small = __ldcg(u + 9); a.large = __ldcg(u + 10);
}

// summary_merge across a warp, one field at a time (each shuffled value is
// consumed at once, so the summary needs no second copy in registers).
__device__ __forceinline__ void warp_summary(gradient_summary& s) {
  for (int o = 16; o > 0; o >>= 1) {
    gradient_summary b;
    summary_init(b);
    b.total_sumsq = __shfl_down_sync(0xffffffffu, s.total_sumsq, o);
    b.min_norm = __shfl_down_sync(0xffffffffu, s.min_norm, o);
    b.max_norm = __shfl_down_sync(0xffffffffu, s.max_norm, o);
    summary_merge(s, b);
    summary_init(b);
    b.vanishing = __shfl_down_sync(0xffffffffu, s.vanishing, o);
    b.exploding = __shfl_down_sync(0xffffffffu, s.exploding, o);
    b.elements = __shfl_down_sync(0xffffffffu, s.elements, o);
    summary_merge(s, b);
    summary_init(b);
    b.zeros = __shfl_down_sync(0xffffffffu, s.zeros, o);
    b.nans = __shfl_down_sync(0xffffffffu, s.nans, o);
    b.infs = __shfl_down_sync(0xffffffffu, s.infs, o);
    b.tensors = __shfl_down_sync(0xffffffffu, s.tensors, o);
    summary_merge(s, b);
  }
}

// The last step, by warp 0 of the block that finished the last tensor: the
// rows of empty tensors (no pieces), then the gradient-health summary of all
// rows (lane l adds rows l, l + 32, ...; a fixed merge tree), and the
// completion counter reset for the next launch.
__device__ __forceinline__ void finish_summary(const plan_tensor* __restrict__ tensors, int n_tensors, double* rows,
                                               int* done, const launch_params& p) {
  const int lane = threadIdx.x & 31;
  gradient_summary s; summary_init(s);
  for (int t = lane; t < n_tensors; t += 32) {
    double* row = rows + (i64)t * stat::count;
    if (tensors[t].pieces == 0) {
      accumulator empty; acc_init(empty);
      finish_row(empty, 0, 0.0, p.full, row);
    }
    // The fields the summary reads, from L2: rows of other blocks (and lanes)
    // are there after their __threadfence, an empty tensor's row just
    // written by this thread is ordered before by program order.
    double r[stat::count];
    r[stat::sumsq] = __ldcg(row + stat::sumsq);
    r[stat::numel] = __ldcg(row + stat::numel);
    r[stat::zeros] = __ldcg(row + stat::zeros);
    r[stat::nans] = __ldcg(row + stat::nans);
    r[stat::infs] = __ldcg(row + stat::infs);
    summary_add_row(s, r, p.vanishing, p.exploding);
  }
  warp_summary(s);
  if (lane == 0) {
    summary_finish(s);
    summary_store(s, rows + (i64)n_tensors * stat::count);
    *done = 0;
  }
}

// Block b reduces its pieces; the block that completes a tensor's last piece
// merges that tensor's partials (in piece order: deterministic) into its row,
// and the block that completes the last tensor finishes the summary. The
// counters (one per tensor, then one of finished tensors) start at 0 and are
// left at 0, so the next launch on the stream finds them clean.
template <int Full>
__device__ __forceinline__ void fused_stats(const plan_tensor* __restrict__ tensors, const plan_piece* __restrict__ pieces,
                                            const int* __restrict__ block_first_piece, int* counters, int n_tensors,
                                            int n_active, accumulator* partials_out, double* rows, const launch_params& p) {
  __shared__ accumulator sm[partial_threads / 32];
  __shared__ int finished;   // the tensor this block just finished, or -1
  __shared__ int last_done;  // 1 if that tensor was the last one to finish
  __shared__ u32 rare[2];   // NaN and Inf counts of the current piece (careful path)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int* done = counters + n_tensors;
  if (threadIdx.x == 0) { rare[0] = 0u; rare[1] = 0u; }
  __syncthreads();
  // Every tensor empty: block 0 alone writes their rows and the summary.
  bool summary_here = n_active == 0 && blockIdx.x == 0;
  const int first = n_active == 0 ? 0 : block_first_piece[blockIdx.x];
  const int last = n_active == 0 ? 0 : block_first_piece[blockIdx.x + 1];
  for (int k = first; k < last; ++k) {
    const plan_piece pc = pieces[k];
    const plan_tensor t = tensors[pc.tensor];
    const float shift = Full ? tensor_shift(t) : 0.0f;
    accumulator a; acc_init(a);
    const i64 n = pc.end - pc.begin;
    const char* base = (const char*)t.addr;
    switch (t.dtype) {
      case dtype_f32: run_narrow<Full, f32_traits>(base + pc.begin * 4, n, shift, p, rare, a); break;
      case dtype_f16: run_narrow<Full, h16_traits<1> >(base + pc.begin * 2, n, shift, p, rare, a); break;
      case dtype_bf16: run_narrow<Full, h16_traits<0> >(base + pc.begin * 2, n, shift, p, rare, a); break;
      default: run_double<Full>(base + pc.begin * 8, n, (double)shift, p, rare, a); break;
    }
    block_merge<Full>(a, sm);
    if (threadIdx.x == 0) {  // the block's NaN / Inf counts join its partial (every thread passed block_merge)
      a.nans += rare[0]; a.infs += rare[1];
      rare[0] = 0u; rare[1] = 0u;
      partials_out[k] = a;
      __threadfence();  // the partial is visible device-wide before it is counted
      finished = atomicAdd(counters + pc.tensor, 1) == tensors[pc.tensor].pieces - 1 ? pc.tensor : -1;
    }
    __syncthreads();
#ifndef SIMIC_HOT_LOOP_ONLY  // defined only by the register test: the loop and block merge alone
    const int ft = finished;
    if (ft < 0) continue;
    if (warp == 0) {  // this block read the tensor's last piece: its row
      __threadfence();
      const plan_tensor tt = tensors[ft];  // read again: not kept live across the piece
      accumulator m; acc_init(m);
      for (int j = lane; j < tt.pieces; j += 32) {
        accumulator b;
        load_partial(partials_out + tt.first_piece + j, b);
        merge(m, b);
      }
      warp_merge<Full, 1>(m);
      if (lane == 0) {
        finish_row(m, tt.numel, Full ? (double)tensor_shift(tt) : 0.0, Full, rows + (i64)ft * stat::count);
        counters[ft] = 0;
        __threadfence();  // the row is visible before the tensor counts as finished
        last_done = atomicAdd(done, 1) == n_active - 1 ? 1 : 0;
      }
    }
    __syncthreads();
    summary_here = last_done == 1;  // then k is this block's last piece: every piece has been counted
#endif
    __syncthreads();  // `finished` and `last_done` are rewritten for the next piece
  }
#ifndef SIMIC_HOT_LOOP_ONLY
  if (summary_here && warp == 0) {  // one call site, after the loop, so that it is inlined once
    __threadfence();
    finish_summary(tensors, n_tensors, rows, done, p);
  }
#else
  (void)lane; (void)warp; (void)summary_here; (void)done;
#endif
}

}  // namespace simic_dev

using namespace simic_dev;

// Resident blocks per SM the register budgets are built for; NVRTC options
// may override them to time other budgets (SIMIC_CUDA_NVRTC_OPTIONS,
// docs/cuda.md), e.g. -DSIMIC_BASIC_BLOCKS_PER_SM=8 for 32 registers.
#ifndef SIMIC_BASIC_BLOCKS_PER_SM
#define SIMIC_BASIC_BLOCKS_PER_SM basic_blocks_per_sm
#endif
#ifndef SIMIC_FULL_BLOCKS_PER_SM
#define SIMIC_FULL_BLOCKS_PER_SM full_blocks_per_sm
#endif

// rows: [tensors + 1, stat::count] float64; row `tensors` takes the summary.
extern "C" __global__ void __launch_bounds__(partial_threads, SIMIC_BASIC_BLOCKS_PER_SM)
simic_stats_basic(const plan_tensor* tensors, const plan_piece* pieces, const int* block_first_piece, int* counters,
                  int n_tensors, int n_active, accumulator* partials, double* rows, launch_params p) {
  fused_stats<0>(tensors, pieces, block_first_piece, counters, n_tensors, n_active, partials, rows, p);
}
extern "C" __global__ void __launch_bounds__(partial_threads, SIMIC_FULL_BLOCKS_PER_SM)
simic_stats_full(const plan_tensor* tensors, const plan_piece* pieces, const int* block_first_piece, int* counters,
                 int n_tensors, int n_active, accumulator* partials, double* rows, launch_params p) {
  fused_stats<1>(tensors, pieces, block_first_piece, counters, n_tensors, n_active, partials, rows, p);
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

inline constexpr const char* kernel_names[] = {"simic_stats_basic", "simic_stats_full"};

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
