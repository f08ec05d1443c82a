// The PPO+LSTM CartPole trainer as a library: run(options) trains, obeys the
// monitor, and returns a summary of what happened (the tests call it
// in-process; main.cpp wraps it in a command line).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../common/exit_codes.hpp"
#include "../common/summary.hpp"
#include "options.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/presets/reference.hpp"

namespace ppo_lstm {

// The trainer's monitor: simic's PPO preset with the host/module gradient
// ratio judged (--detectors simic; the trainer names its host, telemetry.hpp),
// or the reference preset (--detectors reference).
using monitor_type = simic::ppo_host_monitor;
using reference_monitor_type = simic::reference_monitor;

// Exit codes of the command line (docs/trainer.md; examples/common/exit_codes.hpp).
// When several apply, the first of: signal, events lost, stopped. exit_usage
// also: options over the memory limit.
using examples_common::exit_events_lost;
using examples_common::exit_failed;
using examples_common::exit_ok;
using examples_common::exit_signal;
using examples_common::exit_stopped;
using examples_common::exit_usage;

struct update_record {
  std::uint64_t update = 0;
  double mean_return = 0.0;  // rolling mean of the last 20 episode returns
  double grad_norm = 0.0;    // total gradient norm before clipping, last step of the update
  double grad_health = 1.0;
  simic::level level = simic::level::normal;  // effective level at the end of the update
  std::size_t anomalies = 0;                  // anomalies reported during the update
  std::string kinds;                          // their distinct kinds, comma-separated
  int skipped_steps = 0;
  bool rollback = false;  // --recover rolled back during the update (its remaining steps not taken)
};

struct anomaly_record {
  std::uint64_t update = 0;
  int step = 0;  // optimizer step within the update (0-based)
  simic::anomaly_kind kind{};
  std::string detail;
  simic::severity severity = simic::severity::warning;
  double value = simic::no_figure;
  double threshold = simic::no_figure;
};

// A condition reported at its onset ended (after `duration` observations).
struct clear_record {
  std::uint64_t update = 0;
  int step = 0;
  simic::anomaly_kind kind{};
  std::uint64_t duration = 0;
};

// The effective level changed: up to DEBUG on an anomaly, back at an epoch end.
struct level_change {
  std::uint64_t update = 0;
  simic::level from{};
  simic::level to{};
};

// A DEBUG-level diagnostic: "layer_stats", "nan_inf_scan" or "ratio_diagnostic".
struct debug_record {
  std::uint64_t update = 0;
  int step = 0;
  std::string what;
  std::string detail;
};

struct skip_record {
  std::uint64_t update = 0;
  int step = 0;
  std::string reason;
};

// A copy of the signals of one check that owns its entropy heads.
struct recorded_signals {
  simic::signals base;  // entropy span left empty; use view()
  std::vector<simic::head_entropy> heads;
  simic::signals view() const {
    simic::signals s = base;
    s.entropy = heads;
    return s;
  }
};

struct run_summary {
  int exit_code = exit_ok;
  bool stopped = false;
  std::string stop_reason;
  std::uint64_t updates_done = 0;
  double mean_return = 0.0;  // rolling mean at the end
  double best_mean_return = 0.0;
  std::uint64_t episodes = 0;
  double seconds = 0.0;
  std::uint64_t optimizer_steps = 0;  // steps taken
  std::uint64_t checks = 0;           // monitor checks (one per optimizer step attempted)
  std::uint64_t epochs = 0;           // monitor ticks
  bool weights_finite = true;
  // The weights' sum and sum of squares at the end (float64): equal on the
  // ranks of a data-parallel job that stayed in lockstep.
  std::pair<double, double> weights_checksum{};
  std::vector<update_record> updates;
  std::vector<anomaly_record> anomalies;
  std::vector<clear_record> clears;
  std::vector<level_change> level_changes;
  std::vector<debug_record> debug;
  std::vector<skip_record> skips;
  std::map<std::string, std::uint64_t> sensor_events;  // sensor name -> measurements it made
  std::map<std::string, std::uint64_t> event_counts;   // event name -> events emitted to the hub
  std::vector<recorded_signals> signals;               // when options.record_signals
  // events
  int interrupted_by = 0;  // the signal that stopped the run (0: none)
  std::string events_path;
  std::uint64_t events_emitted = 0;      // handed to the hub
  std::uint64_t events_written = 0;      // lines of events in the --events file (hub_stats not counted)
  std::uint64_t events_dropped = 0;      // never queued (queue full, or after close)
  std::uint64_t events_failed = 0;       // (event, sink) deliveries whose sink threw
  std::uint64_t events_undelivered = 0;  // still queued when close()'s deadline passed
  std::uint64_t events_lost() const noexcept { return events_dropped + events_failed + events_undelivered; }
  std::string profile_dir;
  std::string tensorboard_file;  // the --tensorboard event file ("" : none)
  // data-parallel
  int rank = 0;
  int ranks = 1;
  std::uint64_t all_reduces = 0;           // gradient all-reduces (one per optimizer step attempted)
  std::uint64_t agreement_collectives = 0; // collectives of the agreement's own (0: its rows ride the all-reduce)
  // recovery and resume (docs/trainer.md): the rollbacks and the records
  // above are the whole run's (a resumed run continues them); the events,
  // the event counts, the recorded signals, the checkpoints written and the
  // time are this process's.
  examples_common::recovery_summary recovery;
  examples_common::checkpoint_summary checkpoints;
  std::uint64_t weights_digest = 0;  // FNV-1a 64 of the final weights' bytes (examples/common/checkpoint.hpp)
  // The final policy's greedy mean return over options.eval_episodes episodes
  // (evaluate.hpp; the same start states for every seed); NaN when not asked for.
  double eval_return = std::numeric_limits<double>::quiet_NaN();

  std::size_t count(simic::anomaly_kind k) const { return examples_common::count_of(anomalies, k); }
  std::size_t count(simic::severity s) const { return examples_common::count_of(anomalies, s); }
};

// Trains with `options` (validated first: bad options throw
// std::invalid_argument before anything runs).
run_summary run(const run_options& options);

// The summary printed at the end of a command-line run.
std::string describe(const run_summary& s);

}  // namespace ppo_lstm
