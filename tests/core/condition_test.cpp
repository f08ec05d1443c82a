#include <doctest/doctest.h>

#include <stdexcept>
#include <vector>

#include "simic/core/condition.hpp"

using namespace simic;

namespace {
// Feeds `holds` in order; returns the observations (0-based) reported at and
// the clears (observation index, duration) that came out.
struct trace {
  std::vector<int> reported;
  std::vector<std::pair<int, std::uint64_t>> clears;
  std::vector<int> holds;  // observations at which an earlier condition held again
};
trace feed(condition_latch& l, const reporting& how, const std::vector<int>& holds) {
  trace t;
  for (std::size_t i = 0; i < holds.size(); ++i) {
    anomaly_report r;
    if (l.update(holds[i] != 0, how, anomaly_kind::kl_spike, static_cast<double>(i), r)) t.reported.push_back(static_cast<int>(i));
    for (const auto& c : r.clears()) {
      CHECK(c.kind == anomaly_kind::kl_spike);
      CHECK(c.value == static_cast<double>(i));  // the figure that ended it
      t.clears.emplace_back(static_cast<int>(i), c.duration);
    }
    for (const auto& h : r.holds()) {
      CHECK(h.kind == anomaly_kind::kl_spike);
      CHECK(h.severity == severity::warning);  // the kind's default until a monitor stamps it
      t.holds.push_back(static_cast<int>(i));
    }
  }
  return t;
}
}  // namespace

TEST_CASE("every_check reports each observation that holds and never clears") {
  condition_latch l;
  const trace t = feed(l, reporting::every_check(), {1, 1, 0, 1, 0, 0, 0, 0});
  CHECK(t.reported == std::vector<int>{0, 1, 3});
  CHECK(t.clears.empty());
  CHECK_FALSE(l.active());
}

TEST_CASE("onset_and_clear: once at the onset, a clear after clear_after quiet observations, with its duration") {
  const reporting how{report_mode::onset_and_clear, 3};
  SUBCASE("quiet for clear_after - 1 observations: still one condition") {
    condition_latch l;
    const trace t = feed(l, how, {1, 1, 0, 0, 1, 1, 0, 0, 0});
    CHECK(t.reported == std::vector<int>{0});
    // held at 0, 1, 4, 5: the span runs from 0 to 5 (6 observations), cleared at the third quiet one
    REQUIRE(t.clears.size() == 1);
    CHECK(t.clears[0] == std::pair<int, std::uint64_t>{8, 6});
  }
  SUBCASE("quiet for exactly clear_after observations: cleared, and a new onset after") {
    condition_latch l;
    const trace t = feed(l, how, {1, 0, 0, 0, 1, 0, 0, 0});
    CHECK(t.reported == std::vector<int>{0, 4});
    REQUIRE(t.clears.size() == 2);
    CHECK(t.clears[0] == std::pair<int, std::uint64_t>{3, 1});
    CHECK(t.clears[1] == std::pair<int, std::uint64_t>{7, 1});
  }
  SUBCASE("clear_after 1 clears on the first quiet observation") {
    condition_latch l;
    const trace t = feed(l, {report_mode::onset_and_clear, 1}, {1, 1, 1, 0, 1});
    CHECK(t.reported == std::vector<int>{0, 4});
    REQUIRE(t.clears.size() == 1);
    CHECK(t.clears[0] == std::pair<int, std::uint64_t>{3, 3});
    CHECK(l.active());
  }
  SUBCASE("quiet while inactive does nothing") {
    condition_latch l;
    const trace t = feed(l, how, {0, 0, 0});
    CHECK(t.reported.empty());
    CHECK(t.clears.empty());
  }
}

TEST_CASE("holds: each later observation on which an active condition holds, never the onset or a quiet one") {
  condition_latch l;
  // onset at 0; holds at 1 and 4 (quiet 2, 3 below clear_after 3); cleared at 7
  const trace t = feed(l, {report_mode::onset_and_clear, 3}, {1, 1, 0, 0, 1, 0, 0, 0, 1});
  CHECK(t.reported == std::vector<int>{0, 8});
  CHECK(t.holds == std::vector<int>{1, 4});  // not 8: a new onset
  // every_check reports each holding observation itself: no holds
  condition_latch e;
  const trace u = feed(e, reporting::every_check(), {1, 1, 1});
  CHECK(u.reported == std::vector<int>{0, 1, 2});
  CHECK(u.holds.empty());
}

TEST_CASE("latch state round-trips and bad states are refused") {
  condition_latch l;
  anomaly_report r;
  const reporting how{};
  l.update(true, how, anomaly_kind::kl_spike, 1.0, r);
  l.update(false, how, anomaly_kind::kl_spike, 1.0, r);
  const condition_state st = l.state();
  CHECK(st == condition_state{1, 1, 1});
  condition_latch m;
  m.load(st);
  CHECK(m.state() == st);
  CHECK_THROWS_WITH_AS(m.load(condition_state{2, 1, 0}), doctest::Contains("active"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(m.load(condition_state{0, 3, 0}), doctest::Contains("span"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(m.load(condition_state{1, 0, 0}), doctest::Contains(">= 1 when active"), std::invalid_argument);
  CHECK(m.state() == st);  // unchanged by the refused loads
}

TEST_CASE("reporting options are validated") {
  CHECK_NOTHROW(reporting{}.validate("x"));
  CHECK_THROWS_WITH_AS((reporting{report_mode::onset_and_clear, 0}.validate("simic::x")),
                       doctest::Contains("reporting.clear_after"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((reporting{static_cast<report_mode>(7), 1}.validate("simic::x")),
                       doctest::Contains("every_check or onset_and_clear"), std::invalid_argument);
}
