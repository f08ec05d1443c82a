#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "detect_support.hpp"
#include "simic/detect/update_shift.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals with_ratio(double ratio) {
  signals s;
  s.update_ratio = ratio;
  return s;
}
}  // namespace

TEST_CASE("update_shift's defaults: momentum 0.995, slack 2.5, floor 0.15, rise 0.4; the rest as the gradient norm's") {
  const update_shift d;
  CHECK(d.options().shift.momentum == 0.995);
  CHECK(d.options().shift.slack == 2.5);
  CHECK(d.options().shift.floor == 0.15);
  CHECK(d.options().shift.bound == log_shift_options{}.bound);
  CHECK(d.options().shift.warmup == log_shift_options{}.warmup);
  CHECK(d.options().shift.rise == 0.4);
  CHECK(log_shift_options{}.rise == std::numeric_limits<double>::infinity());  // off for the gradient norm
}

TEST_CASE("update_shift follows an independent float64 model: a 20x learning-rate step, then a ramp") {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> noise(0.0, 0.3);  // the trainer's healthy spread of log ratio
  std::vector<double> ratios;
  for (int i = 0; i < 400; ++i) ratios.push_back(2e-3 * std::exp(noise(rng)));
  for (int i = 0; i < 16; ++i) ratios.push_back(20 * 2e-3 * std::exp(noise(rng)));  // lr x20
  for (int i = 0; i < 400; ++i) ratios.push_back(2e-3 * std::exp(noise(rng)));
  const std::size_t ramp_start = ratios.size();
  for (int i = 0; i < 400; ++i)  // lr +5 % per update of 8 steps
    ratios.push_back(2e-3 * std::pow(1.05, i / 8.0) * std::exp(noise(rng)));
  update_shift d;
  reference_shift ref{d.options().shift};
  std::vector<std::size_t> onsets;
  bool active = false;
  for (std::size_t i = 0; i < ratios.size(); ++i) {
    const bool holds = ref.step(ratios[i]);
    const anomaly_report r = observe(d, with_ratio(ratios[i]));
    INFO("observation " << i);
    CHECK(d.up() == doctest::Approx(ref.up).epsilon(1e-9));
    CHECK(d.down() == doctest::Approx(ref.down).epsilon(1e-9));
    if (r.has(anomaly_kind::update_ratio_drift)) {
      CHECK_FALSE(active);
      CHECK(holds);
      onsets.push_back(i);
      // the CUSUM judges against the level before the value, the rise rule the level after it
      const bool rise_alone = ref.rising && ref.up <= d.options().shift.bound && ref.down <= d.options().shift.bound;
      if (rise_alone) {
        CHECK(r[0].value == doctest::Approx(std::exp(ref.fast)).epsilon(1e-9));
        CHECK(*r[0].baseline == doctest::Approx(std::exp(ref.level)).epsilon(1e-9));
      } else {  // the CUSUM's score against its bound
        CHECK(r[0].value == doctest::Approx(std::max(ref.up, ref.down)).epsilon(1e-9));
        CHECK(r[0].threshold == d.options().shift.bound);
      }
      active = true;
    }
    if (!r.clears().empty()) active = false;
  }
  REQUIRE(onsets.size() >= 2);
  CHECK(onsets[0] == 400);  // the step is found at its first value
  CHECK(onsets.back() > ramp_start);
  CHECK(onsets.back() < ramp_start + 8 * 25);  // within 25 updates of a 5 % ramp
}

// A lasting step of d (log units) opens a gap of at most about 0.65 d
// between the fast mean (momentum 0.96) and the running mean (0.995): the
// rise rule is for ramps, a step of 1.5x (d = 0.4) or less can never hold it.
TEST_CASE("update_shift's rise rule alone: a lasting step of 1.5x never holds it, one of e (2.7x) does") {
  update_shift_options o;
  o.shift.bound = 1e12;  // the CUSUM out of reach
  auto run = [&](double factor, int steps) {
    update_shift d(o);
    reference_shift ref{o.shift};
    int onset = -1;
    for (int i = 0; i < 300 + steps; ++i) {
      const double v = i < 300 ? 1e-3 : 1e-3 * factor;
      const bool holds = ref.step(v);
      const anomaly_report r = observe(d, with_ratio(v));
      INFO("value " << i);
      CHECK(r.has(anomaly_kind::update_ratio_drift) == (holds && onset < 0));
      if (r.has(anomaly_kind::update_ratio_drift)) {
        onset = i;
        CHECK(r[0].value == doctest::Approx(std::exp(ref.fast)).epsilon(1e-9));
        CHECK(*r[0].baseline == doctest::Approx(std::exp(ref.level)).epsilon(1e-9));
        CHECK(r[0].threshold == doctest::Approx(std::exp(ref.level + 0.4)).epsilon(1e-9));
        CHECK(r[0].detail.find("running level") != std::string::npos);
      }
    }
    return onset;
  };
  CHECK(run(std::exp(0.4), 400) == -1);  // the fast mean never gets more than 0.4 above
  const int onset = run(std::exp(1.0), 100);
  CHECK(onset > 300);
  CHECK(onset < 300 + 50);  // the fast mean (25 values) closes in within a few time constants
  // the rule waits until the running mean spans its time constant (200 values)
  update_shift young(o);
  for (int i = 0; i < 150; ++i) observe(young, with_ratio(i < 100 ? 1e-3 : 1e-2));
  CHECK(young.log_ratio().steps() == 150);
  CHECK(observe(young, with_ratio(1e-2)).empty());
}

TEST_CASE("update_shift: just below and just above the one-step bound, up and down; warm-up is silent") {
  update_shift_options o;
  o.shift.warmup = 5;
  auto fresh = [&] {
    update_shift d(o);
    for (int i = 0; i < 5; ++i) CHECK(observe(d, with_ratio(1e-3)).empty());
    return d;
  };
  {
    update_shift d(o);
    for (int i = 0; i < 4; ++i) observe(d, with_ratio(1e-3));
    CHECK(observe(d, with_ratio(1.0)).empty());  // the 5th is still warm-up
  }
  // constant warm-up: spread = floor; one step crosses when z > slack + bound = 8.5
  const double z_bound = o.shift.slack + o.shift.bound, base = std::log(1e-3), f = o.shift.floor;
  update_shift below = fresh();
  CHECK(observe(below, with_ratio(std::exp(base + f * (z_bound - 1e-6)))).empty());
  update_shift above = fresh();
  const anomaly_report r = observe(above, with_ratio(std::exp(base + f * (z_bound + 1e-6))));
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::update_ratio_drift);
  CHECK(r[0].severity == severity::warning);
  CHECK(r[0].value == doctest::Approx(o.shift.bound + 1e-6).epsilon(1e-9));  // the score: z - slack
  CHECK(r[0].threshold == o.shift.bound);
  CHECK(r[0].detail.find("running level 0.001 ") != std::string::npos);
  CHECK(r[0].detail.find("update ratio") != std::string::npos);
  CHECK(r[0].detail.find("above") != std::string::npos);
  update_shift low = fresh();
  const anomaly_report rl = observe(low, with_ratio(std::exp(base - f * (z_bound + 1e-6))));
  REQUIRE(rl.size() == 1);
  CHECK(rl[0].detail.find("below") != std::string::npos);
}

TEST_CASE("update_shift: a skipped step (ratio 0), NaN, Inf and negatives are not absorbed") {
  update_shift d;
  for (double bad : {0.0, -1e-3, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    CHECK(observe(d, with_ratio(bad)).empty());
  CHECK(observe(d, signals{}).empty());
  CHECK(d.log_ratio().steps() == 0);
}

TEST_CASE("update_shift: state round-trips; bad options and states are refused") {
  update_shift d;
  for (int i = 0; i < 40; ++i) observe(d, with_ratio(1e-3 * (1.0 + 0.01 * i)));
  update_shift e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  for (int i = 0; i < 5; ++i) CHECK(observe(d, with_ratio(0.5)) == observe(e, with_ratio(0.5)));
  auto st = d.state();
  st.ratio.down = std::numeric_limits<double>::quiet_NaN();
  const auto before = e.state();
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("down"), std::invalid_argument);
  CHECK(e.state() == before);  // nothing half-loaded
  st = d.state();
  st.condition.active = 2;
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("active"), std::invalid_argument);
  CHECK(e.state() == before);
  update_shift_options o;
  o.shift.momentum = 0.0;
  CHECK_THROWS_WITH_AS(update_shift{o}, doctest::Contains("simic::update_shift: momentum"), std::invalid_argument);
  o = {};
  o.shift.rise = 0.0;
  CHECK_THROWS_WITH_AS(update_shift{o}, doctest::Contains("rise"), std::invalid_argument);
  o = {};
  o.shift.rise_momentum = 1.0;
  CHECK_THROWS_WITH_AS(update_shift{o}, doctest::Contains("rise_momentum"), std::invalid_argument);
  o = {};
  o.how.clear_after = 0;
  CHECK_THROWS_WITH_AS(update_shift{o}, doctest::Contains("clear_after"), std::invalid_argument);
}

TEST_CASE("update_shift: early training (progress before 10 %) is not seen; a warm-up ramp raises nothing") {
  update_shift d;
  signals s;
  // a learning-rate warm-up: the ratio rises 100x over the first 10 % of 1000 checks
  for (std::uint64_t step = 1; step <= 99; ++step) {
    s.progress = training_progress(step, 1000);
    s.update_ratio = 1e-5 * std::pow(100.0, static_cast<double>(step) / 100.0);
    CHECK(observe(d, s).empty());
  }
  CHECK(d.log_ratio().steps() == 0);  // below the boundary: not absorbed
  s.progress = training_progress(100, 1000);  // at it: seen
  s.update_ratio = 1e-3;
  CHECK(observe(d, s).empty());
  CHECK(d.log_ratio().steps() == 1);
  // the steady phase after it: quiet to the end, the rise rule's switch-on included
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> noise(0.0, 0.05);
  for (std::uint64_t step = 101; step <= 1000; ++step) {
    s.progress = training_progress(step, 1000);
    s.update_ratio = 1e-3 * noise(rng);
    INFO("step " << step);
    CHECK(observe(d, s).empty());
  }
  // without progress only the count warm-up applies
  update_shift c;
  signals n;
  n.update_ratio = 1e-3;
  observe(c, n);
  CHECK(c.log_ratio().steps() == 1);
  // a bad fraction is refused by name
  update_shift_options bad;
  bad.shift.early = 1.0;
  CHECK_THROWS_WITH_AS(update_shift{bad}, doctest::Contains("early"), std::invalid_argument);
}
