#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "detect_support.hpp"
#include "simic/detect/relative_gradient_bounds.hpp"

using namespace simic;
using namespace simic::test;

namespace {

signals with(double min_norm, double max_norm) {
  signals s;
  s.gradients = grads(1.0, min_norm, max_norm);
  return s;
}

// The running level by its definition (detect_support.hpp's weighted), of
// log values absorbed clipped as the header says.
struct reference_levels {
  double m, up, down;
  std::uint32_t warmup;
  std::vector<double> hi, lo;
  double high_level() const { return std::exp(weighted(hi, m)); }
  double low_level() const { return std::exp(weighted(lo, m)); }
  void absorb(double min_norm, double max_norm) {
    auto add = [&](std::vector<double>& v, double norm) {
      const double x = norm > 0.0 ? std::log(norm) : -745.0;
      if (v.size() < warmup) {
        if (norm > 0.0) v.push_back(x);
        return;
      }
      const double mean = weighted(v, m);
      v.push_back(std::clamp(x, mean - std::log(down), mean + std::log(up)));
    };
    add(hi, max_norm);
    add(lo, min_norm);
  }
};

}  // namespace

TEST_CASE("relative_gradient_bounds: a GAN-sized healthy norm near 10 is no alarm; 100x its level is") {
  relative_gradient_bounds d;
  const auto& o = d.options();
  reference_levels ref{o.momentum, o.exploding, o.vanishing, o.warmup, {}, {}};
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> noise(0.0, 0.3);
  for (int i = 0; i < 300; ++i) {  // largest norms near 10 (the fixed bound's false critical), smallest near 1e-3
    const double lo = 1e-3 * noise(rng), hi = 10.0 * noise(rng);
    INFO("check " << i);
    CHECK(observe(d, with(lo, hi)).empty());
    ref.absorb(lo, hi);
    CHECK(d.largest_level() == doctest::Approx(ref.high_level()).epsilon(1e-9));
    CHECK(d.smallest_level() == doctest::Approx(ref.low_level()).epsilon(1e-9));
  }
  const double bound = d.largest_level() * 100.0;  // the detector's own figure, checked against the reference above
  CHECK(bound == doctest::Approx(ref.high_level() * 100.0).epsilon(1e-9));
  // below, at: nothing; above: critical, its figures the ones its text states
  for (double v : {below(bound), bound}) {
    relative_gradient_bounds copy = d;
    CHECK(observe(copy, with(1e-3, v)).empty());
  }
  relative_gradient_bounds above_it = d;
  const anomaly_report r = observe(above_it, with(1e-3, above(bound)));
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::gradient_exploding);
  CHECK(r[0].severity == severity::critical);
  CHECK(r[0].value == above(bound));
  CHECK(r[0].threshold == doctest::Approx(bound).epsilon(1e-12));
  CHECK(*r[0].baseline == doctest::Approx(ref.high_level()).epsilon(1e-12));
  CHECK(r[0].detail.find(simic::detail::format("%.6g > %.6g", r[0].value, r[0].threshold)) != std::string::npos);
  CHECK(r[0].detail.find(simic::detail::format("running level %.6g", *r[0].baseline)) != std::string::npos);
}

TEST_CASE("relative_gradient_bounds: vanishing below level / 1e4, a dead layer's zero included; clear after") {
  relative_gradient_bounds d({.how = {.clear_after = 2}});
  for (int i = 0; i < 50; ++i) CHECK(observe(d, with(1e-2, 1.0)).empty());
  const double bound = d.smallest_level() / 1e4;
  CHECK(d.smallest_level() == doctest::Approx(1e-2).epsilon(1e-12));
  {
    relative_gradient_bounds at = d;
    CHECK(observe(at, with(bound, 1.0)).empty());
  }
  const anomaly_report r = observe(d, with(0.0, 1.0));  // a parameter whose gradient is exactly zero
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::gradient_vanishing);
  CHECK(r[0].value == 0.0);
  CHECK(r[0].threshold == doctest::Approx(bound).epsilon(1e-12));
  // the condition holds while it lasts (no second onset), and the level does not sink with it at once
  for (int i = 0; i < 5; ++i) CHECK_FALSE(observe(d, with(0.0, 1.0)).has(anomaly_kind::gradient_vanishing));
  CHECK(d.smallest_level() > 1e-2 / 1e4);
  CHECK(observe(d, with(1e-2, 1.0)).clears().empty());
  CHECK(observe(d, with(1e-2, 1.0)).clears().size() == 1);
}

TEST_CASE("relative_gradient_bounds: warm-up and early training only build the levels") {
  relative_gradient_bounds d({.warmup = 5});
  for (int i = 0; i < 4; ++i) CHECK(observe(d, with(1.0, 1.0)).empty());
  CHECK(observe(d, with(1.0, 1e6)).empty());  // the 5th value is still warm-up
  relative_gradient_bounds e({.warmup = 2, .early = 0.1});
  signals s = with(1.0, 1.0);
  for (std::uint64_t step = 1; step <= 9; ++step) {  // 1..9 of 100: early, not seen
    s.progress = training_progress(step, 100);
    s.gradients->max_param_norm = step == 9 ? 1e9 : 1.0;
    CHECK(observe(e, s).empty());
  }
  CHECK(e.state().largest.steps == 0);
  for (std::uint64_t step = 10; step <= 12; ++step) {  // 10 % reached: seen
    s.progress = training_progress(step, 100);
    s.gradients->max_param_norm = 1.0;
    CHECK(observe(e, s).empty());
  }
  s.progress = training_progress(13, 100);
  s.gradients->max_param_norm = 1e3;
  CHECK(observe(e, s).has(anomaly_kind::gradient_exploding));
}

TEST_CASE("relative_gradient_bounds: absent, empty and non-finite gradients are not absorbed") {
  relative_gradient_bounds d;
  signals s;
  CHECK(observe(d, s).empty());
  s.gradients = grads(0.0, 0.0, 0.0, 0);
  CHECK(observe(d, s).empty());
  auto g = grads(1.0, 1.0, 1.0);
  g.nan_count = 1;
  s.gradients = g;
  CHECK(observe(d, s).empty());
  CHECK(d.state().largest.steps == 0);
}

TEST_CASE("relative_gradient_bounds: bad options name the argument and range; state round-trips, bad state is refused") {
  using o = relative_gradient_bounds_options;
  auto message = [](const o& opts) {
    try {
      relative_gradient_bounds d(opts);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message({.exploding = 1.0}).find("exploding") != std::string::npos);
  CHECK(message({.exploding = 1.0}).find("(1, inf)") != std::string::npos);
  CHECK(message({.vanishing = 0.5}).find("vanishing") != std::string::npos);
  CHECK(message({.momentum = 1.0}).find("momentum") != std::string::npos);
  CHECK(message({.warmup = 0}).find("warmup") != std::string::npos);
  CHECK(message({.early = 1.0}).find("[0, 1)") != std::string::npos);
  CHECK(message({.exploding = std::nan("")}).find("exploding") != std::string::npos);
  CHECK(message({}).empty());

  relative_gradient_bounds d;
  for (int i = 0; i < 40; ++i) observe(d, with(1e-3 * (1 + i % 3), 2.0 + i % 5));
  relative_gradient_bounds e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  CHECK(observe(e, with(1e-3, 1e4)) == observe(d, with(1e-3, 1e4)));
  auto bad = d.state();
  bad.smallest.steps = 0;  // inconsistent with its weights
  const auto before = e.state();
  CHECK_THROWS_AS(e.load(bad), std::invalid_argument);
  CHECK(e.state() == before);
}
