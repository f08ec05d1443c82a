// Exponential moving average with Adam-style bias correction, and drift.
//
//   ema_t   = m * ema_{t-1} + (1 - m) * x_t,   ema_0 = 0
//   ema_hat = ema_t / (1 - m^t)                (bias_corrected, the default)
//   drift_t = |x_t - ema_hat_{t-1}| / (|ema_hat_{t-1}| + eps),  drift_1 = 0
//
// The reference tracker used the raw zero-started EMA, whose early estimates
// are biased towards zero and so report huge drift on a steady signal; the
// `uncorrected` policy keeps that behaviour for comparison. A non-finite
// input is refused (not absorbed), so one NaN cannot poison the state. A
// finite one is absorbed whatever its size, without overflow: the EMA and its
// estimate are weighted means of finite inputs, so they stay finite (the
// estimate held at +-DBL_MAX where the bias correction's rounding would carry
// it past), and so does the drift of a finite x where |x - estimate| alone
// would overflow. A huge input then weighs on the estimate for about
// ln(input / typical) / (1 - m) updates (DBL_MAX among norms of 1 at
// m = 0.99: about 70,000), drifting all the while.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "simic/core/error.hpp"

namespace simic {
inline namespace v0 {

// Correction policies: how the raw EMA becomes the estimate.
struct bias_corrected {
  static double estimate(double raw, double momentum_pow_t) noexcept {
    if (!(momentum_pow_t < 1.0)) return raw;
    const double e = raw / (1.0 - momentum_pow_t);
    // A weighted mean of finite inputs: only rounding takes it past DBL_MAX.
    return std::isinf(e) ? std::copysign(std::numeric_limits<double>::max(), e) : e;
  }
};
struct uncorrected {
  static double estimate(double raw, double) noexcept { return raw; }
};

// Plain state: saving and loading it resumes a run bit for bit.
struct ema_state {
  double raw = 0.0;            // ema_t
  double momentum_pow = 1.0;   // m^t, kept as a product so that reload is exact
  std::uint64_t steps = 0;     // t
  friend bool operator==(const ema_state&, const ema_state&) = default;
  template <class V>
  void visit(V&& v) {
    v("raw", raw);
    v("momentum_pow", momentum_pow);
    v("steps", steps);
  }
};

struct ema_update {
  bool accepted;    // false: x was NaN or Inf and the state is unchanged
  double drift;     // 0 on the first accepted update and on refusal
  double estimate;  // the estimate x was compared with (before this update)
};

template <class Correction = bias_corrected>
class ema {
 public:
  static constexpr double default_momentum = 0.99;
  static constexpr double default_epsilon = 1e-8;

  explicit ema(double momentum = default_momentum, double epsilon = default_epsilon)
      : momentum_(momentum), epsilon_(epsilon) {
    detail::require(momentum > 0.0 && momentum < 1.0, "simic::ema", "momentum", momentum, "(0, 1)");
    detail::require(epsilon >= 0.0 && std::isfinite(epsilon), "simic::ema", "epsilon", epsilon, "[0, inf)");
  }

  ema_update update(double x) noexcept {
    const double e = value();
    if (!std::isfinite(x)) return {false, 0.0, e};
    const double d = s_.steps == 0 ? 0.0 : drift_from(x, e);
    // Between raw and x, and finite: at raw = x = DBL_MAX (significand all
    // ones) both products round down (tests/core/ema_test.cpp checks it).
    s_.raw = momentum_ * s_.raw + (1.0 - momentum_) * x;
    s_.momentum_pow *= momentum_;
    ++s_.steps;
    return {true, d, e};
  }

  // Relative distance of x from the current estimate (0 before any update).
  double drift(double x) const noexcept { return s_.steps == 0 ? 0.0 : drift_from(x, value()); }

  double value() const noexcept { return Correction::estimate(s_.raw, s_.momentum_pow); }
  std::uint64_t steps() const noexcept { return s_.steps; }
  double momentum() const noexcept { return momentum_; }
  double epsilon() const noexcept { return epsilon_; }

  const ema_state& state() const noexcept { return s_; }
  void load(const ema_state& s) {
    detail::require(std::isfinite(s.raw), "simic::ema::load", "raw", s.raw, "a finite number");
    detail::require(s.momentum_pow >= 0.0 && s.momentum_pow <= 1.0, "simic::ema::load", "momentum_pow",
                    s.momentum_pow, "[0, 1]");
    s_ = s;
  }

 private:
  double drift_from(double x, double e) const noexcept {
    const double diff = std::abs(x - e);
    const double scale = std::abs(e) + epsilon_;
    if (diff == 0.0) return 0.0;  // also with epsilon 0 at an estimate of 0: no 0 / 0
    // x and e of opposite signs near DBL_MAX: their halves' difference cannot overflow.
    if (std::isinf(diff)) return 2.0 * (std::abs(0.5 * x - 0.5 * e) / scale);
    return diff / scale;
  }

  double momentum_;
  double epsilon_;
  ema_state s_{};
};

}  // namespace v0
}  // namespace simic
