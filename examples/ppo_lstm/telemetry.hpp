// The trainer's telemetry, as configuration: which monitor, which options,
// which sinks. Everything else (sensors, the check, every event) is
// simic::session's; ppo.cpp calls it at the points of an update:
//   begin_update() -> feed(lstm_state{h, c}) at each sequence start -> end_rollout()
//   -> per optimizer step: step(statistics) before clipping, obey the response
//   -> end_epoch(mean return) at each epoch end -> close() at the end.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../common/event_files.hpp"
#include "../common/session_options.hpp"
#include "options.hpp"
#include "simic/distributed/agreement.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/presets/reference.hpp"
#include "simic/presets/ppo_session.hpp"
#include "simic/presets/reference.hpp"

namespace ppo_lstm {

// The level and escalation asked for, the skip limit (two updates' worth
// unless --max-skips), a hub that blocks rather than drops
// (examples/common/session_options.hpp), run id "ppo_lstm-seedN".
inline simic::session_options telemetry_options(const run_options& o) {
  return examples_common::trainer_session_options("ppo_lstm", o.seed, o.level, o.escalation_epochs,
                                                  o.effective_max_skips());
}

// How long close() waits for the sinks at the end of a run (also after a
// signal): examples/common/event_files.hpp.
using examples_common::close_deadline;

// The JSONL file when asked for (null else), opened before the run starts so
// that an unwritable path is a usage error (examples/common/event_files.hpp).
// In a data-parallel job: this rank's file (run_options::rank_events_path).
inline std::shared_ptr<simic::jsonl_sink> open_events(const run_options& o) {
  return examples_common::open_events(o.rank_events_path());
}

// The TensorBoard event file when asked for (null else): a new file in the
// directory, created before the run starts so that an unusable directory is a
// usage error. In a data-parallel job: this rank's (rank_tensorboard_dir).
inline std::shared_ptr<simic::tensorboard_sink> open_tensorboard(const run_options& o) {
  return examples_common::open_tensorboard(o.rank_tensorboard_dir());
}

// The JSONL file first, then the caller's own sinks.
inline std::vector<std::shared_ptr<simic::sink>> telemetry_sinks(std::shared_ptr<simic::jsonl_sink> events,
                                                                 std::vector<std::shared_ptr<simic::sink>> more) {
  if (events) more.insert(more.begin(), std::move(events));
  return more;
}

// `more` and the TensorBoard sink, if there is one.
inline std::vector<std::shared_ptr<simic::sink>> with_tensorboard(std::vector<std::shared_ptr<simic::sink>> more,
                                                                  std::shared_ptr<simic::tensorboard_sink> tensorboard) {
  if (tensorboard) more.push_back(std::move(tensorboard));
  return more;
}

// The gradient read names the host network: the encoder and the two heads.
// The rest, the LSTM core, is the module whose share of the gradient the
// host/module ratio follows: the part of this policy whose learning signal
// can die (saturated gates, a state blown up and clipped) while the
// feed-forward parts still learn (docs/trainer.md).
inline simic::gradient_health_options telemetry_gradients() {
  return {.host = simic::param_filter().exclude("lstm.*")};
}

// simic's defaults, or the reference preset (its thresholds, escalation on
// any anomaly). `agreement`: a data-parallel rank's (null: a single process).
template <class Monitor>
using telemetry = simic::ppo_sensor_session<Monitor>;

template <class Monitor, class Params>
std::unique_ptr<telemetry<Monitor>> make_telemetry(const run_options& o, const Params& params,
                                                        std::vector<std::shared_ptr<simic::sink>> sinks,
                                                        std::shared_ptr<simic::distributed::agreement> agreement = {}) {
  // `sinks`: telemetry_sinks(open_events(o), the caller's).
  const simic::session_options s =
      agreement ? simic::distributed::rank_options(telemetry_options(o), std::move(agreement)) : telemetry_options(o);
  if constexpr (std::is_same_v<Monitor, simic::reference_monitor>)
    return std::make_unique<telemetry<Monitor>>(examples_common::reference_monitor_for(s), s, params,
                                                std::move(sinks), telemetry_gradients());
  else
    return std::make_unique<telemetry<Monitor>>(s, params, std::move(sinks), telemetry_gradients());
}

}  // namespace ppo_lstm
