// Gradient drift as the reference telemetry judged it (simic's default is
// gradient_shift.hpp, against the norm's own noise): bias-corrected EMAs of the total gradient norm and of the
// gradient health; a value further than `threshold` (relative) from its EMA
// is gradient_norm_drift / gradient_health_drift. A non-finite value is not
// absorbed: it is reported as numerical_instability and the EMA stays usable.
#pragma once

#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/ema.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/core/detail/state.hpp"

namespace simic {
inline namespace v0 {

template <class Correction = bias_corrected>
class basic_gradient_drift {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "gradient_drift";
  static constexpr signal_set reads{signal_set::gradients};

  struct state_type {
    ema_state norm;
    ema_state health;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "norm.", norm);
      detail::visit_nested(v, "health.", health);
    }
  };

  explicit basic_gradient_drift(double threshold = defaults::drift_threshold,
                                double momentum = defaults::ema_momentum, double epsilon = defaults::ema_epsilon)
      : threshold_(threshold), norm_(momentum, epsilon), health_(momentum, epsilon) {
    detail::require(threshold > 0.0 && std::isfinite(threshold), "simic::gradient_drift", "threshold", threshold,
                    "(0, inf)");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.gradients) return;
    track(norm_, s.gradients->total_norm, "gradient norm", anomaly_kind::gradient_norm_drift, r);
    track(health_, s.gradients->health, "gradient health", anomaly_kind::gradient_health_drift, r);
  }

  const ema<Correction>& norm_ema() const noexcept { return norm_; }
  const ema<Correction>& health_ema() const noexcept { return health_; }
  double threshold() const noexcept { return threshold_; }

  state_type state() const { return {norm_.state(), health_.state()}; }
  void load(const state_type& st) {
    ema<Correction> n = norm_, h = health_;  // validate both before touching either
    n.load(st.norm);
    h.load(st.health);
    norm_ = n;
    health_ = h;
  }

 private:
  void track(ema<Correction>& e, double x, const char* what, anomaly_kind kind, anomaly_report& r) {
    const ema_update u = e.update(x);
    if (!u.accepted) {
      r.add(anomaly_kind::numerical_instability, detail::format("%s is %g; not absorbed into its EMA", what, x), {x});
    } else if (u.drift > threshold_) {
      const double bound = u.estimate + (x >= u.estimate ? 1.0 : -1.0) * threshold_ * std::abs(u.estimate);
      r.add(kind,
            detail::format("%s %.6g drifted %.3g from its EMA %.6g (threshold %.3g)", what, x, u.drift, u.estimate,
                           threshold_),
            {x, bound, u.estimate});
    }
  }

  double threshold_;
  ema<Correction> norm_;
  ema<Correction> health_;
};

using gradient_drift = basic_gradient_drift<>;

}  // namespace v0
}  // namespace simic
