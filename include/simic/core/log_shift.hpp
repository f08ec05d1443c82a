// A sustained shift of a positive, heavy-tailed signal (a gradient norm)
// against its own noise: gradient_shift's model, kept apart so that another
// multiplicative signal can use it.
//
// x = log(value): such signals are multiplicative, and their logarithm is
// close to symmetric. An exponentially weighted mean and spread of x
// (core/moments.hpp, bias-corrected) give z = (x - mean) / sqrt(spread^2 +
// floor^2), and a two-sided CUSUM on z,
//
//   up   = max(0, up   + z - slack),   down = max(0, down - z - slack),
//
// accumulates evidence of a sustained shift and forgets isolated outliers: a
// shift of d spreads is found after about bound / (d - slack) steps, a single
// step with z > slack + bound at once. A value beyond `clip` spreads is
// absorbed clipped, so a fault does not become the new normal at once (the
// mean still follows a lasting change, with the momentum's time constant).
// The first `warmup` values only build the model. Values from the first
// `early` fraction of training (when the caller knows the progress) are not
// seen at all: early training's norms climb and its learning rate warms up,
// and a model built on them would judge the steady phase against a trend
// (shift_condition drops them; without progress only `warmup` counts).
//
// A steady ramp keeps z nearly constant (the mean follows it, and the spread
// grows with it), so the CUSUM can miss it for good. The optional rise rule
// sees it: a fast exponentially weighted mean of x (momentum `rise_momentum`,
// unclipped) more than `rise` above the running mean. It judges once the
// running mean spans its time constant, 1 / (1 - momentum) values; `rise` =
// inf (the default) turns it off.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "simic/core/error.hpp"
#include "simic/core/moments.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/core/detail/state.hpp"

namespace simic {
inline namespace v0 {

struct log_shift_options {
  double momentum = defaults::shift_momentum;  // of the running mean and spread of log(value), per observation
  double slack = defaults::shift_slack;        // CUSUM allowance, in spreads
  double bound = defaults::shift_bound;        // CUSUM decision bound
  double clip = defaults::shift_clip;          // absorb at most this many spreads from the mean
  double floor = defaults::shift_floor;        // least spread of log(value) (a constant has none)
  std::uint32_t warmup = defaults::shift_warmup;  // values absorbed before any judgement
  double rise = std::numeric_limits<double>::infinity();  // rise rule bound, in log units; inf: off
  double rise_momentum = defaults::shift_rise_momentum;    // of the rise rule's fast mean
  double early = defaults::shift_early;  // fraction of training (signals::progress) not seen

  // Values absorbed before the rise rule judges: the running mean's time constant.
  std::uint64_t rise_warmup() const noexcept {
    return std::max<std::uint64_t>(warmup, static_cast<std::uint64_t>(std::ceil(1.0 / (1.0 - momentum))));
  }

  void validate(const char* where) const {
    detail::require(momentum > 0.0 && momentum < 1.0, where, "momentum", momentum, "(0, 1)");
    detail::require(slack >= 0.0 && std::isfinite(slack), where, "slack", slack, "[0, inf)");
    detail::require(bound > 0.0 && std::isfinite(bound), where, "bound", bound, "(0, inf)");
    detail::require(clip > 0.0, where, "clip", clip, "(0, inf]");
    detail::require(floor > 0.0 && std::isfinite(floor), where, "floor", floor, "(0, inf)");
    detail::require(warmup >= 2, where, "warmup", warmup, ">= 2");
    detail::require(rise > 0.0, where, "rise", rise, "(0, inf]");
    detail::require(rise_momentum > 0.0 && rise_momentum < 1.0, where, "rise_momentum", rise_momentum, "(0, 1)");
    detail::require(early >= 0.0 && early < 1.0, where, "early", early, "[0, 1)");
  }
};

struct log_shift_state {
  moments_state log_value;
  moments_state fast;
  double up = 0.0;
  double down = 0.0;
  friend bool operator==(const log_shift_state&, const log_shift_state&) = default;
  template <class V>
  void visit(V&& v) {
    detail::visit_nested(v, "log_value.", log_value);
    detail::visit_nested(v, "fast.", fast);
    v("up", up);
    v("down", down);
  }
};

class log_shift {
 public:
  // What one value was judged against (nothing is judged during warm-up).
  struct step {
    bool judged = false;
    double mean = 0.0;    // of log(value), before this value
    double spread = 0.0;  // sqrt(variance + floor^2), before this value
  };

  explicit log_shift(const log_shift_options& o) : o_(o), moments_(o.momentum), fast_(o.rise_momentum) {}

  // Absorbs a finite value > 0 (the caller refuses others) and updates the CUSUM.
  step add(double value) noexcept {
    const double x = std::log(value);
    fast_.add(x);
    if (moments_.steps() < o_.warmup) {
      moments_.add(x);
      return {};
    }
    const step s{true, moments_.mean(), std::sqrt(moments_.variance() + o_.floor * o_.floor)};
    const double z = (x - s.mean) / s.spread;
    up_ = std::max(0.0, up_ + z - o_.slack);
    down_ = std::max(0.0, down_ - z - o_.slack);
    moments_.add(std::clamp(x, s.mean - o_.clip * s.spread, s.mean + o_.clip * s.spread));
    return s;
  }

  bool up_shift() const noexcept { return up_ > o_.bound; }
  bool down_shift() const noexcept { return down_ > o_.bound; }
  // The rise rule: the fast mean more than `rise` above the running mean.
  bool rising() const noexcept {
    return moments_.steps() >= o_.rise_warmup() && fast_.mean() - moments_.mean() > o_.rise;
  }
  const ew_moments& fast() const noexcept { return fast_; }
  double up() const noexcept { return up_; }
  double down() const noexcept { return down_; }
  const ew_moments& log_value() const noexcept { return moments_; }
  const log_shift_options& options() const noexcept { return o_; }
  // The value that crosses the bound in one step from a score of 0, upwards or downwards.
  double one_step_bound(const step& s, bool upwards) const noexcept {
    return std::exp(s.mean + (upwards ? 1.0 : -1.0) * (o_.slack + o_.bound) * s.spread);
  }

  log_shift_state state() const { return {moments_.state(), fast_.state(), up_, down_}; }
  void load(const log_shift_state& st) {
    constexpr auto where = "simic::log_shift::load";
    detail::require(std::isfinite(st.up) && st.up >= 0.0, where, "up", st.up, "a finite number >= 0");
    detail::require(std::isfinite(st.down) && st.down >= 0.0, where, "down", st.down, "a finite number >= 0");
    ew_moments m = moments_, f = fast_;
    m.load(st.log_value);
    f.load(st.fast);
    moments_ = m;
    fast_ = f;
    up_ = st.up;
    down_ = st.down;
  }

 private:
  log_shift_options o_;
  ew_moments moments_;
  ew_moments fast_;
  double up_ = 0.0;
  double down_ = 0.0;
};

}  // namespace v0
}  // namespace simic
