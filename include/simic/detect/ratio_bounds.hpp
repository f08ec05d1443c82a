// PPO importance-ratio bounds: ratio_explosion above, ratio_collapse below.
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

struct ratio_bounds_options {
  double explosion = defaults::ratio_explosion;  // ratio max above: ratio_explosion
  double collapse = defaults::ratio_collapse;    // ratio min below: ratio_collapse
  reporting how{};
};

class ratio_bounds {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "ratio_bounds";
  static constexpr signal_set reads{signal_set::ratio_max, signal_set::ratio_min};

  struct state_type {
    condition_state explosion;
    condition_state collapse;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "explosion.", explosion);
      detail::visit_nested(v, "collapse.", collapse);
    }
  };

  explicit ratio_bounds(const ratio_bounds_options& o = {}) : o_(o) {
    detail::require(o.collapse >= 0.0 && o.collapse < 1.0, "simic::ratio_bounds", "collapse", o.collapse, "[0, 1)");
    detail::require(o.explosion > 1.0 && std::isfinite(o.explosion), "simic::ratio_bounds", "explosion", o.explosion,
                    "(1, inf)");
    o.how.validate("simic::ratio_bounds");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (s.ratio_max) {
      const double x = *s.ratio_max;
      if (explosion_latch_.update(x > o_.explosion, o_.how, anomaly_kind::ratio_explosion, x, r))
        r.add(anomaly_kind::ratio_explosion, detail::format("ratio max %.6g > %.6g", x, o_.explosion),
              {x, o_.explosion});
    }
    if (s.ratio_min) {
      const double x = *s.ratio_min;
      if (collapse_latch_.update(x < o_.collapse, o_.how, anomaly_kind::ratio_collapse, x, r))
        r.add(anomaly_kind::ratio_collapse, detail::format("ratio min %.6g < %.6g", x, o_.collapse), {x, o_.collapse});
    }
  }

  const ratio_bounds_options& options() const noexcept { return o_; }
  double explosion() const noexcept { return o_.explosion; }
  double collapse() const noexcept { return o_.collapse; }

  state_type state() const { return {explosion_latch_.state(), collapse_latch_.state()}; }
  void load(const state_type& st) {
    condition_latch e, c;
    e.load(st.explosion);
    c.load(st.collapse);
    explosion_latch_ = e;
    collapse_latch_ = c;
  }

 private:
  ratio_bounds_options o_;
  condition_latch explosion_latch_;
  condition_latch collapse_latch_;
};

}  // namespace v0
}  // namespace simic
