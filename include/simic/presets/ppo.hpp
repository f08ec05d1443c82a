// The PPO preset: simic's defaults for a PPO trainer. A detector for every
// signal, those whose signal is noisy judged against its own noise, each
// condition reported at its onset and its clear, escalation and responses on
// critical anomalies (docs/detection.md).
#pragma once

#include "simic/detect/entropy_floor.hpp"
#include "simic/detect/relative_gradient_bounds.hpp"
#include "simic/detect/gradient_shift.hpp"
#include "simic/detect/host_ratio_shift.hpp"
#include "simic/detect/kl_divergence.hpp"
#include "simic/detect/loss_shift.hpp"
#include "simic/detect/lstm_rms_bounds.hpp"
#include "simic/detect/numerical_stability.hpp"
#include "simic/detect/performance_drop.hpp"
#include "simic/detect/ratio_bounds.hpp"
#include "simic/detect/update_shift.hpp"
#include "simic/detect/value_trend.hpp"
#include "simic/monitor.hpp"

namespace simic {
inline namespace v0 {

using ppo_monitor = monitor<numerical_stability, lstm_rms_bounds, ratio_bounds, value_trend, entropy_floor,
                            kl_divergence, gradient_shift, update_shift, relative_gradient_bounds, performance_drop,
                            loss_shift>;

// The PPO preset for a trainer that names a host network
// (gradient_health_options::host): the host/module gradient ratio judged too.
using ppo_host_monitor = monitor<numerical_stability, lstm_rms_bounds, ratio_bounds, value_trend, entropy_floor,
                                 kl_divergence, gradient_shift, update_shift, host_ratio_shift, relative_gradient_bounds,
                                 performance_drop, loss_shift>;

// The PPO preset for a feed-forward policy (an MLP): every PPO detector but
// lstm_rms_bounds, whose LSTM state such a policy never has (the
// missing-signal guard would report it, docs/guide.md).
using ppo_feedforward_monitor = ppo_monitor::without_detectors<lstm_rms_bounds>;
// The name simic's defaults had before the presets left monitor.hpp, kept for existing code.
using default_monitor = ppo_monitor;

}  // namespace v0
}  // namespace simic
