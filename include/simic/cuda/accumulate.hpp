// The per-element accumulation logic of the fused CUDA back end, written
// once and used twice: compiled here as plain host C++ (so the CPU tests run
// it), and handed verbatim, as text, to NVRTC as part of the kernel source
// (kernel_source.hpp). SIMIC_CUDA_SHARED(name, code) expands `code` for the
// host and also stores `#code` (the same tokens, unexpanded) in the string
// `name`; the device prelude then gives SIMIC_CUDA_FN, the integer type names
// and the bit-level and max/min helpers (bits_to_f32, half_to_f32,
// max_f32 ...) their device meaning. Nothing else differs between the two compilations.
//
// What lives here (everything that decides a figure):
//   add_fast    one float32 / float16 / bfloat16 element into a short float32
//               group (<= 64 elements): the hot path;
//   needs_careful  whether that group must be summed again by
//   add_narrow  which counts NaN and Inf apart and squares huge values
//               (|x| >= 2^60) in float64;
//   add_double  one float64 element (all in float64);
//   fold        a group into a float64 accumulator;
//   merge       two partial accumulators (thread, warp, block, chunk);
//   finish_row  an accumulator into the packed row of backend.hpp's stat
//               layout (the same formulas as cpu_fused_backend);
//   summary_*   per-row totals for gradient health, finished on the device.
//
// Accuracy: squares and sums are float32 only within a group of at most 64
// elements, then float64. A group that overflowed in float32 (or held NaN /
// Inf) is summed again with elements >= 2^60 in magnitude squared in
// float64, so no float32 partial overflows where float64 would not; counts
// are exact integers. Squares below float32's range (|x| < ~1e-19) flush to
// zero, as in the CPU back end's vector loop.
//
// No LibTorch here (layer rule): the CPU tests compare against plain loops.
#pragma once

#include <math.h>  // fabsf, fmaxf, fminf, fmax, fmin, sqrt in the global namespace, as on the device

#include <cstdint>
#include <cstring>

// Expands the code for the host and keeps its text for NVRTC.
#define SIMIC_CUDA_SHARED(name, ...) \
  __VA_ARGS__                        \
  inline constexpr const char name[] = #__VA_ARGS__;

#define SIMIC_CUDA_FN inline

namespace simic {
inline namespace v0 {
namespace cuda::detail {

using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i64 = std::int64_t;

// Host meaning of the two device helpers (the device prelude defines them
// with __int_as_float and the cvt.f32.f16 instruction).
inline float bits_to_f32(u32 b) noexcept {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
// IEEE binary16 bits (low 16 bits of h) to float32, exactly.
inline float half_to_f32(u32 h) noexcept {
  const u32 sign = (h & 0x8000u) << 16;
  const u32 exp = (h >> 10) & 0x1fu;
  const u32 mant = h & 0x3ffu;
  if (exp == 0x1fu) return bits_to_f32(sign | 0x7f800000u | (mant << 13));  // Inf / NaN (payload kept)
  if (exp == 0) {                                                           // zero and subnormals: mant * 2^-24
    const float f = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

// max / min that ignore a NaN operand (IEEE maxNum for quiet and signaling
// NaN alike): the device's max.f32 / min.f32 (fmaxf ...), and on the host
// explicit compares, since glibc's fmaxf returns NaN for a signaling NaN.
template <class T>
inline T max_ignoring_nan(T a, T x) noexcept {
  if (x != x) return a;
  if (a != a) return x;
  return x > a ? x : a;
}
template <class T>
inline T min_ignoring_nan(T a, T x) noexcept {
  if (x != x) return a;
  if (a != a) return x;
  return x < a ? x : a;
}
inline float max_f32(float a, float x) noexcept { return max_ignoring_nan(a, x); }
inline float min_f32(float a, float x) noexcept { return min_ignoring_nan(a, x); }
inline double max_f64(double a, double x) noexcept { return max_ignoring_nan(a, x); }
inline double min_f64(double a, double x) noexcept { return min_ignoring_nan(a, x); }

// clang-format off
SIMIC_CUDA_SHARED(shared_source,

// Columns of a packed row: the layout of simic::stat (backend.hpp); a test
// checks they agree.
enum { col_sumsq = 0, col_max_abs, col_zeros, col_nans, col_infs, col_numel, col_sum, col_min, col_max,
       col_m2, col_small, col_large, col_count };
// Columns of the summary row the finish kernel writes after the per-tensor rows.
enum { sum_total_sumsq = 0, sum_min_norm, sum_max_norm, sum_vanishing, sum_exploding, sum_elements,
       sum_zeros, sum_nans, sum_infs, sum_health, sum_tensors, sum_count };
enum { dtype_f32 = 0, dtype_f16 = 1, dtype_bf16 = 2, dtype_f64 = 3 };

struct launch_params {
  double small;       // |x| < small counts as small (float64 inputs)
  double large;       // |x| > large counts as large (float64 inputs)
  double vanishing;   // summary: per-tensor norm < vanishing
  double exploding;   // summary: per-tensor norm > exploding
  float small_f;      // the same bounds for float32 compares, rounded so they count exactly alike
  float large_f;
  int full;           // 1: stat_set::full, 0: basic
  int reserved;
};

// Launch metadata, as in PyTorch's MultiTensorApply: tensors, and pieces
// (a contiguous element range of one tensor) that the blocks reduce.
struct plan_tensor { u64 addr; i64 numel; int dtype; int first_piece; int pieces; int reserved; };
struct plan_piece { i64 begin; i64 end; int tensor; int reserved; };

struct accumulator {
  double sumsq;    // sum of x^2
  double sum_d;    // sum of (x - shift), shift = the tensor's first element if finite
  double sumsq_d;  // sum of (x - shift)^2
  double max_abs;  // over non-NaN elements
  double min;
  double max;
  u64 zeros; u64 nans; u64 infs; u64 small; u64 large;
};

// float32 partial sums of at most 64 elements.
struct group {
  float sumsq; float sum_d; float sumsq_d; float max_abs; float min; float max;
  u32 zeros; u32 nans; u32 infs; u32 small; u32 large;
  u32 nonfinite;  // add_fast only: NaN and Inf together
};

SIMIC_CUDA_FN float f32_inf() { return bits_to_f32(0x7f800000u); }
SIMIC_CUDA_FN double f64_nan() { return (double)bits_to_f32(0x7fc00000u); }
SIMIC_CUDA_FN float bf16_to_f32(u32 h) { return bits_to_f32((h & 0xffffu) << 16); }
// 2^60: below it, 64 float32 squares (or squared differences of two such values) stay finite.
SIMIC_CUDA_FN float wide_bound() { return 1152921504606846976.0f; }
SIMIC_CUDA_FN float largest_f32() { return 3.40282347e+38f; }

// The shift that keeps the spread accurate: the first element if finite and
// representable in float32, else 0 (the same choice as cpu_fused_backend).
SIMIC_CUDA_FN float shift_of(double first) {
  const float f = (float)first;
  return (f - f == 0.0f) ? f : 0.0f;
}
SIMIC_CUDA_FN bool shift_is_wide(float shift) { return !(fabsf(shift) < wide_bound()); }

SIMIC_CUDA_FN void acc_init(accumulator& a) {
  a.sumsq = 0.0; a.sum_d = 0.0; a.sumsq_d = 0.0; a.max_abs = 0.0;
  a.min = (double)f32_inf(); a.max = -(double)f32_inf();
  a.zeros = 0; a.nans = 0; a.infs = 0; a.small = 0; a.large = 0;
}
SIMIC_CUDA_FN void group_init(group& g) {
  g.sumsq = 0.0f; g.sum_d = 0.0f; g.sumsq_d = 0.0f; g.max_abs = 0.0f;
  g.min = f32_inf(); g.max = -f32_inf();
  g.zeros = 0; g.nans = 0; g.infs = 0; g.small = 0; g.large = 0; g.nonfinite = 0;
}

// The fast path for one float32 (or widened) element: float32 only, NaN and
// Inf counted together. Exact whenever the group it went into passes
// needs_careful (no NaN / Inf, no float32 overflow); otherwise the group is
// summed again with add_narrow. NaN and Inf would give the same sums either
// way; the redo only separates their counts.
template <int Full>
SIMIC_CUDA_FN void add_fast(group& g, float x, float shift, const launch_params& p) {
  const float ax = fabsf(x);
  g.zeros += (x == 0.0f) ? 1u : 0u;
  g.nonfinite += (ax <= largest_f32()) ? 0u : 1u;
  g.max_abs = max_f32(g.max_abs, ax);
  g.sumsq += x * x;
  if (Full) {
    const float d = x - shift;
    g.sum_d += d;
    g.sumsq_d += d * d;
    g.min = min_f32(g.min, x);
    g.max = max_f32(g.max, x);
    g.small += (ax < p.small_f) ? 1u : 0u;
    g.large += (ax > p.large_f) ? 1u : 0u;
  }
}

// Whether a group summed by add_fast must be summed again by add_narrow: it
// held a NaN or Inf, or a float32 square (or squared difference) overflowed
// where float64 would not.
template <int Full>
SIMIC_CUDA_FN bool needs_careful(const group& g) {
  return g.nonfinite != 0u || !(g.sumsq <= largest_f32()) || (Full && !(g.sumsq_d <= largest_f32()));
}

// One float32 (or widened float16 / bfloat16) element, the careful path:
// NaN and Inf counted apart, huge values squared in float64.
template <int Full>
SIMIC_CUDA_FN void add_narrow(group& g, accumulator& a, float x, float shift, bool shift_wide,
                              const launch_params& p) {
  const float ax = fabsf(x);
  g.zeros += (x == 0.0f) ? 1u : 0u;
  g.nans += (x != x) ? 1u : 0u;
  g.infs += (ax > largest_f32()) ? 1u : 0u;
  g.max_abs = max_f32(g.max_abs, ax);  // max_f32 ignores a NaN operand
  if (ax < wide_bound() && !shift_wide) {
    g.sumsq += x * x;
    if (Full) {
      const float d = x - shift;
      g.sum_d += d;
      g.sumsq_d += d * d;
    }
  } else {  // huge, Inf or NaN: float64, where the reference computes it
    const double xd = (double)x;
    a.sumsq += xd * xd;
    if (Full) {
      const double d = xd - (double)shift;
      a.sum_d += d;
      a.sumsq_d += d * d;
    }
  }
  if (Full) {
    g.min = min_f32(g.min, x);
    g.max = max_f32(g.max, x);
    g.small += (ax < p.small_f) ? 1u : 0u;
    g.large += (ax > p.large_f) ? 1u : 0u;
  }
}

// One float64 element, all in float64.
template <int Full>
SIMIC_CUDA_FN void add_double(accumulator& a, double x, double shift, const launch_params& p) {
  const double ax = fabs(x);
  a.sumsq += x * x;
  a.zeros += (x == 0.0) ? 1u : 0u;
  if (x != x) {
    a.nans += 1u;
  } else {
    a.max_abs = max_f64(a.max_abs, ax);
    a.infs += (ax > 1.7976931348623157e+308) ? 1u : 0u;
  }
  if (Full) {
    const double d = x - shift;
    a.sum_d += d;
    a.sumsq_d += d * d;
    if (x < a.min) a.min = x;
    if (x > a.max) a.max = x;
    a.small += (ax < p.small) ? 1u : 0u;
    a.large += (ax > p.large) ? 1u : 0u;
  }
}

template <int Full>
SIMIC_CUDA_FN void fold(accumulator& a, const group& g) {
  a.sumsq += (double)g.sumsq;
  a.max_abs = max_f64(a.max_abs, (double)g.max_abs);
  a.zeros += g.zeros; a.nans += g.nans; a.infs += g.infs;
  if (Full) {
    a.sum_d += (double)g.sum_d;
    a.sumsq_d += (double)g.sumsq_d;
    a.min = min_f64(a.min, (double)g.min);
    a.max = max_f64(a.max, (double)g.max);
    a.small += g.small; a.large += g.large;
  }
}

SIMIC_CUDA_FN void merge(accumulator& a, const accumulator& b) {
  a.sumsq += b.sumsq; a.sum_d += b.sum_d; a.sumsq_d += b.sumsq_d;
  a.max_abs = max_f64(a.max_abs, b.max_abs);
  a.min = min_f64(a.min, b.min);
  a.max = max_f64(a.max, b.max);
  a.zeros += b.zeros; a.nans += b.nans; a.infs += b.infs; a.small += b.small; a.large += b.large;
}

// The packed row (stat layout), with cpu_fused_backend's formulas.
SIMIC_CUDA_FN void finish_row(const accumulator& a, i64 numel, double shift, int full, double* row) {
  const double n = (double)numel;
  row[col_sumsq] = a.sumsq;
  row[col_max_abs] = a.max_abs;
  row[col_zeros] = (double)a.zeros;
  row[col_nans] = (double)a.nans;
  row[col_infs] = (double)a.infs;
  row[col_numel] = n;
  if (full) {
    row[col_sum] = a.sum_d + n * shift;
    row[col_min] = a.min;
    row[col_max] = a.max;
    double m2 = numel == 0 ? 0.0 : a.sumsq_d - a.sum_d * a.sum_d / n;
    if (m2 == m2 && m2 < 0.0) m2 = 0.0;
    row[col_m2] = m2;
    row[col_small] = (double)a.small;
    row[col_large] = (double)a.large;
  } else {
    row[col_sum] = 0.0; row[col_min] = 0.0; row[col_max] = 0.0;
    row[col_m2] = 0.0; row[col_small] = 0.0; row[col_large] = 0.0;
  }
}

// Gradient-health totals over the rows (gradient_health_sensor's formulas).
struct summary {
  double total_sumsq; double min_norm; double max_norm;
  u64 vanishing; u64 exploding; u64 elements; u64 zeros; u64 nans; u64 infs; u64 tensors;
};
SIMIC_CUDA_FN void summary_init(summary& s) {
  s.total_sumsq = 0.0; s.min_norm = (double)f32_inf(); s.max_norm = -(double)f32_inf();
  s.vanishing = 0; s.exploding = 0; s.elements = 0; s.zeros = 0; s.nans = 0; s.infs = 0; s.tensors = 0;
}
SIMIC_CUDA_FN void summary_add_row(summary& s, const double* row, const launch_params& p) {
  const double norm = sqrt(row[col_sumsq]);
  s.total_sumsq += row[col_sumsq];
  if (norm == norm) {
    s.min_norm = min_f64(s.min_norm, norm);
    s.max_norm = max_f64(s.max_norm, norm);
  }
  s.vanishing += (norm < p.vanishing) ? 1u : 0u;
  s.exploding += (norm > p.exploding) ? 1u : 0u;
  s.elements += (u64)row[col_numel];
  s.zeros += (u64)row[col_zeros];
  s.nans += (u64)row[col_nans];
  s.infs += (u64)row[col_infs];
  s.tensors += 1u;
}
SIMIC_CUDA_FN void summary_merge(summary& s, const summary& o) {
  s.total_sumsq += o.total_sumsq;
  s.min_norm = min_f64(s.min_norm, o.min_norm);
  s.max_norm = max_f64(s.max_norm, o.max_norm);
  s.vanishing += o.vanishing; s.exploding += o.exploding; s.elements += o.elements;
  s.zeros += o.zeros; s.nans += o.nans; s.infs += o.infs; s.tensors += o.tensors;
}
SIMIC_CUDA_FN void summary_finish(const summary& s, double* out) {
  double lo = s.min_norm, hi = s.max_norm;
  if (s.tensors == 0) { lo = 0.0; hi = 0.0; }
  else if (lo > hi) { lo = f64_nan(); hi = f64_nan(); }  // every norm NaN
  double health = 1.0;
  if (s.tensors > 0) {
    const double n = (double)s.tensors;
    health = 1.0 - 0.5 * (double)s.vanishing / n - 0.8 * (double)s.exploding / n;
    health = health < 0.0 ? 0.0 : (health > 1.0 ? 1.0 : health);
  }
  out[sum_total_sumsq] = s.total_sumsq;
  out[sum_min_norm] = lo;
  out[sum_max_norm] = hi;
  out[sum_vanishing] = (double)s.vanishing;
  out[sum_exploding] = (double)s.exploding;
  out[sum_elements] = (double)s.elements;
  out[sum_zeros] = (double)s.zeros;
  out[sum_nans] = (double)s.nans;
  out[sum_infs] = (double)s.infs;
  out[sum_health] = health;
  out[sum_tensors] = (double)s.tensors;
}

)
// clang-format on

static_assert(static_cast<int>(sum_count) <= static_cast<int>(col_count), "the summary row must fit in one packed row");
static_assert(sizeof(plan_tensor) == 32 && sizeof(plan_piece) == 24 && sizeof(launch_params) == 48,
              "launch metadata layout is shared with the device: sizes must not depend on the host ABI");
static_assert(sizeof(accumulator) == 88);

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
