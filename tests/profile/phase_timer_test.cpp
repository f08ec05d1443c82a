#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/json.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/profile/phase_timer.hpp"

using namespace simic;
using namespace std::chrono_literals;

namespace {
// A clock the test moves by hand, counting how often it is read.
struct fake_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<fake_clock>;
  static constexpr bool is_steady = true;
  static inline time_point now_value{};
  static inline int reads = 0;
  static time_point now() noexcept {
    ++reads;
    return now_value;
  }
  static void reset() {
    now_value = {};
    reads = 0;
  }
  static void advance(duration d) { now_value += d; }
};
using timers = basic_phase_timers<fake_clock>;

const phase_timing* find(const phase_timings_event& e, const std::string& name) {
  for (const auto& p : e.phases)
    if (p.phase == name) return &p;
  return nullptr;
}
}  // namespace

TEST_CASE("a scope records the clock difference between its start and its end") {
  fake_clock::reset();
  timers t;
  {
    auto s = t.time("rollout");
    fake_clock::advance(5ms);
  }
  const auto e = t.snapshot();
  REQUIRE(e.phases.size() == 1);
  CHECK(e.phases[0].phase == "rollout");
  CHECK(e.phases[0].count == 1);
  CHECK(e.phases[0].total_s == doctest::Approx(0.005).epsilon(1e-12));
  CHECK(e.phases[0].min_s == doctest::Approx(0.005).epsilon(1e-12));
  CHECK(e.phases[0].max_s == doctest::Approx(0.005).epsilon(1e-12));
  CHECK(fake_clock::reads == 2);
}

TEST_CASE("phases aggregate count, total, min, max and mean; order of first use") {
  fake_clock::reset();
  timers t;
  const std::vector<std::pair<std::string, int>> samples{
      {"update", 30}, {"rollout", 100}, {"update", 10}, {"telemetry", 1}, {"update", 20}, {"rollout", 300}};
  for (const auto& [phase, ms] : samples) {
    auto s = t.time(phase);
    fake_clock::advance(std::chrono::milliseconds(ms));
  }
  const auto e = t.snapshot();
  REQUIRE(e.phases.size() == 3);
  CHECK(e.phases[0].phase == "update");
  CHECK(e.phases[1].phase == "rollout");
  CHECK(e.phases[2].phase == "telemetry");
  // Reference: plain sums by hand.
  const auto* u = find(e, "update");
  CHECK(u->count == 3);
  CHECK(u->total_s == doctest::Approx(0.060));
  CHECK(u->min_s == doctest::Approx(0.010));
  CHECK(u->max_s == doctest::Approx(0.030));
  CHECK(u->mean_s() == doctest::Approx(0.020));
  const auto* r = find(e, "rollout");
  CHECK(r->count == 2);
  CHECK(r->total_s == doctest::Approx(0.400));
  CHECK(r->mean_s() == doctest::Approx(0.200));
  CHECK(find(e, "telemetry")->total_s == doctest::Approx(0.001));
}

TEST_CASE("stop() records once; a moved scope records once") {
  fake_clock::reset();
  timers t;
  {
    auto s = t.time("a");
    fake_clock::advance(2ms);
    s.stop();
    fake_clock::advance(50ms);  // after stop: not counted
    s.stop();
  }
  {
    auto s1 = t.time("b");
    fake_clock::advance(3ms);
    auto s2 = std::move(s1);
    fake_clock::advance(4ms);
  }
  const auto e = t.snapshot();
  CHECK(find(e, "a")->count == 1);
  CHECK(find(e, "a")->total_s == doctest::Approx(0.002));
  CHECK(find(e, "b")->count == 1);
  CHECK(find(e, "b")->total_s == doctest::Approx(0.007));
}

TEST_CASE("nested scopes time their own spans") {
  fake_clock::reset();
  timers t;
  {
    auto outer = t.time("update");
    fake_clock::advance(1ms);
    {
      auto inner = t.time("telemetry");
      fake_clock::advance(2ms);
    }
    fake_clock::advance(3ms);
  }
  const auto e = t.snapshot();
  CHECK(find(e, "update")->total_s == doctest::Approx(0.006));
  CHECK(find(e, "telemetry")->total_s == doctest::Approx(0.002));
}

TEST_CASE("take() returns the totals and starts over; reset() clears") {
  fake_clock::reset();
  timers t;
  t.record("rollout", 4ms);
  const phase_timings_event first = t.take();
  REQUIRE(first.phases.size() == 1);
  CHECK(first.phases[0].total_s == doctest::Approx(0.004));
  CHECK(t.snapshot().phases.empty());
  t.record("rollout", 1ms);
  CHECK(t.snapshot().phases[0].count == 1);
  t.reset();
  CHECK(t.snapshot().phases.empty());
  CHECK(t.lost() == 0);
  // The event carries the phases and names itself.
  CHECK(event(0, 0, first).name() == "phase_timings");
}

TEST_CASE("zero-length samples are kept; min is 0") {
  timers t;
  t.record("x", 0ns);
  t.record("x", 2ms);
  const auto e = t.snapshot();
  CHECK(e.phases[0].count == 2);
  CHECK(e.phases[0].min_s == 0.0);
  CHECK(e.phases[0].max_s == doctest::Approx(0.002));
}

TEST_CASE("disabled timers read no clock and record nothing") {
  fake_clock::reset();
  timers t(false);
  CHECK_FALSE(t.enabled());
  {
    auto s = t.time("rollout");
    fake_clock::advance(5ms);
  }
  t.record("update", 1ms);
  CHECK(fake_clock::reads == 0);
  CHECK(t.snapshot().phases.empty());
}

TEST_CASE("bad input names the argument") {
  timers t;
  CHECK_THROWS_WITH_AS((void)t.time(""), doctest::Contains("phase"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(t.record("", 1ms), doctest::Contains("phase"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(t.record("x", -1ms), doctest::Contains("d (seconds)"), std::invalid_argument);
  CHECK(t.snapshot().phases.empty());  // nothing half-recorded
}

TEST_CASE("the steady-clock alias measures real time non-negatively") {
  phase_timers t;
  { auto s = t.time("real"); }
  const auto e = t.snapshot();
  REQUIRE(e.phases.size() == 1);
  CHECK(e.phases[0].count == 1);
  CHECK(e.phases[0].total_s >= 0.0);
}

TEST_CASE("phase_timing mean is total over count, 0 when empty") {
  CHECK(phase_timing{.phase = "x", .count = 4, .total_s = 1.0}.mean_s() == doctest::Approx(0.25));
  CHECK(phase_timing{.phase = "x"}.mean_s() == 0.0);
}

TEST_CASE("the phase_timings event: every phase's totals in JSON, total and mean in TensorBoard") {
  const phase_timings_event pt{.phases = {{.phase = "rollout", .count = 2, .total_s = 3.0, .min_s = 1.0, .max_s = 2.0},
                                          {.phase = "update", .count = 1, .total_s = 0.5, .min_s = 0.5, .max_s = 0.5}}};
  const nlohmann::json j = nlohmann::json::parse(to_json_line(event(7, 0, pt)));
  CHECK(j["event"] == "phase_timings");
  CHECK(j["phases"]["rollout"]["count"] == 2);
  CHECK(j["phases"]["rollout"]["total_s"].get<double>() == 3.0);
  CHECK(j["phases"]["rollout"]["mean_s"].get<double>() == 1.5);
  CHECK(j["phases"]["rollout"]["min_s"].get<double>() == 1.0);
  CHECK(j["phases"]["rollout"]["max_s"].get<double>() == 2.0);
  CHECK(j["phases"]["update"]["mean_s"].get<double>() == 0.5);
  tensorboard_tally t;
  CHECK(tensorboard_scalars(event(3, 1, pt), t) ==
        std::vector<tensorboard_scalar>{{"phases/rollout/total_s", 3.0}, {"phases/rollout/mean_s", 1.5},
                                        {"phases/update/total_s", 0.5}, {"phases/update/mean_s", 0.5}});
}
