// Policy-entropy floor per named action head: entropy_collapse below the
// collapse bound, entropy_low below the low bound (a collapsed head is
// reported once, as collapsed). Entropies are normalised to 0..1. Onset and
// clear are tracked per head position for the first `tracked_heads` heads;
// heads beyond them are reported on every check.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/detail/state.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct entropy_floor_options {
  double collapse = defaults::entropy_collapse;  // normalised entropy below: entropy_collapse
  double low = defaults::entropy_low;            // below: entropy_low
  reporting how{};
};

class entropy_floor {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "entropy_floor";
  static constexpr signal_set reads{signal_set::entropy};
  static constexpr std::size_t tracked_heads = 8;

  struct state_type {
    std::array<condition_state, tracked_heads> collapse{};
    std::array<condition_state, tracked_heads> low{};
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      for (std::size_t i = 0; i < tracked_heads; ++i) {
        detail::visit_nested(v, "collapse." + std::to_string(i) + ".", collapse[i]);
        detail::visit_nested(v, "low." + std::to_string(i) + ".", low[i]);
      }
    }
  };

  explicit entropy_floor(const entropy_floor_options& o = {}) : o_(o) {
    detail::require(o.collapse >= 0.0 && o.collapse <= 1.0, "simic::entropy_floor", "collapse", o.collapse, "[0, 1]");
    detail::require(o.low >= o.collapse && o.low <= 1.0, "simic::entropy_floor", "low", o.low, "[collapse, 1]");
    o.how.validate("simic::entropy_floor");
  }

  void observe(const signals& s, anomaly_report& r) {
    for (std::size_t i = 0; i < s.entropy.size(); ++i) {
      const head_entropy& h = s.entropy[i];
      const bool collapsed = h.normalized < o_.collapse;
      const bool low = !collapsed && h.normalized < o_.low;
      if (i >= tracked_heads) {
        if (collapsed) report(anomaly_kind::entropy_collapse, h, o_.collapse, r);
        if (low) report(anomaly_kind::entropy_low, h, o_.low, r);
        continue;
      }
      if (collapse_latch_[i].update(collapsed, o_.how, anomaly_kind::entropy_collapse, h.normalized, r))
        report(anomaly_kind::entropy_collapse, h, o_.collapse, r);
      if (low_latch_[i].update(low, o_.how, anomaly_kind::entropy_low, h.normalized, r))
        report(anomaly_kind::entropy_low, h, o_.low, r);
    }
  }

  const entropy_floor_options& options() const noexcept { return o_; }

  state_type state() const {
    state_type st;
    for (std::size_t i = 0; i < tracked_heads; ++i) {
      st.collapse[i] = collapse_latch_[i].state();
      st.low[i] = low_latch_[i].state();
    }
    return st;
  }
  void load(const state_type& st) {
    std::array<condition_latch, tracked_heads> c, l;
    for (std::size_t i = 0; i < tracked_heads; ++i) {
      c[i].load(st.collapse[i]);
      l[i].load(st.low[i]);
    }
    collapse_latch_ = c;
    low_latch_ = l;
  }

 private:
  SIMIC_COLD static void report(anomaly_kind k, const head_entropy& h, double bound, anomaly_report& r) {
    r.add(k,
          detail::format("head '%.*s' normalised entropy %.6g < %.6g", static_cast<int>(h.head.size()), h.head.data(),
                         h.normalized, bound),
          {h.normalized, bound});
  }
  entropy_floor_options o_;
  std::array<condition_latch, tracked_heads> collapse_latch_{};
  std::array<condition_latch, tracked_heads> low_latch_{};
};

}  // namespace v0
}  // namespace simic
