// What the example trainers' run summaries (ppo_lstm::run_summary,
// char_lm::run_summary) share: anomaly counts, the end of a run (a signal,
// the hub's counts, the exit code) and the lines of describe() about them.
// Summary: a struct with anomalies (each with kind and severity), stopped,
// stop_reason, exit_code, interrupted_by, events_path, events_emitted,
// events_written, events_dropped, events_failed, events_undelivered,
// events_lost() and tensorboard_file.
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
