// The byte-level transformer LM trainer as a library: run(options) trains,
// obeys the monitor, and returns a summary of what happened (the tests call
// it in-process; main.cpp wraps it in a command line).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../common/exit_codes.hpp"
#include "../common/summary.hpp"
#include "options.hpp"
#include "simic/core/anomaly.hpp"
#include "simic/core/level.hpp"

namespace char_lm {

// Exit codes of the command line (docs/lm_trainer.md), examples/ppo_lstm's
// (examples/common/exit_codes.hpp). When several apply, the first of: signal,
// events lost, stopped. exit_usage also: no fortune files.
using examples_common::exit_events_lost;
using examples_common::exit_failed;
using examples_common::exit_ok;
using examples_common::exit_signal;
using examples_common::exit_stopped;
using examples_common::exit_usage;

inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// One optimizer step (attempted).
struct step_record {
  std::uint64_t step = 0;      // 1-based
  double lr = 0.0;             // the learning rate set for the step (after any fault)
  double loss = nan;           // the step's training loss (after any fault; NaN for nan-batch)
  double grad_norm = nan;      // total gradient norm before clipping (the session's gradient read)
  double mlp_norm = nan;       // norm of block 0's MLP weights and biases at the check (dead-layer zeroes it)
  bool skipped = false;        // the monitor said skip_step or stop: no optimizer step
  std::size_t anomalies = 0;   // anomalies reported at this step
  bool rollback = false;       // --recover rolled back at this step (restored an earlier state)
};

// One epoch (--eval-every steps, the last one possibly shorter).
struct epoch_record {
  std::uint64_t step = 0;      // its last step
  double train_loss = nan;     // mean of its finite step losses
  double valid_loss = nan;     // validation loss at its end
  simic::level level = simic::level::normal;  // effective level after end_epoch()
};

struct anomaly_record {
  std::uint64_t step = 0;
  simic::anomaly_kind kind{};
  std::string detail;
  simic::severity severity = simic::severity::warning;
  double value = simic::no_figure;
  double threshold = simic::no_figure;
};

struct level_change {
  std::uint64_t step = 0;
  simic::level from{};
  simic::level to{};
};

struct skip_record {
  std::uint64_t step = 0;
  std::string reason;
};

struct run_summary {
  int exit_code = exit_ok;
  bool stopped = false;
  std::string stop_reason;
  std::uint64_t steps_done = 0;       // steps attempted
  std::uint64_t optimizer_steps = 0;  // steps taken
  std::uint64_t checks = 0;
  std::uint64_t epochs = 0;
  double seconds = 0.0;
  std::uint64_t parameters = 0;       // the model's parameter count
  std::uint64_t train_bytes = 0, valid_bytes = 0;
  std::size_t files = 0;              // fortune files read
  double final_train_loss = nan;      // the last epoch's mean step loss
  double final_valid_loss = nan;      // the last evaluation
  bool weights_finite = true;
  std::vector<step_record> steps;
  std::vector<epoch_record> epoch_log;
  std::vector<anomaly_record> anomalies;
  std::vector<level_change> level_changes;
  std::vector<skip_record> skips;
  std::map<std::string, std::uint64_t> sensor_events;  // sensor name -> measurements it made
  std::map<std::string, std::uint64_t> event_counts;   // event name -> events emitted to the hub
  // events
  int interrupted_by = 0;
  std::string events_path;
  std::uint64_t events_emitted = 0, events_written = 0, events_dropped = 0, events_failed = 0,
                events_undelivered = 0;
  std::uint64_t events_lost() const noexcept { return events_dropped + events_failed + events_undelivered; }
  std::string tensorboard_file;
  // recovery and resume (docs/trainer.md): the rollbacks and the records
  // above are the whole run's (a resumed run continues them); the events,
  // the event counts, the checkpoints written and the time are this process's.
  examples_common::recovery_summary recovery;
  examples_common::checkpoint_summary checkpoints;
  std::uint64_t weights_digest = 0;  // FNV-1a 64 of the final weights' bytes (examples/common/checkpoint.hpp)

  std::size_t count(simic::anomaly_kind k) const { return examples_common::count_of(anomalies, k); }
  std::size_t count(simic::severity s) const { return examples_common::count_of(anomalies, s); }
};

// Trains with `options` (validated first: bad options throw
// std::invalid_argument before anything runs; so does a missing data directory).
run_summary run(const run_options& options);

// The summary printed at the end of a command-line run.
std::string describe(const run_summary& s);

}  // namespace char_lm
