#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "support/reduction_reference.hpp"
#include "simic/reduce/cpu_fused_backend.hpp"
#include "simic/sensors/torch_compat.hpp"
#include "simic/reduce/torch_ops_backend.hpp"

using namespace simic;
using simic_test::check_row;
using simic_test::run;

namespace {
torch_ops_backend with_foreach(bool on) {
  torch_ops_backend b;
  b.use_foreach = on;
  return b;
}
}  // namespace

TEST_CASE("torch_ops_backend: mixed shapes and dtypes match the float64 loop reference") {
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (bool fe : {true, false}) {
      for (auto set : {stat_set::basic, stat_set::full}) {
        std::vector<at::Tensor> ts = simic_test::mixed_tensors(17, dtype);
        ts[3].view({-1}).narrow(0, 10, 100).zero_();
        const auto t = run(with_foreach(fe), ts, set);
        for (std::size_t i = 0; i < ts.size(); ++i) {
          INFO("dtype " << dtype << " tensor " << i << " foreach " << fe);
          check_row(t[i], simic_test::reference(ts[i]), set == stat_set::basic, 1e-4);
        }
      }
    }
  }
}

TEST_CASE("torch_ops_backend: the foreach path and the per-tensor fallback give the same values") {
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    std::vector<at::Tensor> ts = simic_test::mixed_tensors(23, dtype, 2.0);
    const auto a = run(with_foreach(true), ts, stat_set::full);
    const auto b = run(with_foreach(false), ts, stat_set::full);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      INFO("dtype " << dtype << " tensor " << i);
      CHECK(simic_test::close(a[i].sum_of_squares(), b[i].sum_of_squares(), 1e-6));
      CHECK(a[i].max_abs() == b[i].max_abs());
      CHECK(a[i].zeros() == b[i].zeros());
      CHECK(a[i].small() == b[i].small());
      CHECK(a[i].large() == b[i].large());
    }
  }
}

TEST_CASE("torch_ops_backend: float16 and bfloat16 norms accumulate in float32 on both paths") {
  for (auto dtype : {at::kHalf, at::kBFloat16}) {
    at::Tensor g = at::full({40000}, 1000.0).to(dtype);  // norm 2e5 > 65504: a half result would be inf
    for (bool fe : {true, false}) {
      const auto t = run(with_foreach(fe), {g}, stat_set::basic);
      CHECK(t[0].norm() == doctest::Approx(200000.0).epsilon(1e-4));  // float32 accumulation
      CHECK(std::isfinite(t[0].norm()));
    }
  }
  // Which path the version guard picks for float16 on this LibTorch:
  CHECK(simic::detail::foreach_norm_accepts(at::kFloat) == simic::detail::foreach_norm_available);
  CHECK(simic::detail::foreach_norm_accepts(at::kHalf) == simic::detail::foreach_norm_has_dtype);
}

TEST_CASE("torch_ops_backend: NaN, Inf, empty, all-NaN and non-contiguous tensors agree with the CPU fused pass") {
  const float nan_f = std::numeric_limits<float>::quiet_NaN();
  const float inf_f = std::numeric_limits<float>::infinity();
  auto gen = at::detail::createCPUGenerator(4);
  at::Tensor a = at::randn({300}, gen);
  a[3] = nan_f;
  a[200] = -inf_f;
  at::Tensor m = at::randn({30, 70}, gen);
  const std::vector<at::Tensor> ts{a, at::empty({0}), at::full({9}, nan_f), m.t(), m.slice(1, 0, 70, 3),
                                   at::zeros({50})};
  for (bool fe : {true, false}) {
    const auto o = run(with_foreach(fe), ts, stat_set::full);
    const auto c = run(cpu_fused_backend{}, ts, stat_set::full);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      INFO("tensor " << i);
      CHECK(o[i].numel() == c[i].numel());
      CHECK(simic_test::close(o[i].sum_of_squares(), c[i].sum_of_squares(), 1e-5));
      CHECK(simic_test::close(o[i].max_abs(), c[i].max_abs(), 1e-6));
      CHECK(o[i].zeros() == c[i].zeros());
      CHECK(o[i].nans() == c[i].nans());
      CHECK(o[i].infs() == c[i].infs());
      CHECK(simic_test::close(o[i].min(), c[i].min(), 1e-6));
      CHECK(simic_test::close(o[i].max(), c[i].max(), 1e-6));
      CHECK(simic_test::close(o[i].mean(), c[i].mean(), 1e-5, 1e-9));
      CHECK(simic_test::close(o[i].population_std(), c[i].population_std(), 1e-4));
      CHECK(o[i].small() == c[i].small());
      CHECK(o[i].large() == c[i].large());
    }
    CHECK(o[0].nans() == 1);
    CHECK(o[0].infs() == 1);
    CHECK(o[1].min() == 0.0);
    CHECK(std::isnan(o[2].min()));
    CHECK(o[5].zeros() == 50);
  }
}

TEST_CASE("torch_ops_backend: bad input is a clear error naming the argument") {
  const torch_ops_backend b;
  const std::vector<at::Tensor> ts{at::ones({2}), at::ones({2}, at::kInt)};
  CHECK_THROWS_WITH_AS(b.reduce(reduce_request{ts}), doctest::Contains("tensors[1].dtype"), std::invalid_argument);
  const std::vector<at::Tensor> ok{at::ones({2})};
  CHECK_THROWS_WITH_AS(b.reduce(reduce_request{ok, stat_set::full, 1e-6, std::nan("")}), doctest::Contains("large"),
                       std::invalid_argument);
}
