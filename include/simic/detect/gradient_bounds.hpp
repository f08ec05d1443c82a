// Gradient vanishing / exploding, from the smallest and largest per-parameter
// L2 norm: gradient_vanishing when some parameter's norm is below the
// vanishing bound, gradient_exploding when some parameter's is above the
// exploding bound.
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

struct gradient_bounds_options {
  double vanishing = defaults::grad_vanishing;  // some parameter's gradient norm below: gradient_vanishing
  double exploding = defaults::grad_exploding;  // above: gradient_exploding
  reporting how{};
};

class gradient_bounds {
 public:
  using category = cat::ops_normal;
  static constexpr std::string_view name = "gradient_bounds";
  static constexpr signal_set reads{signal_set::gradients};

  struct state_type {
    condition_state vanishing;
    condition_state exploding;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "vanishing.", vanishing);
      detail::visit_nested(v, "exploding.", exploding);
    }
  };

  explicit gradient_bounds(const gradient_bounds_options& o = {}) : o_(o) {
    detail::require(o.vanishing >= 0.0, "simic::gradient_bounds", "vanishing", o.vanishing, "[0, exploding)");
    detail::require(o.exploding > o.vanishing && std::isfinite(o.exploding), "simic::gradient_bounds", "exploding",
                    o.exploding, "(vanishing, inf)");
    o.how.validate("simic::gradient_bounds");
  }

  void observe(const signals& s, anomaly_report& r) {
    if (!s.gradients || s.gradients->parameters == 0) return;
    const gradient_signal& g = *s.gradients;
    if (vanishing_latch_.update(g.min_param_norm < o_.vanishing, o_.how, anomaly_kind::gradient_vanishing,
                                g.min_param_norm, r))
      report(anomaly_kind::gradient_vanishing, "smallest", "<", g.min_param_norm, o_.vanishing, g.vanishing, g, r);
    if (exploding_latch_.update(g.max_param_norm > o_.exploding, o_.how, anomaly_kind::gradient_exploding,
                                g.max_param_norm, r))
      report(anomaly_kind::gradient_exploding, "largest", ">", g.max_param_norm, o_.exploding, g.exploding, g, r);
  }

  const gradient_bounds_options& options() const noexcept { return o_; }

  state_type state() const { return {vanishing_latch_.state(), exploding_latch_.state()}; }
  void load(const state_type& st) {
    condition_latch v, e;
    v.load(st.vanishing);
    e.load(st.exploding);
    vanishing_latch_ = v;
    exploding_latch_ = e;
  }

 private:
  SIMIC_COLD static void report(anomaly_kind k, const char* which, const char* op, double norm, double bound,
                                std::uint64_t count, const gradient_signal& g, anomaly_report& r) {
    r.add(k,
          detail::format("%s parameter gradient norm %.6g %s %.6g (%llu of %llu parameters %s)", which, norm, op, bound,
                         static_cast<unsigned long long>(count), static_cast<unsigned long long>(g.parameters),
                         k == anomaly_kind::gradient_vanishing ? "vanishing" : "exploding"),
          {norm, bound});
  }
  gradient_bounds_options o_;
  condition_latch vanishing_latch_;
  condition_latch exploding_latch_;
};

}  // namespace v0
}  // namespace simic
