// The LM trainer's telemetry, as configuration: which monitor, which options,
// which sinks. Everything else (sensors, the check, every event) is the
// supervised session's (simic/presets/supervised_session.hpp); lm.cpp calls it
// at two points:
//   per optimizer step, after backward() and before clipping: step(signals), obey the response
//   per epoch (every --eval-every steps): end_epoch(-validation loss)
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../common/event_files.hpp"
#include "../common/session_options.hpp"
#include "options.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/presets/reference.hpp"
#include "simic/presets/supervised_session.hpp"

namespace char_lm {

// The level and escalation asked for, --max-skips, a hub that blocks rather
// than drops (examples/common/session_options.hpp, as examples/ppo_lstm's),
// run id "char_lm-seedN".
inline simic::session_options telemetry_options(const run_options& o) {
  return examples_common::trainer_session_options("char_lm", o.seed, o.level, o.escalation_epochs, o.max_skips);
}

// How long close() waits for the sinks at the end of a run (also after a
// signal): examples/common/event_files.hpp.
using examples_common::close_deadline;

// The JSONL file when asked for (null else), opened before the run starts so
// that an unwritable path is a usage error (examples/common/event_files.hpp).
inline std::shared_ptr<simic::jsonl_sink> open_events(const run_options& o) {
  return examples_common::open_events(o.events_path);
}

// The TensorBoard event file when asked for (null else): a new file in the directory.
inline std::shared_ptr<simic::tensorboard_sink> open_tensorboard(const run_options& o) {
  return examples_common::open_tensorboard(o.tensorboard_dir);
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
    return std::make_unique<telemetry<Monitor>>(examples_common::reference_monitor_for(s), s, params, sinks);
  else
    return std::make_unique<telemetry<Monitor>>(s, params, sinks);
}

}  // namespace char_lm
