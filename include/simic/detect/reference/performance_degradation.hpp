// Performance degradation as the reference telemetry judged it: a performance
// figure (accuracy, mean return; higher is better) that falls by `drop` or
// more, relative to the rolling mean of the previous `window` figures, on every
// check. simic's default judges the drop against the figures' own noise
// (detect/performance_drop.hpp). Silent during warm-up (progress below
// `warmup`), though warm-up figures still fill the window. The window is
// allocated once, at construction: observing allocates nothing. A detector of
// the reference preset (presets/reference.hpp), in simic::reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {
namespace reference {

struct performance_degradation_options {
  double drop = defaults::performance_drop;             // relative to the rolling mean
  double warmup = defaults::performance_warmup;         // fraction of training before judging
  std::uint32_t window = defaults::performance_window;  // figures in the rolling mean
};

class performance_degradation {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "performance_degradation";
  static constexpr signal_set reads{signal_set::performance};
  static constexpr bool per_epoch = true;  // the missing-signal guard waits for epochs too (monitor.hpp)

  struct state_type {
    std::vector<double> window;  // oldest first
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      v("window", window);
    }
  };

  explicit performance_degradation(const performance_degradation_options& o = {}) : o_(o), ring_(o.window) {
    constexpr auto where = "simic::performance_degradation";
    detail::require(o.drop > 0.0 && o.drop <= 1.0, where, "drop", o.drop, "(0, 1]");
    detail::require(o.warmup >= 0.0 && o.warmup <= 1.0, where, "warmup", o.warmup, "[0, 1]");
    detail::require(o.window >= 1, where, "window", o.window, ">= 1");
  }

  const performance_degradation_options& options() const noexcept { return o_; }

  void validate(const signals& s) const {
    if (s.performance && !s.progress)
      throw std::invalid_argument(
          "simic::performance_degradation: progress is required with performance (episode >= 1, total >= episode)");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.performance || !s.progress || !std::isfinite(*s.performance)) return;
    const double x = *s.performance;
    if (size_ > 0 && s.progress->fraction() >= o_.warmup) {
      const double mean = rolling_mean();
      if (mean - x > 0.0 && (mean - x) / std::abs(mean) >= o_.drop) report(x, mean, r);
    }
    push(x);
  }

  // Summed oldest first, so a reloaded window gives the same mean bit for bit;
  // two straight runs over the ring rather than a modulo per element.
  double rolling_mean() const noexcept {
    if (size_ == 0) return 0.0;
    const std::size_t start = head_ >= size_ ? head_ - size_ : head_ + cap_ - size_;
    const std::size_t first = std::min(size_, cap_ - start);
    double sum = 0.0;
    for (std::size_t i = 0; i < first; ++i) sum += ring_[start + i];
    for (std::size_t i = 0; i < size_ - first; ++i) sum += ring_[i];
    return sum / static_cast<double>(size_);
  }
  std::size_t filled() const noexcept { return size_; }

  state_type state() const {
    state_type st;
    st.window.reserve(size_);
    for (std::size_t i = 0; i < size_; ++i) st.window.push_back(at(i));
    return st;
  }
  void load(const state_type& st) {
    detail::require(st.window.size() <= cap_, "simic::performance_degradation::load", "window.size()",
                    st.window.size(), "<= window");
    for (double v : st.window)
      detail::require(std::isfinite(v), "simic::performance_degradation::load", "window value", v, "finite");
    size_ = 0;
    head_ = 0;
    for (double v : st.window) push(v);
  }

 private:
  SIMIC_COLD void report(double x, double mean, anomaly_report& r) const {
    r.add(anomaly_kind::performance_degradation,
          detail::format("performance %.6g < %.6g: %.1f%% below its rolling mean %.6g over %u (threshold %.1f%%)", x,
                         mean - o_.drop * std::abs(mean), 100.0 * (mean - x) / std::abs(mean), mean,
                         static_cast<unsigned>(size_), 100.0 * o_.drop),
          {x, mean - o_.drop * std::abs(mean), mean});
  }
  double at(std::size_t i) const noexcept { return ring_[(head_ + cap_ - size_ + i) % cap_]; }
  void push(double x) noexcept {
    ring_[head_] = x;
    if (++head_ == cap_) head_ = 0;
    if (size_ < cap_) ++size_;
  }

  performance_degradation_options o_;
  std::vector<double> ring_;
  std::size_t cap_ = ring_.size();
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace reference
}  // namespace v0
}  // namespace simic
