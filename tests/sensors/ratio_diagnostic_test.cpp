#include "support/torch_doctest.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <algorithm>
#include <utility>
#include <vector>

#include "support/written_event.hpp"
#include "simic/sensors/ratio_diagnostic.hpp"

using namespace simic;

TEST_CASE("ratio diagnostic: finds exactly the out-of-bound indices, bounds just below / at / above") {
  const double up = 5.0, lo = 0.1;
  std::vector<double> ratios{1.0,
                             std::nextafter(up, 0.0),
                             up,
                             std::nextafter(up, 10.0),
                             lo,
                             std::nextafter(lo, 0.0),
                             std::nextafter(lo, 1.0),
                             std::numeric_limits<double>::quiet_NaN(),
                             100.0,
                             0.0};
  const auto b = static_cast<std::int64_t>(ratios.size());
  at::Tensor ratio = at::from_blob(ratios.data(), {b}, at::kDouble).clone();
  at::Tensor old_lp = at::linspace(-2.0, -1.0, b, at::kDouble);
  at::Tensor new_lp = old_lp + at::arange(b, at::kDouble) * 0.1;
  at::Tensor actions = at::arange(b, at::kLong) * 3;
  const auto r = diagnose_ratio_explosion(ratio, old_lp, new_lp, actions);
  std::vector<std::int64_t> idx;
  for (const auto& o : r.outliers) {
    idx.push_back(o.index);
    CHECK(o.action == o.index * 3);
    if (!std::isnan(ratios[static_cast<std::size_t>(o.index)])) CHECK(o.ratio == ratios[static_cast<std::size_t>(o.index)]);
  }
  // Furthest from 1 by |log ratio| first: NaN and 0 are infinitely far (in
  // batch order), then 100 (|log| 4.61), just below 0.1 (2.30), just above 5 (1.61).
  CHECK(idx == std::vector<std::int64_t>{7, 9, 8, 5, 3});
  CHECK(r.above == 2);  // indices 3, 8
  CHECK(r.below == 2);  // 5, 9
  CHECK(r.nan == 1);    // 7
  CHECK(r.outlier_count() == 5);
  // |new - old| = 0.1 i: mean 0.45, max 0.9 (hand computation)
  CHECK(r.mean_abs_logprob_diff == doctest::Approx(0.45));
  CHECK(r.max_abs_logprob_diff == doctest::Approx(0.9));
  CHECK(r.batch_size == 10);
  CHECK(r.upper == 5.0);
  CHECK(r.lower == 0.1);
}

TEST_CASE("ratio diagnostic: float32 inputs, custom bounds, 2-D shapes read flattened") {
  at::Tensor ratio = at::ones({2, 3});
  ratio[1][2] = 2.5f;
  ratio[0][0] = 0.4f;
  const at::Tensor lp = at::zeros({2, 3});
  ratio_diagnostic_options o;
  o.upper = 2.0;
  o.lower = 0.5;
  const auto r = diagnose_ratio_explosion(ratio, lp, lp, at::arange(6, at::kInt).reshape({2, 3}), o);
  REQUIRE(r.outliers.size() == 2);
  // |log 2.5| = 0.9162907319 is a hair above |log float(0.4)| = 0.9162907170.
  CHECK(r.outliers[0].index == 5);
  CHECK(r.outliers[0].action == 5);
  CHECK(r.outliers[1].index == 0);
  CHECK(r.outliers[1].ratio == doctest::Approx(0.4));
  CHECK(r.max_abs_logprob_diff == 0.0);
}

TEST_CASE("ratio diagnostic: an empty batch is valid") {
  const at::Tensor e = at::empty({0});
  const auto r = diagnose_ratio_explosion(e, e, e, at::empty({0}, at::kLong));
  CHECK(r.outliers.empty());
  CHECK(r.batch_size == 0);
  CHECK(r.mean_abs_logprob_diff == 0.0);
}

TEST_CASE("ratio diagnostic: mismatched lengths and bad types are clear errors") {
  const at::Tensor r4 = at::ones({4});
  const at::Tensor a4 = at::zeros({4}, at::kLong);
  CHECK_THROWS_WITH_AS(diagnose_ratio_explosion(r4, at::ones({3}), r4, a4), doctest::Contains("old_log_probs.numel()"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(diagnose_ratio_explosion(r4, r4, r4, at::zeros({5}, at::kLong)),
                       doctest::Contains("actions.numel()"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(diagnose_ratio_explosion(r4, r4, r4, at::zeros({4})), doctest::Contains("actions.dtype"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(diagnose_ratio_explosion(a4, r4, r4, a4), doctest::Contains("ratio.dtype"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(diagnose_ratio_explosion(at::Tensor(), r4, r4, a4), doctest::Contains("ratio"),
                       std::invalid_argument);
  ratio_diagnostic_options o;
  o.lower = 6.0;
  CHECK_THROWS_WITH_AS(diagnose_ratio_explosion(r4, r4, r4, a4, o), doctest::Contains("upper"), std::invalid_argument);
}

namespace {
constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t i64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t two_53 = std::int64_t{1} << 53;
}  // namespace

TEST_CASE("ratio diagnostic: actions at and near the int64 limits come back as the nearest int64, never wrapped") {
  // Each action with what it reads back as, by hand: float64 keeps 53 bits,
  // so in [2^62, 2^63) it has steps of 1024 (round to nearest, ties to even);
  // 2^63 itself is past INT64_MAX and saturates to it.
  const std::vector<std::pair<std::int64_t, std::int64_t>> cases{
      {i64_min, i64_min},                          // -2^63: exact
      {i64_min + 1, i64_min},                      // rounds to -2^63
      {-two_53, -two_53},                          // exact
      {two_53, two_53},                            // exact
      {two_53 + 1, two_53},                        // tie, to even
      {i64_max - 2047, i64_max - 2047},            // 2^63 - 2048: exact
      {i64_max - 1023, i64_max - 1023},            // 2^63 - 1024: the largest in-range float64, exact
      {i64_max - 1024, i64_max - 1023},            // 2^63 - 1025: nearer 2^63 - 1024
      {i64_max - 512, i64_max - 1023},             // 2^63 - 513: nearer 2^63 - 1024
      {i64_max - 511, i64_max},                    // 2^63 - 512: tie, to even = 2^63, saturated
      {i64_max, i64_max},                          // 2^63 - 1 rounds to 2^63: saturated, not INT64_MIN
  };
  std::vector<std::int64_t> in;
  for (const auto& c : cases) in.push_back(c.first);
  const auto b = static_cast<std::int64_t>(in.size());
  at::Tensor actions = at::from_blob(in.data(), {b}, at::kLong).clone();
  const at::Tensor ratio = at::full({b}, 100.0, at::kDouble);  // every sample an outlier
  const at::Tensor lp = at::zeros({b}, at::kDouble);
  const auto r = diagnose_ratio_explosion(ratio, lp, lp, actions);
  REQUIRE(r.outliers.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("action " << cases[i].first);
    CHECK(r.outliers[i].action == cases[i].second);
  }
}

TEST_CASE("ratio diagnostic: a float64 action below / at / above the int64 range saturates; NaN is an error") {
  using simic::detail::action_from_double;
  const double two_63 = 9223372036854775808.0;
  CHECK(action_from_double(0.0) == 0);
  CHECK(action_from_double(-0.9) == 0);  // toward zero
  CHECK(action_from_double(41.9) == 41);
  CHECK(action_from_double(std::nextafter(two_63, 0.0)) == i64_max - 1023);  // 2^63 - 1024: the last in range
  CHECK(action_from_double(two_63) == i64_max);                               // at the limit: one past INT64_MAX
  CHECK(action_from_double(std::nextafter(two_63, 1e300)) == i64_max);
  CHECK(action_from_double(1e300) == i64_max);
  CHECK(action_from_double(std::numeric_limits<double>::infinity()) == i64_max);
  CHECK(action_from_double(-two_63) == i64_min);  // exact
  CHECK(action_from_double(std::nextafter(-two_63, 0.0)) == i64_min + 1024);
  CHECK(action_from_double(std::nextafter(-two_63, -1e300)) == i64_min);
  CHECK(action_from_double(-std::numeric_limits<double>::infinity()) == i64_min);
  CHECK_THROWS_WITH_AS(action_from_double(std::numeric_limits<double>::quiet_NaN()), doctest::Contains("action"),
                       std::invalid_argument);
}

TEST_CASE("ratio diagnostic: the top k by |log ratio| against a sorted float64 reference; every outlier counted") {
  // 300 samples: every third in bounds; the others' ratios spread on both sides of 1.
  const std::int64_t b = 300;
  std::vector<double> ratios(static_cast<std::size_t>(b));
  for (std::int64_t i = 0; i < b; ++i)
    ratios[static_cast<std::size_t>(i)] = i % 3 == 0 ? 1.0 + 0.001 * static_cast<double>(i % 7)
                                          : i % 3 == 1 ? 5.0 + 0.37 * static_cast<double>(i)
                                                       : 0.1 / (1.0 + 0.011 * static_cast<double>(i));
  const at::Tensor ratio = at::from_blob(ratios.data(), {b}, at::kDouble).clone();
  const at::Tensor lp = at::zeros({b}, at::kDouble);
  const at::Tensor actions = at::arange(b, at::kLong);
  // The reference: outliers by descending |log r|, batch order among equals.
  std::vector<std::int64_t> want;
  for (std::int64_t i = 0; i < b; ++i)
    if (i % 3 != 0) want.push_back(i);
  std::stable_sort(want.begin(), want.end(), [&](std::int64_t x, std::int64_t y) {
    return std::abs(std::log(ratios[static_cast<std::size_t>(x)])) > std::abs(std::log(ratios[static_cast<std::size_t>(y)]));
  });
  for (const std::uint32_t k : {0u, 1u, 5u, 32u, 200u, 1000u}) {
    CAPTURE(k);
    ratio_diagnostic_options o;
    o.top_k = k;
    const auto r = diagnose_ratio_explosion(ratio, lp, lp, actions, o);
    CHECK(r.above == 100);
    CHECK(r.below == 100);
    CHECK(r.nan == 0);
    const std::size_t n = std::min<std::size_t>(k, want.size());
    REQUIRE(r.outliers.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(r.outliers[i].index == want[i]);
      CHECK(r.outliers[i].action == want[i]);
      CHECK(r.outliers[i].ratio == ratios[static_cast<std::size_t>(want[i])]);
    }
  }
}

TEST_CASE("ratio diagnostic: equal distances keep batch order, also across the cap") {
  const at::Tensor ratio = at::tensor({1.0, 10.0, 0.1, 10.0, 1.0, 0.1, 10.0}, at::kDouble);
  const at::Tensor lp = at::zeros({7}, at::kDouble);
  ratio_diagnostic_options o;
  o.lower = 0.5;
  o.top_k = 3;
  const auto r = diagnose_ratio_explosion(ratio, lp, lp, at::arange(7, at::kLong), o);
  // |log 10| == |log 0.1| in float64? No: log(0.1) is -2.302585092994045 and
  // log(10) 2.302585092994046; 10 is a hair further, so the 10s come first.
  REQUIRE(r.outliers.size() == 3);
  CHECK(r.outliers[0].index == 1);
  CHECK(r.outliers[1].index == 3);
  CHECK(r.outliers[2].index == 6);
  CHECK(r.outlier_count() == 5);
}

TEST_CASE("the ratio_diagnostic event: the reported outliers, every count and the figures in JSON") {
  ratio_diagnostic_report rd;
  rd.outliers = {{.index = 17, .ratio = 7.5, .action = 2}, {.index = 40, .ratio = 0.05, .action = 0}};
  rd.above = 30;
  rd.below = 11;
  rd.nan = 1;
  rd.mean_abs_logprob_diff = 0.3;
  rd.max_abs_logprob_diff = 2.0;
  rd.batch_size = 64;
  rd.upper = 5.0;
  rd.lower = 0.1;
  const auto j = simic::test::json_of(event(3, 0, ratio_diagnostic_event{.report = rd}));
  CHECK(j["event"] == "ratio_diagnostic");
  REQUIRE(j["outliers"].size() == 2);
  CHECK(j["outliers"][0]["index"] == 17);
  CHECK(j["outliers"][0]["ratio"].get<double>() == 7.5);
  CHECK(j["outliers"][0]["action"] == 2);
  CHECK(j["outliers"][1]["ratio"].get<double>() == 0.05);
  CHECK(j["outlier_count"] == 42);
  CHECK(j["above"] == 30);
  CHECK(j["below"] == 11);
  CHECK(j["nan"] == 1);
  CHECK(j["batch_size"] == 64);
  CHECK(j["upper"].get<double>() == 5.0);
  CHECK(j["lower"].get<double>() == 0.1);
  CHECK(j["mean_abs_logprob_diff"].get<double>() == 0.3);
  CHECK(j["max_abs_logprob_diff"].get<double>() == 2.0);
  CHECK(simic::test::scalars_of(event(3, 0, ratio_diagnostic_event{.report = rd})) ==
        std::vector<tensorboard_scalar>{{"ratio_diagnostic/outliers", 42.0}, {"ratio_diagnostic/max_abs_logprob_diff", 2.0}});
}
