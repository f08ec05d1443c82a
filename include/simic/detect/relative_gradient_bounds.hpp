// Gradient vanishing / exploding judged against each run's own scale (simic's
// default; the reference's fixed per-parameter bounds are gradient_bounds.hpp).
//
// A fixed bound on a parameter's gradient norm says more about the model's
// size than its health: a GAN's generator sits near 10 when healthy, a large
// language model's embedding far above. This detector follows the running
// level of the largest and of the smallest per-parameter gradient norm
// (exponentially weighted geometric means, core/moments.hpp) and holds
//
//   gradient_exploding  while the largest norm is more than `exploding` times its running level
//   gradient_vanishing  while the smallest norm is less than its running level / `vanishing`
//                       (a parameter whose gradient is exactly 0, a dead layer, included)
//
// Each level absorbs a value at most `exploding` (resp. `vanishing`) times
// away from it, so a fault does not become the new normal at once. The first
// `warmup` values, and early training (signals::progress before `early`),
// only build the levels (docs/detection.md, "Gradient bounds").
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/detail/state.hpp"
#include "simic/core/moments.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct relative_gradient_bounds_options {
  double exploding = defaults::relative_grad_exploding;  // largest norm above this many times its level
  double vanishing = defaults::relative_grad_vanishing;  // smallest norm below its level over this
  double momentum = defaults::shift_momentum;            // of the levels, per check
  std::uint32_t warmup = defaults::shift_warmup;         // values absorbed before any judgement
  double early = defaults::shift_early;                  // fraction of training (signals::progress) not seen
  reporting how{};

  void validate(const char* where) const {
    detail::require(exploding > 1.0 && std::isfinite(exploding), where, "exploding", exploding, "(1, inf)");
    detail::require(vanishing > 1.0 && std::isfinite(vanishing), where, "vanishing", vanishing, "(1, inf)");
    detail::require(momentum > 0.0 && momentum < 1.0, where, "momentum", momentum, "(0, 1)");
    detail::require(warmup >= 1, where, "warmup", warmup, ">= 1");
    detail::require(early >= 0.0 && early < 1.0, where, "early", early, "[0, 1)");
    how.validate(where);
  }
};

class relative_gradient_bounds {
 public:
  using options_type = relative_gradient_bounds_options;
  using category = cat::ops_normal;
  static constexpr std::string_view name = "relative_gradient_bounds";
  static constexpr signal_set reads{signal_set::gradients};

  struct state_type {
    moments_state largest;   // of log(largest per-parameter norm)
    moments_state smallest;  // of log(smallest per-parameter norm)
    condition_state vanishing;
    condition_state exploding;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      detail::visit_nested(v, "largest.", largest);
      detail::visit_nested(v, "smallest.", smallest);
      detail::visit_nested(v, "vanishing.", vanishing);
      detail::visit_nested(v, "exploding.", exploding);
    }
  };

  explicit relative_gradient_bounds(const options_type& o = {})
      : o_(validated(o)), largest_(o.momentum), smallest_(o.momentum) {}

  void observe(const signals& s, anomaly_report& r) {
    if (!s.gradients || s.gradients->parameters == 0 || !s.gradients->finite()) return;  // numerical_stability's
    if (in_early_training(s.progress, o_.early)) return;
    const gradient_signal& g = *s.gradients;
    // Judged against the levels before this check; then absorbed.
    const double high_level = std::exp(largest_.mean()), low_level = std::exp(smallest_.mean());
    if (largest_.steps() >= o_.warmup &&
        exploding_latch_.update(g.max_param_norm > high_level * o_.exploding, o_.how, anomaly_kind::gradient_exploding,
                                g.max_param_norm, r))
      report(anomaly_kind::gradient_exploding, g.max_param_norm, high_level, r, g);
    if (smallest_.steps() >= o_.warmup &&
        vanishing_latch_.update(g.min_param_norm < low_level / o_.vanishing, o_.how, anomaly_kind::gradient_vanishing,
                                g.min_param_norm, r))
      report(anomaly_kind::gradient_vanishing, g.min_param_norm, low_level, r, g);
    absorb(largest_, g.max_param_norm);
    absorb(smallest_, g.min_param_norm);
  }

  const options_type& options() const noexcept { return o_; }
  // The running levels (geometric means) of the largest and smallest norm; 1 before any value.
  double largest_level() const noexcept { return std::exp(largest_.mean()); }
  double smallest_level() const noexcept { return std::exp(smallest_.mean()); }

  state_type state() const {
    return {largest_.state(), smallest_.state(), vanishing_latch_.state(), exploding_latch_.state()};
  }
  // All or nothing.
  void load(const state_type& st) {
    ew_moments l = largest_, s = smallest_;
    condition_latch v, e;
    l.load(st.largest);
    s.load(st.smallest);
    v.load(st.vanishing);
    e.load(st.exploding);
    largest_ = l;
    smallest_ = s;
    vanishing_latch_ = v;
    exploding_latch_ = e;
  }

 private:
  static options_type validated(const options_type& o) {
    o.validate("simic::relative_gradient_bounds");
    return o;
  }

  // A zero norm (a dead parameter) has no logarithm: it is absorbed as the
  // lowest value the level takes in one step; so is any value far below.
  void absorb(ew_moments& m, double norm) const {
    const double floor_log = -745.0;  // log of the smallest positive double
    const double x = norm > 0.0 ? std::log(norm) : floor_log;
    if (m.steps() < o_.warmup) {
      if (norm > 0.0) m.add(x);  // a warm-up level of zeros would be no level
      return;
    }
    m.add(std::clamp(x, m.mean() - std::log(o_.vanishing), m.mean() + std::log(o_.exploding)));
  }

  SIMIC_COLD void report(anomaly_kind k, double norm, double level, anomaly_report& r,
                         const gradient_signal& g) const {
    const bool up = k == anomaly_kind::gradient_exploding;
    const double bound = up ? level * o_.exploding : level / o_.vanishing;
    const auto n = static_cast<unsigned long long>(g.parameters);
    r.add(k,
          up ? detail::format("largest parameter gradient norm %.6g > %.6g (%.3g times its running level %.6g; "
                              "%llu parameters)", norm, bound, o_.exploding, level, n)
             : detail::format("smallest parameter gradient norm %.6g < %.6g (its running level %.6g / %.3g; "
                              "%llu parameters)", norm, bound, level, o_.vanishing, n),
          {norm, bound, level});
  }

  options_type o_;
  ew_moments largest_;
  ew_moments smallest_;
  condition_latch vanishing_latch_;
  condition_latch exploding_latch_;
};

}  // namespace v0
}  // namespace simic
