// LSTM state health, as the reference telemetry judged it: healthy when (h, c)
// hold no NaN/Inf and min < norm(h), norm(c) < max; anything else is
// lstm_unhealthy, on every check. simic's default judges the per-element RMS
// instead (detect/lstm_rms_bounds.hpp), which the state's width does not move.
// A detector of the reference preset (presets/reference.hpp), in
// simic::reference; lstm_health_report::healthy() (sensors/lstm_health.hpp)
// judges with it too.
#pragma once

#include <cmath>
#include <string>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {
namespace reference {

struct lstm_bounds_options {
  double norm_min = defaults::lstm_norm_min;  // healthy: norm_min < norm(h), norm(c) < norm_max
  double norm_max = defaults::lstm_norm_max;
};

class lstm_bounds {
 public:
  using category = cat::critical;
  static constexpr std::string_view name = "lstm_bounds";
  static constexpr signal_set reads{signal_set::lstm};

  explicit lstm_bounds(const lstm_bounds_options& o = {}) : o_(o) {
    detail::require(o.norm_min >= 0.0, "simic::lstm_bounds", "norm_min", o.norm_min, "[0, norm_max)");
    detail::require(o.norm_max > o.norm_min && std::isfinite(o.norm_max), "simic::lstm_bounds", "norm_max",
                    o.norm_max, "(norm_min, inf)");
  }

  const lstm_bounds_options& options() const noexcept { return o_; }

  bool healthy(const lstm_signal& l) const noexcept {
    return !l.has_nan && !l.has_inf && in_bounds(l.h_norm) && in_bounds(l.c_norm);
  }

  void observe(const signals& s, anomaly_report& r) const {
    if (s.lstm && !healthy(*s.lstm)) report(*s.lstm, r);
  }

 private:
  SIMIC_COLD void report(const lstm_signal& l, anomaly_report& r) const {
    std::string why;
    if (l.has_nan) why += "NaN in state; ";
    if (l.has_inf) why += "Inf in state; ";
    if (!in_bounds(l.h_norm))
      why += detail::format("norm(h) %.6g outside (%g, %g); ", l.h_norm, o_.norm_min, o_.norm_max);
    if (!in_bounds(l.c_norm))
      why += detail::format("norm(c) %.6g outside (%g, %g); ", l.c_norm, o_.norm_min, o_.norm_max);
    why.resize(why.size() - 2);
    const double worst = !in_bounds(l.c_norm) ? l.c_norm : l.h_norm;
    r.add(anomaly_kind::lstm_unhealthy, std::move(why), {worst, worst <= o_.norm_min ? o_.norm_min : o_.norm_max});
  }

  bool in_bounds(double n) const noexcept { return n > o_.norm_min && n < o_.norm_max; }
  lstm_bounds_options o_;
};

}  // namespace reference
}  // namespace v0
}  // namespace simic
