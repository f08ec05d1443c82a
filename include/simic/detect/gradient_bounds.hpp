// Gradient vanishing / exploding, from the smallest and largest per-parameter
// L2 norm: gradient_vanishing when some parameter's norm is below the
// vanishing bound, gradient_exploding when some parameter's is above the
// exploding bound.
#pragma once

#include <cmath>

#include "simic/core/anomaly.hpp"
#include "simic/core/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

class gradient_bounds {
 public:
  using category = cat::ops_normal;

  explicit gradient_bounds(double vanishing = defaults::grad_vanishing, double exploding = defaults::grad_exploding)
      : vanishing_(vanishing), exploding_(exploding) {
    detail::require(vanishing >= 0.0, "simic::gradient_bounds", "vanishing", vanishing, "[0, exploding)");
    detail::require(exploding > vanishing && std::isfinite(exploding), "simic::gradient_bounds", "exploding",
                    exploding, "(vanishing, inf)");
  }

  void observe(const signals& s, anomaly_report& r) const {
    if (!s.gradients || s.gradients->parameters == 0) return;
    const gradient_signal& g = *s.gradients;
    if (g.min_param_norm < vanishing_)
      r.add(anomaly_kind::gradient_vanishing,
            detail::format("smallest parameter gradient norm %.6g < %.6g (%llu of %llu parameters vanishing)",
                           g.min_param_norm, vanishing_, static_cast<unsigned long long>(g.vanishing),
                           static_cast<unsigned long long>(g.parameters)));
    if (g.max_param_norm > exploding_)
      r.add(anomaly_kind::gradient_exploding,
            detail::format("largest parameter gradient norm %.6g > %.6g (%llu of %llu parameters exploding)",
                           g.max_param_norm, exploding_, static_cast<unsigned long long>(g.exploding),
                           static_cast<unsigned long long>(g.parameters)));
  }

 private:
  double vanishing_;
  double exploding_;
};

}  // namespace v0
}  // namespace simic
