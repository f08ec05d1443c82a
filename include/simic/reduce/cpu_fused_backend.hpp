// simic's own CPU reduction back end: one pass over every element of every
// tensor, all statistics of a stat_set accumulated together, split over
// at::parallel_for. The inner loop is AVX2 (+FMA, +F16C for float16) through
// intrinsics in functions compiled for that target only, chosen at run time
// (__builtin_cpu_supports), with a scalar loop as fallback: no special
// compile flags are needed, and plain loops do not vectorise under strict
// floating point (docs/sensors.md).
//
// Accuracy: each 8-lane float32 accumulator takes at most 64 values before it
// is added to float64 totals, so long sums are float64 sums of short float32
// partial sums. float16 / bfloat16 are widened to float32 on load. A block
// whose float32 sum of squares is not finite (NaN, Inf, or values near the
// float32 range) is redone by the scalar loop in float64, which also counts
// NaN and Inf exactly, so the vector loop needs no NaN/Inf compares.
//
// Memory: O(threads x tensors) partial accumulators; nothing proportional to
// the element count. Tensors that are not dense (strided slices, expanded
// views) are the one exception: each is copied with .contiguous() just
// before it is read and freed right after, so the extra memory is at most the
// largest such tensor. Dense permuted layouts are read in place.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SIMIC_HAVE_X86 1
#define SIMIC_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#else
#define SIMIC_HAVE_X86 0
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "simic/reduce/backend.hpp"

namespace simic {
inline namespace v0 {
namespace detail::cpu {

// Running statistics of one tensor (or a piece of it).
struct accumulator {
  double sumsq = 0.0;
  double sum_d = 0.0;    // sum of (x - shift)
  double sumsq_d = 0.0;  // sum of (x - shift)^2
  double max_abs = 0.0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  std::int64_t zeros = 0, nans = 0, infs = 0, small = 0, large = 0;

  void merge(const accumulator& o) noexcept {
    sumsq += o.sumsq;
    sum_d += o.sum_d;
    sumsq_d += o.sumsq_d;
    max_abs = std::max(max_abs, o.max_abs);
    min = std::min(min, o.min);
    max = std::max(max, o.max);
    zeros += o.zeros;
    nans += o.nans;
    infs += o.infs;
    small += o.small;
    large += o.large;
  }
};

struct kernel_params {
  double shift = 0.0;  // per tensor: its first finite element, so that the spread is computed stably
  double small = 0.0;
  double large = 0.0;
  float shift_f = 0.0f;
  float small_f = 0.0f;  // float_bound_for_less(small)
  float large_f = 0.0f;  // float_bound_for_greater(large)
};

template <class T>
inline double widen(T v) noexcept {
  return static_cast<double>(static_cast<float>(v));
}
template <>
inline double widen<double>(double v) noexcept {
  return v;
}

// Which statistics a pass takes (a stat_set, as a template argument).
inline constexpr int mode_nonfinite = 0, mode_basic = 1, mode_full = 2;

// The reference semantics, in float64, one element at a time.
template <int Mode, class T>
inline void scalar_range(const T* p, std::int64_t n, const kernel_params& k, accumulator& a) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = widen(p[i]);
    if constexpr (Mode >= mode_basic) {
      a.sumsq += x * x;
      if (x == 0.0) ++a.zeros;
    }
    const double ax = std::fabs(x);
    if (std::isnan(x)) {
      ++a.nans;
    } else {
      a.max_abs = std::max(a.max_abs, ax);
      if (std::isinf(x)) ++a.infs;
    }
    if constexpr (Mode == mode_full) {
      const double d = x - k.shift;
      a.sum_d += d;
      a.sumsq_d += d * d;
      if (x < a.min) a.min = x;
      if (x > a.max) a.max = x;
      if (ax < k.small) ++a.small;
      if (ax > k.large) ++a.large;
    }
  }
}

#if SIMIC_HAVE_X86
SIMIC_AVX2_TARGET inline __m256 load8(const float* p) noexcept { return _mm256_loadu_ps(p); }
SIMIC_AVX2_TARGET inline __m256 load8(const c10::Half* p) noexcept {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
SIMIC_AVX2_TARGET inline __m256 load8(const c10::BFloat16* p) noexcept {
  // bfloat16 is the top half of a float32.
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

SIMIC_AVX2_TARGET inline double hsum(__m256d v) noexcept {
  alignas(32) double t[4];
  _mm256_store_pd(t, v);
  return (t[0] + t[1]) + (t[2] + t[3]);
}
SIMIC_AVX2_TARGET inline std::int64_t hsum(__m256i v) noexcept {
  alignas(32) std::int32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), v);
  std::int64_t s = 0;
  for (int i = 0; i < 8; ++i) s += t[i];
  return s;
}
SIMIC_AVX2_TARGET inline __m256d widen_sum(__m256 v) noexcept {
  return _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}
SIMIC_AVX2_TARGET inline float hmax(__m256 v) noexcept {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return *std::max_element(t, t + 8);
}
SIMIC_AVX2_TARGET inline float hmin(__m256 v) noexcept {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return *std::min_element(t, t + 8);
}

// Counts, over one block still in L1, the elements that are zero, |x| < small
// and |x| > large (each only when asked). The main loop calls it only for the
// rare blocks whose min / max |x| shows there is something to count, so the
// common block costs no compares at all.
template <class T>
SIMIC_AVX2_TARGET void count_block(const T* q, std::int64_t len, bool zeros_small, bool large, const kernel_params& k,
                                   accumulator& a, bool want_small) noexcept {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 small_b = _mm256_set1_ps(k.small_f);
  const __m256 large_b = _mm256_set1_ps(k.large_f);
  __m256i zc = _mm256_setzero_si256(), sc = zc, lc = zc;
  for (std::int64_t j = 0; j < len; j += 8) {
    const __m256 x = load8(q + j);
    const __m256 ax = _mm256_and_ps(x, abs_mask);
    if (zeros_small) {
      zc = _mm256_sub_epi32(zc, _mm256_castps_si256(_mm256_cmp_ps(x, zero, _CMP_EQ_OQ)));
      if (want_small) sc = _mm256_sub_epi32(sc, _mm256_castps_si256(_mm256_cmp_ps(ax, small_b, _CMP_LT_OQ)));
    }
    if (large) lc = _mm256_sub_epi32(lc, _mm256_castps_si256(_mm256_cmp_ps(ax, large_b, _CMP_GT_OQ)));
  }
  a.zeros += hsum(zc);
  a.small += hsum(sc);
  a.large += hsum(lc);
}

// Running float64 / float32 totals of the vector loop.
struct vector_totals {
  __m256d sq, sd, sdd;
  __m256 max_abs, min, max;
};

// One block: S sub-blocks of `len` elements each (len a multiple of 16),
// read in lockstep so that S memory streams are in flight at once (one
// stream leaves bandwidth unused on this class of machine). Two independent
// 8-lane accumulator sets, so FMA latency does not bound the loop; each lane
// takes at most 64 values before the block is flushed into float64.
//
// Per element the loop only does what cannot be deferred: the sums, and
// min / max (of |x| for basic; of x and |x| for full). A block's min |x| tells
// whether it holds zeros or small elements, its max |x| whether it holds
// large ones; only then are its elements compared and counted (count_block,
// from L1). NaN / Inf make the block's float32 sum of squares (nonfinite
// mode: sum of x * 0) non-finite: the block is then redone by the exact
// scalar loop.
template <int Mode, int S, class T>
SIMIC_AVX2_TARGET inline void vector_block(const T* const* q, std::int64_t len, const kernel_params& k, accumulator& a,
                                           vector_totals& t) noexcept {
  constexpr bool full = Mode == mode_full;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const __m256 neg_inf = _mm256_sub_ps(zero, inf);
  const __m256 shift = _mm256_set1_ps(k.shift_f);
  __m256 sq[2] = {zero, zero}, sd[2] = {zero, zero}, sdd[2] = {zero, zero};
  __m256 ma[2] = {zero, zero}, mi[2] = {inf, inf}, mn[2] = {inf, inf}, mx[2] = {neg_inf, neg_inf};
  for (std::int64_t j = 0; j < len; j += 16) {
#pragma GCC unroll 16  // at -O2 too: the accumulator arrays then stay in registers
    for (int h = 0; h < 2 * S; ++h) {
      const int u = h & 1;  // accumulator set
      const __m256 x = load8(q[h >> 1] + j + 8 * u);
      if constexpr (Mode == mode_nonfinite)
        sq[u] = _mm256_fmadd_ps(x, zero, sq[u]);  // x * 0 is NaN exactly for NaN and Inf
      else
        sq[u] = _mm256_fmadd_ps(x, x, sq[u]);
      const __m256 ax = _mm256_and_ps(x, abs_mask);
      if constexpr (Mode != mode_full) ma[u] = _mm256_max_ps(ax, ma[u]);
      if constexpr (Mode >= mode_basic) mi[u] = _mm256_min_ps(ax, mi[u]);
      if constexpr (full) {
        const __m256 d = _mm256_sub_ps(x, shift);
        sd[u] = _mm256_add_ps(sd[u], d);
        sdd[u] = _mm256_fmadd_ps(d, d, sdd[u]);
        mn[u] = _mm256_min_ps(x, mn[u]);
        mx[u] = _mm256_max_ps(x, mx[u]);
      }
    }
  }
  const __m256 bsq = _mm256_add_ps(sq[0], sq[1]);
  __m256 check = bsq;
  if constexpr (full) check = _mm256_add_ps(check, _mm256_add_ps(sdd[0], sdd[1]));
  const __m256 finite = _mm256_cmp_ps(_mm256_and_ps(check, abs_mask), inf, _CMP_LT_OQ);
  if (_mm256_movemask_ps(finite) != 0xff) {
    for (int s = 0; s < S; ++s) scalar_range<Mode>(q[s], len, k, a);
    return;
  }
  if constexpr (Mode != mode_full) t.max_abs = _mm256_max_ps(t.max_abs, _mm256_max_ps(ma[0], ma[1]));
  if constexpr (Mode >= mode_basic) {
    t.sq = _mm256_add_pd(t.sq, widen_sum(bsq));
    const float min_abs = hmin(_mm256_min_ps(mi[0], mi[1]));
    const bool zeros_small = min_abs == 0.0f || (full && min_abs < k.small_f);
    bool large = false;
    if constexpr (full) {
      const __m256 bmn = _mm256_min_ps(mn[0], mn[1]), bmx = _mm256_max_ps(mx[0], mx[1]);
      large = std::max(-hmin(bmn), hmax(bmx)) > k.large_f;
      t.sd = _mm256_add_pd(t.sd, widen_sum(_mm256_add_ps(sd[0], sd[1])));
      t.sdd = _mm256_add_pd(t.sdd, widen_sum(_mm256_add_ps(sdd[0], sdd[1])));
      t.min = _mm256_min_ps(t.min, bmn);
      t.max = _mm256_max_ps(t.max, bmx);
    }
    if (zeros_small || large)
      for (int s = 0; s < S; ++s) count_block(q[s], len, zeros_small, large, k, a, full);
  }
}

inline constexpr int streams = 4;
inline constexpr std::int64_t stream_block = 256;  // elements per stream per block
inline constexpr std::int64_t single_block = 1024;

template <int Mode, class T>
SIMIC_AVX2_TARGET void avx2_range(const T* p, std::int64_t n, const kernel_params& k, accumulator& a) noexcept {
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  vector_totals t{_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_ps(), inf,
                  _mm256_sub_ps(_mm256_setzero_ps(), inf)};
  // Four streams over the first 4 L elements, one stream over the rest.
  const std::int64_t L = n / (streams * stream_block) * stream_block;
  for (std::int64_t off = 0; off < L; off += stream_block) {
    const T* q[streams];
    for (int s = 0; s < streams; ++s) q[s] = p + s * L + off;
    vector_block<Mode, streams>(q, stream_block, k, a, t);
  }
  const std::int64_t nvec = n - (n - streams * L) % 16;
  for (std::int64_t i = streams * L; i < nvec; i += single_block) {
    const T* q[1] = {p + i};
    vector_block<Mode, 1>(q, std::min(single_block, nvec - i), k, a, t);
  }
  if constexpr (Mode >= mode_basic) a.sumsq += hsum(t.sq);
  if constexpr (Mode == mode_full) {
    a.sum_d += hsum(t.sd);
    a.sumsq_d += hsum(t.sdd);
    a.min = std::min(a.min, static_cast<double>(hmin(t.min)));
    a.max = std::max(a.max, static_cast<double>(hmax(t.max)));
  } else {
    a.max_abs = std::max(a.max_abs, static_cast<double>(hmax(t.max_abs)));
  }
  scalar_range<Mode>(p + nvec, n - nvec, k, a);
}

inline bool cpu_has_avx2() noexcept {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return yes;
}
#else
inline bool cpu_has_avx2() noexcept { return false; }
#endif

template <int Mode, class T>
inline void typed_range(const T* p, std::int64_t n, const kernel_params& k, accumulator& a, bool simd) noexcept {
#if SIMIC_HAVE_X86
  if constexpr (!std::is_same_v<T, double>) {
    if (simd) return avx2_range<Mode>(p, n, k, a);
  }
#endif
  (void)simd;
  scalar_range<Mode>(p, n, k, a);
}

template <int Mode>
inline void reduce_piece(const at::Tensor& t, std::int64_t offset, std::int64_t n, const kernel_params& k,
                         accumulator& a, bool simd) {
  switch (t.scalar_type()) {
    case at::kFloat: return typed_range<Mode>(t.data_ptr<float>() + offset, n, k, a, simd);
    case at::kDouble: return typed_range<Mode>(t.data_ptr<double>() + offset, n, k, a, simd);
    case at::kHalf: return typed_range<Mode>(t.data_ptr<c10::Half>() + offset, n, k, a, simd);
    case at::kBFloat16: return typed_range<Mode>(t.data_ptr<c10::BFloat16>() + offset, n, k, a, simd);
    default: throw_invalid("simic::cpu_fused_backend", "dtype", t.scalar_type(), "float32, float64, float16, bfloat16");
  }
}

inline double first_finite_or_zero(const at::Tensor& t) {
  if (t.numel() == 0) return 0.0;
  double v = 0.0;
  switch (t.scalar_type()) {
    case at::kFloat: v = t.data_ptr<float>()[0]; break;
    case at::kDouble: v = t.data_ptr<double>()[0]; break;
    case at::kHalf: v = static_cast<float>(t.data_ptr<c10::Half>()[0]); break;
    case at::kBFloat16: v = static_cast<float>(t.data_ptr<c10::BFloat16>()[0]); break;
    default: break;
  }
  // The shift must be exact in float32 too: the vector loop subtracts it there.
  return std::isfinite(v) ? static_cast<double>(static_cast<float>(v)) : 0.0;
}

// Reduces contiguous CPU tensors `ts` into `out_rows` (indices into the
// result buffer `out`), splitting all their elements evenly over threads.
inline void reduce_contiguous(const std::vector<at::Tensor>& ts, const std::vector<std::int64_t>& out_rows, int mode,
                              const reduce_request& r, bool simd, std::int64_t grain, double* out) {
  const std::size_t n = ts.size();
  if (n == 0) return;
  std::vector<std::int64_t> offsets(n + 1, 0);
  std::vector<kernel_params> params(n);
  for (std::size_t i = 0; i < n; ++i) {
    offsets[i + 1] = offsets[i] + ts[i].numel();
    kernel_params& k = params[i];
    k.small = r.small;
    k.large = r.large;
    k.small_f = float_bound_for_less(r.small);
    k.large_f = float_bound_for_greater(r.large);
    if (mode == mode_full) k.shift = first_finite_or_zero(ts[i]);
    k.shift_f = static_cast<float>(k.shift);
  }
  const std::int64_t total = offsets[n];
  const std::int64_t ranges =
      total == 0 ? 1 : std::clamp<std::int64_t>(total / std::max<std::int64_t>(grain, 1), 1, at::get_num_threads());
  std::vector<accumulator> partial(static_cast<std::size_t>(ranges) * n);
  auto run_range = [&](std::int64_t rg) {
    const std::int64_t lo = total * rg / ranges, hi = total * (rg + 1) / ranges;
    if (lo >= hi) return;
    std::size_t i = static_cast<std::size_t>(std::upper_bound(offsets.begin(), offsets.end(), lo) - offsets.begin()) - 1;
    for (std::int64_t pos = lo; pos < hi; ++i) {
      const std::int64_t end = std::min(hi, offsets[i + 1]);
      if (end > pos) {
        accumulator& a = partial[static_cast<std::size_t>(rg) * n + i];
        const std::int64_t off = pos - offsets[i], len = end - pos;
        if (mode == mode_full)
          reduce_piece<mode_full>(ts[i], off, len, params[i], a, simd);
        else if (mode == mode_basic)
          reduce_piece<mode_basic>(ts[i], off, len, params[i], a, simd);
        else
          reduce_piece<mode_nonfinite>(ts[i], off, len, params[i], a, simd);
      }
      pos = std::max(pos, end);
    }
  };
  if (ranges == 1) {
    run_range(0);
  } else {
    at::parallel_for(0, ranges, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t rg = b; rg < e; ++rg) run_range(rg);
    });
  }
  for (std::size_t i = 0; i < n; ++i) {
    accumulator a;
    for (std::int64_t rg = 0; rg < ranges; ++rg) a.merge(partial[static_cast<std::size_t>(rg) * n + i]);
    const double cnt = static_cast<double>(ts[i].numel());
    double* row = out + out_rows[i] * stat::count;
    row[stat::sumsq] = a.sumsq;
    row[stat::zeros] = static_cast<double>(a.zeros);
    row[stat::nans] = static_cast<double>(a.nans);
    row[stat::infs] = static_cast<double>(a.infs);
    row[stat::numel] = cnt;
    if (mode == mode_full) {
      // The vector loop tracks min/max only; |x| max follows from them.
      const double ma = a.min <= a.max ? std::max(-a.min, a.max) : 0.0;
      row[stat::max_abs] = std::max(a.max_abs, ma);
      row[stat::sum] = a.sum_d + cnt * params[i].shift;
      row[stat::min] = a.min;
      row[stat::max] = a.max;
      row[stat::m2] = cnt == 0.0 ? 0.0 : a.sumsq_d - a.sum_d * a.sum_d / cnt;
      if (!std::isnan(row[stat::m2])) row[stat::m2] = std::max(0.0, row[stat::m2]);
      row[stat::small] = static_cast<double>(a.small);
      row[stat::large] = static_cast<double>(a.large);
    } else {
      row[stat::max_abs] = a.max_abs;
    }
  }
}

}  // namespace detail::cpu

// The CPU back end. `simd` selects the vector loop when the CPU has AVX2
// (automatic) or forces the scalar loop (scalar; used by tests to check the
// two agree). `grain` is the fewest elements worth a thread.
struct cpu_fused_backend {
  enum class simd_mode : std::uint8_t { automatic, scalar };
  simd_mode simd = simd_mode::automatic;
  std::int64_t grain = std::int64_t{1} << 15;

  static bool vector_loop_available() noexcept { return detail::cpu::cpu_has_avx2(); }

  // The statistics do not depend on element order, so any dense,
  // non-overlapping layout (contiguous, channels-last, a transposed or
  // permuted full tensor) is read in place as numel elements from data_ptr()
  // (LibTorch strides are never negative, so data_ptr() is the lowest
  // address). Anything else (slices with steps, expanded dimensions) is copied.
  static bool reads_in_place(const at::Tensor& t) { return t.is_contiguous() || t.is_non_overlapping_and_dense(); }

  at::Tensor reduce(const reduce_request& r) const {
    static constexpr const char* where = "simic::cpu_fused_backend::reduce";
    detail::validate_request(r, where);
    if (r.tensors.empty()) return detail::empty_stats();
    detail::require(r.tensors[0].is_cpu(), where, "tensors[0].device", r.tensors[0].device(), "cpu");
    const std::int64_t n = static_cast<std::int64_t>(r.tensors.size());
    at::Tensor out = at::zeros({n, stat::count}, at::TensorOptions().dtype(at::kDouble));
    double* o = out.data_ptr<double>();
    const bool simd_on = simd == simd_mode::automatic && vector_loop_available();
    const int mode = r.set == stat_set::full    ? detail::cpu::mode_full
                     : r.set == stat_set::basic ? detail::cpu::mode_basic
                                                : detail::cpu::mode_nonfinite;
    std::vector<at::Tensor> contiguous;
    std::vector<std::int64_t> rows;
    contiguous.reserve(r.tensors.size());
    rows.reserve(r.tensors.size());
    for (std::int64_t i = 0; i < n; ++i) {
      const at::Tensor& t = r.tensors[static_cast<std::size_t>(i)];
      if (reads_in_place(t)) {
        contiguous.push_back(t);
        rows.push_back(i);
      }
    }
    detail::cpu::reduce_contiguous(contiguous, rows, mode, r, simd_on, grain, o);
    // Strided tensors: one transient contiguous copy at a time.
    for (std::int64_t i = 0; i < n; ++i) {
      const at::Tensor& t = r.tensors[static_cast<std::size_t>(i)];
      if (!reads_in_place(t)) detail::cpu::reduce_contiguous({t.contiguous()}, {i}, mode, r, simd_on, grain, o);
    }
    return out;
  }
};

}  // namespace v0
}  // namespace simic
