#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "detect_support.hpp"
#include "simic/detect/reference/gradient_drift.hpp"

using namespace simic;
using namespace simic::test;
using simic::reference::basic_gradient_drift;
using simic::reference::gradient_drift;

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
  gradient_drift a({.threshold = 0.5, .momentum = 0.9});
  for (int i = 0; i < 30; ++i) observe(a, norm_health(1.0 + 0.1 * std::sin(i), 0.9 + 0.01 * std::cos(i)));
  gradient_drift b({.threshold = 0.5, .momentum = 0.9});
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
  CHECK_THROWS_WITH_AS(gradient_drift({.threshold = 0.0}), doctest::Contains("threshold"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_drift({.threshold = 0.5, .momentum = 1.0}), doctest::Contains("momentum"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_drift({.threshold = 0.5, .momentum = 0.9, .epsilon = -1.0}),
                       doctest::Contains("epsilon"), std::invalid_argument);
}

namespace {
// The bias-corrected EMA as the weighted mean S / W (S = m S + x, W = m W + 1)
// in long double, whose range holds DBL_MAX / (1 - m): no overflow to avoid.
struct long_double_ema {
  long double m;
  long double s = 0.0L, w = 0.0L;
  void add(double x) {
    s = m * s + x;
    w = m * w + 1.0L;
  }
  long double estimate() const { return s / w; }
  long double drift(double x) const { return std::fabs(x - estimate()) / (std::fabs(estimate()) + 1e-8L); }
};
}  // namespace

TEST_CASE("a DBL_MAX norm fires and poisons nothing: afterwards the drift is finite and fires / clears as a long double reference does") {
  const double huge = std::numeric_limits<double>::max();
  for (double m : {0.5, 0.9, 0.99}) {
    INFO("momentum " << m);
    gradient_drift d({.threshold = 0.5, .momentum = m});
    long_double_ema ref{m};
    for (int i = 0; i < 20; ++i) {
      CHECK(observe(d, norm_health(1.0, 1.0)).empty());
      ref.add(1.0);
    }
    const auto r = observe(d, norm_health(huge, 1.0));
    ref.add(huge);
    REQUIRE(r.size() == 1);
    CHECK(r[0].kind == anomaly_kind::gradient_norm_drift);
    CHECK(r[0].value == huge);
    CHECK(*r[0].baseline == doctest::Approx(1.0).epsilon(1e-12));
    // Norms of 1 again: they drift (|1 - e| / e > 0.5) while the estimate e
    // stays above 2, and then stop; compared step by step.
    const auto limit = static_cast<std::size_t>(std::log(huge) / -std::log(m)) + 500;
    std::size_t wrong_estimate = 0, wrong_verdict = 0, nonfinite = 0, fired = 0, last_fired = 0;
    for (std::size_t k = 0; k < limit; ++k) {
      const double e = d.norm_ema().value();
      const long double expected = ref.estimate();
      if (!std::isfinite(e) || !std::isfinite(d.norm_ema().drift(1.0))) ++nonfinite;
      if (std::fabs(e - expected) > 1e-9L * expected) ++wrong_estimate;
      const bool fires = observe(d, norm_health(1.0, 1.0)).has(anomaly_kind::gradient_norm_drift);
      const long double drift = ref.drift(1.0);
      ref.add(1.0);
      if (std::fabs(drift - 0.5L) > 1e-9L && fires != (drift > 0.5L)) ++wrong_verdict;
      if (fires) {
        ++fired;
        last_fired = k;
      }
    }
    CHECK(nonfinite == 0);
    CHECK(wrong_estimate == 0);
    CHECK(wrong_verdict == 0);
    CHECK(fired == last_fired + 1);    // fired from the first norm of 1 on, then stopped for good
    CHECK(last_fired + 400 < limit);   // and the last few hundred were quiet
    CHECK(std::fabs(d.norm_ema().value() - ref.estimate()) <= 1e-9L * ref.estimate());
    CHECK(d.norm_ema().value() < 1.5);
    // Working as before: a step to 2 drifts (|2 - 1| / 1 = 1 > 0.5).
    CHECK(observe(d, norm_health(2.0, 1.0)).has(anomaly_kind::gradient_norm_drift));
  }
}

TEST_CASE("a run of DBL_MAX norms (the estimate would round past DBL_MAX) leaves the next norm reported, not silent") {
  const double huge = std::numeric_limits<double>::max();
  for (double m : {0.5, 0.9, 0.99}) {
    INFO("momentum " << m);
    gradient_drift d({.threshold = 0.5, .momentum = m});
    long_double_ema ref{m};
    observe(d, norm_health(1.0, 1.0));
    ref.add(1.0);
    // Long enough for the first norm's weight m^n to fall below float64's
    // rounding: the estimate is then all DBL_MAX, and its division rounds past it.
    const int run = static_cast<int>(std::log(1e-18) / std::log(m));
    std::size_t nonfinite = 0, wrong_estimate = 0;
    for (int i = 0; i < run; ++i) {
      observe(d, norm_health(huge, 1.0));
      ref.add(huge);
      const double e = d.norm_ema().value();
      if (!std::isfinite(e)) ++nonfinite;
      // The reference may exceed DBL_MAX by rounding no more than the EMA's own: compare with it held at DBL_MAX.
      const long double expected = std::min(ref.estimate(), static_cast<long double>(huge));
      if (std::fabs(e - expected) > 1e-12L * expected) ++wrong_estimate;
    }
    CHECK(nonfinite == 0);
    CHECK(wrong_estimate == 0);
    // |1 - e| / (e + 1e-8) with e near DBL_MAX: 1 (to 1e-13), over the 0.5 threshold.
    CHECK(d.norm_ema().drift(1.0) == doctest::Approx(1.0).epsilon(1e-13));
    const auto r = observe(d, norm_health(1.0, 1.0));
    REQUIRE(r.size() == 1);
    CHECK(r[0].kind == anomaly_kind::gradient_norm_drift);
    CHECK(std::isfinite(*r[0].baseline));
    CHECK(std::isfinite(r[0].threshold));
  }
}
