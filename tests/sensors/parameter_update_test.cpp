#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "support/reduction_reference.hpp"
#include "simic/sensors/parameter_update.hpp"

using namespace simic;

namespace {
// ||now - then|| / ||now|| over all tensors, in float64 element loops.
double reference_ratio(const std::vector<at::Tensor>& then, const std::vector<at::Tensor>& now) {
  double change = 0.0, size = 0.0;
  for (std::size_t i = 0; i < now.size(); ++i) {
    const at::Tensor a = then[i].to(at::kDouble).contiguous(), b = now[i].to(at::kDouble).contiguous();
    const double* pa = a.data_ptr<double>();
    const double* pb = b.data_ptr<double>();
    for (std::int64_t k = 0; k < b.numel(); ++k) {
      change += (pb[k] - pa[k]) * (pb[k] - pa[k]);
      size += pb[k] * pb[k];
    }
  }
  return std::sqrt(change / size);
}
std::vector<at::Tensor> copies(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> c;
  for (const auto& t : ts) c.push_back(t.clone());
  return c;
}
}  // namespace

TEST_CASE("parameter_update: the first call takes the copy; each later call is the step since, against float64") {
  std::vector<at::Tensor> w = simic_test::mixed_tensors(61, at::kFloat, 1.0);
  parameter_update_sensor sensor;
  CHECK_FALSE(sensor.measure(w).has_value());
  CHECK(sensor.tensors() == w.size());
  for (int step = 1; step <= 3; ++step) {
    const std::vector<at::Tensor> then = copies(w);
    for (std::size_t i = 0; i < w.size(); ++i) w[i].add_(at::randn_like(w[i]) * (1e-3 * step));
    const auto r = sensor.measure(w);
    REQUIRE(r.has_value());
    CHECK(*r == doctest::Approx(reference_ratio(then, w)).epsilon(1e-6));
  }
  // a skipped step moves nothing: exactly 0
  const auto still = sensor.measure(w);
  REQUIRE(still.has_value());
  CHECK(*still == 0.0);
}

TEST_CASE("parameter_update: the fused float32 pass and the ATen path agree, mixed in one call") {
  // dense float32: the fused pass; a transposed view and a float64 tensor: ATen operations
  at::Tensor dense = at::randn({300, 7}), wide = at::randn({40, 50}).t(), precise = at::randn({33}, at::kDouble);
  REQUIRE_FALSE(wide.is_contiguous());
  std::vector<at::Tensor> w{dense, wide, precise};
  parameter_update_sensor sensor;
  sensor.measure(w);
  const std::vector<at::Tensor> then = copies(w);
  for (auto& t : w) t.add_(at::randn_like(t) * 1e-2);
  CHECK(*sensor.measure(w) == doctest::Approx(reference_ratio(then, w)).epsilon(1e-9));
  for (std::size_t i : {0u, 1u}) {  // each path alone
    parameter_update_sensor one;
    const std::vector<at::Tensor> only{w[i]};
    one.measure(only);
    const std::vector<at::Tensor> before = copies(only);
    only[0].mul_(1.25);
    CHECK(*one.measure(only) == doctest::Approx(reference_ratio(before, only)).epsilon(1e-9));
    CHECK(*one.measure(only) == 0.0);  // the copy was updated by the pass
  }
}

TEST_CASE("parameter_update: half precision, named parameters with the filter, a module") {
  std::vector<at::Tensor> h = simic_test::mixed_tensors(62, at::kHalf, 1.0);
  parameter_update_sensor sensor;
  sensor.measure(h);
  const std::vector<at::Tensor> then = copies(h);
  for (auto& t : h) t.add_(at::ones_like(t) * 0.125);  // exact in half precision near 1
  CHECK(*sensor.measure(h) == doctest::Approx(reference_ratio(then, h)).epsilon(1e-6));

  torch::nn::Linear lin(4, 3);
  std::vector<std::pair<std::string, at::Tensor>> named{{"lin.weight", lin->weight}, {"lin.bias", lin->bias}};
  parameter_update_sensor only_weight({.filter = param_filter().include("*.weight")});
  CHECK_FALSE(only_weight.measure(named).has_value());
  CHECK(only_weight.tensors() == 1);
  const at::Tensor before = lin->weight.detach().clone();
  {
    torch::NoGradGuard ng;
    lin->weight.mul_(1.5);
    lin->bias.mul_(100.0);  // filtered out: does not count
  }
  CHECK(*only_weight.measure(named) == doctest::Approx(1.0 / 3.0).epsilon(1e-6));  // 0.5 w / 1.5 w

  parameter_update_sensor whole;
  whole.measure(*lin);
  CHECK(whole.tensors() == 2);
  CHECK(*whole.measure(*lin) == 0.0);
}

TEST_CASE("parameter_update: a changed parameter list retakes the copy; undefined tensors are refused") {
  std::vector<at::Tensor> w{at::ones({3}), at::ones({2, 2})};
  parameter_update_sensor sensor;
  sensor.measure(w);
  std::vector<at::Tensor> shapes{at::ones({3}), at::ones({4})};
  CHECK_FALSE(sensor.measure(shapes).has_value());  // another shape: a new copy
  CHECK(*sensor.measure(shapes) == 0.0);
  std::vector<at::Tensor> fewer{at::ones({3})};
  CHECK_FALSE(sensor.measure(fewer).has_value());
  std::vector<at::Tensor> doubles{at::ones({3}, at::kDouble)};
  CHECK_FALSE(sensor.measure(doubles).has_value());  // another dtype
  std::vector<at::Tensor> zeros{at::zeros({3}, at::kDouble)};
  CHECK_FALSE(sensor.measure(zeros).has_value());  // all-zero weights: no size to compare with
  std::vector<at::Tensor> bad{at::ones({3}), at::Tensor()};
  const std::size_t kept = sensor.tensors();
  CHECK_THROWS_WITH_AS((void)sensor.measure(bad), doctest::Contains("weights[1] is undefined"), std::invalid_argument);
  CHECK(sensor.tensors() == kept);  // the copy is untouched
  sensor.reset();
  CHECK(sensor.tensors() == 0);
  const std::vector<at::Tensor> none;
  CHECK_FALSE(sensor.measure(none).has_value());
}
