// Training that stopped learning, for a trainer that minimises its loss (the
// supervised preset): learning_stall holds while the loss, or the
// performance, has given back much of what training gained (30 % by default).
//
// For each series (the loss, per check; the performance, per figure, negated
// so that lower is better):
//
//   start  the mean of the first `start_values` values: where training began
//   level  an exponentially weighted mean of the values (momentum per series),
//          bias-corrected: the loss's noise averaged out, the performance's latest
//   best   the lowest level so far
//
// Once a series has its start, a value is absorbed at most at start +
// max(|start|, gain): one loss x1e6 (a step the guard skipped) moves the
// level by a fraction 1 - momentum of that cap, not of the spike, so it
// cannot hold a stall that training never had.
//
// The rule holds while level - best >= max(give_back x (start - best),
// min_drop x |best|), once the series has gained (the loss: start - best >=
// min_gain x |start|; the performance, whose start is already its first
// epoch's: any gain) and training is past its early phase (signals::progress before `early` is not judged,
// though it builds start, level and best). A loss back at its starting level
// (every ReLU dead, labels shuffled, a learning rate that destroyed the
// weights) or an accuracy back at chance holds it for as long as it lasts;
// a healthy loss that merely flattens does not, nor does one that never fell
// (a trainer whose loss is no measure of learning: PPO, a GAN's two losses).
// Not in the PPO preset for that reason.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/detail/state.hpp"
#include "simic/core/moments.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct learning_stall_options {
  double give_back = defaults::stall_give_back;  // fraction of the gain given back
  double min_gain = defaults::stall_min_gain;    // the loss must first fall this fraction of |start|
  double min_drop = defaults::stall_min_drop;    // and a stall is at least this fraction of |best|
  std::uint32_t start_values = defaults::stall_start_values;  // loss values averaged into its start
  double loss_momentum = defaults::stall_loss_momentum;       // of the loss's level, per check
  double performance_momentum = defaults::stall_performance_momentum;  // of the performance's, per figure
  double early = defaults::shift_early;  // fraction of training (signals::progress) not judged
  reporting how{};

  void validate(const char* where) const {
    detail::require(give_back > 0.0 && give_back <= 1.0, where, "give_back", give_back, "(0, 1]");
    detail::require(min_gain > 0.0 && min_gain < 1.0, where, "min_gain", min_gain, "(0, 1)");
    detail::require(min_drop >= 0.0 && std::isfinite(min_drop), where, "min_drop", min_drop, "[0, inf)");
    detail::require(start_values >= 1, where, "start_values", start_values, ">= 1");
    detail::require(loss_momentum > 0.0 && loss_momentum < 1.0, where, "loss_momentum", loss_momentum, "(0, 1)");
    detail::require(performance_momentum > 0.0 && performance_momentum < 1.0, where, "performance_momentum",
                    performance_momentum, "(0, 1)");
    detail::require(early >= 0.0 && early < 1.0, where, "early", early, "[0, 1)");
    how.validate(where);
  }
};

class learning_stall {
 public:
  using options_type = learning_stall_options;
  using category = cat::ops_normal;
  static constexpr std::string_view name = "learning_stall";
  static constexpr signal_set reads{signal_set::loss, signal_set::performance};

  // One series' figures: its start (the mean of its first values), its
  // level and its best level (lower is better).
  struct series_state {
    double start_sum = 0.0;
    std::uint64_t start_count = 0;
    moments_state level;
    double best = std::numeric_limits<double>::infinity();
    friend bool operator==(const series_state&, const series_state&) = default;
    template <class V>
    void visit(V&& v) {
      v("start_sum", start_sum);
      v("start_count", start_count);
      detail::visit_nested(v, "level.", level);
      v("best", best);
    }
  };
  struct state_type {
    series_state loss;
    series_state performance;
    condition_state condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "loss.", loss);
      detail::visit_nested(v, "performance.", performance);
      detail::visit_nested(v, "condition.", condition);
    }
  };

  explicit learning_stall(const options_type& o = {})
      : o_(validated(o)),
        loss_(o.loss_momentum, o.start_values, o.min_gain, "loss", 1.0),
        performance_(o.performance_momentum, 1, 0.0, "performance", -1.0) {}

  void observe(const signals& s, anomaly_report& r) {
    if (!s.loss && !s.performance) return;
    const bool judged = !in_early_training(s.progress, o_.early);
    if (s.loss && std::isfinite(*s.loss)) loss_.add(*s.loss);
    if (s.performance && std::isfinite(*s.performance)) performance_.add(-*s.performance);
    const series* worst = nullptr;
    for (const series* x : {&loss_, &performance_})
      if (judged && x->stalled(o_) && (!worst || x->given_back() > worst->given_back())) worst = x;
    if (latch_.update(worst != nullptr, o_.how, anomaly_kind::learning_stall,
                      worst ? worst->shown(worst->level()) : no_figure, r))
      report(*worst, r);
  }

  const options_type& options() const noexcept { return o_; }

  state_type state() const { return {loss_.state(), performance_.state(), latch_.state()}; }
  // All or nothing.
  void load(const state_type& st) {
    series l = loss_, p = performance_;
    condition_latch c;
    l.load(st.loss);
    p.load(st.performance);
    c.load(st.condition);
    loss_ = l;
    performance_ = p;
    latch_ = c;
  }

 private:
  class series {
   public:
    series(double momentum, std::uint32_t start_values, double min_gain, const char* label, double sign)
        : level_(momentum), start_values_(start_values), min_gain_(min_gain), label_(label), sign_(sign) {}

    void add(double x) noexcept {
      if (st_.start_count < start_values_) {
        st_.start_sum += x;
        ++st_.start_count;
      }
      level_.add(started() ? std::min(x, cap()) : x);
      if (started()) st_.best = std::min(st_.best, level_.mean());
    }
    bool started() const noexcept { return st_.start_count >= start_values_; }
    // The most a value adds to the level (the gain is 0 before the best is known).
    double cap() const noexcept {
      const double gain = std::isfinite(st_.best) ? std::max(start() - st_.best, 0.0) : 0.0;
      return start() + std::max(std::abs(start()), gain);
    }
    double start() const noexcept { return st_.start_sum / static_cast<double>(st_.start_count); }
    double level() const noexcept { return level_.mean(); }
    double best() const noexcept { return st_.best; }
    double gain() const noexcept { return start() - best(); }
    double given_back() const noexcept { return (level() - best()) / gain(); }
    double bound(const options_type& o) const noexcept {
      return best() + std::max(o.give_back * gain(), o.min_drop * std::abs(best()));
    }
    bool stalled(const options_type& o) const noexcept {
      return started() && std::isfinite(best()) && gain() > 0.0 && gain() >= min_gain_ * std::abs(start()) &&
             level() >= bound(o);
    }
    // In the signal's own sense (performance: higher is better).
    double shown(double x) const noexcept { return sign_ * x; }
    const char* label() const noexcept { return label_; }

    series_state state() const {
      series_state s = st_;
      s.level = level_.state();
      return s;
    }
    void load(const series_state& s) {
      constexpr auto where = "simic::learning_stall::load";
      detail::require(std::isfinite(s.start_sum), where, "start_sum", s.start_sum, "a finite number");
      detail::require(s.start_count <= start_values_, where, "start_count", s.start_count, "0..start_values");
      detail::require(!std::isnan(s.best), where, "best", s.best, "a number or +inf");
      ew_moments m = level_;
      m.load(s.level);
      level_ = m;
      st_ = s;
    }

   private:
    ew_moments level_;
    std::uint32_t start_values_;
    double min_gain_;
    const char* label_;
    double sign_;
    series_state st_{};
  };

  static options_type validated(const options_type& o) {
    o.validate("simic::learning_stall");
    return o;
  }

  SIMIC_COLD void report(const series& x, anomaly_report& r) const {
    const double level = x.shown(x.level()), bound = x.shown(x.bound(o_)), best = x.shown(x.best()),
                 start = x.shown(x.start());
    r.add(anomaly_kind::learning_stall,
          detail::format("%s level %.6g %s %.6g: %.0f %% of its gain from %.6g to its best %.6g given back "
                         "(stopped learning)",
                         x.label(), level, x.shown(1.0) > 0 ? ">=" : "<=", bound, 100.0 * x.given_back(), start, best),
          {level, bound, best});
  }

  options_type o_;
  series loss_;
  series performance_;
  condition_latch latch_;
};

}  // namespace v0
}  // namespace simic
