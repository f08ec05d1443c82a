// simic's own CPU reduction back end: one pass over every element of every
// tensor, all statistics of a stat_set accumulated together, split over
// at::parallel_for. The inner loop is AVX2 (+FMA, +F16C for float16) through
// intrinsics in functions compiled for that target only, chosen at run time
// (__builtin_cpu_supports), with a scalar loop as fallback: no special
// compile flags are needed, and plain loops do not vectorise under strict
// floating point (DESIGN.md, performance model).
//
// Accuracy: each 8-lane float32 accumulator takes at most 64 values before it
// is added to float64 totals, so long sums are float64 sums of short float32
// partial sums. float16 / bfloat16 are widened to float32 on load. A block
// whose float32 sum of squares is not finite (NaN, Inf, or values near the
// float32 range) is redone by the scalar loop in float64, which also counts
// NaN and Inf exactly, so the vector loop needs no NaN/Inf compares.
//
// Memory: O(threads x tensors) partial accumulators; nothing proportional to
// the element count. Non-contiguous tensors are the one exception: each is
// copied with .contiguous() just before it is read and freed right after, so
// the extra memory is at most the largest non-contiguous tensor.
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

#include "simic/sensors/backend.hpp"

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

// The reference semantics, in float64, one element at a time.
template <bool Full, class T>
inline void scalar_range(const T* p, std::int64_t n, const kernel_params& k, accumulator& a) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = widen(p[i]);
    a.sumsq += x * x;
    if (x == 0.0) ++a.zeros;
    const double ax = std::fabs(x);
    if (std::isnan(x)) {
      ++a.nans;
    } else {
      a.max_abs = std::max(a.max_abs, ax);
      if (std::isinf(x)) ++a.infs;
    }
    if constexpr (Full) {
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

// Blocks of block_elems elements: two independent 8-lane accumulator sets
// (so FMA latency does not bound the loop), flushed into float64 per block.
inline constexpr std::int64_t block_elems = 1024;

template <bool Full, class T>
SIMIC_AVX2_TARGET void avx2_range(const T* p, std::int64_t n, const kernel_params& k, accumulator& a) noexcept {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const __m256 shift = _mm256_set1_ps(k.shift_f);
  const __m256 small_b = _mm256_set1_ps(k.small_f);
  const __m256 large_b = _mm256_set1_ps(k.large_f);
  const __m256 neg_inf = _mm256_sub_ps(zero, inf);
  __m256d t_sq = _mm256_setzero_pd(), t_sd = _mm256_setzero_pd(), t_sdd = _mm256_setzero_pd();
  __m256 t_maxabs = zero, t_min = inf, t_max = neg_inf;
  std::int64_t zeros = 0, smalls = 0, larges = 0;

  const std::int64_t nvec = n - n % 16;
  std::int64_t i = 0;
  while (i < nvec) {
    const std::int64_t len = std::min(block_elems, nvec - i);
    __m256 sq0 = zero, sq1 = zero, sd0 = zero, sd1 = zero, sdd0 = zero, sdd1 = zero;
    __m256 ma0 = zero, ma1 = zero, mn0 = inf, mn1 = inf, mx0 = neg_inf, mx1 = neg_inf;
    __m256i zc = _mm256_setzero_si256(), sc = zc, lc = zc;
    const T* q = p + i;
    for (std::int64_t j = 0; j < len; j += 16) {
      const __m256 x0 = load8(q + j);
      const __m256 x1 = load8(q + j + 8);
      sq0 = _mm256_fmadd_ps(x0, x0, sq0);
      sq1 = _mm256_fmadd_ps(x1, x1, sq1);
      // A compare mask is -1 per true lane: subtracting it counts.
      zc = _mm256_sub_epi32(zc, _mm256_castps_si256(_mm256_cmp_ps(x0, zero, _CMP_EQ_OQ)));
      zc = _mm256_sub_epi32(zc, _mm256_castps_si256(_mm256_cmp_ps(x1, zero, _CMP_EQ_OQ)));
      const __m256 a0 = _mm256_and_ps(x0, abs_mask);
      const __m256 a1 = _mm256_and_ps(x1, abs_mask);
      if constexpr (Full) {
        const __m256 d0 = _mm256_sub_ps(x0, shift);
        const __m256 d1 = _mm256_sub_ps(x1, shift);
        sd0 = _mm256_add_ps(sd0, d0);
        sd1 = _mm256_add_ps(sd1, d1);
        sdd0 = _mm256_fmadd_ps(d0, d0, sdd0);
        sdd1 = _mm256_fmadd_ps(d1, d1, sdd1);
        mn0 = _mm256_min_ps(x0, mn0);
        mn1 = _mm256_min_ps(x1, mn1);
        mx0 = _mm256_max_ps(x0, mx0);
        mx1 = _mm256_max_ps(x1, mx1);
        sc = _mm256_sub_epi32(sc, _mm256_castps_si256(_mm256_cmp_ps(a0, small_b, _CMP_LT_OQ)));
        sc = _mm256_sub_epi32(sc, _mm256_castps_si256(_mm256_cmp_ps(a1, small_b, _CMP_LT_OQ)));
        lc = _mm256_sub_epi32(lc, _mm256_castps_si256(_mm256_cmp_ps(a0, large_b, _CMP_GT_OQ)));
        lc = _mm256_sub_epi32(lc, _mm256_castps_si256(_mm256_cmp_ps(a1, large_b, _CMP_GT_OQ)));
      } else {
        ma0 = _mm256_max_ps(a0, ma0);
        ma1 = _mm256_max_ps(a1, ma1);
      }
    }
    // NaN or Inf anywhere in the block (or float32 overflow of the squares)
    // makes the sum of squares non-finite: redo the block exactly.
    const __m256 sq = _mm256_add_ps(sq0, sq1);
    __m256 check = sq;
    if constexpr (Full) check = _mm256_add_ps(check, _mm256_add_ps(sdd0, sdd1));
    const __m256 finite = _mm256_cmp_ps(_mm256_and_ps(check, abs_mask), inf, _CMP_LT_OQ);
    if (_mm256_movemask_ps(finite) == 0xff) {
      t_sq = _mm256_add_pd(t_sq, widen_sum(sq));
      zeros += hsum(zc);
      if constexpr (Full) {
        t_sd = _mm256_add_pd(t_sd, widen_sum(_mm256_add_ps(sd0, sd1)));
        t_sdd = _mm256_add_pd(t_sdd, widen_sum(_mm256_add_ps(sdd0, sdd1)));
        t_min = _mm256_min_ps(t_min, _mm256_min_ps(mn0, mn1));
        t_max = _mm256_max_ps(t_max, _mm256_max_ps(mx0, mx1));
        smalls += hsum(sc);
        larges += hsum(lc);
      } else {
        t_maxabs = _mm256_max_ps(t_maxabs, _mm256_max_ps(ma0, ma1));
      }
    } else {
      scalar_range<Full>(q, len, k, a);
    }
    i += len;
  }
  a.sumsq += hsum(t_sq);
  a.zeros += zeros;
  if constexpr (Full) {
    a.sum_d += hsum(t_sd);
    a.sumsq_d += hsum(t_sdd);
    const double lo = hmin(t_min), hi = hmax(t_max);
    a.min = std::min(a.min, lo);
    a.max = std::max(a.max, hi);
    a.small += smalls;
    a.large += larges;
  } else {
    a.max_abs = std::max(a.max_abs, static_cast<double>(hmax(t_maxabs)));
  }
  scalar_range<Full>(p + nvec, n - nvec, k, a);
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

template <bool Full, class T>
inline void typed_range(const T* p, std::int64_t n, const kernel_params& k, accumulator& a, bool simd) noexcept {
#if SIMIC_HAVE_X86
  if constexpr (!std::is_same_v<T, double>) {
    if (simd) return avx2_range<Full>(p, n, k, a);
  }
#endif
  (void)simd;
  scalar_range<Full>(p, n, k, a);
}

template <bool Full>
inline void reduce_piece(const at::Tensor& t, std::int64_t offset, std::int64_t n, const kernel_params& k,
                         accumulator& a, bool simd) {
  switch (t.scalar_type()) {
    case at::kFloat: return typed_range<Full>(t.data_ptr<float>() + offset, n, k, a, simd);
    case at::kDouble: return typed_range<Full>(t.data_ptr<double>() + offset, n, k, a, simd);
    case at::kHalf: return typed_range<Full>(t.data_ptr<c10::Half>() + offset, n, k, a, simd);
    case at::kBFloat16: return typed_range<Full>(t.data_ptr<c10::BFloat16>() + offset, n, k, a, simd);
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
inline void reduce_contiguous(const std::vector<at::Tensor>& ts, const std::vector<std::int64_t>& out_rows, bool full,
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
    if (full) k.shift = first_finite_or_zero(ts[i]);
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
        if (full)
          reduce_piece<true>(ts[i], pos - offsets[i], end - pos, params[i], a, simd);
        else
          reduce_piece<false>(ts[i], pos - offsets[i], end - pos, params[i], a, simd);
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
    if (full) {
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

  at::Tensor reduce(const reduce_request& r) const {
    static constexpr const char* where = "simic::cpu_fused_backend::reduce";
    detail::validate_request(r, where);
    if (r.tensors.empty()) return detail::empty_stats();
    detail::require(r.tensors[0].is_cpu(), where, "tensors[0].device", r.tensors[0].device(), "cpu");
    const std::int64_t n = static_cast<std::int64_t>(r.tensors.size());
    at::Tensor out = at::zeros({n, stat::count}, at::TensorOptions().dtype(at::kDouble));
    double* o = out.data_ptr<double>();
    const bool simd_on = simd == simd_mode::automatic && vector_loop_available();
    const bool full = r.set == stat_set::full;
    std::vector<at::Tensor> contiguous;
    std::vector<std::int64_t> rows;
    contiguous.reserve(r.tensors.size());
    rows.reserve(r.tensors.size());
    for (std::int64_t i = 0; i < n; ++i) {
      const at::Tensor& t = r.tensors[static_cast<std::size_t>(i)];
      if (t.is_contiguous()) {
        contiguous.push_back(t);
        rows.push_back(i);
      }
    }
    detail::cpu::reduce_contiguous(contiguous, rows, full, r, simd_on, grain, o);
    // Strided tensors: one transient contiguous copy at a time.
    for (std::int64_t i = 0; i < n; ++i) {
      const at::Tensor& t = r.tensors[static_cast<std::size_t>(i)];
      if (!t.is_contiguous())
        detail::cpu::reduce_contiguous({t.contiguous()}, {i}, full, r, simd_on, grain, o);
    }
    return out;
  }
};

}  // namespace v0
}  // namespace simic
