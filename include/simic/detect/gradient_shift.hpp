// Gradient norm drift judged against the norm's own noise (simic's default;
// the reference's relative-distance rule is reference/gradient_drift.hpp).
//
// gradient_norm_drift holds while the two-sided CUSUM of the standardised
// log-norm (core/log_shift.hpp) is above its bound, up or down: a sustained
// shift of the norm, not one large minibatch. gradient_health_drift holds
// while the gradient-health score (0..1) is more than `health_drop` below its
// own running mean.
//
// Non-finite and zero norms are not absorbed (core/shift_condition.hpp):
// numerical_stability and gradient_bounds report those.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/moments.hpp"
#include "simic/core/shift_condition.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/core/detail/state.hpp"

namespace simic {
inline namespace v0 {

struct gradient_shift_options {
  log_shift_options shift{};
  double health_drop = defaults::health_drop;  // gradient health this far below its running mean
  reporting how{};
};

class gradient_shift {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "gradient_shift";
  static constexpr signal_set reads{signal_set::gradients};

  struct state_type {
    log_shift_state norm;
    moments_state health;
    condition_state norm_condition;
    condition_state health_condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "norm.", norm);
      detail::visit_nested(v, "health.", health);
      detail::visit_nested(v, "norm_condition.", norm_condition);
      detail::visit_nested(v, "health_condition.", health_condition);
    }
  };

  explicit gradient_shift(const gradient_shift_options& o = {})
      : o_(validated(o)),
        norm_(o.shift, anomaly_kind::gradient_norm_drift, "gradient norm"),
        health_(o.shift.momentum) {}

  void observe(const signals& s, anomaly_report& r) {
    if (!s.gradients) return;
    norm_.observe(s.gradients->total_norm, s.progress, o_.how, r);
    if (!norm_.early(s.progress)) observe_health(s.gradients->health, r);
  }

  const gradient_shift_options& options() const noexcept { return o_; }
  // log-norm's running mean and spread, and the two CUSUM statistics.
  const ew_moments& log_norm() const noexcept { return norm_.model().log_value(); }
  double up() const noexcept { return norm_.model().up(); }
  double down() const noexcept { return norm_.model().down(); }

  state_type state() const {
    return {norm_.model_state(), health_.state(), norm_.latch_state(), health_latch_.state()};
  }
  void load(const state_type& st) {
    shift_condition n = norm_;
    ew_moments h = health_;
    condition_latch hl;
    n.load(st.norm, st.norm_condition);
    h.load(st.health);
    hl.load(st.health_condition);
    norm_ = n;
    health_ = h;
    health_latch_ = hl;
  }

 private:
  static gradient_shift_options validated(const gradient_shift_options& o) {
    constexpr auto where = "simic::gradient_shift";
    o.shift.validate(where);
    detail::require(o.health_drop > 0.0 && o.health_drop <= 1.0, where, "health_drop", o.health_drop, "(0, 1]");
    o.how.validate(where);
    return o;
  }

  void observe_health(double h, anomaly_report& r) {
    if (!std::isfinite(h)) return;
    if (health_.steps() < o_.shift.warmup) {
      health_.add(h);
      return;
    }
    const double mean = health_.mean();
    const bool holds = h < mean - o_.health_drop;
    health_.add(h);
    if (health_latch_.update(holds, o_.how, anomaly_kind::gradient_health_drift, h, r)) report_health(h, mean, r);
  }

  SIMIC_COLD void report_health(double h, double mean, anomaly_report& r) const {
    r.add(anomaly_kind::gradient_health_drift,
          detail::format("gradient health %.6g < %.6g (%.3g below its running mean %.6g)", h, mean - o_.health_drop,
                         o_.health_drop, mean),
          {h, mean - o_.health_drop, mean});
  }

  gradient_shift_options o_;
  shift_condition norm_;
  ew_moments health_;
  condition_latch health_latch_;
};

}  // namespace v0
}  // namespace simic
