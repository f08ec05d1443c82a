// The defaults: the reference telemetry's thresholds (the reference preset,
// presets/reference.hpp) and simic's own, for the detectors that judge a signal against
// its own noise (docs/detection.md gives each model and its measured
// trade-off).
#pragma once

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

// simic's defaults (core/log_shift.hpp for gradient_shift.hpp;
// performance_drop.hpp, value_trend.hpp, lstm_rms_bounds.hpp)
inline constexpr double shift_momentum = 0.99;    // running mean and spread of log(value), per check
inline constexpr double shift_slack = 1.5;        // CUSUM allowance, in spreads
inline constexpr double shift_bound = 6.0;        // CUSUM decision bound
inline constexpr double shift_clip = 3.0;         // absorb at most 3 spreads from the mean
inline constexpr double shift_floor = 0.1;        // least spread of log(value)
inline constexpr std::uint32_t shift_warmup = 24; // values absorbed before judging
inline constexpr double shift_rise_momentum = 0.96;  // the rise rule's fast mean (25 values)
// update_shift: the update ratio is steadier than the gradient norm, and
// healthy training moves it slowly (Adam's steps shrink as the policy settles)
inline constexpr double update_shift_momentum = 0.995;  // per check
inline constexpr double update_shift_slack = 2.5;       // in spreads
inline constexpr double update_shift_floor = 0.15;      // least spread of log(ratio)
inline constexpr double update_shift_rise = 0.4;        // the ratio's recent level 1.5x its running level
inline constexpr double health_drop = 0.25;       // gradient health below its running mean by this
inline constexpr std::uint32_t drop_baseline = 20;  // performance figures in the baseline
inline constexpr std::uint32_t drop_recent = 3;     // latest figures, judged by their median
inline constexpr double drop_score = 3.0;           // standard errors of the recent median
inline constexpr double drop_large = 0.5;           // and at least this fraction of |baseline|
inline constexpr std::uint32_t trend_window = 10;   // figures in the trend test
inline constexpr double trend_score = 3.0;          // Mann-Kendall standard score of a falling trend
inline constexpr double trend_min_drop = 0.05;      // and a fall of at least this fraction across the window
inline constexpr double value_fast_momentum = 0.5;  // smoothed explained variance
inline constexpr double value_slow_momentum = 0.9;  // its baseline, for the trend
inline constexpr double value_floor = -1.0;         // smoothed EV below: the critic is worse than none
inline constexpr double value_fall = 1.0;           // smoothed EV this far below its baseline
inline constexpr double value_warmup = 0.05;        // fraction of training before judging
inline constexpr double lstm_rms_min = 1e-6;        // healthy: min < rms(h), rms(c) < max
inline constexpr double lstm_rms_max = 100.0;
}  // namespace defaults

}  // namespace v0
}  // namespace simic
