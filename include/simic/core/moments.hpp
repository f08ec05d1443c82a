// Exponentially weighted mean and variance of a signal, bias-corrected as in
// Adam (core/ema.hpp):
//
//   m_t = a m_{t-1} + (1 - a) x_t,   q_t = a q_{t-1} + (1 - a) x_t^2   (from 0)
//   mean = m_t / (1 - a^t),   variance = max(0, q_t / (1 - a^t) - mean^2)
//
// The detectors that judge a signal against its own noise standardise it
// with these: z = (x - mean) / sqrt(variance + floor^2).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "simic/core/error.hpp"

namespace simic {
inline namespace v0 {

struct moments_state {
  double mean_raw = 0.0;
  double square_raw = 0.0;
  double momentum_pow = 1.0;
  std::uint64_t steps = 0;
  friend bool operator==(const moments_state&, const moments_state&) = default;
  template <class V>
  void visit(V&& v) {
    v("mean_raw", mean_raw);
    v("square_raw", square_raw);
    v("momentum_pow", momentum_pow);
    v("steps", steps);
  }
};

class ew_moments {
 public:
  explicit ew_moments(double momentum) : momentum_(momentum) {
    detail::require(momentum > 0.0 && momentum < 1.0, "simic::ew_moments", "momentum", momentum, "(0, 1)");
  }

  // Absorbs a finite x (the caller refuses non-finite ones).
  void add(double x) noexcept {
    s_.mean_raw = momentum_ * s_.mean_raw + (1.0 - momentum_) * x;
    s_.square_raw = momentum_ * s_.square_raw + (1.0 - momentum_) * x * x;
    s_.momentum_pow *= momentum_;
    ++s_.steps;
  }
  double mean() const noexcept { return s_.steps == 0 ? 0.0 : s_.mean_raw / (1.0 - s_.momentum_pow); }
  // The spread: sqrt(variance).
  double variance() const noexcept {
    if (s_.steps == 0) return 0.0;
    const double m = mean();
    return std::max(0.0, s_.square_raw / (1.0 - s_.momentum_pow) - m * m);
  }
  double spread() const noexcept { return std::sqrt(variance()); }
  // (x - mean) / sqrt(variance + floor^2): how many spreads x lies from the mean.
  double score(double x, double floor) const noexcept { return (x - mean()) / std::sqrt(variance() + floor * floor); }
  std::uint64_t steps() const noexcept { return s_.steps; }
  double momentum() const noexcept { return momentum_; }

  const moments_state& state() const noexcept { return s_; }
  void load(const moments_state& s) {
    constexpr auto where = "simic::ew_moments::load";
    detail::require(std::isfinite(s.mean_raw), where, "mean_raw", s.mean_raw, "a finite number");
    detail::require(std::isfinite(s.square_raw) && s.square_raw >= 0.0, where, "square_raw", s.square_raw,
                    "a finite number >= 0");
    detail::require(s.momentum_pow >= 0.0 && s.momentum_pow <= 1.0, where, "momentum_pow", s.momentum_pow, "[0, 1]");
    detail::require((s.steps == 0) == (s.momentum_pow == 1.0), where, "steps", s.steps,
                    "0 exactly when momentum_pow is 1");
    s_ = s;
  }

 private:
  double momentum_;
  moments_state s_{};
};

}  // namespace v0
}  // namespace simic
