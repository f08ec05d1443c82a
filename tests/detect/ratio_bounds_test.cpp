#include <doctest/doctest.h>

#include <limits>

#include "detect_support.hpp"
#include "simic/detect/ratio_bounds.hpp"

using namespace simic;
using namespace simic::test;

TEST_CASE("ratio explosion: strictly above 5") {
  ratio_bounds d;
  signals s;
  s.ratio_max = below(5.0);
  CHECK(observe(d, s).empty());
  s.ratio_max = 5.0;
  CHECK(observe(d, s).empty());
  s.ratio_max = above(5.0);
  const auto r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::ratio_explosion);
  CHECK(r[0].detail.find("> 5") != std::string::npos);
}

TEST_CASE("ratio collapse: strictly below 0.1") {
  ratio_bounds d;
  signals s;
  s.ratio_min = above(0.1);
  CHECK(observe(d, s).empty());
  s.ratio_min = 0.1;
  CHECK(observe(d, s).empty());
  s.ratio_min = below(0.1);
  CHECK(observe(d, s).has(anomaly_kind::ratio_collapse));
}

TEST_CASE("both bounds at once, custom thresholds, absent signals (every check, as the reference)") {
  ratio_bounds d({.explosion = 2.0, .collapse = 0.5, .how = reporting::every_check()});
  signals s;
  CHECK(observe(d, s).empty());
  s.ratio_max = 2.5;
  s.ratio_min = 0.4;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 2);
  CHECK(r[0].kind == anomaly_kind::ratio_explosion);
  CHECK(r[1].kind == anomaly_kind::ratio_collapse);
  s.ratio_max = std::numeric_limits<double>::infinity();
  s.ratio_min = std::nullopt;
  CHECK(observe(d, s).has(anomaly_kind::ratio_explosion));
}

TEST_CASE("ratio bounds report their figures; a lasting explosion is reported at its onset and its clear") {
  ratio_bounds d;
  signals s;
  s.ratio_max = 7.5;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].value == 7.5);
  CHECK(r[0].threshold == 5.0);
  CHECK_FALSE(r[0].baseline.has_value());
  CHECK(observe(d, s).empty());  // still above: no second report
  s.ratio_max = 1.5;
  CHECK(observe(d, s).clears().empty());
  CHECK(observe(d, s).clears().empty());
  const auto c = observe(d, s);  // third quiet observation
  REQUIRE(c.clears().size() == 1);
  CHECK(c.clears()[0].kind == anomaly_kind::ratio_explosion);
  CHECK(c.clears()[0].duration == 2);
  CHECK(c.clears()[0].value == 1.5);
  s.ratio_max = 7.5;
  CHECK(observe(d, s).has(anomaly_kind::ratio_explosion));  // a new onset
  ratio_bounds e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  CHECK(observe(e, s).empty());
}

TEST_CASE("bad ratio thresholds are rejected") {
  CHECK_THROWS_WITH_AS(ratio_bounds({.explosion = 1.0, .collapse = 0.1}), doctest::Contains("explosion"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ratio_bounds({.explosion = 5.0, .collapse = -0.1}), doctest::Contains("collapse"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ratio_bounds({.explosion = 5.0, .collapse = 1.0}), doctest::Contains("[0, 1)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ratio_bounds({.explosion = std::numeric_limits<double>::infinity(), .collapse = 0.1}),
                       doctest::Contains("explosion"), std::invalid_argument);
}
