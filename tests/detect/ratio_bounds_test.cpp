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

TEST_CASE("both bounds at once, custom thresholds, absent signals") {
  ratio_bounds d(2.0, 0.5);
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

TEST_CASE("bad ratio thresholds are rejected") {
  CHECK_THROWS_WITH_AS(ratio_bounds(1.0, 0.1), doctest::Contains("explosion"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ratio_bounds(5.0, -0.1), doctest::Contains("collapse"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ratio_bounds(5.0, 1.0), doctest::Contains("[0, 1)"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ratio_bounds(std::numeric_limits<double>::infinity(), 0.1), doctest::Contains("explosion"),
                       std::invalid_argument);
}
