#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "detect_support.hpp"
#include "simic/detect/learning_stall.hpp"

using namespace simic;
using namespace simic::test;

namespace {

signals at(std::uint64_t step, std::uint64_t total, std::optional<double> loss, std::optional<double> perf = {}) {
  signals s;
  s.loss = loss;
  s.performance = perf;
  s.progress = training_progress(step, total);
  return s;
}

// A supervised loss by hand: from 2.3 (chance over 10 classes) falling to
// about 0.3, with minibatch noise.
std::vector<double> healthy_loss(std::uint64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.08);
  std::vector<double> v;
  for (std::uint64_t i = 0; i < n; ++i)
    v.push_back(std::max(0.01, 0.3 + 2.0 * std::exp(-static_cast<double>(i) / 150.0) + noise(rng)));
  return v;
}

}  // namespace

TEST_CASE("learning_stall: healthy losses over 5 seeds raise nothing; a loss back at its start holds it") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    learning_stall d;
    const auto loss = healthy_loss(3000, seed);
    for (std::uint64_t i = 0; i < loss.size(); ++i) {
      INFO("seed " << seed << " step " << i);
      CHECK(observe(d, at(i + 1, 3000, loss[i])).empty());
    }
  }
  // the same run, whose loss returns to chance at step 1500 (every unit dead) and stays
  learning_stall d;
  const auto loss = healthy_loss(3000, 1);
  std::vector<std::uint64_t> onsets, clears;
  for (std::uint64_t i = 0; i < loss.size(); ++i) {
    const double l = i < 1500 ? loss[i] : 2.3;
    const anomaly_report r = observe(d, at(i + 1, 3000, l));
    if (r.has(anomaly_kind::learning_stall)) onsets.push_back(i);
    if (!r.clears().empty()) clears.push_back(i);
  }
  REQUIRE(onsets.size() == 1);  // once, then held to the end
  CHECK(clears.empty());
  CHECK(onsets[0] >= 1500);
  CHECK(onsets[0] < 1500 + 300);  // within 10 % of the run
}

TEST_CASE("learning_stall: one loss x1e6 is absorbed at its cap and holds no stall; the cap by hand") {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    learning_stall d;
    auto loss = healthy_loss(3000, seed);
    loss[1500] *= 1e6;  // a step the guard skips: its loss still reaches the detectors
    for (std::uint64_t i = 0; i < loss.size(); ++i) {
      INFO("seed " << seed << " step " << i);
      CHECK_FALSE(observe(d, at(i + 1, 3000, loss[i])).has(anomaly_kind::learning_stall));
    }
  }
  // the cap by hand: start_values 2, momentum 0.5; start 4, best so far 1 (gain 3): cap = 4 + max(4, 3) = 8
  learning_stall_options o;
  o.start_values = 2;
  o.loss_momentum = 0.5;
  o.early = 0.0;
  const std::vector<double> seq{4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
  for (const double spike : {7.9, 8.0, 1e6}) {
    CAPTURE(spike);
    learning_stall d(o);
    for (std::size_t i = 0; i < seq.size(); ++i) observe(d, at(i + 1, 100, seq[i]));
    std::vector<double> seen = seq;
    seen.push_back(std::min(spike, 8.0));  // what the level absorbs
    const double level = weighted(seen, 0.5);
    std::vector<double> before = seq;
    double best = INFINITY;
    for (std::size_t n = 2; n <= before.size(); ++n)
      best = std::min(best, weighted(std::vector<double>(before.begin(), before.begin() + n), 0.5));
    const double bound = best + std::max(0.3 * (4.0 - best), 0.1 * best);
    const anomaly_report r = observe(d, at(9, 100, spike));
    CHECK(r.has(anomaly_kind::learning_stall) == (level >= bound));
    if (r.has(anomaly_kind::learning_stall)) CHECK(r[0].value == doctest::Approx(level).epsilon(1e-12));
  }
}

TEST_CASE("learning_stall: the rule by hand, below, at and above the bound; figures as the text states") {
  // start_values 2, loss momentum 0.5: every figure checked against a float64 model of the header
  learning_stall_options o;
  o.start_values = 2;
  o.loss_momentum = 0.5;
  o.early = 0.0;
  o.how.clear_after = 1;
  const std::vector<double> seq{4.0, 4.0, 2.0, 1.0, 1.0, 1.0};
  std::vector<double> seen;
  double best = INFINITY;
  for (double x : seq) {
    seen.push_back(x);
    if (seen.size() >= 2) best = std::min(best, weighted(seen, 0.5));
  }
  const double start = 4.0, bound = best + std::max(0.3 * (start - best), 0.1 * best);
  // a next value whose level lands just below, at and just above the bound
  auto next_for = [&](double level) {  // weighted(seen + x) == level, solved for x
    double w = 0.0, s = 0.0;
    for (std::size_t i = 0; i < seen.size(); ++i) {
      const double wi = std::pow(0.5, static_cast<double>(seen.size() - i));
      w += wi;
      s += wi * seen[i];
    }
    return (level * (w + 1.0) - s);
  };
  for (int k = -1; k <= 1; ++k) {
    learning_stall d(o);
    for (std::size_t i = 0; i < seq.size(); ++i) CHECK(observe(d, at(i + 1, 100, seq[i])).empty());
    const double target = k < 0 ? bound * (1 - 1e-9) : k == 0 ? bound : bound * (1 + 1e-9);
    const anomaly_report r = observe(d, at(7, 100, next_for(target)));
    INFO("k " << k);
    if (k < 0) {
      CHECK(r.empty());
      continue;
    }
    // at the bound the rule holds (>=): the float64 level may land a rounding below it
    if (k == 0 && r.empty()) continue;
    REQUIRE(r.size() == 1);
    CHECK(r[0].kind == anomaly_kind::learning_stall);
    CHECK(r[0].severity == severity::warning);
    CHECK(r[0].value == doctest::Approx(target).epsilon(1e-9));
    CHECK(r[0].threshold == doctest::Approx(bound).epsilon(1e-12));
    CHECK(*r[0].baseline == doctest::Approx(best).epsilon(1e-12));
    CHECK(r[0].detail.find(simic::detail::format("loss level %.6g >= %.6g", r[0].value, r[0].threshold)) !=
          std::string::npos);
  }
}

TEST_CASE("learning_stall: performance at chance (higher is better), a loss that never fell, early training") {
  learning_stall d;
  // accuracy per epoch: 0.90, rising to 0.98, then at chance
  const std::vector<double> acc{0.90, 0.95, 0.97, 0.98, 0.98, 0.10, 0.10, 0.10};
  std::vector<double> negated;
  int onsets = 0;
  for (std::size_t e = 0; e < acc.size(); ++e) {
    negated.push_back(-acc[e]);
    const anomaly_report r = observe(d, at((e + 1) * 100, 800, std::nullopt, acc[e]));
    CHECK(r.clears().empty());
    if (r.has(anomaly_kind::learning_stall)) {
      ++onsets;
      CHECK(e == 5);  // the first figure at chance
      CHECK(r[0].value == doctest::Approx(-weighted(negated, 0.5)).epsilon(1e-12));  // the level, in accuracy
      // the bound: best - max(0.3 x gain, 0.1 x |best|), the best level by hand
      double best = 0.0;
      for (std::size_t k = 1; k <= 5; ++k)
        best = std::max(best, -weighted(std::vector<double>(negated.begin(), negated.begin() + k), 0.5));
      CHECK(*r[0].baseline == doctest::Approx(best).epsilon(1e-12));
      CHECK(r[0].threshold == doctest::Approx(best - std::max(0.3 * (best - 0.90), 0.1 * best)).epsilon(1e-12));
      CHECK(r[0].detail.find("performance level") != std::string::npos);
      CHECK(r[0].detail.find("<=") != std::string::npos);
    }
  }
  CHECK(onsets == 1);  // and held to the end
  // a healthy dip of 2 points is no stall (less than 10 % of the best)
  learning_stall dip;
  for (double a : {0.90, 0.95, 0.97, 0.98, 0.96, 0.95, 0.97}) CHECK(observe(dip, at(500, 800, std::nullopt, a)).empty());
  // a loss that never fell (PPO's, a GAN's) arms nothing, however noisy
  learning_stall flat;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0.0, 0.3);
  for (std::uint64_t i = 1; i <= 1000; ++i) CHECK(observe(flat, at(i, 1000, 1.0 + noise(rng))).empty());
  // early training is not judged, though it builds the start
  learning_stall early;
  for (std::uint64_t i = 1; i <= 50; ++i) observe(early, at(i, 1000, i <= 20 ? 3.0 : 0.5));
  CHECK(observe(early, at(60, 1000, 3.0)).empty());  // 6 %: early
  anomaly_report late;
  for (std::uint64_t i = 100; i <= 400 && !late.has(anomaly_kind::learning_stall); ++i)
    late = observe(early, at(i, 1000, 3.0));
  CHECK(late.has(anomaly_kind::learning_stall));
  // NaN and inf are numerical_stability's: not absorbed
  learning_stall n;
  observe(n, at(1, 10, std::nan("")));
  CHECK(n.state().loss.start_count == 0);
}

TEST_CASE("learning_stall: bad options name the argument and range; state round-trips; bad state changes nothing") {
  auto message = [](learning_stall_options o) {
    try {
      learning_stall d(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message({.give_back = 0.0}).find("give_back") != std::string::npos);
  CHECK(message({.give_back = 1.5}).find("(0, 1]") != std::string::npos);
  CHECK(message({.min_gain = 1.0}).find("min_gain") != std::string::npos);
  CHECK(message({.min_drop = -1.0}).find("min_drop") != std::string::npos);
  CHECK(message({.start_values = 0}).find("start_values") != std::string::npos);
  CHECK(message({.loss_momentum = 1.0}).find("loss_momentum") != std::string::npos);
  CHECK(message({.performance_momentum = 0.0}).find("performance_momentum") != std::string::npos);
  CHECK(message({.early = -0.1}).find("early") != std::string::npos);
  CHECK(message({}).empty());
  learning_stall d;
  const auto loss = healthy_loss(500, 3);
  for (std::uint64_t i = 0; i < loss.size(); ++i) observe(d, at(i + 1, 1000, loss[i]));
  learning_stall e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  auto bad = d.state();
  bad.loss.start_count = 99;
  const auto before = e.state();
  CHECK_THROWS_WITH_AS(e.load(bad), doctest::Contains("start_count"), std::invalid_argument);
  CHECK(e.state() == before);
}
