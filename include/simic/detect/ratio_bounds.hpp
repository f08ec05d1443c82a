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

  explicit ratio_bounds(double explosion = defaults::ratio_explosion, double collapse = defaults::ratio_collapse,
                        reporting how = {})
      : explosion_(explosion), collapse_(collapse), how_(how) {
    detail::require(collapse >= 0.0 && collapse < 1.0, "simic::ratio_bounds", "collapse", collapse, "[0, 1)");
    detail::require(explosion > 1.0 && std::isfinite(explosion), "simic::ratio_bounds", "explosion", explosion,
                    "(1, inf)");
    how.validate("simic::ratio_bounds");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (s.ratio_max) {
      const double x = *s.ratio_max;
      if (explosion_latch_.update(x > explosion_, how_, anomaly_kind::ratio_explosion, x, r))
        r.add(anomaly_kind::ratio_explosion, detail::format("ratio max %.6g > %.6g", x, explosion_), {x, explosion_});
    }
    if (s.ratio_min) {
      const double x = *s.ratio_min;
      if (collapse_latch_.update(x < collapse_, how_, anomaly_kind::ratio_collapse, x, r))
        r.add(anomaly_kind::ratio_collapse, detail::format("ratio min %.6g < %.6g", x, collapse_), {x, collapse_});
    }
  }

  double explosion() const noexcept { return explosion_; }
  double collapse() const noexcept { return collapse_; }

  state_type state() const { return {explosion_latch_.state(), collapse_latch_.state()}; }
  void load(const state_type& st) {
    condition_latch e, c;
    e.load(st.explosion);
    c.load(st.collapse);
    explosion_latch_ = e;
    collapse_latch_ = c;
  }

 private:
  double explosion_;
  double collapse_;
  reporting how_;
  condition_latch explosion_latch_;
  condition_latch collapse_latch_;
};

}  // namespace v0
}  // namespace simic
