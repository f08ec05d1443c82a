// Gradient norm drift judged against the norm's own noise (simic's default;
// the reference's relative-distance rule is gradient_drift.hpp).
//
// Model: x = log(total gradient norm). Gradient norms are heavy-tailed and
// multiplicative, so their logarithm is close to symmetric. An exponentially
// weighted mean and spread of x (core/moments.hpp, bias-corrected) give the
// standardised score z = (x - mean) / sqrt(spread^2 + floor^2). A two-sided
// CUSUM on z,
//
//   up   = max(0, up   + z - slack),   down = max(0, down - z - slack),
//
// accumulates evidence of a sustained shift and ignores isolated outliers: a
// shift of d spreads is found after about bound / (d - slack) steps, a single
// step of z > slack + bound at once. gradient_norm_drift holds while up or
// down exceeds `bound`. A value beyond `clip` spreads is absorbed clipped, so
// a fault does not become the new normal at once (the mean still follows a
// lasting change, with the momentum's time constant). The first `warmup`
// finite norms only build the model.
//
// gradient_health_drift holds while the gradient-health score (0..1) is more
// than `health_drop` below its own running mean.
//
// Non-finite and zero norms are not absorbed: numerical_stability and
// gradient_bounds report those.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/format.hpp"
#include "simic/core/moments.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct gradient_shift_options {
  double momentum = defaults::shift_momentum;  // of the running mean and spread of log-norm, per check
  double slack = defaults::shift_slack;        // CUSUM allowance, in spreads
  double bound = defaults::shift_bound;        // CUSUM decision bound
  double clip = defaults::shift_clip;          // absorb at most this many spreads from the mean
  double floor = defaults::shift_floor;        // least spread of log-norm (a constant norm has none)
  std::uint32_t warmup = defaults::shift_warmup;  // finite norms absorbed before any judgement
  double health_drop = defaults::health_drop;  // gradient health this far below its running mean
  reporting how{};
};

class gradient_shift {
 public:
  using category = cat::ops_normal;

  struct state_type {
    moments_state log_norm;
    moments_state health;
    double up = 0.0;
    double down = 0.0;
    condition_state norm_condition;
    condition_state health_condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      log_norm.visit([&](const char* n, auto& f) { v((std::string("log_norm.") + n).c_str(), f); });
      health.visit([&](const char* n, auto& f) { v((std::string("health.") + n).c_str(), f); });
      v("up", up);
      v("down", down);
      norm_condition.visit([&](const char* n, auto& f) { v((std::string("norm_condition.") + n).c_str(), f); });
      health_condition.visit([&](const char* n, auto& f) { v((std::string("health_condition.") + n).c_str(), f); });
    }
  };

  explicit gradient_shift(const gradient_shift_options& o = {})
      : o_(validated(o)), log_norm_(o.momentum), health_(o.momentum) {}

  void observe(const signals& s, anomaly_report& r) {
    if (!s.gradients) return;
    observe_norm(s.gradients->total_norm, r);
    observe_health(s.gradients->health, r);
  }

  const gradient_shift_options& options() const noexcept { return o_; }
  // log-norm's running mean and spread, and the two CUSUM statistics.
  const ew_moments& log_norm() const noexcept { return log_norm_; }
  double up() const noexcept { return up_; }
  double down() const noexcept { return down_; }

  state_type state() const {
    return {log_norm_.state(), health_.state(), up_, down_, norm_latch_.state(), health_latch_.state()};
  }
  void load(const state_type& st) {
    constexpr auto where = "simic::gradient_shift::load";
    detail::require(std::isfinite(st.up) && st.up >= 0.0, where, "up", st.up, "a finite number >= 0");
    detail::require(std::isfinite(st.down) && st.down >= 0.0, where, "down", st.down, "a finite number >= 0");
    ew_moments n = log_norm_, h = health_;
    condition_latch nl, hl;
    n.load(st.log_norm);
    h.load(st.health);
    nl.load(st.norm_condition);
    hl.load(st.health_condition);
    log_norm_ = n;
    health_ = h;
    norm_latch_ = nl;
    health_latch_ = hl;
    up_ = st.up;
    down_ = st.down;
  }

 private:
  static gradient_shift_options validated(const gradient_shift_options& o) {
    constexpr auto where = "simic::gradient_shift";
    detail::require(o.slack >= 0.0 && std::isfinite(o.slack), where, "slack", o.slack, "[0, inf)");
    detail::require(o.bound > 0.0 && std::isfinite(o.bound), where, "bound", o.bound, "(0, inf)");
    detail::require(o.clip > 0.0, where, "clip", o.clip, "(0, inf]");
    detail::require(o.floor > 0.0 && std::isfinite(o.floor), where, "floor", o.floor, "(0, inf)");
    detail::require(o.warmup >= 2, where, "warmup", o.warmup, ">= 2");
    detail::require(o.health_drop > 0.0 && o.health_drop <= 1.0, where, "health_drop", o.health_drop, "(0, 1]");
    o.how.validate(where);
    return o;  // momentum is checked by ew_moments
  }

  void observe_norm(double norm, anomaly_report& r) {
    if (!(norm > 0.0) || !std::isfinite(norm)) return;
    const double x = std::log(norm);
    if (log_norm_.steps() < o_.warmup) {
      log_norm_.add(x);
      return;
    }
    const double mean = log_norm_.mean();
    const double spread = std::sqrt(log_norm_.variance() + o_.floor * o_.floor);
    const double z = (x - mean) / spread;
    up_ = std::max(0.0, up_ + z - o_.slack);
    down_ = std::max(0.0, down_ - z - o_.slack);
    log_norm_.add(std::clamp(x, mean - o_.clip * spread, mean + o_.clip * spread));
    const bool holds = up_ > o_.bound || down_ > o_.bound;
    if (norm_latch_.update(holds, o_.how, anomaly_kind::gradient_norm_drift, norm, r)) report_norm(norm, mean, spread, r);
  }

  SIMIC_COLD void report_norm(double norm, double mean, double spread, anomaly_report& r) const {
    const bool rising = up_ >= down_;
    const double score = rising ? up_ : down_;
    const double baseline = std::exp(mean);
    // The norm that would cross the bound in one step from a score of 0.
    const double one_step = std::exp(mean + (rising ? 1.0 : -1.0) * (o_.slack + o_.bound) * spread);
    r.add(anomaly_kind::gradient_norm_drift,
          detail::format("gradient norm %.6g %s its running level %.6g (log spread %.3g): shift score %.3g > %.3g",
                         norm, rising ? "above" : "below", baseline, spread, score, o_.bound),
          {norm, one_step, baseline});
  }

  void observe_health(double h, anomaly_report& r) {
    if (!std::isfinite(h)) return;
    if (health_.steps() < o_.warmup) {
      health_.add(h);
      return;
    }
    const double mean = health_.mean();
    const bool holds = h < mean - o_.health_drop;
    health_.add(h);
    if (health_latch_.update(holds, o_.how, anomaly_kind::gradient_health_drift, h, r))
      r.add(anomaly_kind::gradient_health_drift,
            detail::format("gradient health %.4g is more than %.3g below its running mean %.4g", h, o_.health_drop,
                           mean),
            {h, mean - o_.health_drop, mean});
  }

  gradient_shift_options o_;
  ew_moments log_norm_;
  ew_moments health_;
  double up_ = 0.0;
  double down_ = 0.0;
  condition_latch norm_latch_;
  condition_latch health_latch_;
};

}  // namespace v0
}  // namespace simic
