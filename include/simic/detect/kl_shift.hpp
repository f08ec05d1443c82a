// Approximate KL far above its own running level (simic's default, beside the
// fixed bounds of kl_divergence.hpp).
//
// A fixed KL bound misses a learning-rate fault where the policy is settled:
// there a healthy update's KL is 1e-4 to 1e-2, and a 20x learning rate raises
// it some hundredfold to still under 0.1. kl_spike (a warning) holds while the
// upward CUSUM of the standardised log-KL (core/log_shift.hpp) is above its
// bound. Only upward shifts count: a smaller KL means smaller steps. KL values
// that are not finite or not above 0 (the first minibatch of an update has a
// KL of exactly 0) are not absorbed.
#pragma once

#include <cmath>
#include <string>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/format.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/signals.hpp"

namespace simic {
inline namespace v0 {

struct kl_shift_options {
  log_shift_options shift{};
  reporting how{};
};

class kl_shift {
 public:
  using category = cat::ops_normal;

  struct state_type {
    log_shift_state kl;
    condition_state condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      kl.visit([&](const char* n, auto& f) { v((std::string("kl.") + n).c_str(), f); });
      condition.visit([&](const char* n, auto& f) { v((std::string("condition.") + n).c_str(), f); });
    }
  };

  explicit kl_shift(const kl_shift_options& o = {}) : o_(validated(o)), kl_(o.shift) {}

  void observe(const signals& s, anomaly_report& r) {
    if (!s.approx_kl || !(*s.approx_kl > 0.0) || !std::isfinite(*s.approx_kl)) return;
    const double kl = *s.approx_kl;
    const log_shift::step st = kl_.add(kl);
    if (!st.judged) return;
    if (latch_.update(kl_.up_shift(), o_.how, anomaly_kind::kl_spike, kl, r)) report(kl, st, r);
  }

  const kl_shift_options& options() const noexcept { return o_; }
  const ew_moments& log_kl() const noexcept { return kl_.log_value(); }
  double up() const noexcept { return kl_.up(); }

  state_type state() const { return {kl_.state(), latch_.state()}; }
  void load(const state_type& st) {
    log_shift k = kl_;
    condition_latch l;
    k.load(st.kl);
    l.load(st.condition);
    kl_ = k;
    latch_ = l;
  }

 private:
  static kl_shift_options validated(const kl_shift_options& o) {
    constexpr auto where = "simic::kl_shift";
    o.shift.validate(where);
    o.how.validate(where);
    return o;
  }

  SIMIC_COLD void report(double kl, const log_shift::step& st, anomaly_report& r) const {
    r.add(anomaly_kind::kl_spike,
          detail::format("approx KL %.4g far above its running level %.4g (log spread %.3g): shift score %.3g > %.3g",
                         kl, std::exp(st.mean), st.spread, kl_.up(), o_.shift.bound),
          {kl, kl_.one_step_bound(st, true), std::exp(st.mean)});
  }

  kl_shift_options o_;
  log_shift kl_;
  condition_latch latch_;
};

}  // namespace v0
}  // namespace simic
