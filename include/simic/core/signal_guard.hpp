// A stop request by signal, for a clean shutdown: while a signal_guard lives,
// SIGTERM and SIGINT (or the signals it was given) only set a flag that the
// training loop reads between steps (signal_guard::requested()); the loop
// then stops, closes its session or hub (which writes hub_stats) and exits.
// A second signal while one is pending ends the process the default way
// (a second Ctrl-C still kills a stuck run). The destructor restores the
// actions that were in place. simic installs nothing unless asked: a
// signal_guard, or session_options::stop_on_signals. POSIX only.
#pragma once

#include <atomic>
#include <csignal>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include <signal.h>

#include "simic/core/error.hpp"

namespace simic {
inline namespace v0 {

namespace detail {

// The first signal caught (0: none). Lock-free, so the handler may touch it.
inline std::atomic<int> caught_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" inline void simic_stop_signal_handler(int sig) {
  int none = 0;
  if (!caught_signal.compare_exchange_strong(none, sig)) {
    // A second signal: do what it would have done without us.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace detail

class signal_guard {
 public:
  // Catches `signals` (each one of SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2).
  // Throws std::invalid_argument for another or an empty list, before
  // installing anything. Does not clear a signal already caught.
  explicit signal_guard(std::initializer_list<int> signals = {SIGTERM, SIGINT}) {
    detail::require(signals.size() >= 1, "simic::signal_guard", "signals", "{}",
                    "one or more of SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2");
    for (int s : signals)
      detail::require(s == SIGTERM || s == SIGINT || s == SIGHUP || s == SIGUSR1 || s == SIGUSR2,
                      "simic::signal_guard", "signal", s, "SIGTERM, SIGINT, SIGHUP, SIGUSR1 or SIGUSR2");
    struct sigaction act {};
    act.sa_handler = detail::simic_stop_signal_handler;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;  // the loop's reads and writes go on; it checks the flag itself
    for (int s : signals) {
      installed_.push_back({s, {}});
      if (::sigaction(s, &act, &installed_.back().previous) != 0) {
        installed_.pop_back();
        restore();
        throw std::runtime_error("simic::signal_guard: sigaction(" + std::to_string(s) + ") failed: " +
                                 std::strerror(errno));
      }
    }
  }
  signal_guard(const signal_guard&) = delete;
  signal_guard& operator=(const signal_guard&) = delete;
  ~signal_guard() { restore(); }

  // Whether a stop was requested, and by which signal (0: none).
  static bool requested() noexcept { return detail::caught_signal.load(std::memory_order_relaxed) != 0; }
  static int signal_number() noexcept { return detail::caught_signal.load(std::memory_order_relaxed); }
  // Forgets a caught signal (e.g. a test, or a trainer that asks the user first).
  static void reset() noexcept { detail::caught_signal.store(0, std::memory_order_relaxed); }

 private:
  struct saved {
    int signal;
    struct sigaction previous;
  };
  void restore() noexcept {
    for (auto it = installed_.rbegin(); it != installed_.rend(); ++it) ::sigaction(it->signal, &it->previous, nullptr);
    installed_.clear();
  }
  std::vector<saved> installed_;
};

// The name of a signal for a message: "SIGTERM", "SIGINT", ... ("signal N" else).
inline std::string signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal " + std::to_string(sig);
  }
}

}  // namespace v0
}  // namespace simic
