// Performance degradation judged against the performance signal's own noise
// (simic's default; the reference's "10 % below the rolling mean" is
// reference/performance_degradation.hpp).
//
// Per-epoch figures (mean return, accuracy; higher is better) are
// heavy-tailed: a healthy policy has single bad epochs, and a healthy PPO run
// has dips of 20-40 % that last a few epochs and recover. Two rules, each
// blind to what fools the other:
//
// - level (a large drop, found fast): the median of the latest `recent`
//   figures lies below the median of the `baseline` figures before them by
//   at least max(score x standard error, large_drop x |baseline|). The noise
//   scale is the baseline's median absolute deviation (x 1.4826), the
//   standard error of a median of n figures 1.2533 x scale / sqrt(n). One bad
//   epoch cannot move a median of three.
// - trend (a slow slide): the Mann-Kendall test over the latest
//   `trend_window` figures finds a falling trend of at least `trend_score`
//   standard deviations of its statistic (ties corrected), and the median of
//   the window's last three figures lies at least `trend_min_drop` x |first
//   three's median| below that of its first three. A rank test needs no noise
//   model: a dip that recovers is no monotone trend, a steady decay is.
//
// Both rules judge two series apart: the performance figures, and the reward
// rate (signals::reward_rate, mean reward per environment step of a rollout),
// a faster view where a return needs whole episodes to show a change: a
// reward that drops to 0 shows in the rate at once, in the return of
// 500-step episodes over several updates. performance_degradation holds
// while either rule holds on either series (each series' latest verdict). It
// is silent during warm-up (progress below `warmup`) and until a series' trend
// window is full. All buffers are allocated at construction: observing
// allocates nothing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/core/detail/state.hpp"

namespace simic {
inline namespace v0 {

struct performance_drop_options {
  std::uint32_t baseline = defaults::drop_baseline;   // older figures forming the level rule's baseline
  std::uint32_t recent = defaults::drop_recent;       // latest figures, judged by their median
  double score = defaults::drop_score;                // standard errors of the recent median
  double large_drop = defaults::drop_large;           // fraction of |baseline|
  std::uint32_t trend_window = defaults::trend_window;
  double trend_score = defaults::trend_score;
  double trend_min_drop = defaults::trend_min_drop;
  double warmup = defaults::performance_warmup;       // fraction of training before judging
  reporting how{};
};

// Mann-Kendall trend statistic of x (in order), with the variance corrected
// for ties, and its standard score (continuity-corrected; negative: falling).
// `scratch` must hold x.size() values.
inline double mann_kendall_score(const double* x, std::size_t n, double* scratch) noexcept {
  if (n < 3) return 0.0;
  long long s = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) s += (x[j] > x[i]) - (x[j] < x[i]);
  std::copy(x, x + n, scratch);
  std::sort(scratch, scratch + n);
  const double nn = static_cast<double>(n);
  double var = nn * (nn - 1.0) * (2.0 * nn + 5.0);
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && scratch[j] == scratch[i]) ++j;
    const double t = static_cast<double>(j - i);
    var -= t * (t - 1.0) * (2.0 * t + 5.0);
    i = j;
  }
  var /= 18.0;
  if (s == 0 || var <= 0.0) return 0.0;
  return (static_cast<double>(s) - (s > 0 ? 1.0 : -1.0)) / std::sqrt(var);
}

class performance_drop {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "performance_drop";
  static constexpr signal_set reads{signal_set::performance, signal_set::reward_rate};
  static constexpr bool per_epoch = true;  // the missing-signal guard waits for epochs too (monitor.hpp)

  struct state_type {
    std::vector<double> figures;         // performance, oldest first
    std::vector<double> reward_figures;  // reward rate, oldest first
    condition_state condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      v("figures", figures);
      v("reward_figures", reward_figures);
      detail::visit_nested(v, "condition.", condition);
    }
  };

  // What the last judged figure of a series was compared with.
  struct judgement {
    double baseline = no_figure;     // median of the baseline figures
    double recent = no_figure;       // median of the latest figures
    double scale = no_figure;        // noise scale of one figure (MAD x 1.4826)
    double level_bound = no_figure;  // the recent median at or below which the level rule holds
    double trend_score = 0.0;        // Mann-Kendall standard score over the trend window
    double trend_start = no_figure;  // median of the window's first three figures
    double trend_end = no_figure;    // and of its last three
    bool level = false;
    bool trend = false;
    bool holds() const noexcept { return level || trend; }
  };

  explicit performance_drop(const performance_drop_options& o = {})
      : o_(validated(o)),
        performance_(capacity(o), "performance"),
        reward_(capacity(o), "reward rate"),
        scratch_(capacity(o)),
        window_(capacity(o)) {}

  void validate(const signals& s) const {
    if ((s.performance || s.reward_rate) && !s.progress)
      throw std::invalid_argument(
          "simic::performance_drop: progress is required with performance and reward_rate (episode >= 1, total >= "
          "episode)");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.progress) return;
    const bool judged = feed(performance_, s.performance, *s.progress);
    const bool reward_judged = feed(reward_, s.reward_rate, *s.progress);
    if (!judged && !reward_judged) return;
    const bool holds = performance_.last.holds() || reward_.last.holds();
    const series& shown = performance_.last.holds() ? performance_ : reward_;
    if (latch_.update(holds, o_.how, anomaly_kind::performance_degradation, shown.last.recent, r)) report(shown, r);
  }

  const performance_drop_options& options() const noexcept { return o_; }
  const judgement& last_judgement() const noexcept { return performance_.last; }
  const judgement& reward_judgement() const noexcept { return reward_.last; }
  std::size_t filled() const noexcept { return performance_.size; }
  std::size_t reward_filled() const noexcept { return reward_.size; }

  state_type state() const {
    return {performance_.figures(), reward_.figures(), latch_.state()};
  }
  void load(const state_type& st) {
    constexpr auto where = "simic::performance_drop::load";
    for (const auto* figures : {&st.figures, &st.reward_figures}) {
      detail::require(figures->size() <= scratch_.size(), where, "figures.size()", figures->size(),
                      "<= max(baseline + recent, trend_window)");
      for (double v : *figures) detail::require(std::isfinite(v), where, "figure", v, "finite");
    }
    condition_latch l;
    l.load(st.condition);
    latch_ = l;
    performance_.assign(st.figures);
    reward_.assign(st.reward_figures);
  }

 private:
  // One series of figures: a ring of the latest, and its latest judgement.
  struct series {
    series(std::size_t capacity, const char* name) : ring(capacity), name(name) {}
    std::vector<double> ring;
    const char* name;
    std::size_t head = 0;
    std::size_t size = 0;
    judgement last{};

    double at(std::size_t i) const noexcept {
      const std::size_t cap = ring.size();
      return ring[(head + cap - size + i) % cap];
    }
    void push(double x) noexcept {
      ring[head] = x;
      if (++head == ring.size()) head = 0;
      if (size < ring.size()) ++size;
    }
    std::vector<double> figures() const {
      std::vector<double> f;
      f.reserve(size);
      for (std::size_t i = 0; i < size; ++i) f.push_back(at(i));
      return f;
    }
    void assign(const std::vector<double>& figures) noexcept {
      size = 0;
      head = 0;
      last = {};
      for (double v : figures) push(v);
    }
  };

  static std::size_t capacity(const performance_drop_options& o) noexcept {
    return std::max<std::size_t>(o.baseline + o.recent, o.trend_window);
  }

  static performance_drop_options validated(const performance_drop_options& o) {
    constexpr auto where = "simic::performance_drop";
    detail::require(o.baseline >= 2, where, "baseline", o.baseline, ">= 2");
    detail::require(o.recent >= 1, where, "recent", o.recent, ">= 1");
    detail::require(o.score >= 0.0 && std::isfinite(o.score), where, "score", o.score, "[0, inf)");
    detail::require(o.large_drop >= 0.0 && o.large_drop <= 1.0, where, "large_drop", o.large_drop, "[0, 1]");
    detail::require(o.trend_window >= 6, where, "trend_window", o.trend_window, ">= 6");
    detail::require(o.trend_score > 0.0 && std::isfinite(o.trend_score), where, "trend_score", o.trend_score,
                    "(0, inf)");
    detail::require(o.trend_min_drop >= 0.0 && o.trend_min_drop <= 1.0, where, "trend_min_drop", o.trend_min_drop,
                    "[0, 1]");
    detail::require(o.warmup >= 0.0 && o.warmup <= 1.0, where, "warmup", o.warmup, "[0, 1]");
    o.how.validate(where);
    return o;
  }

  // Absorbs a finite figure; judges the series when it is due. Returns whether it judged.
  bool feed(series& x, const std::optional<double>& figure, const training_progress& progress) {
    if (!figure || !std::isfinite(*figure)) return false;
    x.push(*figure);
    if (progress.fraction() < o_.warmup || x.size < o_.trend_window || x.size < o_.recent + 2) return false;
    judge(x);
    return true;
  }

  // Median of the figures [first, first + n) of x (0 = oldest kept).
  double median(const series& x, std::size_t first, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) scratch_[i] = x.at(first + i);
    return median_in_scratch(n);
  }
  double median_in_scratch(std::size_t n) {
    double* b = scratch_.data();
    std::nth_element(b, b + n / 2, b + n);
    const double hi = b[n / 2];
    if (n % 2 == 1) return hi;
    return 0.5 * (hi + *std::max_element(b, b + n / 2));
  }

  void judge(series& x) {
    judgement j;
    const std::size_t size = x.size;
    // level rule: the latest `recent` figures against up to `baseline` before them
    const std::size_t older = std::min<std::size_t>(size - o_.recent, o_.baseline);
    const std::size_t base_first = size - o_.recent - older;
    j.recent = median(x, size - o_.recent, o_.recent);
    j.baseline = median(x, base_first, older);
    for (std::size_t i = 0; i < older; ++i) scratch_[i] = std::abs(x.at(base_first + i) - j.baseline);
    j.scale = 1.4826 * median_in_scratch(older);
    const double standard_error = 1.2533 * j.scale / std::sqrt(static_cast<double>(o_.recent));
    j.level_bound = j.baseline - std::max(o_.score * standard_error, o_.large_drop * std::abs(j.baseline));
    j.level = j.recent <= j.level_bound && j.recent < j.baseline;
    // trend rule: the latest `trend_window` figures
    const std::size_t w = o_.trend_window, first = size - w;
    for (std::size_t i = 0; i < w; ++i) window_[i] = x.at(first + i);
    j.trend_score = mann_kendall_score(window_.data(), w, scratch_.data());
    j.trend_start = median(x, first, 3);
    j.trend_end = median(x, size - 3, 3);
    j.trend = j.trend_score <= -o_.trend_score &&
              j.trend_start - j.trend_end >= o_.trend_min_drop * std::abs(j.trend_start) && j.trend_end < j.trend_start;
    x.last = j;
  }

  SIMIC_COLD void report(const series& x, anomaly_report& r) const {
    const judgement& j = x.last;
    if (j.level)
      r.add(anomaly_kind::performance_degradation,
            detail::format("%s: median of the last %u figures %.6g is %.1f%% below the median %.6g before "
                           "(bound %.6g; noise scale %.4g)",
                           x.name, o_.recent, j.recent, 100.0 * (j.baseline - j.recent) / std::abs(j.baseline),
                           j.baseline, j.level_bound, j.scale),
            {j.recent, j.level_bound, j.baseline});
    else
      r.add(anomaly_kind::performance_degradation,
            detail::format("%s: falling trend over the last %u figures (Mann-Kendall score %.3g <= -%.3g), "
                           "from %.6g to %.6g <= %.6g (%.1f%%)",
                           x.name, o_.trend_window, j.trend_score, o_.trend_score, j.trend_start, j.trend_end,
                           j.trend_start - o_.trend_min_drop * std::abs(j.trend_start),
                           100.0 * (j.trend_start - j.trend_end) / std::abs(j.trend_start)),
            {j.trend_end, j.trend_start - o_.trend_min_drop * std::abs(j.trend_start), j.trend_start});
  }

  performance_drop_options o_;
  series performance_;
  series reward_;
  std::vector<double> scratch_;  // medians and the tie count
  std::vector<double> window_;   // the trend window, oldest first
  condition_latch latch_;
};

}  // namespace v0
}  // namespace simic
