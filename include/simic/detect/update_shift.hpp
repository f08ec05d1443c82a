// Relative update size judged against its own noise: update_ratio_drift holds
// while the two-sided CUSUM of the standardised log update ratio
// (signals::update_ratio, ||delta theta|| / ||theta||; core/log_shift.hpp)
// is above its bound (a step, up or down), or while the ratio's recent level
// (25 checks) is more than 1.5x its running level (200 checks): a ramp.
//
// The update ratio follows the learning rate step by step: with Adam a 20x
// learning rate is a 20x step at once, and a rate that grows 5 % per update
// leaves the ratio's running level behind. Neither need show in the KL (PPO's
// clipping bounds it) or the gradient norm (the gradients do not change).
// A falling ratio (updates that stop moving the weights) holds it too.
#pragma once

#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/shift_condition.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/detail/state.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct update_shift_options {
  log_shift_options shift{.momentum = defaults::update_shift_momentum,
                          .slack = defaults::update_shift_slack,
                          .floor = defaults::update_shift_floor,
                          .rise = defaults::update_shift_rise};
  reporting how{};
};

class update_shift {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "update_shift";
  static constexpr signal_set reads{signal_set::update_ratio};

  struct state_type {
    log_shift_state ratio;
    condition_state condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "ratio.", ratio);
      detail::visit_nested(v, "condition.", condition);
    }
  };

  explicit update_shift(const update_shift_options& o = {})
      : o_(validated(o)), ratio_(o.shift, anomaly_kind::update_ratio_drift, "update ratio") {}

  void observe(const signals& s, anomaly_report& r) {
    if (s.update_ratio) ratio_.observe(*s.update_ratio, o_.how, r);
  }

  const update_shift_options& options() const noexcept { return o_; }
  // log update ratio's running mean and spread, and the two CUSUM statistics.
  const ew_moments& log_ratio() const noexcept { return ratio_.model().log_value(); }
  double up() const noexcept { return ratio_.model().up(); }
  double down() const noexcept { return ratio_.model().down(); }

  state_type state() const { return {ratio_.model_state(), ratio_.latch_state()}; }
  void load(const state_type& st) { ratio_.load(st.ratio, st.condition); }

 private:
  static update_shift_options validated(const update_shift_options& o) {
    constexpr auto where = "simic::update_shift";
    o.shift.validate(where);
    o.how.validate(where);
    return o;
  }

  update_shift_options o_;
  shift_condition ratio_;
};

}  // namespace v0
}  // namespace simic
