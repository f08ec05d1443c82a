#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "detect_support.hpp"
#include "simic/detect/gradient_shift.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals with_norm(double norm, double health = 1.0) {
  signals s;
  s.gradients = grads(norm, 1e-3, 0.5);
  s.gradients->health = health;
  return s;
}

}  // namespace

TEST_CASE("gradient_shift follows an independent float64 model on noisy norms with a step up and a step down") {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.3);
  std::vector<double> norms;
  for (int i = 0; i < 200; ++i) norms.push_back(0.6 * std::exp(noise(rng)));
  for (int i = 0; i < 40; ++i) norms.push_back(6.0 * std::exp(noise(rng)));   // x10: a shift up
  for (int i = 0; i < 120; ++i) norms.push_back(0.6 * std::exp(noise(rng)));  // back
  for (int i = 0; i < 40; ++i) norms.push_back(0.02 * std::exp(noise(rng)));  // /30: a shift down
  gradient_shift d;
  reference_shift ref{log_shift_options{}};
  bool was = false;
  int onsets = 0, clears = 0;
  std::vector<std::size_t> onset_at;
  for (std::size_t i = 0; i < norms.size(); ++i) {
    const bool holds = ref.step(norms[i]);
    const anomaly_report r = observe(d, with_norm(norms[i]));
    INFO("observation " << i);
    CHECK(d.up() == doctest::Approx(ref.up).epsilon(1e-9));
    CHECK(d.down() == doctest::Approx(ref.down).epsilon(1e-9));
    // onset and clear follow the condition (clear after 3 quiet observations)
    if (holds && !was) {
      REQUIRE(r.count(anomaly_kind::gradient_norm_drift) == 1);
      ++onsets;
      onset_at.push_back(i);
      const anomaly& a = r[0];
      // the figures the text compares: the shift score against its bound
      CHECK(a.value == doctest::Approx(ref.up >= ref.down ? ref.up : ref.down).epsilon(1e-9));
      CHECK(a.threshold == d.options().shift.bound);
      CHECK_FALSE(a.baseline.has_value());
      CHECK(a.detail.find(simic::detail::format("shift score %.6g > %.6g", a.value, a.threshold)) != std::string::npos);
      // and the norm that moved it, with the level before it
      CHECK(a.detail.find(simic::detail::format("%.6g", std::exp(ref.last_mean))) != std::string::npos);
    } else {
      CHECK_FALSE(r.has(anomaly_kind::gradient_norm_drift));
    }
    clears += static_cast<int>(r.clears().size());
    if (holds) was = true;
    if (!holds && was && r.clears().size() == 1) was = false;
  }
  // the healthy stretch is quiet; both shifts are found within a few steps
  REQUIRE(onsets >= 2);
  CHECK(onset_at[0] >= 200);
  CHECK(onset_at[0] <= 203);
  CHECK(norms.size() - 40 <= onset_at.back());
  CHECK(onset_at.back() <= norms.size() - 40 + 3);
  CHECK(clears >= 1);
}

TEST_CASE("gradient_shift: nothing is judged during warm-up; just below and just above the bound") {
  gradient_shift_options o;
  o.shift.warmup = 5;
  // A constant norm 1 during warm-up: mean 0, no variance, spread = floor.
  auto fresh = [&] {
    gradient_shift d(o);
    for (int i = 0; i < 5; ++i) CHECK(observe(d, with_norm(1.0)).empty());
    return d;
  };
  {
    gradient_shift d(o);
    for (int i = 0; i < 4; ++i) observe(d, with_norm(1.0));
    CHECK(observe(d, with_norm(1e6)).empty());  // the 5th is still warm-up, absorbed
  }
  // One step from a score of 0 crosses when z - slack > bound: z > 7.5, x > 0.75 (floor 0.1).
  const double z_bound = o.shift.slack + o.shift.bound;
  gradient_shift below = fresh();
  CHECK(observe(below, with_norm(std::exp(0.1 * (z_bound - 1e-6)))).empty());
  CHECK(below.up() == doctest::Approx(o.shift.bound - 1e-6).epsilon(1e-9));
  gradient_shift above = fresh();
  const anomaly_report r = observe(above, with_norm(std::exp(0.1 * (z_bound + 1e-6))));
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::gradient_norm_drift);
  CHECK(r[0].value == doctest::Approx(o.shift.bound + 1e-6).epsilon(1e-9));  // the score: z - slack
  CHECK(r[0].threshold == o.shift.bound);
  CHECK(r[0].detail.find("above") != std::string::npos);
  // downwards, symmetrically
  gradient_shift low = fresh();
  const anomaly_report rl = observe(low, with_norm(std::exp(-0.1 * (z_bound + 1e-6))));
  REQUIRE(rl.size() == 1);
  CHECK(rl[0].detail.find("below") != std::string::npos);
  CHECK(rl[0].value == doctest::Approx(o.shift.bound + 1e-6).epsilon(1e-9));
  CHECK(rl[0].threshold == o.shift.bound);
}

TEST_CASE("gradient_shift: one outlier is not a shift; a sustained small shift is") {
  gradient_shift d;  // a long steady history: each new norm weighs 1 % (momentum 0.99)
  for (int i = 0; i < 400; ++i) observe(d, with_norm(1.0));
  // z = 5 once: up = 3.5 < 6, then decays
  CHECK(observe(d, with_norm(std::exp(0.5))).empty());
  for (int i = 0; i < 3; ++i) CHECK(observe(d, with_norm(1.0)).empty());
  CHECK(d.up() == 0.0);
  // a lasting shift of x = 0.3 (z about 3 at first, less as it is absorbed): found after several steps
  int found_at = -1;
  for (int i = 0; i < 30 && found_at < 0; ++i)
    if (observe(d, with_norm(std::exp(0.3))).has(anomaly_kind::gradient_norm_drift)) found_at = i;
  CHECK(found_at >= 3);
  CHECK(found_at < 30);
}

TEST_CASE("gradient_shift: non-finite and zero norms are not absorbed") {
  gradient_shift d;
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(), 0.0, -1.0})
    CHECK(observe(d, with_norm(bad)).empty());
  CHECK(d.log_norm().steps() == 0);
  CHECK(observe(d, signals{}).empty());
}

TEST_CASE("gradient_shift: health more than health_drop below its running mean") {
  gradient_shift_options o;
  o.shift.warmup = 3;
  o.health_drop = 0.25;
  gradient_shift d(o);
  for (int i = 0; i < 3; ++i) observe(d, with_norm(1.0, 1.0));
  CHECK(observe(d, with_norm(1.0, 0.75)).empty());  // exactly 0.25 below: quiet
  gradient_shift e(o);
  for (int i = 0; i < 3; ++i) observe(e, with_norm(1.0, 1.0));
  const anomaly_report r = observe(e, with_norm(1.0, 0.7));
  REQUIRE(r.has(anomaly_kind::gradient_health_drift));
  CHECK(r[0].value == 0.7);
  CHECK(r[0].threshold == doctest::Approx(0.75));
  CHECK(*r[0].baseline == doctest::Approx(1.0));
}

TEST_CASE("gradient_shift: state round-trips; bad options and states are refused") {
  gradient_shift d;
  for (int i = 0; i < 40; ++i) observe(d, with_norm(0.5 + 0.01 * i));
  gradient_shift e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  for (int i = 0; i < 5; ++i) CHECK(observe(d, with_norm(9.0)) == observe(e, with_norm(9.0)));
  auto st = d.state();
  st.norm.up = -1.0;
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("up"), std::invalid_argument);
  st = d.state();
  st.norm_condition.active = 5;
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("active"), std::invalid_argument);
  auto bad = [](auto f) {
    gradient_shift_options o;
    f(o);
    return o;
  };
  CHECK_THROWS_WITH_AS(gradient_shift(bad([](auto& o) { o.shift.bound = 0.0; })), doctest::Contains("bound"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_shift(bad([](auto& o) { o.shift.slack = -1.0; })), doctest::Contains("slack"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_shift(bad([](auto& o) { o.shift.floor = 0.0; })), doctest::Contains("floor"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_shift(bad([](auto& o) { o.shift.warmup = 1; })), doctest::Contains("warmup"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_shift(bad([](auto& o) { o.shift.momentum = 1.0; })), doctest::Contains("momentum"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_shift(bad([](auto& o) { o.health_drop = 0.0; })), doctest::Contains("health_drop"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_shift(bad([](auto& o) { o.how.clear_after = 0; })), doctest::Contains("clear_after"), std::invalid_argument);
}
