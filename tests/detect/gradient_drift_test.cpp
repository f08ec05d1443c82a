#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "detect_support.hpp"
#include "simic/detect/gradient_drift.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals norm_health(double norm, double health) {
  signals s;
  auto g = grads(norm, 0.1, 1.0);
  g.health = health;
  s.gradients = g;
  return s;
}
}  // namespace

TEST_CASE("steady gradients do not drift; the first update never does") {
  gradient_drift d;
  for (int i = 0; i < 100; ++i) CHECK(observe(d, norm_health(2.0, 1.0)).empty());
  CHECK(d.norm_ema().steps() == 100);
  CHECK(d.norm_ema().value() == doctest::Approx(2.0).epsilon(1e-14));
}

TEST_CASE("norm drift: just below, at and just above the 0.5 threshold") {
  // After one update the corrected estimate is exactly the first value (2.0),
  // so the drift of the second is |x - 2| / (2 + 1e-8); x = 2 + 0.5 * (2 + 1e-8) sits at the threshold.
  const double at_threshold = 2.0 + 0.5 * (2.0 + 1e-8);
  auto drift_of = [](double x) {
    gradient_drift d;
    observe(d, norm_health(2.0, 1.0));
    return observe(d, norm_health(x, 1.0));
  };
  CHECK(drift_of(2.9).empty());
  CHECK(drift_of(below(at_threshold)).empty());
  CHECK_FALSE(drift_of(above(at_threshold) + 1e-12).empty());
  const auto r = drift_of(3.5);
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::gradient_norm_drift);
  CHECK(r[0].detail.find("gradient norm 3.5") != std::string::npos);
}

TEST_CASE("health drift is tracked separately") {
  gradient_drift d;
  observe(d, norm_health(1.0, 1.0));
  const auto r = observe(d, norm_health(1.0, 0.4));  // |0.4 - 1| / 1 = 0.6 > 0.5
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::gradient_health_drift);
}

TEST_CASE("a NaN norm is reported and not absorbed; later drift is still right") {
  gradient_drift d;
  observe(d, norm_health(2.0, 1.0));
  const auto r = observe(d, norm_health(std::numeric_limits<double>::quiet_NaN(), 1.0));
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::numerical_instability);
  CHECK(d.norm_ema().steps() == 1);
  CHECK(d.norm_ema().value() == doctest::Approx(2.0).epsilon(1e-15));
  CHECK(observe(d, norm_health(2.1, 1.0)).empty());
}

TEST_CASE("uncorrected policy reports the start-up bias the reference had") {
  basic_gradient_drift<uncorrected> raw;
  observe(raw, norm_health(2.0, 1.0));
  CHECK(observe(raw, norm_health(2.0, 1.0)).has(anomaly_kind::gradient_norm_drift));
  gradient_drift corrected;
  observe(corrected, norm_health(2.0, 1.0));
  CHECK(observe(corrected, norm_health(2.0, 1.0)).empty());
}

TEST_CASE("state round trip continues bit for bit; bad state leaves it alone") {
  gradient_drift a(0.5, 0.9);
  for (int i = 0; i < 30; ++i) observe(a, norm_health(1.0 + 0.1 * std::sin(i), 0.9 + 0.01 * std::cos(i)));
  gradient_drift b(0.5, 0.9);
  b.load(a.state());
  for (int i = 30; i < 60; ++i) {
    const auto s = norm_health(1.0 + 0.5 * std::sin(i), 0.9);
    CHECK(observe(a, s) == observe(b, s));
  }
  CHECK(a.state() == b.state());
  auto bad = a.state();
  bad.health.raw = std::numeric_limits<double>::infinity();
  const auto keep = b.state();
  CHECK_THROWS_AS(b.load(bad), std::invalid_argument);
  CHECK(b.state() == keep);
}

TEST_CASE("bad drift parameters are rejected") {
  CHECK_THROWS_WITH_AS(gradient_drift(0.0), doctest::Contains("threshold"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_drift(0.5, 1.0), doctest::Contains("momentum"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_drift(0.5, 0.9, -1.0), doctest::Contains("epsilon"), std::invalid_argument);
}
