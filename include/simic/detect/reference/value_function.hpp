// Value-function collapse as the reference telemetry judged it: one batch's
// explained variance below a floor that rises as training progresses (the
// critic is allowed to be bad early, not late), on every check. simic's
// default smooths it and follows its trend (detect/value_trend.hpp). A
// detector of the reference preset (presets/reference.hpp), in
// simic::reference.
#pragma once

#include <array>
#include <stdexcept>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {
namespace reference {

struct value_function_options {
  // Progress fractions ending phases 0..2 and the floor of each of the 4 phases.
  using phase_ends = std::array<double, 3>;
  using phase_floors = std::array<double, 4>;
  phase_floors floors{defaults::ev_floors[0], defaults::ev_floors[1], defaults::ev_floors[2], defaults::ev_floors[3]};
  phase_ends ends{defaults::ev_phase_ends[0], defaults::ev_phase_ends[1], defaults::ev_phase_ends[2]};
};

class value_function {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "value_function";
  static constexpr signal_set reads{signal_set::explained_variance};
  using phase_ends = value_function_options::phase_ends;
  using phase_floors = value_function_options::phase_floors;

  explicit value_function(const value_function_options& o = {}) : o_(o) {
    constexpr auto where = "simic::value_function";
    const phase_ends& ends = o.ends;
    detail::require(ends[0] > 0.0 && ends[0] < ends[1] && ends[1] < ends[2] && ends[2] <= 1.0, where, "ends",
                    ends[0], "strictly increasing fractions in (0, 1]");
    for (double f : o.floors) detail::require(std::isfinite(f), where, "floors", f, "finite numbers");
  }

  const value_function_options& options() const noexcept { return o_; }

  // The explained-variance floor at training progress `fraction` in (0, 1].
  double floor_at(double fraction) const noexcept {
    for (std::size_t i = 0; i < o_.ends.size(); ++i)
      if (fraction < o_.ends[i]) return o_.floors[i];
    return o_.floors[3];
  }

  void validate(const signals& s) const {
    if (s.explained_variance && !s.progress)
      throw std::invalid_argument(
          "simic::value_function: progress is required with explained_variance (episode >= 1, total >= episode)");
  }

  void observe(const signals& s, anomaly_report& r) const {
    if (!s.explained_variance || !s.progress) return;
    const double ev = *s.explained_variance;
    const double f = s.progress->fraction();
    const double floor = floor_at(f);
    if (ev < floor)
      r.add(anomaly_kind::value_collapse,
            detail::format("explained variance %.6g < %.6g at %.1f%% of training", ev, floor, 100.0 * f),
            {ev, floor});
  }

 private:
  value_function_options o_;
};

}  // namespace reference
}  // namespace v0
}  // namespace simic
