// The defaults users expect (DESIGN.md, taken from the reference telemetry),
// and the formulas that sensors and detectors must agree on.
#pragma once

#include <algorithm>
#include <cstdint>

namespace simic {
inline namespace v0 {
namespace defaults {
inline constexpr double ratio_explosion = 5.0;
inline constexpr double ratio_collapse = 0.1;
inline constexpr double entropy_collapse = 0.1;
inline constexpr double entropy_low = 0.3;
inline constexpr double kl_spike = 0.1;
inline constexpr double kl_extreme = 0.5;
// explained-variance floor by training progress: < 10 %, < 25 %, < 75 %, rest
inline constexpr double ev_phase_ends[3] = {0.10, 0.25, 0.75};
inline constexpr double ev_floors[4] = {-0.5, -0.2, 0.0, 0.1};
inline constexpr double drift_threshold = 0.5;
inline constexpr double ema_momentum = 0.99;
inline constexpr double ema_epsilon = 1e-8;
inline constexpr double grad_vanishing = 1e-7;  // per-parameter L2 norm below this
inline constexpr double grad_exploding = 10.0;  // per-parameter L2 norm above this (10x clip 1.0)
inline constexpr double lstm_norm_min = 1e-6;   // healthy: min < norm(h), norm(c) < max
inline constexpr double lstm_norm_max = 100.0;
inline constexpr double layer_small = 1e-6;     // per-element |g| below: "small"
inline constexpr double layer_large = 10.0;     // per-element |g| above: "large"
inline constexpr double dead_layer_zero_fraction = 0.9;
inline constexpr double exploding_layer_large_fraction = 0.1;
inline constexpr double performance_drop = 0.10;      // relative to the rolling mean
inline constexpr double performance_warmup = 0.10;    // fraction of training before checks start
inline constexpr std::uint32_t performance_window = 10;
inline constexpr std::uint32_t escalation_epochs = 5;
inline constexpr std::uint32_t max_consecutive_skips = 5;
}  // namespace defaults

// Gradient health in [0, 1]: clamp(1 - 0.5 vanishing_ratio - 0.8 exploding_ratio).
// No parameters means nothing is unhealthy: 1.
constexpr double gradient_health(std::uint64_t vanishing, std::uint64_t exploding, std::uint64_t parameters) noexcept {
  if (parameters == 0) return 1.0;
  const double n = static_cast<double>(parameters);
  return std::clamp(1.0 - 0.5 * static_cast<double>(vanishing) / n - 0.8 * static_cast<double>(exploding) / n, 0.0,
                    1.0);
}

}  // namespace v0
}  // namespace simic
