#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "detect_support.hpp"
#include "simic/detect/value_trend.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals ev(double x, std::uint64_t episode = 50, std::uint64_t total = 100) {
  signals s;
  s.explained_variance = x;
  s.progress = training_progress(episode, total);
  return s;
}
}  // namespace

TEST_CASE("value_trend smooths EV and judges it after each batch (float64 reference)") {
  value_trend d;
  std::vector<double> xs;
  for (double x : {0.5, 0.6, -0.4, 0.7, 0.2, 0.8}) {
    const double before = xs.empty() ? 0.0 : weighted(xs, 0.9);
    xs.push_back(x);
    CHECK(observe(d, ev(x)).empty());
    CHECK(d.smoothed() == doctest::Approx(weighted(xs, 0.5)).epsilon(1e-12));
    CHECK(d.baseline() == doctest::Approx(weighted(xs, 0.9)).epsilon(1e-12));
    (void)before;
  }
}

TEST_CASE("value_trend: one very bad batch after a good critic is a collapse only if the smoothed EV crosses") {
  SUBCASE("-1.1 once after ~0: the smoothed EV is about -0.55: quiet") {
    value_trend d;
    for (int i = 0; i < 10; ++i) observe(d, ev(0.0));
    CHECK(observe(d, ev(-1.1)).empty());
  }
  SUBCASE("-40 once: below the floor at once") {
    value_trend d;
    for (int i = 0; i < 10; ++i) observe(d, ev(0.6));
    const anomaly_report r = observe(d, ev(-40.0));
    REQUIRE(r.has(anomaly_kind::value_collapse));
    CHECK(r[0].value == doctest::Approx(d.smoothed()));
    CHECK(r[0].threshold == -1.0);
    CHECK(r[0].detail.find("below the floor") != std::string::npos);
  }
}

TEST_CASE("value_trend floor: just above and just below, with a flat history (no trend)") {
  // A constant EV keeps fast = slow = EV, so only the floor decides.
  value_trend at;
  for (int i = 0; i < 5; ++i) CHECK(observe(at, ev(-1.0)).empty());  // at the floor: quiet (strictly below counts)
  value_trend below;
  anomaly_report r;
  for (int i = 0; i < 5 && r.empty(); ++i) r = observe(below, ev(test::below(-1.0)));
  CHECK(r.has(anomaly_kind::value_collapse));
}

TEST_CASE("value_trend fall: the smoothed EV more than `fall` below its slow baseline") {
  value_trend_options o;
  o.floor = -100.0;  // only the trend decides
  value_trend d(o);
  for (int i = 0; i < 40; ++i) observe(d, ev(0.9));
  // from 0.9, a batch at x gives fast = 0.5 * 0.9 + 0.5 x (bias gone after 40) and baseline 0.9:
  // fast < 0.9 - 1 needs x < -1.1
  value_trend e = d;
  CHECK(observe(d, ev(-1.1 + 1e-9)).empty());
  const anomaly_report r = observe(e, ev(-1.1 - 1e-9));
  REQUIRE(r.has(anomaly_kind::value_collapse));
  CHECK(r[0].threshold == doctest::Approx(0.9 - 1.0));
  CHECK(*r[0].baseline == doctest::Approx(0.9));
}

TEST_CASE("value_trend: warm-up, the first batch, absent and non-finite EV; progress is required") {
  value_trend d;
  CHECK(observe(d, ev(-50.0, 4, 100)).empty());  // 4 % < 5 %: warm-up
  CHECK(observe(d, ev(-50.0, 5, 100)).has(anomaly_kind::value_collapse));
  value_trend first;
  CHECK(observe(first, ev(-50.0)).empty());  // nothing to compare the first batch with
  CHECK(observe(first, signals{}).empty());
  CHECK(observe(first, ev(std::nan(""))).empty());
  signals s;
  s.explained_variance = 0.1;
  CHECK_THROWS_WITH_AS(first.validate(s), doctest::Contains("progress is required"), std::invalid_argument);
}

TEST_CASE("value_trend: state round-trips; bad options are refused") {
  value_trend d;
  for (int i = 0; i < 10; ++i) observe(d, ev(0.1 * i));
  value_trend e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  CHECK(observe(d, ev(-9.0)) == observe(e, ev(-9.0)));
  value_trend_options o;
  o.floor = 1.0;
  CHECK_THROWS_WITH_AS(value_trend{o}, doctest::Contains("floor"), std::invalid_argument);
  o = {};
  o.fall = 0.0;
  CHECK_THROWS_WITH_AS(value_trend{o}, doctest::Contains("fall"), std::invalid_argument);
  o = {};
  o.fast_momentum = 1.0;
  CHECK_THROWS_WITH_AS(value_trend{o}, doctest::Contains("momentum"), std::invalid_argument);
  o = {};
  o.warmup = 2.0;
  CHECK_THROWS_WITH_AS(value_trend{o}, doctest::Contains("warmup"), std::invalid_argument);
}
