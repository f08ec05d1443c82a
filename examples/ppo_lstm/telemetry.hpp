// The trainer's telemetry, as configuration: which monitor, which options,
// which sinks. Everything else (sensors, the check, every event) is
// simic::session's; ppo.cpp calls it at the points of an update:
//   begin_update() -> lstm_state(h, c) at each sequence start -> end_rollout()
//   -> per optimizer step: step(statistics) before clipping, obey the response
//   -> end_epoch(mean return) at each epoch end -> close() at the end.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "options.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/session.hpp"

namespace ppo_lstm {

inline simic::session_options telemetry_options(const run_options& o) {
  simic::session_options s;
  s.config.configured = o.level;
  s.config.escalation_epochs = o.escalation_epochs;
  s.max_consecutive_skips = o.effective_max_skips();
  // Block rather than drop when the queue is full: a trainer's events are
  // few and the JSONL sink is fast; losing one would be worse than waiting.
  s.hub = {.capacity = 8192,
           .overflow = simic::overflow_policy::block,
           .context = {.run_id = "ppo_lstm-seed" + std::to_string(o.seed), .device = "cpu"}};
  return s;
}

// The JSONL file when asked for, and the caller's own sinks.
inline std::vector<std::shared_ptr<simic::sink>> telemetry_sinks(const run_options& o,
                                                                 std::vector<std::shared_ptr<simic::sink>> more) {
  if (!o.events_path.empty()) more.insert(more.begin(), std::make_shared<simic::jsonl_sink>(o.events_path));
  return more;
}

// simic's defaults, or the reference preset (its thresholds, escalation on
// any anomaly).
template <class Monitor, class Params>
std::unique_ptr<simic::session<Monitor>> make_telemetry(const run_options& o, const Params& params,
                                                        std::vector<std::shared_ptr<simic::sink>> sinks) {
  const simic::session_options s = telemetry_options(o);
  if constexpr (std::is_same_v<Monitor, simic::reference_monitor>)
    return std::make_unique<simic::session<Monitor>>(
        simic::make_reference_monitor(simic::reference_config_options(s.config), s.max_consecutive_skips), s, params,
        telemetry_sinks(o, std::move(sinks)));
  else
    return std::make_unique<simic::session<Monitor>>(s, params, telemetry_sinks(o, std::move(sinks)));
}

}  // namespace ppo_lstm
