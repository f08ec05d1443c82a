// One scalar signal judged against its own noise by the log-shift model
// (core/log_shift.hpp) and reported at onset and clear: the body of
// update_shift and host_ratio_shift, which differ only in the signal, the
// kind, the words and the defaults (their `Spec`).
#pragma once

#include <optional>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/state.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/shift_condition.hpp"
#include "simic/core/signals.hpp"

namespace simic {
inline namespace v0 {
namespace detail {

// Spec: `options` (with `shift` and `how`), `name`, `where`, `label`,
// `field` (a signal_set field) and `member` (its std::optional<double>
// member of signals), `kind`.
template <class Spec>
class scalar_shift {
 public:
  using options_type = typename Spec::options;
  using category = cat::ops_normal;
  static constexpr std::string_view name = Spec::name;
  static constexpr signal_set reads{Spec::field};

  struct state_type {
    log_shift_state ratio;
    condition_state condition;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      visit_nested(v, "ratio.", ratio);
      visit_nested(v, "condition.", condition);
    }
  };

  explicit scalar_shift(const options_type& o = {}) : o_(validated(o)), ratio_(o.shift, Spec::kind, Spec::label) {}

  void observe(const signals& s, anomaly_report& r) {
    if (const std::optional<double>& v = s.*Spec::member) ratio_.observe(*v, s.progress, o_.how, r);
  }

  const options_type& options() const noexcept { return o_; }
  // log value's running mean and spread, and the two CUSUM statistics.
  const ew_moments& log_ratio() const noexcept { return ratio_.model().log_value(); }
  double up() const noexcept { return ratio_.model().up(); }
  double down() const noexcept { return ratio_.model().down(); }

  state_type state() const { return {ratio_.model_state(), ratio_.latch_state()}; }
  void load(const state_type& st) { ratio_.load(st.ratio, st.condition); }

 private:
  static options_type validated(const options_type& o) {
    o.shift.validate(Spec::where);
    o.how.validate(Spec::where);
    return o;
  }

  options_type o_;
  shift_condition ratio_;
};

}  // namespace detail
}  // namespace v0
}  // namespace simic
