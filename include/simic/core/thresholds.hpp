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
// simic's relative bounds (detect/relative_gradient_bounds.hpp): against the
// run's own running level of its largest / smallest per-parameter norm
inline constexpr double relative_grad_exploding = 100.0;  // the largest norm 100x its level
inline constexpr double relative_grad_vanishing = 1e4;    // the smallest norm 1/10,000 of its level
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
// and at most this many checks: one bad batch is not thousands of DEBUG steps
inline constexpr std::uint32_t escalation_checks = 100;
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
// The first 10 % of training (signals::progress) is early dynamics (climbing
// norms, a learning-rate warm-up), not the noise to judge against: no shift
// model absorbs or judges it (docs/detection.md, "Early training").
inline constexpr double shift_early = 0.10;
// update_shift: the update ratio is steadier than the gradient norm, and
// healthy training moves it slowly (Adam's steps shrink as the policy settles)
inline constexpr double update_shift_momentum = 0.995;  // per check
inline constexpr double update_shift_slack = 2.5;       // in spreads
inline constexpr double update_shift_floor = 0.15;      // least spread of log(ratio)
inline constexpr double update_shift_rise = 0.4;        // the ratio's recent level 1.5x its running level
// learning_stall (detect/learning_stall.hpp): a loss or a performance that
// gave back 30 % of what training gained (a language model whose labels are
// shuffled gives back 37 %: it falls to the unigram level, not to chance)
inline constexpr double stall_give_back = 0.3;
inline constexpr double stall_min_gain = 0.1;              // of |start|, before the loss's rule is armed
inline constexpr double stall_min_drop = 0.1;              // a stall is at least 10 % of |best|
inline constexpr std::uint32_t stall_start_values = 10;    // loss values averaged into its start
inline constexpr double stall_loss_momentum = 0.98;        // the loss's level: about 50 checks
inline constexpr double stall_performance_momentum = 0.5;  // the performance's: about 2 figures
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
// loss_shift (detect/loss_shift.hpp): the loss judged on its raw value
inline constexpr double loss_fast_momentum = 0.95;  // the loss's recent level (20 values)
inline constexpr double loss_slow_momentum = 0.99;  // its running level and spreads (100 values)
inline constexpr double loss_spike = 12.0;          // spreads above the recent level: loss_spike
inline constexpr double loss_extreme = 100.0;       // spreads above the recent level: loss_extreme (critical)
inline constexpr double loss_rise = 2.5;            // recent level this many spreads above the running level
inline constexpr double loss_clip = 4.0;            // absorb at most 4 spreads from the recent level
inline constexpr double loss_floor = 0.01;          // least spread, as a fraction of |running level|
inline constexpr double loss_floor_abs = 1e-8;      // and at least this, in loss units
inline constexpr double loss_settle = 0.1;          // warm-up ends when the spread's relative error is below this
inline constexpr std::uint32_t loss_min_warmup = 16;  // residuals before the warm-up can end
}  // namespace defaults

}  // namespace v0
}  // namespace simic
