// Approximate-KL guard: kl_extreme above the extreme bound; kl_spike above
// the spike bound or, with the shift rule (simic's default), far above the
// KL's own running level. An extreme KL is reported once, as extreme.
//
// The shift rule: a fixed bound misses a learning-rate fault where the policy
// has settled. There a healthy update's KL is 1e-4 to 1e-2, and a 20x
// learning rate raises it some hundredfold while it stays under 0.1 for up to
// three updates. The rule runs the upward CUSUM of the standardised log-KL
// (core/log_shift.hpp); a smaller KL means smaller steps and is no fault. KL
// values that are not finite or not above 0 (the first minibatch of an update
// has a KL of exactly 0) are not absorbed. The reference preset turns the
// rule off (std::nullopt).
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/format.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

class kl_divergence {
 public:
  using category = cat::ops_normal;

  struct state_type {
    condition_state spike;
    condition_state extreme;
    log_shift_state shift;  // all zero without the shift rule
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      spike.visit([&](const char* n, auto& f) { v((std::string("spike.") + n).c_str(), f); });
      extreme.visit([&](const char* n, auto& f) { v((std::string("extreme.") + n).c_str(), f); });
      shift.visit([&](const char* n, auto& f) { v((std::string("shift.") + n).c_str(), f); });
    }
  };

  explicit kl_divergence(double spike = defaults::kl_spike, double extreme = defaults::kl_extreme, reporting how = {},
                         std::optional<log_shift_options> shift = log_shift_options{})
      : spike_(spike), extreme_(extreme), how_(how) {
    constexpr auto where = "simic::kl_divergence";
    detail::require(spike > 0.0 && std::isfinite(spike), where, "spike", spike, "(0, inf)");
    detail::require(extreme >= spike && std::isfinite(extreme), where, "extreme", extreme, "[spike, inf)");
    how.validate(where);
    if (shift) {
      shift->validate(where);
      shift_.emplace(*shift);
    }
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.approx_kl) return;
    const double kl = *s.approx_kl;
    log_shift::step st;
    if (shift_ && kl > 0.0 && std::isfinite(kl)) st = shift_->add(kl);
    const bool extreme = kl > extreme_;
    const bool above = kl > spike_ && !extreme;
    const bool shifted = !extreme && !above && st.judged && shift_->up_shift();
    if (extreme_latch_.update(extreme, how_, anomaly_kind::kl_extreme, kl, r))
      r.add(anomaly_kind::kl_extreme, detail::format("approx KL %.6g > %.6g", kl, extreme_), {kl, extreme_});
    if (spike_latch_.update(above || shifted, how_, anomaly_kind::kl_spike, kl, r)) report_spike(kl, above, st, r);
  }

  bool shift_rule() const noexcept { return shift_.has_value(); }
  // The shift rule's model (nullptr without the rule).
  const log_shift* shift() const noexcept { return shift_ ? &*shift_ : nullptr; }

  state_type state() const {
    return {spike_latch_.state(), extreme_latch_.state(), shift_ ? shift_->state() : log_shift_state{}};
  }
  void load(const state_type& st) {
    condition_latch s, e;
    s.load(st.spike);
    e.load(st.extreme);
    std::optional<log_shift> k = shift_;
    if (k) k->load(st.shift);
    spike_latch_ = s;
    extreme_latch_ = e;
    shift_ = k;
  }

 private:
  SIMIC_COLD void report_spike(double kl, bool above, const log_shift::step& st, anomaly_report& r) const {
    if (above)
      r.add(anomaly_kind::kl_spike, detail::format("approx KL %.6g > %.6g", kl, spike_), {kl, spike_});
    else
      r.add(anomaly_kind::kl_spike,
            detail::format("approx KL %.4g far above its running level %.4g (log spread %.3g): shift score %.3g > %.3g",
                           kl, std::exp(st.mean), st.spread, shift_->up(), shift_->options().bound),
            {kl, shift_->one_step_bound(st, true), std::exp(st.mean)});
  }

  double spike_;
  double extreme_;
  reporting how_;
  std::optional<log_shift> shift_;
  condition_latch spike_latch_;
  condition_latch extreme_latch_;
};

}  // namespace v0
}  // namespace simic
