// The gradient-health summary of per-tensor stats rows (stat_layout.hpp):
// total sum of squares, smallest / largest per-tensor norm ignoring NaN,
// vanishing / exploding counts, elements, zeros, NaNs, Infs and the health
// score. Defined once, in shared code (reduce/shared_code.hpp): the
// gradient-health sensor finishes it on the host from any back end's rows,
// the fused CUDA kernel finishes it on the device from the same text.
//
//   gradient_summary s;
//   summary_init(s);
//   for each row: summary_add_row(s, row, vanishing, exploding);
//   (partial summaries, e.g. one per warp: summary_merge(s, other))
//   summary_finish(s);  // min / max norm edge cases, health
//
// No LibTorch.
#pragma once

#include <cstdint>

#include "simic/reduce/shared_code.hpp"
#include "simic/reduce/stat_layout.hpp"

namespace simic {
inline namespace v0 {
namespace detail {

// clang-format off
SIMIC_SHARED_CODE(gradient_summary,

// Gradient health in [0, 1]: clamp(1 - 0.5 vanishing_ratio - 0.8 exploding_ratio).
// No parameters means nothing is unhealthy: 1.
SIMIC_SHARED_CONSTEXPR double gradient_health_score(u64 vanishing, u64 exploding, u64 parameters) {
  if (parameters == 0) return 1.0;
  const double n = (double)parameters;
  const double h = 1.0 - 0.5 * (double)vanishing / n - 0.8 * (double)exploding / n;
  return h < 0.0 ? 0.0 : (h > 1.0 ? 1.0 : h);
}

// Trivial (no initialisers), so that the device can keep it in shared memory.
struct gradient_summary {
  double total_sumsq;  // sum of the rows' sums of squares (NaN / Inf propagate)
  double min_norm;     // over non-NaN per-tensor norms; finished: 0 without tensors, NaN if all are NaN
  double max_norm;
  u64 vanishing;       // per-tensor norm strictly below the vanishing bound
  u64 exploding;       // per-tensor norm strictly above the exploding bound
  u64 elements; u64 zeros; u64 nans; u64 infs;
  u64 tensors;
  double health;       // gradient_health_score(vanishing, exploding, tensors), set by summary_finish
};

SIMIC_SHARED_FN double summary_inf() { return (double)bits_to_f32(0x7f800000u); }
SIMIC_SHARED_FN double summary_nan() { return (double)bits_to_f32(0x7fc00000u); }

SIMIC_SHARED_FN void summary_init(gradient_summary& s) {
  s.total_sumsq = 0.0; s.min_norm = summary_inf(); s.max_norm = -summary_inf();
  s.vanishing = 0; s.exploding = 0; s.elements = 0; s.zeros = 0; s.nans = 0; s.infs = 0; s.tensors = 0;
  s.health = 1.0;
}
SIMIC_SHARED_FN void summary_add_row(gradient_summary& s, const double* row, double vanishing, double exploding) {
  const double norm = sqrt(row[stat::sumsq]);
  s.total_sumsq += row[stat::sumsq];
  if (norm == norm) {
    s.min_norm = min_f64(s.min_norm, norm);
    s.max_norm = max_f64(s.max_norm, norm);
  }
  s.vanishing += (norm < vanishing) ? 1u : 0u;
  s.exploding += (norm > exploding) ? 1u : 0u;
  s.elements += (u64)row[stat::numel];
  s.zeros += (u64)row[stat::zeros];
  s.nans += (u64)row[stat::nans];
  s.infs += (u64)row[stat::infs];
  s.tensors += 1u;
}
SIMIC_SHARED_FN void summary_merge(gradient_summary& s, const gradient_summary& o) {
  s.total_sumsq += o.total_sumsq;
  s.min_norm = min_f64(s.min_norm, o.min_norm);
  s.max_norm = max_f64(s.max_norm, o.max_norm);
  s.vanishing += o.vanishing; s.exploding += o.exploding; s.elements += o.elements;
  s.zeros += o.zeros; s.nans += o.nans; s.infs += o.infs; s.tensors += o.tensors;
}
SIMIC_SHARED_FN void summary_finish(gradient_summary& s) {
  if (s.tensors == 0) { s.min_norm = 0.0; s.max_norm = 0.0; }
  else if (s.min_norm > s.max_norm) { s.min_norm = summary_nan(); s.max_norm = summary_nan(); }  // every norm NaN
  s.health = gradient_health_score(s.vanishing, s.exploding, s.tensors);
}

// A finished summary as one float64 row (the device writes it after the
// per-tensor rows; counts are exact below 2^53), and back.
namespace summary_col {
enum { total_sumsq = 0, min_norm, max_norm, vanishing, exploding, elements, zeros, nans, infs, health, tensors,
       count };
}
SIMIC_SHARED_FN void summary_store(const gradient_summary& s, double* out) {
  out[summary_col::total_sumsq] = s.total_sumsq;
  out[summary_col::min_norm] = s.min_norm;
  out[summary_col::max_norm] = s.max_norm;
  out[summary_col::vanishing] = (double)s.vanishing;
  out[summary_col::exploding] = (double)s.exploding;
  out[summary_col::elements] = (double)s.elements;
  out[summary_col::zeros] = (double)s.zeros;
  out[summary_col::nans] = (double)s.nans;
  out[summary_col::infs] = (double)s.infs;
  out[summary_col::health] = s.health;
  out[summary_col::tensors] = (double)s.tensors;
}
SIMIC_SHARED_FN void summary_load(const double* in, gradient_summary& s) {
  s.total_sumsq = in[summary_col::total_sumsq];
  s.min_norm = in[summary_col::min_norm];
  s.max_norm = in[summary_col::max_norm];
  s.vanishing = (u64)in[summary_col::vanishing];
  s.exploding = (u64)in[summary_col::exploding];
  s.elements = (u64)in[summary_col::elements];
  s.zeros = (u64)in[summary_col::zeros];
  s.nans = (u64)in[summary_col::nans];
  s.infs = (u64)in[summary_col::infs];
  s.health = in[summary_col::health];
  s.tensors = (u64)in[summary_col::tensors];
}

)
// clang-format on

static_assert(static_cast<int>(summary_col::count) <= static_cast<int>(stat::count),
              "the summary row must fit in one packed stats row");

}  // namespace detail

// Gradient health in [0, 1]: clamp(1 - 0.5 vanishing_ratio - 0.8 exploding_ratio).
// No parameters means nothing is unhealthy: 1. The shared code's formula,
// which the CUDA kernels compile too.
constexpr double gradient_health(std::uint64_t vanishing, std::uint64_t exploding, std::uint64_t parameters) noexcept {
  return detail::gradient_health_score(vanishing, exploding, parameters);
}
}  // namespace v0
}  // namespace simic
