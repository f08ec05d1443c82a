// What the example trainers' run summaries (ppo_lstm::run_summary,
// char_lm::run_summary) share: anomaly counts, the end of a run (a signal,
// the hub's counts, the exit code) and the lines of describe() about them.
// Summary: a struct with anomalies (each with kind and severity), stopped,
// stop_reason, exit_code, interrupted_by, events_path, events_emitted,
// events_written, events_dropped, events_failed, events_undelivered,
// events_lost() and tensorboard_file. recovery_summary and
// checkpoint_summary: what --recover, --checkpoint-every and --resume did
// (docs/trainer.md, "Recovery and resume").
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "exit_codes.hpp"
#include "simic/core/anomaly.hpp"
#include "simic/core/signal_guard.hpp"
#include "simic/emit/sink.hpp"
#include "text.hpp"

namespace examples_common {

// One rollback of the recovery guard (simic::rollback_report, as kept).
struct rollback_record {
  std::uint64_t at = 0;               // the step (char_lm) or update (ppo_lstm) it happened at
  std::string cause;                  // consecutive_skips, nonfinite_weights, divergence
  std::string reason;                 // the cause in words
  std::uint64_t restored_update = 0;  // the session's update the restored snapshot was taken at
  std::uint64_t window_first = 0;     // the data window [first, last) not replayed
  std::uint64_t window_last = 0;
  double lr_scale = 1.0;              // the learning-rate scale from then on
  std::string attribution;            // not replayed, reproducible, transient
};

// --recover: the rollbacks (the whole run's, across a resume) and the guard at the end.
struct recovery_summary {
  bool on = false;
  std::vector<rollback_record> rollbacks;
  double lr_scale = 1.0;              // the product of every rollback's factor
  std::uint64_t snapshots_held = 0;   // in memory at the end
  std::uint64_t snapshot_file_failures = 0;
  double snapshot_seconds = 0.0;      // this process's time taking snapshots (simic::recovery::snapshot_seconds())
  std::uint64_t snapshot_bytes = 0;   // the most bytes of snapshots held in memory at once (held_bytes())
};

// --checkpoint-every and --resume, for this process.
struct checkpoint_summary {
  std::string path;                 // the checkpoint file ("" : none written)
  std::uint64_t written = 0;        // checkpoints this process wrote
  std::uint64_t failed = 0;         // writes that failed (the previous file kept)
  std::uint64_t last_at = 0;        // the step/update of the last one written
  std::string last_error;           // why the last failure failed
  std::string resumed_from;         // --resume's file ("" : a new run)
  std::uint64_t resumed_at = 0;     // the step/update it was written at
  std::uint64_t events_before = 0;  // the events before it: the first lines of events_file_before
  std::string events_file_before;   // the events file of the run that wrote it ("" : none)
};

// The lines about recovery and checkpoints: "rollbacks N (lr scale X)" and a
// line a rollback, "checkpoints: ...", "resumed from ...". `unit`: "step" or
// "update". Each line ends with a newline; "" when none applies.
inline std::string describe_recovery(const recovery_summary& r, const checkpoint_summary& c, const char* unit) {
  using ull = unsigned long long;
  std::string out;
  if (!c.resumed_from.empty())
    out += format("resumed from %s at %s %llu; the events before it are the first %llu lines of %s\n",
                  c.resumed_from.c_str(), unit, static_cast<ull>(c.resumed_at), static_cast<ull>(c.events_before),
                  c.events_file_before.empty() ? "(no events file)" : c.events_file_before.c_str());
  if (r.on) {
    out += format("recovery: %zu rollbacks, lr scale %g, %llu snapshots held", r.rollbacks.size(), r.lr_scale,
                  static_cast<ull>(r.snapshots_held));
    if (r.snapshot_file_failures > 0)
      out += format(", %llu snapshot files failed", static_cast<ull>(r.snapshot_file_failures));
    out += "\n";
    for (const rollback_record& b : r.rollbacks)
      out += format("  rollback at %s %llu (%s): restored update %llu, data [%llu, %llu) not replayed, lr scale "
                    "%g, attribution: %s\n",
                    unit, static_cast<ull>(b.at), b.cause.c_str(), static_cast<ull>(b.restored_update),
                    static_cast<ull>(b.window_first), static_cast<ull>(b.window_last), b.lr_scale,
                    b.attribution.c_str());
  }
  if (!c.path.empty())
    out += format("checkpoints: %llu written to %s (last at %s %llu), %llu failed%s%s\n", static_cast<ull>(c.written),
                  c.path.c_str(), unit, static_cast<ull>(c.last_at), static_cast<ull>(c.failed),
                  c.last_error.empty() ? "" : "; last error: ", c.last_error.c_str());
  return out;
}

// How many of `anomalies` are of kind `k` / of severity `s`.
template <class Anomalies>
std::size_t count_of(const Anomalies& anomalies, simic::anomaly_kind k) {
  std::size_t n = 0;
  for (const auto& a : anomalies) n += a.kind == k;
  return n;
}
template <class Anomalies>
std::size_t count_of(const Anomalies& anomalies, simic::severity s) {
  std::size_t n = 0;
  for (const auto& a : anomalies) n += a.severity == s;
  return n;
}

// A SIGTERM/SIGINT stopped the loop: its number and "interrupted by SIGTERM".
template <class Summary>
void note_interruption(Summary& sum) {
  if (const int sig = simic::signal_guard::signal_number()) {
    sum.interrupted_by = sig;
    sum.stop_reason = "interrupted by " + simic::signal_name(sig);
  }
}

// The hub's counts at close() and the lines the --events file took
// (`events`: a pointer to its simic::jsonl_sink, null if none).
template <class Summary, class EventsFile>
void note_events(Summary& sum, const simic::hub_counts& c, const EventsFile& events) {
  sum.events_emitted = c.emitted;
  sum.events_dropped = c.dropped;
  sum.events_failed = c.failed;
  sum.events_undelivered = c.undelivered;
  if (events) sum.events_written = events->events_written();
}

// The exit code once the events are closed (settled_exit_code).
template <class Summary>
void settle_exit_code(Summary& sum) {
  sum.exit_code = settled_exit_code(sum.exit_code, sum.interrupted_by, sum.events_lost());
}

// "anomalies: C critical, W warning" and a line a kind, in order of first
// report: "  KIND xN SEVERITY (first at UNIT N)"; `at(a)`: where anomaly a
// was reported (its update, its step). No newline at the end.
template <class Summary, class At>
std::string describe_anomalies(const Summary& s, const char* unit, At at) {
  std::string out = format("anomalies: %zu critical, %zu warning", count_of(s.anomalies, simic::severity::critical),
                           count_of(s.anomalies, simic::severity::warning));
  std::vector<simic::anomaly_kind> kinds;  // in order of first report
  for (const auto& a : s.anomalies)
    if (std::find(kinds.begin(), kinds.end(), a.kind) == kinds.end()) kinds.push_back(a.kind);
  for (const simic::anomaly_kind k : kinds) {
    const auto first = std::find_if(s.anomalies.begin(), s.anomalies.end(), [k](const auto& a) { return a.kind == k; });
    out += format("\n  %-24s x%zu %-8s (first at %s %llu)", std::string(simic::to_string(k)).c_str(),
                  count_of(s.anomalies, k), std::string(simic::to_string(first->severity)).c_str(), unit,
                  static_cast<unsigned long long>(at(*first)));
  }
  return out;
}

// The lines on how the run ended and where its events went: a stop by the
// monitor, a signal, the --events file's counts (or, without one, the events
// lost), the events lost with their exit code, the TensorBoard file.
template <class Summary>
std::string describe_ending(const Summary& s) {
  using ull = unsigned long long;
  std::string out;
  if (s.stopped) out += "stopped by the monitor: " + s.stop_reason + "\n";
  if (s.interrupted_by != 0) out += s.stop_reason + ": stopped cleanly, events flushed\n";
  if (!s.events_path.empty())
    out += format("events: %s (%llu emitted, %llu written, %llu dropped, %llu failed, %llu undelivered)\n",
                  s.events_path.c_str(), static_cast<ull>(s.events_emitted), static_cast<ull>(s.events_written),
                  static_cast<ull>(s.events_dropped), static_cast<ull>(s.events_failed),
                  static_cast<ull>(s.events_undelivered));
  else if (s.events_lost() > 0)
    out += format("events: %llu emitted, %llu dropped, %llu failed, %llu undelivered\n",
                  static_cast<ull>(s.events_emitted), static_cast<ull>(s.events_dropped),
                  static_cast<ull>(s.events_failed), static_cast<ull>(s.events_undelivered));
  if (s.events_lost() > 0)
    out += format("events lost: %llu (see the errors above); exit code %d\n", static_cast<ull>(s.events_lost()),
                  exit_events_lost);
  if (!s.tensorboard_file.empty()) out += "tensorboard: " + s.tensorboard_file + "\n";
  return out;
}

}  // namespace examples_common
