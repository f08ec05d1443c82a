// The per-element accumulation logic of the fused CUDA back end, written
// once and used twice: compiled here as plain host C++ (so the CPU tests run
// it), and handed verbatim, as text, to NVRTC as part of the kernel source
// (kernel_source.hpp), by SIMIC_SHARED_CODE (reduce/shared_code.hpp). The
// device prelude gives SIMIC_SHARED_FN, the integer type names and the
// bit-level and max/min helpers (bits_to_f32, half_to_f32, max_f32 ...)
// their device meaning. Nothing else differs between the two compilations.
//
// What lives here (everything that decides a figure):
//   add_fast    one float32 / float16 / bfloat16 element into a short float32
//               group (<= 32 elements): the hot path;
//   needs_careful  whether that group must be summed again by
//   add_narrow  which counts NaN and Inf apart and squares huge values
//               (|x| >= 2^60) in float64;
//   add_double  one float64 element (all in float64);
//   fold        a group into a float64 accumulator;
//   merge       two partial accumulators (thread, warp, block, chunk);
//   finish_row  an accumulator into the packed row (reduce/stat_layout.hpp;
//               the same formulas as cpu_fused_backend).
// The gradient-health summary the kernel finishes after the rows is the
// shared code of reduce/gradient_summary.hpp.
//
// Accuracy: squares and sums are float32 only within a group of at most 32
// elements (the kernel's four 16-byte vectors), then float64. A group that
// overflowed in float32 (or held NaN / Inf) is summed again with elements
// >= 2^60 in magnitude squared in float64, so no float32 partial overflows
// where float64 would not; counts are exact integers. Squares below
// float32's range (|x| < ~1e-19) flush to zero, as in the CPU back end's
// vector loop.
//
// No LibTorch here (layer rule): the CPU tests compare against plain loops.
#pragma once

#include <cstddef>
#include <cstdint>

#include "simic/reduce/gradient_summary.hpp"
#include "simic/reduce/shared_code.hpp"
#include "simic/reduce/stat_layout.hpp"

namespace simic {
inline namespace v0 {
namespace cuda::detail {

// The shared helpers and type names (reduce/shared_code.hpp), used unqualified
// by the code below as by its device text.
using simic::detail::bits_to_f32;
using simic::detail::i64;
using simic::detail::max_f32;
using simic::detail::max_f64;
using simic::detail::min_f32;
using simic::detail::min_f64;
using simic::detail::u32;
using simic::detail::u64;

// IEEE binary16 bits (low 16 bits of h) to float32, exactly (the device
// prelude uses the cvt.f32.f16 instruction).
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

// clang-format off
SIMIC_SHARED_CODE(accumulate,

enum { dtype_f32 = 0, dtype_f16 = 1, dtype_bf16 = 2, dtype_f64 = 3 };
// Threads per block of the stats kernels (a compile-time stride there), and
// the resident blocks per SM their register budgets are built for
// (__launch_bounds__): basic 6 x 256 threads (40 registers, 75% occupancy on
// sm_80 / sm_90), full 4 x 256 (64 registers). docs/cuda.md gives the
// measurements behind these.
enum { partial_threads = 256, basic_blocks_per_sm = 6, full_blocks_per_sm = 4 };

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

// float32 partial sums of at most 32 elements (the bounds below allow 64).
struct group {
  float sumsq; float sum_d; float sumsq_d; float max_abs; float min; float max;
  u32 zeros; u32 nans; u32 infs; u32 small; u32 large;
};

SIMIC_SHARED_FN float f32_inf() { return bits_to_f32(0x7f800000u); }
SIMIC_SHARED_FN float bf16_to_f32(u32 h) { return bits_to_f32((h & 0xffffu) << 16); }
// 2^60: below it, 64 float32 squares (or squared differences of two such values) stay finite.
SIMIC_SHARED_FN float wide_bound() { return 1152921504606846976.0f; }
SIMIC_SHARED_FN float largest_f32() { return 3.40282347e+38f; }

// The shift that keeps the spread accurate: the first element if finite and
// representable in float32, else 0 (the same choice as cpu_fused_backend).
SIMIC_SHARED_FN float shift_of(double first) {
  const float f = (float)first;
  return (f - f == 0.0f) ? f : 0.0f;
}
SIMIC_SHARED_FN bool shift_is_wide(float shift) { return !(fabsf(shift) < wide_bound()); }

SIMIC_SHARED_FN void acc_init(accumulator& a) {
  a.sumsq = 0.0; a.sum_d = 0.0; a.sumsq_d = 0.0; a.max_abs = 0.0;
  a.min = (double)f32_inf(); a.max = -(double)f32_inf();
  a.zeros = 0; a.nans = 0; a.infs = 0; a.small = 0; a.large = 0;
}
SIMIC_SHARED_FN void group_init(group& g) {
  g.sumsq = 0.0f; g.sum_d = 0.0f; g.sumsq_d = 0.0f; g.max_abs = 0.0f;
  g.min = f32_inf(); g.max = -f32_inf();
  g.zeros = 0; g.nans = 0; g.infs = 0; g.small = 0; g.large = 0;
}

// The fast path for one float32 (or widened) element: float32 only, NaN and
// Inf not counted. Exact whenever the group it went into passes
// needs_careful (no NaN / Inf, no float32 overflow); otherwise the group is
// summed again with add_narrow, which counts them.
template <int Full>
SIMIC_SHARED_FN void add_fast(group& g, float x, float shift, const launch_params& p) {
  const float ax = fabsf(x);
  g.zeros += (x == 0.0f) ? 1u : 0u;
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
// where float64 would not. The sum of squares tells all three: a NaN makes
// it NaN and an Inf (squared: +Inf) makes it +Inf, whatever else the group
// held, so the fast path needs no per-element NaN / Inf test.
template <int Full>
SIMIC_SHARED_FN bool needs_careful(const group& g) {
  return !(g.sumsq <= largest_f32()) || (Full && !(g.sumsq_d <= largest_f32()));
}

// One float32 (or widened float16 / bfloat16) element, the careful path:
// NaN and Inf counted apart, huge values squared in float64.
template <int Full>
SIMIC_SHARED_FN void add_narrow(group& g, accumulator& a, float x, float shift, bool shift_wide,
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
SIMIC_SHARED_FN void add_double(accumulator& a, double x, double shift, const launch_params& p) {
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
SIMIC_SHARED_FN void fold(accumulator& a, const group& g) {
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

SIMIC_SHARED_FN void merge(accumulator& a, const accumulator& b) {
  a.sumsq += b.sumsq; a.sum_d += b.sum_d; a.sumsq_d += b.sumsq_d;
  a.max_abs = max_f64(a.max_abs, b.max_abs);
  a.min = min_f64(a.min, b.min);
  a.max = max_f64(a.max, b.max);
  a.zeros += b.zeros; a.nans += b.nans; a.infs += b.infs; a.small += b.small; a.large += b.large;
}

// The packed row (stat layout), with cpu_fused_backend's formulas.
SIMIC_SHARED_FN void finish_row(const accumulator& a, i64 numel, double shift, int full, double* row) {
  const double n = (double)numel;
  row[stat::sumsq] = a.sumsq;
  row[stat::max_abs] = a.max_abs;
  row[stat::zeros] = (double)a.zeros;
  row[stat::nans] = (double)a.nans;
  row[stat::infs] = (double)a.infs;
  row[stat::numel] = n;
  if (full) {
    row[stat::sum] = a.sum_d + n * shift;
    row[stat::min] = a.min;
    row[stat::max] = a.max;
    double m2 = numel == 0 ? 0.0 : a.sumsq_d - a.sum_d * a.sum_d / n;
    if (m2 == m2 && m2 < 0.0) m2 = 0.0;
    row[stat::m2] = m2;
    row[stat::small] = (double)a.small;
    row[stat::large] = (double)a.large;
  } else {
    row[stat::sum] = 0.0; row[stat::min] = 0.0; row[stat::max] = 0.0;
    row[stat::m2] = 0.0; row[stat::small] = 0.0; row[stat::large] = 0.0;
  }
}

)
// clang-format on

static_assert(sizeof(plan_tensor) == 32 && sizeof(plan_piece) == 24 && sizeof(launch_params) == 48,
              "launch metadata layout is shared with the device: sizes must not depend on the host ABI");
static_assert(sizeof(accumulator) == 88);
// The kernel reads other blocks' accumulators word by word (load_partial, kernel_source.hpp).
static_assert(offsetof(accumulator, sumsq) == 0 && offsetof(accumulator, sum_d) == 8 &&
                  offsetof(accumulator, sumsq_d) == 16 && offsetof(accumulator, max_abs) == 24 &&
                  offsetof(accumulator, min) == 32 && offsetof(accumulator, max) == 40 &&
                  offsetof(accumulator, zeros) == 48 && offsetof(accumulator, nans) == 56 &&
                  offsetof(accumulator, infs) == 64 && offsetof(accumulator, small) == 72 &&
                  offsetof(accumulator, large) == 80,
              "load_partial reads the accumulator as words 0-10 in this order");

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
