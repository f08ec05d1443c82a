// Gradient drift as the reference telemetry judged it (simic's default is
// detect/gradient_shift.hpp, against the norm's own noise): bias-corrected
// EMAs of the total gradient norm and of the gradient health; a value further
// than `threshold` (relative) from its EMA is gradient_norm_drift /
// gradient_health_drift. A non-finite value is not absorbed: it is reported as
// numerical_instability and the EMA stays usable. A detector of the reference
// preset (presets/reference.hpp), in simic::reference.
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
namespace reference {

struct gradient_drift_options {
  double threshold = defaults::drift_threshold;  // relative distance from the EMA
  double momentum = defaults::ema_momentum;      // of both EMAs
  double epsilon = defaults::ema_epsilon;
};

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

  // The EMAs check momentum and epsilon (as they are built), then the threshold is checked.
  explicit basic_gradient_drift(const gradient_drift_options& o = {})
      : o_(o), norm_(o.momentum, o.epsilon), health_(o.momentum, o.epsilon) {
    detail::require(o.threshold > 0.0 && std::isfinite(o.threshold), "simic::gradient_drift", "threshold",
                    o.threshold, "(0, inf)");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.gradients) return;
    track(norm_, s.gradients->total_norm, "gradient norm", anomaly_kind::gradient_norm_drift, r);
    track(health_, s.gradients->health, "gradient health", anomaly_kind::gradient_health_drift, r);
  }

  const ema<Correction>& norm_ema() const noexcept { return norm_; }
  const ema<Correction>& health_ema() const noexcept { return health_; }
  const gradient_drift_options& options() const noexcept { return o_; }
  double threshold() const noexcept { return o_.threshold; }

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
    } else if (u.drift > o_.threshold) {
      const double bound = u.estimate + (x >= u.estimate ? 1.0 : -1.0) * o_.threshold * std::abs(u.estimate);
      r.add(kind,
            detail::format("%s %.6g %s %.6g: drifted %.3g from its EMA %.6g (threshold %.3g)", what, x,
                           x >= u.estimate ? ">" : "<", bound, u.drift, u.estimate, o_.threshold),
            {x, bound, u.estimate});
    }
  }

  gradient_drift_options o_;
  ema<Correction> norm_;
  ema<Correction> health_;
};

using gradient_drift = basic_gradient_drift<>;

}  // namespace reference
}  // namespace v0
}  // namespace simic
