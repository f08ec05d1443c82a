#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "detect_support.hpp"
#include "simic/detect/lstm_rms_bounds.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals state(double h_norm, double c_norm, std::uint64_t elements) {
  signals s;
  lstm_signal l;
  l.h_norm = h_norm;
  l.c_norm = c_norm;
  l.elements = elements;
  s.lstm = l;
  return s;
}
}  // namespace

TEST_CASE("lstm_rms_bounds judges norm / sqrt(elements): the width does not move the bound") {
  // RMS 6 is healthy at any width; the reference's norm bound 100 is crossed at 512 units
  for (std::uint64_t n : {64u, 512u, 4096u}) {
    lstm_rms_bounds d;
    const double norm = 6.0 * std::sqrt(static_cast<double>(n));
    CHECK(observe(d, state(0.5 * std::sqrt(static_cast<double>(n)), norm, n)).empty());
  }
  lstm_rms_bounds d;
  const double at_max = 100.0 * 8.0;  // 64 elements: rms = norm / 8
  CHECK(observe(d, state(1.0, below(at_max), 64)).empty());
  lstm_rms_bounds e;
  CHECK(observe(e, state(1.0, at_max, 64)).has(anomaly_kind::lstm_unhealthy));  // rms == max: outside
  lstm_rms_bounds f;
  const anomaly_report r = observe(f, state(1.0, 1e4, 64));
  REQUIRE(r.size() == 1);
  CHECK(r[0].value == doctest::Approx(1250.0));
  CHECK(r[0].threshold == 100.0);
  CHECK(r[0].detail.find("rms(c) 1250 outside (1e-06, 100)") != std::string::npos);
  lstm_rms_bounds g;
  const anomaly_report dead = observe(g, state(1e-6 * 8.0, 1.0, 64));  // rms(h) == min: outside
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].threshold == 1e-6);
  CHECK(dead[0].detail.find("rms(h)") != std::string::npos);
}

TEST_CASE("lstm_rms_bounds: NaN/Inf always; unknown element count judges NaN/Inf only; onset and clear") {
  lstm_rms_bounds d;
  CHECK(observe(d, state(1e9, 1e9, 0)).empty());  // no count: no RMS to judge
  signals s = state(1.0, 1.0, 0);
  s.lstm->has_nan = true;
  const anomaly_report r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].detail == "NaN in state");
  CHECK(observe(d, s).empty());  // still unhealthy: reported once
  for (int i = 0; i < 2; ++i) CHECK(observe(d, state(1.0, 1.0, 64)).clears().empty());
  const anomaly_report cleared = observe(d, state(1.0, 1.0, 64));
  REQUIRE(cleared.clears().size() == 1);
  CHECK(cleared.clears()[0].duration == 2);
  lstm_rms_bounds every({.rms_min = 1e-6, .rms_max = 100.0, .how = reporting::every_check()});
  CHECK(observe(every, s).size() == 1);
  CHECK(observe(every, s).size() == 1);
}

TEST_CASE("lstm_rms_bounds: bad bounds are refused") {
  CHECK_THROWS_WITH_AS(lstm_rms_bounds({.rms_min = -1.0, .rms_max = 1.0}), doctest::Contains("rms_min"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(lstm_rms_bounds({.rms_min = 1.0, .rms_max = 1.0}), doctest::Contains("rms_max"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(lstm_rms_bounds({.rms_min = 0.0, .rms_max = std::numeric_limits<double>::infinity()}),
                       doctest::Contains("rms_max"), std::invalid_argument);
}
