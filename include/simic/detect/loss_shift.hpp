// The training loss judged against its own noise (signals::loss): a spike
// (one step far above the loss's recent level), an extreme spike, and a
// divergence (a sustained rise).
//
// The loss is judged on its raw value, not its logarithm: PPO's total loss
// is often negative and crosses 0, and where the loss sits near 0 against
// its noise (PPO's does: values from 0.002 to 0.9 in one run) a log would
// turn each recovery from a near-zero minibatch into a jump of several log
// units. A raw model has one cost: where the noise is proportional to the
// level, the spread it remembers from a higher level shrinks more slowly
// than the level falls, which makes it more cautious, never less.
//
// Per finite loss x (NaN and Inf are skipped, unabsorbed: numerical_stability
// reports them):
//
//   level  = the recent level, an exponentially weighted mean of the absorbed
//            loss (momentum `fast_momentum`, 20 values: it follows the
//            falling trend of training),
//   r      = x - level (before x),
//   spread = sqrt(EW mean of r^2 + floor^2), with momentum `slow_momentum`
//            (100 values) and floor = max(`floor` x |running level|,
//            `floor_abs`). The mean square is not centred, so a trend's lag
//            widens it: a falling loss makes the rule more cautious.
//
//   loss_spike    while r > `spike` x spread (and not extreme),
//   loss_extreme  while r > `extreme` x spread (critical: a loss x1e6),
//
// and x is absorbed clipped to level +- `clip` x spread, so one spike does
// not become the level (a lasting change is followed, and reported as a
// spike that lasts until the level has caught up).
//
//   running = an EW mean of the absorbed loss, momentum `slow_momentum`,
//   noise   = sqrt(EW variance of the clipped r + floor^2), momentum
//             `slow_momentum`: the loss's noise around its recent level,
//             centred, so a steady trend's lag does not count;
//   loss_divergence while level - running > `rise` x noise, judged once the
//   running level spans its time constant (1 / (1 - slow_momentum) values).
//
// A rising loss whose noise grows with it (multiplicative noise under a
// learning rate that ramps up) would widen the noise as fast as the gap
// grows; so the noise absorbs nothing while the gap is above half the bound
// (it resumes when the gap closes, or when the running level catches up).
//
// Warm-up: the first values only build the model. It ends when the spread
// estimate is stable: once `min_warmup` residuals are in, at the first at
// which the relative standard error of the spread, estimated from the data
// itself as 0.5 sqrt(Var(r^2) / n_eff) / (E[r^2] + floor^2) (n_eff: the
// effective count of the exponential weights; for Gaussian noise this is
// about 1 / sqrt(2 n_eff)), is below `settle`; at the latest after
// 1 / (1 - slow_momentum) residuals. A constant loss settles at
// `min_warmup`, Gaussian noise after about 40 values (17 to 100 over seeds),
// heavy-tailed noise later; no alarm comes from the first steps of training.
// Values are absorbed unclipped during the warm-up (but for one so far from
// the level that its fourth power overflows: skipped).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/detail/state.hpp"
#include "simic/core/error.hpp"
#include "simic/core/level.hpp"
#include "simic/core/moments.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct loss_shift_options {
  double fast_momentum = defaults::loss_fast_momentum;  // the recent level, per check
  double slow_momentum = defaults::loss_slow_momentum;  // the running level, the spread and the noise
  double spike = defaults::loss_spike;                  // spreads above the recent level: loss_spike
  double extreme = defaults::loss_extreme;              // spreads above the recent level: loss_extreme
  double rise = defaults::loss_rise;                    // noise spreads of the recent level above the running one
  double clip = defaults::loss_clip;                    // absorb at most this many spreads from the recent level
  double floor = defaults::loss_floor;                  // least spread, as a fraction of |running level|
  double floor_abs = defaults::loss_floor_abs;          // least spread, in loss units
  double settle = defaults::loss_settle;                // warm-up ends below this relative error of the spread
  std::uint32_t min_warmup = defaults::loss_min_warmup;  // values before the warm-up can end
  reporting how{};

  // Values absorbed before the warm-up ends at the latest, and before the
  // divergence rule judges: the running level's time constant.
  std::uint64_t max_warmup() const noexcept {
    return std::max<std::uint64_t>(min_warmup, static_cast<std::uint64_t>(std::ceil(1.0 / (1.0 - slow_momentum))));
  }

  void validate(const char* where) const {
    detail::require(fast_momentum > 0.0 && fast_momentum < 1.0, where, "fast_momentum", fast_momentum, "(0, 1)");
    detail::require(slow_momentum >= fast_momentum && slow_momentum < 1.0, where, "slow_momentum", slow_momentum,
                    "[fast_momentum, 1)");
    detail::require(spike > 0.0 && std::isfinite(spike), where, "spike", spike, "(0, inf)");
    detail::require(extreme >= spike, where, "extreme", extreme, "[spike, inf]");
    detail::require(rise > 0.0, where, "rise", rise, "(0, inf]");
    detail::require(clip > 0.0 && std::isfinite(clip), where, "clip", clip, "(0, inf)");
    detail::require(floor >= 0.0 && std::isfinite(floor), where, "floor", floor, "[0, inf)");
    detail::require(floor_abs > 0.0 && std::isfinite(floor_abs), where, "floor_abs", floor_abs, "(0, inf)");
    detail::require(settle > 0.0 && std::isfinite(settle), where, "settle", settle, "(0, inf)");
    detail::require(min_warmup >= 2, where, "min_warmup", min_warmup, ">= 2");
    how.validate(where);
  }
};

class loss_shift {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "loss_shift";
  static constexpr signal_set reads{signal_set::loss};

  struct state_type {
    moments_state fast;      // the recent level
    moments_state slow;      // the running level
    moments_state square;    // of r^2: the spread (its mean) and the kurtosis (its variance)
    moments_state residual;  // of the clipped r: the noise (its variance)
    std::uint64_t judging = 0;  // 1 once the warm-up has ended
    condition_state spike;
    condition_state extreme;
    condition_state divergence;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "fast.", fast);
      detail::visit_nested(v, "slow.", slow);
      detail::visit_nested(v, "square.", square);
      detail::visit_nested(v, "residual.", residual);
      v("judging", judging);
      detail::visit_nested(v, "spike.", spike);
      detail::visit_nested(v, "extreme.", extreme);
      detail::visit_nested(v, "divergence.", divergence);
    }
  };

  explicit loss_shift(const loss_shift_options& o = {})
      : o_(validated(o)),
        fast_(o.fast_momentum),
        slow_(o.slow_momentum),
        square_(o.slow_momentum),
        residual_(o.slow_momentum) {}

  void observe(const signals& s, anomaly_report& r) {
    if (s.loss && std::isfinite(*s.loss)) add(*s.loss, r);
  }

  const loss_shift_options& options() const noexcept { return o_; }
  bool warming_up() const noexcept { return judging_ == 0; }
  // The recent level, the running level, the least spread now.
  double level() const noexcept { return fast_.mean(); }
  double running_level() const noexcept { return slow_.mean(); }
  double floor() const noexcept { return std::max(o_.floor * std::abs(slow_.mean()), o_.floor_abs); }
  // The spread a spike is judged in, and the noise a divergence is judged in.
  double spread() const noexcept { return std::sqrt(square_.mean() + sq(floor())); }
  double noise() const noexcept { return std::sqrt(residual_.variance() + sq(floor())); }
  // The relative standard error of the spread estimate (the warm-up's test).
  double spread_error() const noexcept {
    if (square_.steps() == 0) return 0.0;
    return 0.5 * std::sqrt(square_.variance() / effective_count(square_)) / (square_.mean() + sq(floor()));
  }

  state_type state() const {
    return {fast_.state(),  slow_.state(),        square_.state(),     residual_.state(),
            judging_,       spike_latch_.state(), extreme_latch_.state(), divergence_latch_.state()};
  }
  // Loads all or nothing.
  void load(const state_type& st) {
    detail::require(st.judging <= 1, "simic::loss_shift::load", "judging", st.judging, "0 or 1");
    detail::require(st.fast.steps == st.slow.steps, "simic::loss_shift::load", "slow.steps", st.slow.steps,
                    "fast.steps");
    ew_moments f = fast_, s = slow_, q = square_, e = residual_;
    condition_latch sl, xl, dl;
    f.load(st.fast);
    s.load(st.slow);
    q.load(st.square);
    e.load(st.residual);
    sl.load(st.spike);
    xl.load(st.extreme);
    dl.load(st.divergence);
    fast_ = f;
    slow_ = s;
    square_ = q;
    residual_ = e;
    judging_ = st.judging;
    spike_latch_ = sl;
    extreme_latch_ = xl;
    divergence_latch_ = dl;
  }

 private:
  static double sq(double x) noexcept { return x * x; }
  // 1 / sum of the squared normalised weights of a bias-corrected EW mean.
  static double effective_count(const ew_moments& m) noexcept {
    const double a = m.momentum(), p = m.state().momentum_pow;
    return (1.0 + a) * (1.0 - p) / ((1.0 - a) * (1.0 + p));
  }
  static loss_shift_options validated(const loss_shift_options& o) {
    o.validate("simic::loss_shift");
    return o;
  }

  void add(double x, anomaly_report& rep) {
    if (fast_.steps() == 0) {
      fast_.add(x);
      slow_.add(x);
      return;
    }
    const double level = fast_.mean(), spread = this->spread();
    const double r = x - level;
    if (judging_ == 0) {
      if (!std::isfinite(sq(sq(r)))) return;  // |r| > 1e77: its moments would overflow
      absorb(level, r, false);
      if (square_.steps() >= o_.min_warmup && (spread_error() < o_.settle || square_.steps() >= o_.max_warmup()))
        judging_ = 1;
      return;
    }
    const bool extreme = r > o_.extreme * spread;
    const bool spike = r > o_.spike * spread && !extreme;
    if (extreme_latch_.update(extreme, o_.how, anomaly_kind::loss_extreme, x, rep))
      report_spike(anomaly_kind::loss_extreme, x, level, spread, o_.extreme, rep);
    if (spike_latch_.update(spike, o_.how, anomaly_kind::loss_spike, x, rep))
      report_spike(anomaly_kind::loss_spike, x, level, spread, o_.spike, rep);
    const double rc = std::clamp(r, -o_.clip * spread, o_.clip * spread);
    const double noise = this->noise();
    absorb(level, rc, true);
    // the gap after x; the noise before it (frozen while the gap is above half the bound)
    const double recent = fast_.mean(), running = slow_.mean(), gap = recent - running;
    if (!(gap > 0.5 * o_.rise * noise)) residual_.add(rc);
    if (slow_.steps() < o_.max_warmup()) return;
    const bool rising = gap > o_.rise * noise;
    if (divergence_latch_.update(rising, o_.how, anomaly_kind::loss_divergence, recent, rep))
      report_divergence(recent, running, noise, rep);
  }

  // The recent and running levels and the spread absorb level + r; the noise
  // absorbs r too during the warm-up (afterwards add() decides).
  void absorb(double level, double r, bool judged) {
    square_.add(r * r);
    fast_.add(level + r);
    slow_.add(level + r);
    if (!judged) residual_.add(r);
  }

  SIMIC_COLD void report_spike(anomaly_kind kind, double x, double level, double spread, double bound,
                               anomaly_report& rep) const {
    const double threshold = level + bound * spread;
    rep.add(kind,
            detail::format("loss %.6g > %.6g (recent level %.6g + %.6g x spread %.6g: %.3g spreads)", x, threshold,
                           level, bound, spread, (x - level) / spread),
            {x, threshold, level});
  }
  SIMIC_COLD void report_divergence(double recent, double running, double noise, anomaly_report& rep) const {
    const double threshold = running + o_.rise * noise;
    rep.add(anomaly_kind::loss_divergence,
            detail::format("loss recent level %.6g > %.6g (running level %.6g + %.6g x noise %.6g): a sustained rise",
                           recent, threshold, running, o_.rise, noise),
            {recent, threshold, running});
  }

  loss_shift_options o_;
  ew_moments fast_;
  ew_moments slow_;
  ew_moments square_;
  ew_moments residual_;
  std::uint64_t judging_ = 0;
  condition_latch spike_latch_;
  condition_latch extreme_latch_;
  condition_latch divergence_latch_;
};

}  // namespace v0
}  // namespace simic
