// LSTM state health on the per-element RMS, norm / sqrt(elements) (simic's
// default; the reference's bounds on the norm are reference/lstm_bounds.hpp).
//
// A norm bound moves with the state's width and with how many environments
// are measured together: 64 units of RMS 6 have norm 48, 512 units of the same
// RMS have norm 136. The RMS does not. lstm_unhealthy holds while (h, c) hold
// NaN/Inf or rms(h) or rms(c) lies outside (rms_min, rms_max). A signal whose
// element count is unknown (lstm_signal::elements == 0) is judged on NaN/Inf
// only.
#pragma once

#include <cmath>
#include <string>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/core/detail/state.hpp"

namespace simic {
inline namespace v0 {

struct lstm_rms_bounds_options {
  double rms_min = defaults::lstm_rms_min;  // healthy: rms_min < rms(h), rms(c) < rms_max
  double rms_max = defaults::lstm_rms_max;
  reporting how{};
};

class lstm_rms_bounds {
 public:
  using category = cat::critical;
  static constexpr std::string_view name = "lstm_rms_bounds";
  static constexpr signal_set reads{signal_set::lstm};

  struct state_type {
    condition_state condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "condition.", condition);
    }
  };

  explicit lstm_rms_bounds(const lstm_rms_bounds_options& o = {}) : o_(o) {
    constexpr auto where = "simic::lstm_rms_bounds";
    detail::require(o.rms_min >= 0.0, where, "rms_min", o.rms_min, "[0, rms_max)");
    detail::require(o.rms_max > o.rms_min && std::isfinite(o.rms_max), where, "rms_max", o.rms_max, "(rms_min, inf)");
    o.how.validate(where);
  }

  bool healthy(const lstm_signal& l) const noexcept {
    return !l.has_nan && !l.has_inf && in_bounds(l.h_rms()) && in_bounds(l.c_rms());
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.lstm) return;
    const lstm_signal& l = *s.lstm;
    const bool ok = healthy(l);
    if (latch_.update(!ok, o_.how, anomaly_kind::lstm_unhealthy, worst(l), r)) report(l, r);
  }

  const lstm_rms_bounds_options& options() const noexcept { return o_; }
  double rms_min() const noexcept { return o_.rms_min; }
  double rms_max() const noexcept { return o_.rms_max; }

  state_type state() const { return {latch_.state()}; }
  void load(const state_type& st) {
    condition_latch l;
    l.load(st.condition);
    latch_ = l;
  }

 private:
  // Unknown (NaN) RMS passes: only NaN/Inf can be judged without the count.
  bool in_bounds(double rms) const noexcept { return std::isnan(rms) || (rms > o_.rms_min && rms < o_.rms_max); }
  // The RMS furthest out of bounds (the larger one when both are in).
  double worst(const lstm_signal& l) const noexcept {
    const double h = l.h_rms(), c = l.c_rms();
    if (!in_bounds(c)) return c;
    if (!in_bounds(h)) return h;
    return std::isnan(c) || h > c ? h : c;
  }

  SIMIC_COLD void report(const lstm_signal& l, anomaly_report& r) const {
    std::string why;
    if (l.has_nan) why += "NaN in state; ";
    if (l.has_inf) why += "Inf in state; ";
    if (!in_bounds(l.h_rms()))
      why += detail::format("rms(h) %.6g outside (%.6g, %.6g); ", l.h_rms(), o_.rms_min, o_.rms_max);
    if (!in_bounds(l.c_rms()))
      why += detail::format("rms(c) %.6g outside (%.6g, %.6g); ", l.c_rms(), o_.rms_min, o_.rms_max);
    why.resize(why.size() - 2);
    const double v = worst(l);
    r.add(anomaly_kind::lstm_unhealthy, std::move(why), {v, v <= o_.rms_min ? o_.rms_min : o_.rms_max});
  }

  lstm_rms_bounds_options o_;
  condition_latch latch_;
};

}  // namespace v0
}  // namespace simic
