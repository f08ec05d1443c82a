// The reference preset: the reference telemetry's detectors and thresholds,
// reporting on every check and escalating on any anomaly, to reproduce its
// behaviour (and to measure against it: bench/detection). Its own detectors
// are in simic/detect/reference/ (namespace simic::reference); the ones it
// shares with simic's defaults (presets/ppo.hpp) are in simic/detect/.
#pragma once

#include <cstdint>

#include "simic/core/config.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/response.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/detect/entropy_floor.hpp"
#include "simic/detect/gradient_bounds.hpp"
#include "simic/detect/kl_divergence.hpp"
#include "simic/detect/numerical_stability.hpp"
#include "simic/detect/ratio_bounds.hpp"
#include "simic/detect/reference/gradient_drift.hpp"
#include "simic/detect/reference/lstm_bounds.hpp"
#include "simic/detect/reference/performance_degradation.hpp"
#include "simic/detect/reference/value_function.hpp"
#include "simic/monitor.hpp"

namespace simic {
inline namespace v0 {

using reference_monitor =
    monitor<numerical_stability, reference::lstm_bounds, ratio_bounds, reference::value_function, entropy_floor,
            kl_divergence, reference::gradient_drift, gradient_bounds, reference::performance_degradation>;

// Config options as the reference ran: every anomaly escalates.
inline config_options reference_config_options(config_options o = {}) {
  o.escalate_on = severity::warning;
  return o;
}

// The reference preset with its thresholds, every-check reporting, and the
// default response acting on non-finite gradients at any severity.
inline reference_monitor make_reference_monitor(const config_options& o = reference_config_options(),
                                                std::uint32_t max_consecutive_skips = defaults::max_consecutive_skips) {
  const reporting each = reporting::every_check();
  return reference_monitor(config(o), skip_nonfinite_then_stop(max_consecutive_skips, severity::warning),
                           numerical_stability{}, reference::lstm_bounds{},
                           ratio_bounds({.explosion = defaults::ratio_explosion, .collapse = defaults::ratio_collapse,
                                         .how = each}),
                           reference::value_function{},
                           entropy_floor({.collapse = defaults::entropy_collapse, .low = defaults::entropy_low,
                                          .how = each}),
                           kl_divergence({.spike = defaults::kl_spike, .extreme = defaults::kl_extreme, .how = each}),
                           reference::gradient_drift{},
                           gradient_bounds({.vanishing = defaults::grad_vanishing,
                                            .exploding = defaults::grad_exploding, .how = each}),
                           reference::performance_degradation{});
}

}  // namespace v0
}  // namespace simic
