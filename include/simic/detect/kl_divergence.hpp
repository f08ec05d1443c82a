// Approximate-KL guard: kl_spike above the spike bound, kl_extreme above the
// extreme bound (an extreme KL is reported once, as extreme).
#pragma once

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

struct kl_divergence_options {
  double spike = defaults::kl_spike;      // approx KL above: kl_spike
  double extreme = defaults::kl_extreme;  // above: kl_extreme
  reporting how{};
};

class kl_divergence {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "kl_divergence";
  static constexpr signal_set reads{signal_set::approx_kl};

  struct state_type {
    condition_state spike;
    condition_state extreme;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "spike.", spike);
      detail::visit_nested(v, "extreme.", extreme);
    }
  };

  explicit kl_divergence(const kl_divergence_options& o = {}) : o_(o) {
    detail::require(o.spike > 0.0 && std::isfinite(o.spike), "simic::kl_divergence", "spike", o.spike, "(0, inf)");
    detail::require(o.extreme >= o.spike && std::isfinite(o.extreme), "simic::kl_divergence", "extreme", o.extreme,
                    "[spike, inf)");
    o.how.validate("simic::kl_divergence");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.approx_kl) return;
    const double kl = *s.approx_kl;
    if (extreme_latch_.update(kl > o_.extreme, o_.how, anomaly_kind::kl_extreme, kl, r))
      r.add(anomaly_kind::kl_extreme, detail::format("approx KL %.6g > %.6g", kl, o_.extreme), {kl, o_.extreme});
    if (spike_latch_.update(kl > o_.spike && !(kl > o_.extreme), o_.how, anomaly_kind::kl_spike, kl, r))
      r.add(anomaly_kind::kl_spike, detail::format("approx KL %.6g > %.6g", kl, o_.spike), {kl, o_.spike});
  }

  const kl_divergence_options& options() const noexcept { return o_; }

  state_type state() const { return {spike_latch_.state(), extreme_latch_.state()}; }
  void load(const state_type& st) {
    condition_latch s, e;
    s.load(st.spike);
    e.load(st.extreme);
    spike_latch_ = s;
    extreme_latch_ = e;
  }

 private:
  kl_divergence_options o_;
  condition_latch spike_latch_;
  condition_latch extreme_latch_;
};

}  // namespace v0
}  // namespace simic
