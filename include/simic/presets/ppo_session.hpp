// The PPO preset as a session: ppo_monitor (presets/ppo.hpp) with the sensors
// a PPO trainer with a recurrent policy has figures for: gradient health (and
// the host/module ratio when a host is named), the update ratio, the LSTM
// state, memory, and at DEBUG the per-layer gradient statistics, the NaN/Inf
// scan and the ratio diagnostic. `Backend` reduces the tensors
// (reduce/auto_backend.hpp: simic's CPU pass, the fused CUDA kernels once
// registered, LibTorch operations otherwise).
//
//   simic::ppo_session<> tel({}, *model, {std::make_shared<simic::jsonl_sink>("run.jsonl")});
#pragma once

#include "simic/presets/ppo.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/layer_gradient.hpp"
#include "simic/sensors/lstm_health.hpp"
#include "simic/sensors/memory.hpp"
#include "simic/sensors/nan_inf_scanner.hpp"
#include "simic/sensors/parameter_update.hpp"
#include "simic/sensors/ratio_diagnostic.hpp"
#include "simic/session.hpp"

namespace simic {
inline namespace v0 {

// The PPO sensors with any monitor (the reference preset's, one of your
// own), in the order their events are written each step.
template <class Monitor, reduction_backend Backend = auto_backend>
using ppo_sensor_session =
    session<Monitor, gradient_health_sensor<Backend>, parameter_update_sensor, lstm_health_sensor<Backend>,
            layer_gradient_sensor<Backend>, nan_inf_scanner<Backend>, ratio_diagnostic_sensor, memory_sensor>;

template <reduction_backend Backend = auto_backend>
using ppo_session = ppo_sensor_session<ppo_monitor, Backend>;

// For a feed-forward policy: no LSTM detector (its sensor reads nothing unless fed).
template <reduction_backend Backend = auto_backend>
using ppo_feedforward_session = ppo_sensor_session<ppo_feedforward_monitor, Backend>;

// With a host named (gradient_health_options::host): the host/module ratio judged.
template <reduction_backend Backend = auto_backend>
using ppo_host_session = ppo_sensor_session<ppo_host_monitor, Backend>;

}  // namespace v0
}  // namespace simic
