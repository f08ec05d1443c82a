#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "support/reduction_reference.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/cpu_fused_backend.hpp"

using namespace simic;
using simic_test::check_row;
using simic_test::run;

namespace {
using simic_test::inf_f;
using simic_test::nan_f;

std::vector<cpu_fused_backend> both_loops() {
  cpu_fused_backend vec{}, scalar{};
  scalar.simd = cpu_fused_backend::simd_mode::scalar;
  return {vec, scalar};
}
}  // namespace

TEST_CASE("cpu_fused_backend: mixed shapes and dtypes match the float64 loop reference") {
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (const auto& b : both_loops()) {
      for (auto set : {stat_set::basic, stat_set::full}) {
        std::vector<at::Tensor> ts = simic_test::mixed_tensors(7, dtype);
        ts[3].view({-1}).narrow(0, 100, 300).zero_();  // exact zeros inside the vector blocks
        ts[5].view({-1}).narrow(0, 0, 1000).zero_();
        const auto t = run(b, ts, set);
        for (std::size_t i = 0; i < ts.size(); ++i) {
          INFO("dtype " << dtype << " tensor " << i << " scalar " << (b.simd == cpu_fused_backend::simd_mode::scalar));
          check_row(t[i], simic_test::reference(ts[i]), set == stat_set::basic);
        }
        CHECK(t[5].zeros() >= 1000);
      }
    }
  }
}

TEST_CASE("cpu_fused_backend: NaN and Inf at known places are counted exactly, also in the tail") {
  for (const auto& b : both_loops()) {
    at::Tensor big = at::full({40000}, 0.5f);
    big[5] = nan_f;
    big[20000] = nan_f;
    big[100] = inf_f;
    big[39999] = -inf_f;
    at::Tensor tail = at::full({17}, -2.0f);
    tail[16] = nan_f;
    at::Tensor all_nan = at::full({40}, nan_f);
    const std::vector<at::Tensor> ts{big, tail, all_nan};
    const auto t = run(b, ts, stat_set::full);
    CHECK(t[0].nans() == 2);
    CHECK(t[0].infs() == 2);
    CHECK(std::isnan(t[0].norm()));
    CHECK(t[0].max_abs() == std::numeric_limits<double>::infinity());
    CHECK(t[0].min() == -std::numeric_limits<double>::infinity());
    CHECK(t[0].max() == std::numeric_limits<double>::infinity());
    CHECK(t[0].large() == 2);
    CHECK(t[1].nans() == 1);
    CHECK(t[1].infs() == 0);
    CHECK(t[1].max_abs() == 2.0);
    CHECK(t[1].min() == -2.0);
    CHECK(t[1].max() == -2.0);
    CHECK(t[2].nans() == 40);
    CHECK(std::isnan(t[2].min()));
    CHECK(std::isnan(t[2].max()));
    CHECK(std::isnan(t[2].mean()));
    CHECK(t[2].max_abs() == 0.0);
    const auto basic = run(b, ts, stat_set::basic);
    CHECK(basic[0].nans() == 2);
    CHECK(basic[0].infs() == 2);
    CHECK(basic[0].max_abs() == std::numeric_limits<double>::infinity());
    CHECK(basic[1].nans() == 1);
    CHECK(basic[1].max_abs() == 2.0);
  }
}

TEST_CASE("cpu_fused_backend: the spread of a tensor holding NaN, +Inf or -Inf is NaN; a finite one matches two passes") {
  const std::vector<double> finite{1.0, 2.0, 3.0, 4.0, -7.5, 0.25, 1e-3};
  // The float64 two-pass reference for the finite tensor.
  double mean = 0.0;
  for (double v : finite) mean += v;
  mean /= static_cast<double>(finite.size());
  double m2 = 0.0;
  for (double v : finite) m2 += (v - mean) * (v - mean);
  const double expected_std = std::sqrt(m2 / static_cast<double>(finite.size()));
  for (const auto& b : both_loops()) {
    std::vector<at::Tensor> ts;
    for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                       -std::numeric_limits<double>::infinity()}) {
      std::vector<double> v = finite;
      v[2] = bad;
      ts.push_back(at::tensor(v, at::kDouble));
    }
    ts.push_back(at::tensor(finite, at::kDouble));
    const auto t = run(b, ts, stat_set::full);
    CHECK(std::isnan(t[0].population_std()));
    CHECK(std::isnan(t[0].mean()));
    CHECK(std::isnan(t[1].population_std()));
    CHECK(t[1].mean() == std::numeric_limits<double>::infinity());
    CHECK(std::isnan(t[2].population_std()));
    CHECK(t[2].mean() == -std::numeric_limits<double>::infinity());
    CHECK(simic_test::close(t[3].population_std(), expected_std, 1e-12));
  }
}

TEST_CASE("cpu_fused_backend: the nonfinite set gives max |x|, NaN and Inf counts and sizes exactly") {
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble}) {
    for (const auto& b : both_loops()) {
      std::vector<at::Tensor> ts = simic_test::mixed_tensors(13, dtype);
      ts[5][7] = nan_f;       // first stream of the 4-stream part
      ts[5][39990] = inf_f;   // the single-stream remainder
      ts[7].view({-1})[2999] = -inf_f;  // the scalar tail
      ts[7].view({-1})[1500] = nan_f;
      const auto t = run(b, ts, stat_set::nonfinite);
      for (std::size_t i = 0; i < ts.size(); ++i) {
        INFO("dtype " << dtype << " tensor " << i);
        const auto r = simic_test::reference(ts[i]);
        CHECK(t[i].max_abs() == r.max_abs);
        CHECK(t[i].nans() == static_cast<std::uint64_t>(r.nans));
        CHECK(t[i].infs() == static_cast<std::uint64_t>(r.infs));
        CHECK(t[i].numel() == static_cast<std::uint64_t>(r.numel));
      }
      CHECK(t[5].nans() == 1);
      CHECK(t[5].infs() == 1);
      CHECK(t[7].nans() == 1);
      CHECK(t[7].infs() == 1);
    }
  }
}

TEST_CASE("cpu_fused_backend: zeros, small and large elements in any part of a tensor are counted") {
  // 40000 elements: four streams over the first 39936, one stream over the next 64.
  for (const auto& b : both_loops()) {
    at::Tensor x = at::full({40003}, 1.0f);
    for (std::int64_t i : {0, 9984 + 3, 2 * 9984 + 100, 3 * 9984 + 9983, 39936 + 5, 40001}) x[i] = 0.0f;
    for (std::int64_t i : {17, 39936 + 63, 40002}) x[i] = 1e-9f;
    for (std::int64_t i : {9984, 25000, 39998}) x[i] = -50.0f;
    const auto t = run(b, {x}, stat_set::full);
    CHECK(t[0].zeros() == 6);
    CHECK(t[0].small() == 9);
    CHECK(t[0].large() == 3);
    check_row(t[0], simic_test::reference(x), false);
    const auto basic = run(b, {x}, stat_set::basic);
    CHECK(basic[0].zeros() == 6);
    CHECK(basic[0].max_abs() == 50.0);
  }
}

TEST_CASE("cpu_fused_backend: non-contiguous views give the values of their elements") {
  for (const auto& b : both_loops()) {
    auto gen = at::detail::createCPUGenerator(3);
    at::Tensor m = at::randn({64, 333}, gen);
    at::Tensor v = at::randn({80000}, gen).to(at::kHalf);
    const std::vector<at::Tensor> ts{m.t(), v.slice(0, 0, 80000, 2), m.select(1, 7), at::randn({5}, gen).expand({100, 5})};
    for (const auto& x : ts) CHECK_FALSE(x.is_contiguous());
    CHECK(cpu_fused_backend::reads_in_place(ts[0]));  // dense, permuted: read where it is
    CHECK_FALSE(cpu_fused_backend::reads_in_place(ts[1]));  // a step-2 slice: copied
    CHECK_FALSE(cpu_fused_backend::reads_in_place(ts[3]));  // expanded: copied
    const auto t = run(b, ts, stat_set::full);
    for (std::size_t i = 0; i < ts.size(); ++i) check_row(t[i], simic_test::reference(ts[i]), false);
  }
}

TEST_CASE("cpu_fused_backend: empty lists and empty tensors") {
  const cpu_fused_backend b;
  const std::vector<at::Tensor> none;
  at::Tensor out = b.reduce(reduce_request{none, stat_set::full});
  CHECK(out.size(0) == 0);
  CHECK(out.size(1) == stat::count);
  const std::vector<at::Tensor> ts{at::empty({0}), at::ones({3})};
  const auto t = run(b, ts, stat_set::full);
  CHECK(t[0].numel() == 0);
  CHECK(t[0].norm() == 0.0);
  CHECK(t[0].mean() == 0.0);
  CHECK(t[0].population_std() == 0.0);
  CHECK(t[0].min() == 0.0);
  CHECK(t[0].max() == 0.0);
  CHECK(t[0].fraction(t[0].zeros()) == 0.0);
  CHECK(t[1].norm() == doctest::Approx(std::sqrt(3.0)));
}

TEST_CASE("cpu_fused_backend: spread stays accurate around a large mean") {
  auto gen = at::detail::createCPUGenerator(11);
  at::Tensor x = (at::randn({100000}, gen) * 1e-2 + 1000.0).to(at::kFloat);
  for (const auto& b : both_loops()) {
    const auto t = run(b, {x}, stat_set::full);
    const auto r = simic_test::reference(x);
    CHECK(simic_test::close(t[0].population_std(), r.std, 1e-3));
    CHECK(simic_test::close(t[0].mean(), r.mean, 1e-9));
  }
}

TEST_CASE("cpu_fused_backend: splitting over threads and pieces gives the same figures") {
  cpu_fused_backend fine{};
  fine.grain = 1000;  // many ranges, each crossing tensor boundaries
  std::vector<at::Tensor> ts = simic_test::mixed_tensors(21, at::kFloat, 3.0);
  const auto t = run(fine, ts, stat_set::full, 0.01, 5.0);
  for (std::size_t i = 0; i < ts.size(); ++i) check_row(t[i], simic_test::reference(ts[i], 0.01, 5.0), false);
}

TEST_CASE("cpu_fused_backend: small and large bounds count just below, at and just above exactly") {
  for (const auto& b : both_loops()) {
    for (double small : {0.25, 1e-6}) {
      const double large = 10.0;
      const float s = static_cast<float>(small);
      std::vector<float> v(64, 1.0f);
      // float neighbours of the small bound and of the large bound, both signs
      v[1] = std::nextafter(s, 0.0f);
      v[2] = s;
      v[3] = std::nextafter(s, 1.0f);
      v[4] = -std::nextafter(s, 0.0f);
      v[40] = 10.0f;
      v[41] = std::nextafter(10.0f, 0.0f);
      v[42] = std::nextafter(10.0f, 20.0f);
      v[43] = -std::nextafter(10.0f, 20.0f);
      at::Tensor x = at::from_blob(v.data(), {64}, at::kFloat).clone();
      const auto r = simic_test::reference(x, small, large);
      const auto t = run(b, {x}, stat_set::full, small, large);
      CHECK(t[0].small() == static_cast<std::uint64_t>(r.small));
      CHECK(t[0].large() == 2);
      CHECK(t[0].large() == static_cast<std::uint64_t>(r.large));
      if (small == 0.25) CHECK(t[0].small() == 2);  // the two below; 0.25 itself is not < 0.25
    }
  }
}

TEST_CASE("cpu_fused_backend: float16 sums of squares do not overflow") {
  at::Tensor g = at::full({40000}, 1000.0).to(at::kHalf);  // 4e10 per tensor, far above 65504
  for (const auto& b : both_loops()) {
    const auto t = run(b, {g}, stat_set::basic);
    CHECK(t[0].sum_of_squares() == doctest::Approx(4e10).epsilon(1e-9));
    CHECK(t[0].norm() == doctest::Approx(200000.0).epsilon(1e-9));
  }
}

TEST_CASE("cpu_fused_backend: never modifies its inputs") {
  std::vector<at::Tensor> ts = simic_test::mixed_tensors(5, at::kFloat);
  std::vector<at::Tensor> copies;
  std::vector<std::uint32_t> versions;
  for (const auto& t : ts) {
    copies.push_back(t.clone());
    versions.push_back(t._version());
  }
  run(cpu_fused_backend{}, ts, stat_set::full);
  for (std::size_t i = 0; i < ts.size(); ++i) {
    CHECK(at::equal(ts[i], copies[i]));
    CHECK(ts[i]._version() == versions[i]);
  }
}

TEST_CASE("cpu_fused_backend: bad input is a clear error naming the argument") {
  const cpu_fused_backend b;
  auto msg = [&](const std::vector<at::Tensor>& ts, double small = 1e-6) {
    try {
      b.reduce(reduce_request{ts, stat_set::full, small, 10.0});
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(msg({at::ones({2}), at::ones({2}, at::kLong)}).find("tensors[1].dtype") != std::string::npos);
  CHECK(msg({at::ones({2}), at::Tensor()}).find("tensors[1]") != std::string::npos);
  CHECK(msg({at::ones({2}), at::ones({2}, at::TensorOptions().device(at::kMeta))}).find("tensors[1].device") !=
        std::string::npos);
  CHECK(msg({at::ones({2}, at::TensorOptions().device(at::kMeta))}).find("tensors[0].device") != std::string::npos);
  CHECK(msg({at::ones({2})}, -1.0).find("small") != std::string::npos);
}

TEST_CASE("auto_backend: CPU tensors go through the fused pass") {
  std::vector<at::Tensor> ts = simic_test::mixed_tensors(9, at::kFloat);
  const at::Tensor a = auto_backend{}.reduce(reduce_request{ts, stat_set::full});
  const at::Tensor c = cpu_fused_backend{}.reduce(reduce_request{ts, stat_set::full});
  CHECK(at::equal(a, c));
  const std::vector<at::Tensor> none;
  CHECK(auto_backend{}.reduce(reduce_request{none}).size(0) == 0);
}
