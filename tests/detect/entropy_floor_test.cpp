#include <doctest/doctest.h>

#include <array>

#include "detect_support.hpp"
#include "simic/detect/entropy_floor.hpp"

using namespace simic;
using namespace simic::test;

TEST_CASE("per head: collapse strictly below 0.1, low strictly below 0.3") {
  entropy_floor d;
  const std::array<head_entropy, 7> heads{{{"a", below(0.1)},
                                            {"b", 0.1},
                                            {"c", above(0.1)},
                                            {"d", below(0.3)},
                                            {"e", 0.3},
                                            {"f", above(0.3)},
                                            {"g", 0.0}}};
  signals s;
  s.entropy = heads;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 5);
  CHECK(r[0].kind == anomaly_kind::entropy_collapse);
  CHECK(r[0].detail.find("head 'a'") != std::string::npos);
  CHECK(r[1].kind == anomaly_kind::entropy_low);  // b at 0.1 is not collapsed, but low
  CHECK(r[1].detail.find("head 'b'") != std::string::npos);
  CHECK(r[2].kind == anomaly_kind::entropy_low);
  CHECK(r[3].kind == anomaly_kind::entropy_low);
  CHECK(r[3].detail.find("head 'd'") != std::string::npos);
  CHECK(r[4].kind == anomaly_kind::entropy_collapse);
  CHECK(r[4].detail.find("head 'g'") != std::string::npos);
}

TEST_CASE("no heads: nothing; bad bounds rejected") {
  entropy_floor d;
  CHECK(observe(d, signals{}).empty());
  CHECK_THROWS_WITH_AS(entropy_floor({.collapse = 0.4, .low = 0.3}), doctest::Contains("low"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(entropy_floor({.collapse = -0.1, .low = 0.3}), doctest::Contains("collapse"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(entropy_floor({.collapse = 0.1, .low = 1.5}), doctest::Contains("low"), std::invalid_argument);
}

TEST_CASE("entropy: onset and clear per head position; heads past the tracked ones report every check") {
  entropy_floor d;
  std::array<head_entropy, 2> heads{{{"move", 0.05}, {"aim", 0.9}}};
  signals s;
  s.entropy = heads;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].value == 0.05);
  CHECK(r[0].threshold == 0.1);
  CHECK(observe(d, s).empty());  // head 0 still collapsed: once
  heads[1].normalized = 0.2;     // head 1 becomes low: its own onset
  const auto r2 = observe(d, s);
  REQUIRE(r2.size() == 1);
  CHECK(r2[0].kind == anomaly_kind::entropy_low);
  CHECK(r2[0].detail.find("head 'aim'") != std::string::npos);
  std::array<head_entropy, entropy_floor::tracked_heads + 1> many{};
  for (auto& h : many) h = {"h", 0.05};
  s.entropy = many;
  entropy_floor e;
  CHECK(observe(e, s).size() == many.size());
  CHECK(observe(e, s).size() == 1);  // only the untracked one repeats
  entropy_floor f;
  f.load(e.state());
  CHECK(f.state() == e.state());
}
