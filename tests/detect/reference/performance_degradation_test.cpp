#include <doctest/doctest.h>

#include <limits>

#include "detect_support.hpp"
#include "simic/detect/reference/performance_degradation.hpp"

using namespace simic;
using namespace simic::test;
using simic::reference::performance_degradation;

namespace {
signals perf(double value, std::uint64_t episode, std::uint64_t total = 100) {
  signals s;
  s.performance = value;
  s.progress = training_progress(episode, total);
  return s;
}
// A detector whose window holds `n` copies of 100 (taken after warm-up).
performance_degradation filled(std::uint32_t n = 10) {
  performance_degradation d;
  for (std::uint32_t i = 0; i < n; ++i) observe(d, perf(100.0, 50));
  return d;
}
}  // namespace

TEST_CASE("a drop of 10 percent or more of the rolling mean is reported") {
  {
    auto d = filled();
    CHECK(observe(d, perf(90.0001, 60)).empty());  // 9.9999 %: just below
  }
  {
    auto d = filled();
    CHECK(observe(d, perf(90.0, 60)).has(anomaly_kind::performance_degradation));  // exactly 10 %
  }
  {
    auto d = filled();
    const auto r = observe(d, perf(89.9999, 60));  // just above
    REQUIRE(r.size() == 1);
    CHECK(r[0].detail.find("rolling mean 100") != std::string::npos);
  }
  {
    auto d = filled();
    CHECK(observe(d, perf(150.0, 60)).empty());  // improvement
  }
}

TEST_CASE("the rolling mean covers the last `window` values, computed by hand") {
  performance_degradation d({.drop = 0.1, .warmup = 0.0, .window = 3});
  for (double v : {10.0, 20.0, 30.0, 40.0}) observe(d, perf(v, 50));
  CHECK(d.filled() == 3);
  CHECK(d.rolling_mean() == doctest::Approx((20.0 + 30.0 + 40.0) / 3.0));
  // mean 30: 27 is exactly 10 % below
  CHECK(observe(d, perf(27.0, 50)).size() == 1);
}

TEST_CASE("silent during warm-up (below 10 percent of training), active at 10 percent") {
  performance_degradation d;
  for (int i = 0; i < 5; ++i) observe(d, perf(100.0, 1));
  CHECK(observe(d, perf(10.0, 9)).empty());  // 9 %: warm-up
  performance_degradation e;
  for (int i = 0; i < 5; ++i) observe(e, perf(100.0, 1));
  CHECK(observe(e, perf(10.0, 10)).has(anomaly_kind::performance_degradation));
}

TEST_CASE("negative and zero means; the first value has nothing to compare with") {
  performance_degradation d({.drop = 0.1, .warmup = 0.0, .window = 2});
  CHECK(observe(d, perf(-100.0, 50)).empty());
  CHECK(observe(d, perf(-100.0, 50)).empty());
  CHECK(observe(d, perf(-111.0, 50)).has(anomaly_kind::performance_degradation));  // 11 % worse
  performance_degradation z({.drop = 0.1, .warmup = 0.0, .window = 2});
  observe(z, perf(0.0, 50));
  CHECK(observe(z, perf(0.0, 50)).empty());  // no drop from 0 to 0
}

TEST_CASE("NaN performance is skipped, not stored; progress is required") {
  performance_degradation d;
  observe(d, perf(std::numeric_limits<double>::quiet_NaN(), 50));
  CHECK(d.filled() == 0);
  signals s;
  s.performance = 1.0;
  CHECK_THROWS_WITH_AS(d.validate(s), doctest::Contains("progress is required"), std::invalid_argument);
}

TEST_CASE("state round trip, a wrapped ring reloads to the same means") {
  performance_degradation a({.drop = 0.1, .warmup = 0.0, .window = 4});
  for (int i = 0; i < 11; ++i) observe(a, perf(100.0 + i * 0.37, 50));
  performance_degradation b({.drop = 0.1, .warmup = 0.0, .window = 4});
  b.load(a.state());
  CHECK(a.state() == b.state());
  CHECK(a.rolling_mean() == b.rolling_mean());
  for (double v : {101.0, 80.0, 99.5, 70.0}) CHECK(observe(a, perf(v, 60)) == observe(b, perf(v, 60)));
  performance_degradation::state_type too_big{{1, 2, 3, 4, 5}};
  CHECK_THROWS_WITH_AS(b.load(too_big), doctest::Contains("window"), std::invalid_argument);
  CHECK(b.state() == a.state());
}

TEST_CASE("bad parameters are rejected") {
  CHECK_THROWS_WITH_AS(performance_degradation({.drop = 0.0}), doctest::Contains("drop"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(performance_degradation({.drop = 0.1, .warmup = 1.5}), doctest::Contains("warmup"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(performance_degradation({.drop = 0.1, .warmup = 0.1, .window = 0}), doctest::Contains("window"),
                       std::invalid_argument);
}
