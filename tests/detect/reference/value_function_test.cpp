#include <doctest/doctest.h>

#include "detect_support.hpp"
#include "simic/detect/reference/value_function.hpp"

using namespace simic;
using namespace simic::test;
using simic::reference::value_function;

namespace {
signals at(std::uint64_t episode, std::uint64_t total, double ev) {
  signals s;
  s.explained_variance = ev;
  s.progress = training_progress(episode, total);
  return s;
}
}  // namespace

TEST_CASE("floors by phase, with the phase boundaries at 10, 25 and 75 percent") {
  value_function d;
  CHECK(d.floor_at(0.01) == -0.5);
  CHECK(d.floor_at(below(0.10)) == -0.5);
  CHECK(d.floor_at(0.10) == -0.2);  // a boundary belongs to the later phase
  CHECK(d.floor_at(below(0.25)) == -0.2);
  CHECK(d.floor_at(0.25) == 0.0);
  CHECK(d.floor_at(below(0.75)) == 0.0);
  CHECK(d.floor_at(0.75) == 0.1);
  CHECK(d.floor_at(1.0) == 0.1);
}

TEST_CASE("value collapse: explained variance strictly below the floor of its phase") {
  value_function d;
  // 9 of 100: phase 1, floor -0.5
  CHECK(observe(d, at(9, 100, -0.5)).empty());
  CHECK(observe(d, at(9, 100, above(-0.5))).empty());
  CHECK(observe(d, at(9, 100, below(-0.5))).has(anomaly_kind::value_collapse));
  // 10 of 100: phase 2, floor -0.2; -0.3 was fine a step earlier
  CHECK(observe(d, at(9, 100, -0.3)).empty());
  CHECK(observe(d, at(10, 100, -0.3)).has(anomaly_kind::value_collapse));
  CHECK(observe(d, at(25, 100, below(0.0))).has(anomaly_kind::value_collapse));
  CHECK(observe(d, at(25, 100, 0.0)).empty());
  CHECK(observe(d, at(75, 100, 0.1)).empty());
  const auto r = observe(d, at(80, 100, below(0.1)));
  REQUIRE(r.size() == 1);
  CHECK(r[0].detail.find("80.0% of training") != std::string::npos);
}

TEST_CASE("progress is required with explained variance; absent EV is skipped") {
  value_function d;
  signals s;
  CHECK_NOTHROW(d.validate(s));
  CHECK(observe(d, s).empty());
  s.explained_variance = -5.0;
  CHECK_THROWS_WITH_AS(d.validate(s), doctest::Contains("progress is required"), std::invalid_argument);
  s.progress = training_progress(1, 2);
  CHECK_NOTHROW(d.validate(s));
}

TEST_CASE("custom floors and phase ends; bad ones rejected") {
  value_function d({.floors = {-1.0, -0.9, -0.8, -0.7}, .ends = {0.2, 0.4, 0.6}});
  CHECK(d.floor_at(0.3) == -0.9);
  CHECK(d.floor_at(0.6) == -0.7);
  CHECK_THROWS_WITH_AS(value_function({.floors = {-0.5, -0.2, 0.0, 0.1}, .ends = {0.3, 0.2, 0.75}}),
                       doctest::Contains("ends"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(value_function({.floors = {-0.5, -0.2, 0.0, 0.1}, .ends = {0.0, 0.25, 0.75}}),
                       doctest::Contains("ends"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(value_function({.floors = {-0.5, std::nan(""), 0.0, 0.1}}), doctest::Contains("floors"),
                       std::invalid_argument);
}
