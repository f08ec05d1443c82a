#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

#include "detect_support.hpp"
#include "simic/detect/kl_divergence.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals kl(double v) {
  signals s;
  s.approx_kl = v;
  return s;
}
}  // namespace

TEST_CASE("kl_divergence shift rule: a fiftyfold KL under the fixed bound is a kl_spike; the settled noise is not") {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0.0, 0.8);  // healthy KL spans orders of magnitude
  kl_divergence d;
  for (int i = 0; i < 400; ++i) CHECK(observe(d, kl(1e-3 * std::exp(noise(rng)))).empty());
  // 0.05 is far under kl_divergence's 0.1, and some 50x the running level
  anomaly_report r;
  int steps = 0;
  while (r.empty() && steps < 8) {
    r = observe(d, kl(0.05));
    ++steps;
  }
  REQUIRE(r.size() == 1);
  CHECK(steps <= 2);
  CHECK(r[0].kind == anomaly_kind::kl_spike);
  CHECK(r[0].severity == severity::warning);
  CHECK(r[0].value == 0.05);
  REQUIRE(r[0].baseline.has_value());
  CHECK(*r[0].baseline < 0.003);
  CHECK(r[0].threshold > *r[0].baseline);  // the one-step bound; this shift took more than one step
  CHECK(r[0].detail.find("far above its running level") != std::string::npos);
  CHECK(observe(d, kl(0.05)).empty());  // held: once
}

TEST_CASE("kl_divergence shift rule: only upward shifts; zero, negative and non-finite KL are not absorbed") {
  kl_divergence d;
  for (int i = 0; i < 100; ++i) observe(d, kl(1e-2));
  for (int i = 0; i < 50; ++i) CHECK(observe(d, kl(1e-6)).empty());  // far below: smaller steps, no fault
  const auto steps = d.shift()->log_value().steps();
  for (double bad : {0.0, -1e-3, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    CHECK_FALSE(observe(d, kl(bad)).has(anomaly_kind::kl_spike));  // (inf is kl_extreme, by the fixed bound)
  CHECK(d.shift()->log_value().steps() == steps);
  CHECK(observe(d, signals{}).empty());
}

TEST_CASE("kl_divergence shift rule: just below and just above one step's bound, from a settled constant") {
  log_shift_options o;
  o.warmup = 4;
  auto fresh = [&] {
    kl_divergence d(0.1, 0.5, {}, o);
    for (int i = 0; i < 4; ++i) observe(d, kl(1e-3));
    return d;
  };
  // constant history: spread = floor 0.1; one step crosses when z > slack + bound = 7.5
  kl_divergence below = fresh();
  CHECK(observe(below, kl(1e-3 * std::exp(0.1 * (7.5 - 1e-6)))).empty());
  kl_divergence above = fresh();
  CHECK(observe(above, kl(1e-3 * std::exp(0.1 * (7.5 + 1e-6)))).has(anomaly_kind::kl_spike));
}

TEST_CASE("kl_divergence shift rule: state round-trips; bad options are refused") {
  kl_divergence d;
  for (int i = 0; i < 30; ++i) observe(d, kl(1e-3 * (1 + i % 3)));
  kl_divergence e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  CHECK(observe(d, kl(0.5)) == observe(e, kl(0.5)));
  auto st = d.state();
  st.shift.up = std::nan("");
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("up"), std::invalid_argument);
  log_shift_options o;
  o.bound = -1.0;
  CHECK_THROWS_WITH_AS(kl_divergence(0.1, 0.5, {}, o), doctest::Contains("simic::kl_divergence: bound"),
                       std::invalid_argument);
  // without the rule (the reference preset) nothing is modelled
  kl_divergence plain(0.1, 0.5, reporting::every_check(), std::nullopt);
  CHECK(plain.shift() == nullptr);
  for (int i = 0; i < 100; ++i) observe(plain, kl(1e-4));
  CHECK(observe(plain, kl(0.05)).empty());
  CHECK(plain.state().shift == log_shift_state{});
}
