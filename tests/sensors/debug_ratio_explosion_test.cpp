#include "support/torch_doctest.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "simic/sensors/debug_ratio_explosion.hpp"

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
  CHECK(idx == std::vector<std::int64_t>{3, 5, 7, 8, 9});
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
  CHECK(r.outliers[0].index == 0);
  CHECK(r.outliers[0].ratio == doctest::Approx(0.4));
  CHECK(r.outliers[1].index == 5);
  CHECK(r.outliers[1].action == 5);
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
