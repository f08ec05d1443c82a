// What a simic::session is made with besides its monitor and sensors
// (session.hpp): the config, the parameters its sensors watch, the hub, the
// shutdown deadline, signals, and a data-parallel agreement.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "simic/core/config.hpp"
#include "simic/core/response.hpp"
#include "simic/core/signal_agreement.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/emit/hub.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

// When a step's check is made. sync: in its own step() call, which returns
// its verdict (a device's figures are waited for there). deferred: in the
// next step() call (or flush(), close()), which returns it, naming the step
// it judges; the step's own call only starts its reads, so the host never
// waits for the device (docs/guide.md, "A deferred check").
enum class check_timing : unsigned char { sync, deferred };

struct session_options {
  config_options config{};  // level, escalation, severities, the missing-signal guard
  std::uint32_t max_consecutive_skips = defaults::max_consecutive_skips;  // the response policy's stop
  skip_rules skip{};  // which anomalies skip a step (core/response.hpp): by default, any critical one
  param_filter watch{};  // the named parameters every sensor reads
  hub_options hub{};     // the hub made from sinks: never blocks training by default (drops are counted)
  // close() and the destructor wait at most this for the sinks (>= 0; the
  // session's own hub only): what is still queued then is counted undelivered.
  std::chrono::milliseconds close_deadline = hub::no_deadline;
  // Opt in: while the session lives, SIGTERM and SIGINT set stop_requested()
  // instead of ending the process (a simic::signal_guard). Off: no handler.
  bool stop_on_signals = false;
  // Data-parallel training: every check is made on the job's signals, which
  // this agreement makes from every rank's (simic::distributed::agreement),
  // so that every rank skips, escalates and stops together. The events keep
  // this rank's own figures; anomaly events name the ranks they came from.
  std::shared_ptr<signal_agreement> agreement{};
  check_timing check = check_timing::sync;
};

// Figures known once per rollout, handed to the next check.
struct rollout_figures {
  std::optional<double> reward_rate{};
  std::optional<double> explained_variance{};
};

// No parameters: the session runs the monitor and emits events, but its
// sensors read no tensors (the caller hands in every signal).
inline const std::vector<named_tensor> no_parameters{};

}  // namespace v0
}  // namespace simic
