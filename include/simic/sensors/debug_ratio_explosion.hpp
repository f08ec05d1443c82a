// DEBUG-level ratio-explosion diagnostic from one PPO batch: which samples
// have an importance ratio outside [lower, upper] (NaN counts as outside),
// with their index, ratio and action, and the mean and max |new - old|
// log-probability difference. Inputs are packed into one float64 tensor on
// their device and come back in one transfer; the batch is then examined on
// the host. Actions go through float64: exact for |action| <= 2^53; beyond,
// the nearest float64, and the largest int64 values (which round up to 2^63)
// read back as INT64_MAX.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "simic/core/diagnostics.hpp"
#include "simic/core/detail/error.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct ratio_diagnostic_options {
  double upper = defaults::ratio_explosion;  // ratio strictly above: outlier
  double lower = defaults::ratio_collapse;   // ratio strictly below: outlier

  void validate() const {
    detail::require(lower >= 0.0 && std::isfinite(lower), "simic::ratio_diagnostic_options", "lower", lower,
                    "[0, upper)");
    detail::require(upper > lower && !std::isnan(upper), "simic::ratio_diagnostic_options", "upper", upper,
                    "(lower, inf]");
  }
};

namespace detail {
// The int64 of an action that passed through float64: truncated toward zero
// and saturated to [INT64_MIN, INT64_MAX] (an int64 near INT64_MAX rounds to
// 2^63, one past the range; casting that is undefined). An action comes from
// an integral tensor, so it is never NaN; a NaN here is an error, not a value.
inline std::int64_t action_from_double(double a) {
  constexpr double two_63 = 9223372036854775808.0;  // 2^63, exact in float64
  require(!std::isnan(a), "simic::diagnose_ratio_explosion", "action", a, "an integer (from an integral tensor)");
  if (a >= two_63) return std::numeric_limits<std::int64_t>::max();
  if (a < -two_63) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(a);
}
}  // namespace detail

// ratio, old_log_probs, new_log_probs: floating point; actions: integral;
// all with the same number of elements (read flattened) on one device. An
// empty batch is valid and gives an empty report.
inline ratio_diagnostic_report diagnose_ratio_explosion(const at::Tensor& ratio, const at::Tensor& old_log_probs,
                                                        const at::Tensor& new_log_probs, const at::Tensor& actions,
                                                        const ratio_diagnostic_options& options = {}) {
  static constexpr const char* where = "simic::diagnose_ratio_explosion";
  options.validate();
  const char* names[4] = {"ratio", "old_log_probs", "new_log_probs", "actions"};
  const at::Tensor* ins[4] = {&ratio, &old_log_probs, &new_log_probs, &actions};
  for (int i = 0; i < 4; ++i) detail::require(ins[i]->defined(), where, names[i], "undefined", "a defined tensor");
  for (int i = 0; i < 3; ++i)
    detail::require(at::isFloatingType(ins[i]->scalar_type()), where, std::string(names[i]) + ".dtype",
                    ins[i]->scalar_type(), "a floating-point type");
  detail::require(at::isIntegralType(actions.scalar_type(), /*includeBool=*/false), where, "actions.dtype",
                  actions.scalar_type(), "an integral type");
  const std::int64_t b = ratio.numel();
  for (int i = 1; i < 4; ++i) {
    detail::require(ins[i]->numel() == b, where, std::string(names[i]) + ".numel()", ins[i]->numel(),
                    "ratio.numel() = " + std::to_string(b));
    detail::require(ins[i]->device() == ratio.device(), where, std::string(names[i]) + ".device",
                    ins[i]->device(), "the device of ratio (" + ratio.device().str() + ")");
  }

  ratio_diagnostic_report r;
  r.batch_size = static_cast<std::uint64_t>(b);
  r.upper = options.upper;
  r.lower = options.lower;
  if (b == 0) return r;

  at::NoGradGuard no_grad;
  at::Tensor packed = at::stack({ratio.reshape({-1}).to(at::kDouble), old_log_probs.reshape({-1}).to(at::kDouble),
                                 new_log_probs.reshape({-1}).to(at::kDouble), actions.reshape({-1}).to(at::kDouble)});
  const at::Tensor host = packed.to(at::kCPU).contiguous();  // the one transfer
  const double* rp = host.data_ptr<double>();
  const double* op = rp + b;
  const double* np = op + b;
  const double* ap = np + b;
  double sum = 0.0, mx = 0.0;
  for (std::int64_t i = 0; i < b; ++i) {
    if (!(rp[i] >= options.lower && rp[i] <= options.upper))
      r.outliers.push_back(ratio_outlier{i, rp[i], detail::action_from_double(ap[i])});
    const double d = std::fabs(np[i] - op[i]);
    sum += d;
    if (d > mx || std::isnan(d)) mx = std::isnan(mx) ? mx : d;  // NaN, once seen, stays
  }
  r.mean_abs_logprob_diff = sum / static_cast<double>(b);
  r.max_abs_logprob_diff = mx;
  return r;
}

}  // namespace v0
}  // namespace simic
