// host_ratio_shift: the host/module gradient ratio against the independent
// float64 model of tests/detect/detect_support.hpp (reference_shift), a
// module whose gradients die and one that blows up, the one-step bound from
// both sides, what is not absorbed, state and bad options.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "detect_support.hpp"
#include "simic/detect/host_ratio_shift.hpp"

using namespace simic;
using namespace simic::test;

namespace {
signals with_host_ratio(double ratio) {
  signals s;
  s.host_module_ratio = ratio;
  return s;
}
}  // namespace

TEST_CASE("host_ratio_shift's defaults: the gradient norm's model (no rise rule); reads only the host/module ratio") {
  const host_ratio_shift d;
  CHECK(d.options().shift.momentum == log_shift_options{}.momentum);
  CHECK(d.options().shift.slack == log_shift_options{}.slack);
  CHECK(d.options().shift.bound == log_shift_options{}.bound);
  CHECK(d.options().shift.floor == log_shift_options{}.floor);
  CHECK(d.options().shift.rise == std::numeric_limits<double>::infinity());
  CHECK(host_ratio_shift::reads == signal_set{signal_set::host_module_ratio});
  CHECK(default_severity(anomaly_kind::host_ratio_drift) == severity::warning);
}

TEST_CASE("host_ratio_shift follows an independent float64 model: the module's gradients die, recover, then blow up") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0.0, 0.25);  // a healthy spread of log ratio
  std::vector<double> ratios;
  for (int i = 0; i < 300; ++i) ratios.push_back(0.8 * std::exp(noise(rng)));
  const std::size_t dead_at = ratios.size();
  for (int i = 0; i < 40; ++i) ratios.push_back(0.8e-3 * std::exp(noise(rng)));  // module gradients x1e-3
  for (int i = 0; i < 300; ++i) ratios.push_back(0.8 * std::exp(noise(rng)));
  const std::size_t blown_at = ratios.size();
  for (int i = 0; i < 40; ++i) ratios.push_back(80.0 * std::exp(noise(rng)));  // x100
  host_ratio_shift d;
  reference_shift ref{d.options().shift};
  std::vector<std::size_t> onsets;
  std::vector<std::string> directions;
  bool active = false;
  for (std::size_t i = 0; i < ratios.size(); ++i) {
    const bool holds = ref.step(ratios[i]);
    const anomaly_report r = observe(d, with_host_ratio(ratios[i]));
    INFO("observation " << i);
    CHECK(d.up() == doctest::Approx(ref.up).epsilon(1e-9));
    CHECK(d.down() == doctest::Approx(ref.down).epsilon(1e-9));
    if (r.has(anomaly_kind::host_ratio_drift)) {
      CHECK_FALSE(active);
      CHECK(holds);
      CHECK(r[0].value == doctest::Approx(std::max(ref.up, ref.down)).epsilon(1e-9));  // the shift score
      CHECK(r[0].threshold == d.options().shift.bound);
      CHECK(r[0].detail.find(simic::detail::format("%.6g", ratios[i])) != std::string::npos);
      onsets.push_back(i);
      directions.push_back(r[0].detail.find("below") != std::string::npos ? "below" : "above");
      active = true;
    }
    if (!r.clears().empty()) active = false;
  }
  // Before the first fault: silent (no false alarm on this healthy stretch).
  REQUIRE(onsets.size() >= 2);
  CHECK(onsets[0] == dead_at);  // found at the first value of the fault
  CHECK(directions[0] == "below");
  CHECK(onsets.back() == blown_at);
  CHECK(directions.back() == "above");
}

TEST_CASE("host_ratio_shift: just below and just above the one-step bound, up and down; warm-up is silent") {
  host_ratio_shift_options o;
  o.shift.warmup = 5;
  auto fresh = [&] {
    host_ratio_shift d(o);
    for (int i = 0; i < 5; ++i) CHECK(observe(d, with_host_ratio(0.5)).empty());
    return d;
  };
  {
    host_ratio_shift d(o);
    for (int i = 0; i < 4; ++i) observe(d, with_host_ratio(0.5));
    CHECK(observe(d, with_host_ratio(500.0)).empty());  // the 5th is still warm-up
  }
  // constant warm-up: spread = floor; one step crosses when z > slack + bound
  const double z_bound = o.shift.slack + o.shift.bound, base = std::log(0.5), f = o.shift.floor;
  host_ratio_shift below = fresh();
  CHECK(observe(below, with_host_ratio(std::exp(base + f * (z_bound - 1e-6)))).empty());
  host_ratio_shift above = fresh();
  const anomaly_report r = observe(above, with_host_ratio(std::exp(base + f * (z_bound + 1e-6))));
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::host_ratio_drift);
  CHECK(r[0].value == doctest::Approx(o.shift.bound + 1e-6).epsilon(1e-9));  // the score: z - slack
  CHECK(r[0].threshold == o.shift.bound);
  CHECK(r[0].detail.find("host/module gradient ratio") != std::string::npos);
  host_ratio_shift low = fresh();
  const anomaly_report rl = observe(low, with_host_ratio(std::exp(base - f * (z_bound + 1e-6))));
  REQUIRE(rl.size() == 1);
  CHECK(rl[0].detail.find("below") != std::string::npos);
}

TEST_CASE("host_ratio_shift: no ratio, 0, NaN, Inf and negatives are not absorbed") {
  host_ratio_shift d;
  for (double bad : {0.0, -0.5, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    CHECK(observe(d, with_host_ratio(bad)).empty());
  CHECK(observe(d, signals{}).empty());
  CHECK(d.log_ratio().steps() == 0);
}

TEST_CASE("host_ratio_shift: state round-trips; bad options and states are refused") {
  host_ratio_shift d;
  for (int i = 0; i < 40; ++i) observe(d, with_host_ratio(0.5 * (1.0 + 0.01 * i)));
  host_ratio_shift e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  for (int i = 0; i < 5; ++i) CHECK(observe(d, with_host_ratio(50.0)) == observe(e, with_host_ratio(50.0)));
  auto st = d.state();
  st.ratio.up = -1.0;
  const auto before = e.state();
  CHECK_THROWS_WITH_AS(e.load(st), doctest::Contains("up"), std::invalid_argument);
  CHECK(e.state() == before);
  host_ratio_shift_options o;
  o.shift.slack = -1.0;
  CHECK_THROWS_WITH_AS(host_ratio_shift{o}, doctest::Contains("simic::host_ratio_shift: slack"), std::invalid_argument);
  o = {};
  o.how.clear_after = 0;
  CHECK_THROWS_WITH_AS(host_ratio_shift{o}, doctest::Contains("clear_after"), std::invalid_argument);
}
