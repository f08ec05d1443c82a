#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "detect_support.hpp"
#include "simic/detect/performance_drop.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals drop_perf(double x, std::uint64_t episode = 50, std::uint64_t total = 100) {
  signals s;
  s.performance = x;
  s.progress = training_progress(episode, total);
  return s;
}
signals reward(double rate, std::uint64_t episode = 50, std::uint64_t total = 100) {
  signals s;
  s.reward_rate = rate;
  s.progress = training_progress(episode, total);
  return s;
}
// Feeds figures in order; returns the indices at which an anomaly was reported.
std::vector<std::size_t> feed(performance_drop& d, const std::vector<double>& xs) {
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (observe(d, drop_perf(xs[i])).has(anomaly_kind::performance_degradation)) at.push_back(i);
  return at;
}
}  // namespace

TEST_CASE("Mann-Kendall score by hand: monotone, ties, flat, too short") {
  double scratch[16];
  const double down[10] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
  // S = -45, var = 10*9*25/18 = 125, z = (-45 + 1) / sqrt(125)
  CHECK(mann_kendall_score(down, 10, scratch) == doctest::Approx(-44.0 / std::sqrt(125.0)).epsilon(1e-12));
  const double up[4] = {1, 2, 3, 4};  // S = 6, var = 4*3*13/18 = 26/3
  CHECK(mann_kendall_score(up, 4, scratch) == doctest::Approx(5.0 / std::sqrt(26.0 / 3.0)).epsilon(1e-12));
  // ties: {5, 5, 4, 3}: pairs (5,5) 0, (5,4) -1 x2, (5,3) -1 x2, (4,3) -1: S = -5;
  // var = (4*3*13 - 2*1*9) / 18 = 138 / 18
  const double tied[4] = {5, 5, 4, 3};
  CHECK(mann_kendall_score(tied, 4, scratch) == doctest::Approx(-4.0 / std::sqrt(138.0 / 18.0)).epsilon(1e-12));
  const double flat[5] = {2, 2, 2, 2, 2};
  CHECK(mann_kendall_score(flat, 5, scratch) == 0.0);
  CHECK(mann_kendall_score(down, 2, scratch) == 0.0);
}

TEST_CASE("performance_drop level rule: a large drop of the recent median, not one bad figure") {
  performance_drop d;  // baseline 20, recent 3, large_drop 0.5
  std::vector<double> xs(20, 500.0);
  CHECK(feed(d, xs).empty());
  CHECK(observe(d, drop_perf(100.0)).empty());  // one bad epoch: the median of 3 is still 500
  CHECK(observe(d, drop_perf(500.0)).empty());
  CHECK(d.last_judgement().recent == 500.0);
  SUBCASE("median exactly half of the baseline: at the bound, counts") {
    performance_drop e;
    feed(e, std::vector<double>(20, 500.0));
    observe(e, drop_perf(250.0));
    const anomaly_report r = observe(e, drop_perf(250.0));
    REQUIRE(r.has(anomaly_kind::performance_degradation));
    CHECK(r[0].value == 250.0);
    CHECK(r[0].threshold == 250.0);
    CHECK(*r[0].baseline == 500.0);
    CHECK(r[0].detail.find("50.0% below the median 500") != std::string::npos);
  }
  SUBCASE("median just above half: quiet") {
    performance_drop e;
    feed(e, std::vector<double>(20, 500.0));
    observe(e, drop_perf(250.001));
    CHECK(observe(e, drop_perf(250.001)).empty());
    CHECK(e.last_judgement().level_bound == 250.0);
  }
}

TEST_CASE("performance_drop level rule: the noise scale is the baseline's MAD; its standard error can set the bound") {
  performance_drop_options o;
  o.large_drop = 0.0;  // only the standard error counts
  performance_drop d(o);
  // baseline 100 +- 10 alternating: median 100 (mean of 90 and 110 around the middle), MAD 10
  std::vector<double> xs;
  for (int i = 0; i < 20; ++i) xs.push_back(i % 2 ? 110.0 : 90.0);
  feed(d, xs);
  observe(d, drop_perf(50.0));
  observe(d, drop_perf(50.0));
  observe(d, drop_perf(50.0));
  const auto& j = d.last_judgement();
  CHECK(j.baseline == 100.0);
  CHECK(j.scale == doctest::Approx(1.4826 * 10.0));
  const double se = 1.2533 * 1.4826 * 10.0 / std::sqrt(3.0);
  CHECK(j.level_bound == doctest::Approx(100.0 - 3.0 * se));
  CHECK(j.level);
}

TEST_CASE("performance_drop trend rule: a steady slide is found; a dip that recovers is not") {
  SUBCASE("1% per figure from 500: Mann-Kendall -3.9 and a 7% fall over 10 figures") {
    performance_drop d;
    std::vector<double> xs(20, 500.0);
    CHECK(feed(d, xs).empty());
    std::vector<double> slide;
    for (int k = 1; k <= 12; ++k) slide.push_back(500.0 * std::pow(0.99, k));
    const auto at = feed(d, slide);
    REQUIRE_FALSE(at.empty());
    // the window must hold more falling figures than tied ones, and fall by 5 %
    CHECK(at.front() >= 5);
    CHECK(at.front() <= 9);
    CHECK(d.last_judgement().trend);
    CHECK(d.last_judgement().trend_score <= -3.0);
  }
  SUBCASE("a dip of 40% for three figures that recovers") {
    performance_drop d;
    std::vector<double> xs(20, 500.0);
    for (double v : {300.0, 320.0, 310.0, 500.0, 500.0, 500.0, 500.0}) xs.push_back(v);
    CHECK(feed(d, xs).empty());
  }
  SUBCASE("a fall of less than trend_min_drop is no degradation, however monotone") {
    performance_drop d;
    std::vector<double> xs;
    for (int k = 0; k < 30; ++k) xs.push_back(500.0 - 0.5 * k);  // 0.1 % per figure
    CHECK(feed(d, xs).empty());
  }
}

TEST_CASE("performance_drop: warm-up, absent and non-finite figures, onset and clear") {
  performance_drop d;
  for (int i = 0; i < 20; ++i) observe(d, drop_perf(500.0, 5, 100));  // 5 % of training: warm-up (10 %)
  CHECK(observe(d, drop_perf(1.0, 5, 100)).empty());
  CHECK(observe(d, drop_perf(1.0, 5, 100)).empty());
  CHECK(observe(d, drop_perf(1.0, 10, 100)).has(anomaly_kind::performance_degradation));  // at 10 %: judged
  CHECK(observe(d, drop_perf(1.0)).empty());  // still holding: no second report
  CHECK(observe(d, signals{}).empty());
  CHECK(observe(d, drop_perf(std::nan(""))).empty());
  performance_drop_options o;
  o.how.clear_after = 1;
  performance_drop e(o);
  feed(e, std::vector<double>(20, 500.0));
  feed(e, {1.0, 1.0});
  anomaly_report r;
  for (int i = 0; i < 3 && r.clears().empty(); ++i) r = observe(e, drop_perf(500.0));
  REQUIRE(r.clears().size() == 1);
  CHECK(r.clears()[0].kind == anomaly_kind::performance_degradation);
  CHECK(r.clears()[0].duration >= 1);
  // progress is required with either series
  for (auto field : {&signals::performance, &signals::reward_rate}) {
    signals s;
    s.*field = 1.0;
    CHECK_THROWS_WITH_AS(performance_drop{}.validate(s), doctest::Contains("progress is required with performance and reward_rate"),
                         std::invalid_argument);
  }
}

TEST_CASE("performance_drop judges the reward rate apart: a constant rate that drops to 0 holds at its second 0") {
  performance_drop d;
  for (int i = 0; i < 20; ++i) {
    CHECK(observe(d, reward(1.0)).empty());  // CartPole: 1 per step, no spread at all
    CHECK(observe(d, drop_perf(100.0 + (i % 5))).empty());
  }
  CHECK(d.reward_filled() == 20);
  CHECK(d.filled() == 20);
  CHECK(observe(d, reward(0.0)).empty());  // median of {1, 1, 0}
  const anomaly_report r = observe(d, reward(0.0));
  REQUIRE(r.has(anomaly_kind::performance_degradation));
  CHECK(r[0].value == 0.0);
  CHECK(r[0].threshold == 0.5);  // no noise: the 50 % floor of the baseline 1
  CHECK(*r[0].baseline == 1.0);
  CHECK(r[0].detail.rfind("reward rate:", 0) == 0);
  CHECK(d.reward_judgement().level);
  CHECK_FALSE(d.last_judgement().holds());  // the performance series is healthy
  // a healthy performance figure does not clear what the reward rate holds
  CHECK(observe(d, drop_perf(102.0)).clears().empty());
  CHECK(observe(d, drop_perf(102.0)).clears().empty());
  CHECK(observe(d, drop_perf(102.0)).clears().empty());
  // just above half of the baseline: quiet (a fresh detector)
  performance_drop e;
  for (int i = 0; i < 20; ++i) observe(e, reward(1.0));
  CHECK(observe(e, reward(0.5000001)).empty());
  CHECK(observe(e, reward(0.5000001)).empty());
  CHECK(observe(e, reward(0.5)).empty());  // median 0.5000001
  CHECK(observe(e, reward(0.5)).has(anomaly_kind::performance_degradation));  // median 0.5: at the bound
}

TEST_CASE("performance_drop: a reward rate decaying 1 % per figure holds by the trend rule") {
  performance_drop d;
  std::vector<double> rates(20, 1.0);
  for (int k = 1; k <= 20; ++k) rates.push_back(std::pow(0.99, k));
  std::size_t onset = 0;
  for (std::size_t i = 0; i < rates.size() && onset == 0; ++i)
    if (observe(d, reward(rates[i])).has(anomaly_kind::performance_degradation)) onset = i;
  REQUIRE(onset > 20);
  CHECK(d.reward_judgement().trend);
  CHECK_FALSE(d.reward_judgement().level);
  // an independent check of the trend rule at the onset: the window's first
  // and last three medians fall by at least 5 %
  const double first3 = rates[onset - 8], last3 = rates[onset - 1];
  CHECK((first3 - last3) / first3 >= 0.05);
  CHECK(onset <= 30);  // within 10 figures of the decay's start
}

TEST_CASE("performance_drop: state round-trips; bad options and states are refused") {
  performance_drop d;
  for (int i = 0; i < 30; ++i) {
    observe(d, drop_perf(100.0 + i));
    observe(d, reward(1.0 + 0.01 * (i % 3)));
  }
  performance_drop e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  CHECK(e.state().reward_figures.size() == 23);
  CHECK(observe(d, drop_perf(1.0)) == observe(e, drop_perf(1.0)));
  CHECK(observe(d, reward(0.1)) == observe(e, reward(0.1)));
  auto st = d.state();
  st.figures.assign(24, 1.0);
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("figures.size()"), std::invalid_argument);
  st = d.state();
  st.figures[0] = std::nan("");
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("figure"), std::invalid_argument);
  st = d.state();
  st.reward_figures[3] = std::numeric_limits<double>::infinity();
  const auto before = e.state();
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("figure"), std::invalid_argument);
  CHECK(e.state() == before);  // nothing half-loaded
  auto with = [](auto f) {
    performance_drop_options o;
    f(o);
    return o;
  };
  CHECK_THROWS_WITH_AS(performance_drop(with([](auto& o) { o.baseline = 1; })), doctest::Contains("baseline"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(performance_drop(with([](auto& o) { o.recent = 0; })), doctest::Contains("recent"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(performance_drop(with([](auto& o) { o.large_drop = 1.5; })), doctest::Contains("large_drop"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(performance_drop(with([](auto& o) { o.trend_window = 5; })), doctest::Contains("trend_window"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(performance_drop(with([](auto& o) { o.trend_score = 0.0; })), doctest::Contains("trend_score"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(performance_drop(with([](auto& o) { o.warmup = -0.1; })), doctest::Contains("warmup"), std::invalid_argument);
}
