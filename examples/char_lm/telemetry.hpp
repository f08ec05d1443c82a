// The LM trainer's telemetry, as configuration: which monitor, which options,
// which sinks. Everything else (sensors, the check, every event) is the
// supervised session's (simic/presets/supervised_session.hpp); lm.cpp calls it
// at two points:
//   per optimizer step, after backward() and before clipping: step(signals), obey the response
//   per epoch (every --eval-every steps): end_epoch(-validation loss)
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "options.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/presets/reference.hpp"
#include "simic/presets/supervised_session.hpp"

namespace char_lm {

inline simic::session_options telemetry_options(const run_options& o) {
  simic::session_options s;
  s.config.configured = o.level;
  s.config.escalation_epochs = o.escalation_epochs;
  s.max_consecutive_skips = o.max_skips;
  // Block rather than drop when the queue is full (as examples/ppo_lstm).
  s.hub = {.capacity = 8192,
           .overflow = simic::overflow_policy::block,
           .context = {.run_id = "char_lm-seed" + std::to_string(o.seed), .device = "cpu"}};
  return s;
}

// How long close() waits for the sinks at the end of a run (also after a signal).
inline constexpr std::chrono::milliseconds close_deadline{3000};

// The JSONL file when asked for (null else), opened before the run starts so
// that an unwritable path is a usage error.
inline std::shared_ptr<simic::jsonl_sink> open_events(const run_options& o) {
  if (o.events_path.empty()) return nullptr;
  try {
    return std::make_shared<simic::jsonl_sink>(o.events_path);
  } catch (const std::system_error& e) {
    throw std::invalid_argument("--events: cannot write '" + o.events_path + "': " + e.code().message());
  }
}

// The TensorBoard event file when asked for (null else): a new file in the directory.
inline std::shared_ptr<simic::tensorboard_sink> open_tensorboard(const run_options& o) {
  if (o.tensorboard_dir.empty()) return nullptr;
  try {
    return std::make_shared<simic::tensorboard_sink>(o.tensorboard_dir);
  } catch (const std::system_error& e) {
    throw std::invalid_argument("--tensorboard: cannot write in '" + o.tensorboard_dir + "': " + e.code().message());
  }
}

// simic's supervised preset (--preset simic), or the reference preset with
// the same sensors (--preset reference).
using monitor_type = simic::supervised_monitor;
using reference_monitor_type = simic::reference_monitor;

template <class Monitor>
using telemetry = simic::supervised_sensor_session<Monitor>;

template <class Monitor, class Params>
std::unique_ptr<telemetry<Monitor>> make_telemetry(const run_options& o, const Params& params,
                                                   const std::vector<std::shared_ptr<simic::sink>>& sinks) {
  const simic::session_options s = telemetry_options(o);
  if constexpr (std::is_same_v<Monitor, simic::reference_monitor>)
    return std::make_unique<telemetry<Monitor>>(
        simic::make_reference_monitor(simic::reference_config_options(s.config), s.max_consecutive_skips), s, params,
        sinks);
  else
    return std::make_unique<telemetry<Monitor>>(s, params, sinks);
}

}  // namespace char_lm
