// Exit codes of the example trainers' command lines (docs/trainer.md,
// docs/lm_trainer.md). When several apply, the first of: signal, events
// lost, stopped.
#pragma once

#include <cstdint>

namespace examples_common {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;       // anything else (one line on stderr)
inline constexpr int exit_usage = 2;        // bad command line, unwritable path (and each trainer's own refusals)
inline constexpr int exit_stopped = 3;      // stopped by the monitor
inline constexpr int exit_events_lost = 4;  // events dropped, failed or undelivered
constexpr int exit_signal(int sig) noexcept { return 128 + sig; }  // stopped by SIGTERM/SIGINT, events flushed

// A run's exit code once its events are closed: the signal that stopped it,
// else events lost, else `so_far` (exit_ok, or exit_stopped by the monitor).
constexpr int settled_exit_code(int so_far, int interrupted_by, std::uint64_t events_lost) noexcept {
  if (interrupted_by != 0) return exit_signal(interrupted_by);
  if (events_lost > 0) return exit_events_lost;
  return so_far;
}

}  // namespace examples_common
