// The supervised preset as a session: supervised_monitor
// (presets/supervised.hpp) with the sensors a supervised trainer has figures
// for: gradient health, the update ratio, memory, and at DEBUG the per-layer
// gradient statistics and the NaN/Inf scan. `Backend` reduces the tensors
// (reduce/auto_backend.hpp).
//
//   simic::supervised_session<> tel({}, *model, {std::make_shared<simic::jsonl_sink>("run.jsonl")});
#pragma once

#include "simic/presets/supervised.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/layer_gradient.hpp"
#include "simic/sensors/memory.hpp"
#include "simic/sensors/nan_inf_scanner.hpp"
#include "simic/sensors/parameter_update.hpp"
#include "simic/session.hpp"

namespace simic {
inline namespace v0 {

// The supervised sensors with any monitor, in the order their events are written each step.
template <class Monitor, reduction_backend Backend = auto_backend>
using supervised_sensor_session = session<Monitor, gradient_health_sensor<Backend>, parameter_update_sensor,
                                          layer_gradient_sensor<Backend>, nan_inf_scanner<Backend>, memory_sensor>;

template <reduction_backend Backend = auto_backend>
using supervised_session = supervised_sensor_session<supervised_monitor, Backend>;

}  // namespace v0
}  // namespace simic
