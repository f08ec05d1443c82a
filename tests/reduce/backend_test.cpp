#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "simic/reduce/backend.hpp"

using namespace simic;

namespace {
std::vector<double> row(double sumsq, double max_abs, double zeros, double nans, double infs, double numel, double sum,
                        double mn, double mx, double m2, double small, double large) {
  return {sumsq, max_abs, zeros, nans, infs, numel, sum, mn, mx, m2, small, large};
}
}  // namespace

TEST_CASE("tensor_stats: raw accumulators read as the documented figures") {
  // x = {3, -4, 0, 0}: sumsq 25, sum -1, mean -0.25, m2 = sum (x + 0.25)^2 = 10.5625 + 14.0625 + 0.125 = 24.75
  const auto r = row(25, 4, 2, 0, 0, 4, -1, -4, 3, 24.75, 2, 0);
  const tensor_stats s(r.data());
  CHECK(s.numel() == 4);
  CHECK(s.norm() == 5.0);
  CHECK(s.mean() == -0.25);
  CHECK(s.population_std() == doctest::Approx(std::sqrt(24.75 / 4)));
  CHECK(s.min() == -4.0);
  CHECK(s.max() == 3.0);
  CHECK(s.fraction(s.zeros()) == 0.5);
  CHECK(s.fraction(s.small()) == 0.5);
  const double inf = std::numeric_limits<double>::infinity();
  const auto empty = row(0, 0, 0, 0, 0, 0, 0, inf, -inf, 0, 0, 0);
  const tensor_stats e(empty.data());
  CHECK(e.min() == 0.0);
  CHECK(e.max() == 0.0);
  CHECK(e.mean() == 0.0);
  CHECK(e.population_std() == 0.0);
  CHECK(e.fraction(0) == 0.0);
  const auto all_nan = row(NAN, 0, 0, 3, 0, 3, NAN, inf, -inf, NAN, 0, 0);
  const tensor_stats n(all_nan.data());
  CHECK(std::isnan(n.min()));
  CHECK(std::isnan(n.max()));
  CHECK(std::isnan(n.mean()));
}

TEST_CASE("tensor_stats: population_std is NaN when the data hold NaN or +-Inf, 0 for a variance rounded below 0") {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // x = {1, NaN, 3}: a back end's m2 is NaN (the mean is NaN).
  const auto with_nan = row(nan, 3, 0, 1, 0, 3, nan, 1, 3, nan, 0, 0);
  CHECK(std::isnan(tensor_stats(with_nan.data()).population_std()));
  // The same counts with a finite m2 (a back end that skipped the NaN): still NaN, decided by the counts.
  const auto nan_counted = row(nan, 3, 0, 1, 0, 3, nan, 1, 3, 2.0, 0, 0);
  CHECK(std::isnan(tensor_stats(nan_counted.data()).population_std()));
  // x = {1, +Inf, 3} and {1, -Inf, 3}: the mean is +-Inf, the spread undefined.
  const auto with_pinf = row(inf, inf, 0, 0, 1, 3, inf, 1, inf, nan, 0, 1);
  const auto with_ninf = row(inf, inf, 0, 0, 1, 3, -inf, -inf, 3, nan, 0, 1);
  CHECK(tensor_stats(with_pinf.data()).mean() == inf);
  CHECK(std::isnan(tensor_stats(with_pinf.data()).population_std()));
  CHECK(tensor_stats(with_ninf.data()).mean() == -inf);
  CHECK(std::isnan(tensor_stats(with_ninf.data()).population_std()));
  // A NaN m2 without counted NaN/Inf (e.g. inf - inf inside a back end) stays NaN, not 0.
  const auto nan_m2 = row(4, 1, 0, 0, 0, 4, 0, -1, 1, nan, 0, 0);
  CHECK(std::isnan(tensor_stats(nan_m2.data()).population_std()));
  // A constant tensor whose one-pass m2 rounded a hair below 0: spread 0, not NaN.
  const auto below_zero = row(0.03, 0.1, 0, 0, 0, 3, 0.3, 0.1, 0.1, -1e-20, 0, 0);
  CHECK(tensor_stats(below_zero.data()).population_std() == 0.0);
  const auto at_zero = row(0.03, 0.1, 0, 0, 0, 3, 0.3, 0.1, 0.1, 0.0, 0, 0);
  CHECK(tensor_stats(at_zero.data()).population_std() == 0.0);
  const auto above_zero = row(0.03, 0.1, 0, 0, 0, 3, 0.3, 0.1, 0.1, 3e-20, 0, 0);
  CHECK(tensor_stats(above_zero.data()).population_std() == std::sqrt(1e-20));
  // x = {1, 2, 3, 4}: mean 2.5, m2 = 2.25 + 0.25 + 0.25 + 2.25 = 5 (hand two-pass), std = sqrt(5 / 4).
  const auto normal = row(30, 4, 0, 0, 0, 4, 10, 1, 4, 5.0, 0, 0);
  CHECK(tensor_stats(normal.data()).population_std() == std::sqrt(1.25));
}

TEST_CASE("float bounds: float comparisons against the rounded bound equal float64 comparisons") {
  for (double b : {1e-6, 0.1, 0.25, 10.0, 1e-7, 3.3}) {
    const float lt = simic::detail::float_bound_for_less(b);
    const float gt = simic::detail::float_bound_for_greater(b);
    float x = static_cast<float>(b);
    for (int k = 0; k < 4; ++k) x = std::nextafter(x, 0.0f);
    for (int k = 0; k < 9; ++k, x = std::nextafter(x, 1e30f)) {
      CHECK((x < lt) == (static_cast<double>(x) < b));
      CHECK((x > gt) == (static_cast<double>(x) > b));
    }
  }
}

TEST_CASE("pending_report: materialize copies once and finishes; device_stats keeps the packed buffer") {
  at::Tensor packed = at::zeros({2, stat::count}, at::kDouble);
  packed[1][stat::sumsq] = 9.0;
  packed[1][stat::numel] = 1.0;
  int calls = 0;
  pending_report<double> p(packed, [&calls](const stats_table& t) {
    ++calls;
    return t[1].norm() + static_cast<double>(t.size());
  });
  CHECK(p.device_stats().size(0) == 2);
  CHECK(p.materialize() == 5.0);
  CHECK(p.materialize() == 5.0);
  CHECK(calls == 2);
}

TEST_CASE("validate_request: each bad argument is named with its valid range") {
  auto msg = [](const std::vector<at::Tensor>& ts, double small, double large) {
    try {
      simic::detail::validate_request(reduce_request{ts, stat_set::full, small, large}, "where");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(msg({at::ones({1})}, 1e-6, 10.0) == "no error");
  CHECK(msg({}, 1e-6, 10.0) == "no error");
  CHECK(msg({at::ones({1}, at::kBool)}, 1e-6, 10.0).find("tensors[0].dtype") != std::string::npos);
  CHECK(msg({at::ones({1})}, std::nan(""), 10.0).find("small") != std::string::npos);
  CHECK(msg({at::ones({1})}, 1e-6, -1.0).find("large") != std::string::npos);
  CHECK(msg({at::ones({1})}, 1e-6, std::numeric_limits<double>::infinity()) == "no error");
  // The offender is named by index wherever it sits in a long list.
  std::vector<at::Tensor> many(40, at::ones({2}));
  CHECK(msg(many, 1e-6, 10.0) == "no error");
  many[0] = at::Tensor();
  CHECK(msg(many, 1e-6, 10.0).find("tensors[0] = undefined") != std::string::npos);
  many[0] = at::ones({2});
  many[17] = at::Tensor();
  CHECK(msg(many, 1e-6, 10.0).find("tensors[17] = undefined") != std::string::npos);
  many[17] = at::ones({2}, at::kInt);
  CHECK(msg(many, 1e-6, 10.0).find("tensors[17].dtype") != std::string::npos);
  many[17] = at::ones({2}, at::kHalf);
  CHECK(msg(many, 1e-6, 10.0) == "no error");
  many[39] = at::empty({2}, at::TensorOptions().device(at::kMeta));
  const std::string device_error = msg(many, 1e-6, 10.0);
  CHECK(device_error.find("tensors[39].device") != std::string::npos);
  CHECK(device_error.find("the device of tensors[0] (cpu)") != std::string::npos);
}
