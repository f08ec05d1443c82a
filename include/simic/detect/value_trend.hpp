// Value-function collapse judged on a smoothed explained variance and its
// trend (simic's default; the reference's one-batch floor is
// reference/value_function.hpp).
//
// Model: one batch's explained variance (EV) is noisy, and a healthy critic's
// EV falls towards 0 by itself once returns stop varying (a solved task), so
// neither one batch nor "EV is low" means collapse. Two bias-corrected EMAs of
// EV: a fast one (the smoothed EV) and a slow one (its baseline); their
// difference is the trend. value_collapse holds while
//
//   smoothed EV < floor                      (the critic is worse than none), or
//   smoothed EV < baseline - fall            (it is falling fast)
//
// after warm-up (progress below `warmup`: the critic is still random).
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/ema.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/core/detail/state.hpp"

namespace simic {
inline namespace v0 {

struct value_trend_options {
  double fast_momentum = defaults::value_fast_momentum;  // the smoothed EV
  double slow_momentum = defaults::value_slow_momentum;  // its baseline
  double floor = defaults::value_floor;
  double fall = defaults::value_fall;
  double warmup = defaults::value_warmup;
  reporting how{};
};

class value_trend {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "value_trend";
  static constexpr signal_set reads{signal_set::explained_variance};

  struct state_type {
    ema_state fast;
    ema_state slow;
    condition_state condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "fast.", fast);
      detail::visit_nested(v, "slow.", slow);
      detail::visit_nested(v, "condition.", condition);
    }
  };

  explicit value_trend(const value_trend_options& o = {})
      : o_(validated(o)), fast_(o.fast_momentum), slow_(o.slow_momentum) {}

  void validate(const signals& s) const {
    if (s.explained_variance && !s.progress)
      throw std::invalid_argument(
          "simic::value_trend: progress is required with explained_variance (episode >= 1, total >= episode)");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.explained_variance || !s.progress || !std::isfinite(*s.explained_variance)) return;
    const double ev = *s.explained_variance;
    fast_.update(ev);
    const double baseline = slow_.value();
    const bool judged = slow_.steps() > 0 && s.progress->fraction() >= o_.warmup;
    slow_.update(ev);
    if (!judged) return;
    const double smoothed = fast_.value();
    const bool below_floor = smoothed < o_.floor;
    const bool falling = smoothed < baseline - o_.fall;
    if (latch_.update(below_floor || falling, o_.how, anomaly_kind::value_collapse, smoothed, r))
      report(ev, smoothed, baseline, below_floor, r);
  }

  const value_trend_options& options() const noexcept { return o_; }
  double smoothed() const noexcept { return fast_.value(); }
  double baseline() const noexcept { return slow_.value(); }

  state_type state() const { return {fast_.state(), slow_.state(), latch_.state()}; }
  void load(const state_type& st) {
    ema<> f = fast_, sl = slow_;
    condition_latch l;
    f.load(st.fast);
    sl.load(st.slow);
    l.load(st.condition);
    fast_ = f;
    slow_ = sl;
    latch_ = l;
  }

 private:
  static value_trend_options validated(const value_trend_options& o) {
    constexpr auto where = "simic::value_trend";
    detail::require(std::isfinite(o.floor) && o.floor < 1.0, where, "floor", o.floor, "a finite number < 1");
    detail::require(o.fall > 0.0 && std::isfinite(o.fall), where, "fall", o.fall, "(0, inf)");
    detail::require(o.warmup >= 0.0 && o.warmup <= 1.0, where, "warmup", o.warmup, "[0, 1]");
    o.how.validate(where);
    return o;  // the momenta are checked by ema
  }

  SIMIC_COLD void report(double ev, double smoothed, double baseline, bool below_floor, anomaly_report& r) const {
    const double bound = below_floor ? o_.floor : baseline - o_.fall;
    r.add(anomaly_kind::value_collapse,
          detail::format("smoothed explained variance %.6g %s %.6g (this batch %.6g, baseline %.6g)", smoothed,
                         below_floor ? "is below the floor" : "fell more than the allowed fall below its baseline, to under",
                         bound, ev, baseline),
          {smoothed, bound, baseline});
  }

  value_trend_options o_;
  ema<> fast_;
  ema<> slow_;
  condition_latch latch_;
};

}  // namespace v0
}  // namespace simic
