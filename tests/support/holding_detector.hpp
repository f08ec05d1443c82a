// A detector that holds the check it runs in until released, once armed:
// another thread's call then overlaps that check for certain (the thread
// tests of the monitor and the session).
#pragma once

#include <latch>
#include <string>
#include <utility>

#include "simic/core/anomaly.hpp"
#include "simic/core/level.hpp"
#include "simic/core/signals.hpp"

namespace simic::test {

struct holding_detector {
  using category = cat::critical;
  std::latch* entered = nullptr;  // counted down when the check arrives (then disarmed)
  std::latch* release = nullptr;  // waited on before the check goes on
  void observe(const signals&, anomaly_report&) {
    if (entered == nullptr) return;
    std::exchange(entered, nullptr)->count_down();
    release->wait();
  }
};

// The message of core/detail/thread_guard.hpp for `call` on `object` while another thread is in `other`.
inline std::string overlap_message(const char* object, const char* call, const char* other) {
  const std::string o(object);
  return "simic::" + o + "::" + call + ": called while another thread is in " + other + "() on the same " + o +
         "; a " + o + " is not thread-safe: use it from one thread at a time (docs/guide.md, Threads)";
}

}  // namespace simic::test
