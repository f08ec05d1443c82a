#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <vector>

#include "simic/core/ema.hpp"

using namespace simic;

namespace {
// Closed form of the EMA after the inputs xs (zero start), by direct summation.
double closed_form_raw(const std::vector<double>& xs, double m) {
  const std::size_t t = xs.size();
  double s = 0.0;
  for (std::size_t i = 0; i < t; ++i) s += (1.0 - m) * std::pow(m, static_cast<double>(t - 1 - i)) * xs[i];
  return s;
}
}  // namespace

TEST_CASE("bias-corrected EMA equals its closed form over the first updates") {
  const double m = 0.9;
  ema<> e(m);
  std::vector<double> xs;
  const double inputs[] = {3.0, -1.0, 4.0, 1.5, 9.0, 2.6, 5.0};
  for (double x : inputs) {
    e.update(x);
    xs.push_back(x);
    const double expected = closed_form_raw(xs, m) / (1.0 - std::pow(m, static_cast<double>(xs.size())));
    CHECK(e.value() == doctest::Approx(expected).epsilon(1e-13));
  }
  CHECK(e.steps() == 7);
}

TEST_CASE("the first corrected estimate is the first value; uncorrected is (1-m) of it") {
  ema<> c(0.99);
  c.update(2.0);
  CHECK(c.value() == doctest::Approx(2.0).epsilon(1e-15));
  ema<uncorrected> u(0.99);
  u.update(2.0);
  CHECK(u.value() == doctest::Approx(0.02).epsilon(1e-15));
  u.update(4.0);
  CHECK(u.value() == doctest::Approx(0.99 * 0.02 + 0.01 * 4.0).epsilon(1e-15));
  CHECK(u.value() == doctest::Approx(closed_form_raw({2.0, 4.0}, 0.99)).epsilon(1e-15));
}

TEST_CASE("drift: 0 on the first update, 0 on a constant series, hand value on a step") {
  ema<> e;  // momentum 0.99, eps 1e-8
  CHECK(e.drift(5.0) == 0.0);
  const ema_update first = e.update(2.0);
  CHECK(first.accepted);
  CHECK(first.drift == 0.0);
  for (int i = 0; i < 200; ++i) CHECK(e.update(2.0).drift < 1e-12);
  // step 2 -> 3: |3 - 2| / (|2| + 1e-8)
  const ema_update step = e.update(3.0);
  CHECK(step.drift == doctest::Approx(1.0 / (2.0 + 1e-8)).epsilon(1e-10));
}

TEST_CASE("uncorrected drift shows the reference's start-up bias") {
  ema<uncorrected> u;  // zero start, no correction
  u.update(2.0);
  // the estimate is 0.02 after one update: |2 - 0.02| / (0.02 + 1e-8)
  CHECK(u.update(2.0).drift == doctest::Approx(1.98 / (0.02 + 1e-8)).epsilon(1e-12));
}

TEST_CASE("NaN and Inf are refused and leave the state usable") {
  ema<> e;
  e.update(1.0);
  e.update(3.0);
  const ema_state before = e.state();
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    const ema_update u = e.update(bad);
    CHECK_FALSE(u.accepted);
    CHECK(u.drift == 0.0);
    CHECK(e.state() == before);
  }
  CHECK(std::isfinite(e.value()));
  CHECK(e.update(2.0).accepted);
  CHECK(e.steps() == 3);
}

TEST_CASE("momentum outside (0, 1) and negative epsilon are rejected") {
  for (double m : {0.0, 1.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()})
    CHECK_THROWS_WITH_AS(ema<>{m}, doctest::Contains("momentum"), std::invalid_argument);
  CHECK_NOTHROW(ema<>(1e-9));
  CHECK_NOTHROW(ema<>(1.0 - 1e-12));
  CHECK_THROWS_WITH_AS(ema<>(0.9, -1e-12), doctest::Contains("epsilon"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ema<>(0.9, std::numeric_limits<double>::infinity()), doctest::Contains("epsilon"),
                       std::invalid_argument);
  CHECK_NOTHROW(ema<>(0.9, 0.0));
}

TEST_CASE("state saves and loads exactly: the resumed EMA continues bit for bit") {
  ema<> a(0.97);
  for (int i = 0; i < 50; ++i) a.update(std::sin(i) * 10.0 + 11.0);
  ema<> b(0.97);
  b.load(a.state());
  for (int i = 50; i < 120; ++i) {
    const double x = std::sin(i) * 10.0 + 11.0;
    const ema_update ua = a.update(x);
    const ema_update ub = b.update(x);
    CHECK(ua.drift == ub.drift);
    CHECK(a.value() == b.value());
  }
  CHECK(a.state() == b.state());
}

TEST_CASE("loading a bad state throws and keeps the old one") {
  ema<> e;
  e.update(1.0);
  const ema_state keep = e.state();
  ema_state bad = keep;
  bad.raw = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(e.load(bad), doctest::Contains("raw"), std::invalid_argument);
  bad = keep;
  bad.momentum_pow = 1.5;
  CHECK_THROWS_WITH_AS(e.load(bad), doctest::Contains("momentum_pow"), std::invalid_argument);
  CHECK(e.state() == keep);
}

TEST_CASE("a long run stays exact: m^t underflows to 0 without harm") {
  ema<> e(0.5);
  for (int i = 0; i < 2000; ++i) e.update(4.0);
  CHECK(e.state().momentum_pow == 0.0);
  CHECK(e.value() == doctest::Approx(4.0).epsilon(1e-15));
  ema<> f(0.5);
  CHECK_NOTHROW(f.load(e.state()));
}

TEST_CASE("EMA at the edge of float64: DBL_MAX inputs keep the state and the estimate finite") {
  const double huge = std::numeric_limits<double>::max();
  for (double m : {0.1, 0.5, 0.9, 0.99, 0.999}) {
    INFO("momentum " << m);
    ema<> corrected(m);
    ema<uncorrected> raw(m);
    std::size_t nonfinite = 0, wrong = 0;
    long double weight = 1.0L;  // m^t, in long double: the reference
    for (int i = 0; i < 3000; ++i) {
      CHECK(corrected.update(huge).accepted);
      raw.update(huge);
      weight *= m;
      if (!std::isfinite(corrected.state().raw) || !std::isfinite(corrected.value()) || !std::isfinite(raw.value()))
        ++nonfinite;
      // A weighted mean of DBL_MAX is DBL_MAX (held there where the bias
      // correction's division rounds past it); the raw EMA is DBL_MAX (1 - m^t).
      if (corrected.value() > huge || corrected.value() < huge * (1.0 - 1e-13)) ++wrong;
      const long double expected_raw = static_cast<long double>(huge) * (1.0L - weight);
      if (std::fabs(raw.value() - expected_raw) > 1e-12L * expected_raw) ++wrong;
    }
    CHECK(nonfinite == 0);
    CHECK(wrong == 0);
    // A normal value afterwards: finite drift, by hand |1 - DBL_MAX| / (DBL_MAX + 1e-8) = 1 (to 1e-13).
    CHECK(corrected.drift(1.0) == doctest::Approx(1.0).epsilon(1e-13));
  }
}

TEST_CASE("drift where |x - estimate| overflows, and 0 / 0, are finite") {
  const double huge = std::numeric_limits<double>::max();
  ema<> e(0.5);
  e.update(-huge);
  CHECK(e.value() == -huge);
  // |DBL_MAX - (-DBL_MAX)| / (DBL_MAX + 1e-8) = 2 by hand; x - e itself is past DBL_MAX.
  CHECK(e.drift(huge) == 2.0);
  CHECK(e.drift(huge / 2) == 1.5);  // 1.5 DBL_MAX / DBL_MAX, also past DBL_MAX before dividing
  CHECK(e.drift(0.0) == 1.0);       // no overflow: the plain path
  const ema_update u = e.update(huge);
  CHECK(u.accepted);
  CHECK(u.drift == 2.0);
  CHECK(std::isfinite(e.value()));
  // epsilon 0 and an estimate of 0: a steady 0 has drift 0, not 0 / 0; a move away is infinite.
  ema<> zero(0.9, 0.0);
  zero.update(0.0);
  CHECK(zero.drift(0.0) == 0.0);
  CHECK(zero.update(0.0).drift == 0.0);
  CHECK(zero.drift(1e-300) == std::numeric_limits<double>::infinity());
}
