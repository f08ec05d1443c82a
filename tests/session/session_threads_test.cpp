// simic::session from two threads: its per-update calls do not overlap in a
// debug build; one that would throws std::logic_error before it touches
// anything (core/detail/thread_guard.hpp).
#include "support/torch_doctest.hpp"

#include <latch>
#include <stdexcept>
#include <string>
#include <thread>

#include "simic/sensors/lstm_health.hpp"
#include "simic/session.hpp"
#include "support/holding_detector.hpp"

using namespace simic;

namespace {
using simic::test::holding_detector;

std::string overlap_message(const char* call) { return simic::test::overlap_message("session", call, "step"); }
}  // namespace

TEST_CASE("session: a per-update call while another thread is in step() throws std::logic_error; the session goes on") {
  if constexpr (!simic::detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  session<monitor<holding_detector>, lstm_health_sensor<>> tel({}, no_parameters);
  std::latch entered(1), release(1);
  tel.monitor().get<holding_detector>().entered = &entered;
  tel.monitor().get<holding_detector>().release = &release;
  signals s;
  s.loss = 0.3;
  std::thread first([&] { tel.step(s); });
  entered.wait();  // `first` is inside step() now, and stays there
  CHECK_THROWS_WITH_AS(tel.step(s), overlap_message("step").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(tel.begin_update(), overlap_message("begin_update").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(tel.feed(lstm_state{at::ones({1, 4}), at::ones({1, 4})}), overlap_message("feed").c_str(),
                       std::logic_error);
  CHECK_THROWS_WITH_AS(tel.end_rollout({.reward_rate = 1.0}), overlap_message("end_rollout").c_str(),
                       std::logic_error);
  CHECK_THROWS_WITH_AS(tel.enqueue(), overlap_message("enqueue").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(tel.end_epoch(1.0), overlap_message("end_epoch").c_str(), std::logic_error);
  release.count_down();
  first.join();
  // Only `first`'s step ran; nothing of the refused calls was kept.
  CHECK(tel.checks() == 1);
  CHECK(tel.sensor<lstm_health_sensor<>>().measurements() == 0);
  CHECK(tel.update() == 1);
  CHECK(tel.epochs() == 0);
  // Released: this thread may use it now.
  CHECK(tel.step(s).report.empty());
  CHECK(tel.checks() == 2);
  CHECK_NOTHROW(tel.end_epoch(1.0));
  CHECK(tel.epochs() == 1);
}
