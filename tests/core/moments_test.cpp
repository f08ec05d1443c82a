#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "simic/core/moments.hpp"

using namespace simic;

TEST_CASE("ew_moments: bias-corrected mean and variance equal the normalised weighted sums (float64 reference)") {
  const double a = 0.9;
  ew_moments m(a);
  CHECK(m.mean() == 0.0);
  CHECK(m.variance() == 0.0);
  double xs[12];
  for (int t = 0; t < 12; ++t) xs[t] = std::sin(0.7 * t) * 3.0 + 0.1 * t;
  for (int t = 0; t < 12; ++t) {
    m.add(xs[t]);
    // weights (1 - a) a^(t - i), normalised by their sum 1 - a^(t+1)
    double w = 0.0, s = 0.0, q = 0.0;
    for (int i = 0; i <= t; ++i) {
      const double wi = (1.0 - a) * std::pow(a, t - i);
      w += wi;
      s += wi * xs[i];
      q += wi * xs[i] * xs[i];
    }
    const double mean = s / w, var = q / w - mean * mean;
    CHECK(m.mean() == doctest::Approx(mean).epsilon(1e-12));
    CHECK(m.variance() == doctest::Approx(var).epsilon(1e-9));
    CHECK(m.spread() == doctest::Approx(std::sqrt(var)).epsilon(1e-9));
    CHECK(m.score(2.0, 0.5) == doctest::Approx((2.0 - mean) / std::sqrt(var + 0.25)).epsilon(1e-9));
  }
  CHECK(m.steps() == 12);
}

TEST_CASE("ew_moments: one value has its own mean and no spread; a constant keeps none") {
  ew_moments m(0.99);
  m.add(5.0);
  CHECK(m.mean() == doctest::Approx(5.0).epsilon(1e-12));
  CHECK(m.variance() == doctest::Approx(0.0));
  for (int i = 0; i < 100; ++i) m.add(5.0);
  CHECK(m.variance() >= 0.0);  // never negative from rounding
  CHECK(m.variance() < 1e-9);
}

TEST_CASE("ew_moments: bad momentum and bad states are refused; a refused load changes nothing") {
  CHECK_THROWS_WITH_AS(ew_moments(1.0), doctest::Contains("momentum"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ew_moments(0.0), doctest::Contains("(0, 1)"), std::invalid_argument);
  ew_moments m(0.5);
  m.add(1.0);
  const moments_state keep = m.state();
  moments_state bad = keep;
  bad.mean_raw = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(m.load(bad), doctest::Contains("mean_raw"), std::invalid_argument);
  bad = keep;
  bad.square_raw = -1.0;
  CHECK_THROWS_WITH_AS(m.load(bad), doctest::Contains("square_raw"), std::invalid_argument);
  bad = keep;
  bad.momentum_pow = 1.5;
  CHECK_THROWS_WITH_AS(m.load(bad), doctest::Contains("momentum_pow"), std::invalid_argument);
  bad = keep;
  bad.steps = 0;
  CHECK_THROWS_WITH_AS(m.load(bad), doctest::Contains("steps"), std::invalid_argument);
  CHECK(m.state() == keep);
  ew_moments n(0.5);
  n.load(keep);
  CHECK(n.mean() == m.mean());
}
