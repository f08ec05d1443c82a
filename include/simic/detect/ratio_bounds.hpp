// PPO importance-ratio bounds: ratio_explosion above, ratio_collapse below.
#pragma once

#include "simic/core/anomaly.hpp"
#include "simic/core/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

class ratio_bounds {
 public:
  using category = cat::ops_normal;

  explicit ratio_bounds(double explosion = defaults::ratio_explosion, double collapse = defaults::ratio_collapse)
      : explosion_(explosion), collapse_(collapse) {
    detail::require(collapse >= 0.0 && collapse < 1.0, "simic::ratio_bounds", "collapse", collapse, "[0, 1)");
    detail::require(explosion > 1.0 && std::isfinite(explosion), "simic::ratio_bounds", "explosion", explosion,
                    "(1, inf)");
  }

  void observe(const signals& s, anomaly_report& r) const {
    if (s.ratio_max && *s.ratio_max > explosion_)
      r.add(anomaly_kind::ratio_explosion, detail::format("ratio max %.6g > %.6g", *s.ratio_max, explosion_));
    if (s.ratio_min && *s.ratio_min < collapse_)
      r.add(anomaly_kind::ratio_collapse, detail::format("ratio min %.6g < %.6g", *s.ratio_min, collapse_));
  }

  double explosion() const noexcept { return explosion_; }
  double collapse() const noexcept { return collapse_; }

 private:
  double explosion_;
  double collapse_;
};

}  // namespace v0
}  // namespace simic
