// Approximate-KL guard: kl_spike above the spike bound, kl_extreme above the
// extreme bound (an extreme KL is reported once, as extreme).
#pragma once

#include "simic/core/anomaly.hpp"
#include "simic/core/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

class kl_divergence {
 public:
  using category = cat::ops_normal;

  explicit kl_divergence(double spike = defaults::kl_spike, double extreme = defaults::kl_extreme)
      : spike_(spike), extreme_(extreme) {
    detail::require(spike > 0.0 && std::isfinite(spike), "simic::kl_divergence", "spike", spike, "(0, inf)");
    detail::require(extreme >= spike && std::isfinite(extreme), "simic::kl_divergence", "extreme", extreme,
                    "[spike, inf)");
  }

  void observe(const signals& s, anomaly_report& r) const {
    if (!s.approx_kl) return;
    const double kl = *s.approx_kl;
    if (kl > extreme_)
      r.add(anomaly_kind::kl_extreme, detail::format("approx KL %.6g > %.6g", kl, extreme_));
    else if (kl > spike_)
      r.add(anomaly_kind::kl_spike, detail::format("approx KL %.6g > %.6g", kl, spike_));
  }

 private:
  double spike_;
  double extreme_;
};

}  // namespace v0
}  // namespace simic
