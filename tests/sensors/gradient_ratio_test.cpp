#include "support/torch_doctest.hpp"

#include <cmath>
#include <vector>

#include "support/reduction_reference.hpp"
#include "simic/sensors/gradient_ratio.hpp"

using namespace simic;

TEST_CASE("gradient_ratio: squared norms and element counts against loops; the ratio by hand") {
  std::vector<at::Tensor> host = simic_test::mixed_tensors(51, at::kFloat, 1e-2);
  std::vector<at::Tensor> seed = simic_test::mixed_tensors(52, at::kHalf, 3e-2);
  seed.resize(3);
  host.push_back(at::Tensor());  // without a gradient
  double hsq = 0, ssq = 0;
  std::uint64_t hn = 0, sn = 0;
  for (const auto& g : host)
    if (g.defined()) {
      hsq += simic_test::reference(g).sumsq;
      hn += static_cast<std::uint64_t>(g.numel());
    }
  for (const auto& g : seed) {
    ssq += simic_test::reference(g).sumsq;
    sn += static_cast<std::uint64_t>(g.numel());
  }
  const gradient_mass_sensor<> sensor;
  const gradient_mass h = sensor.measure(host);
  const gradient_mass s = sensor.measure(seed);
  CHECK(simic_test::close(h.squared_norm, hsq, 1e-5));
  CHECK(h.parameters == hn);
  CHECK(h.tensors == host.size() - 1);
  CHECK(h.skipped_without_grad == 1);
  CHECK(simic_test::close(s.squared_norm, ssq, 1e-5));
  CHECK(s.parameters == sn);
  const auto ratio = gradient_ratio(h, s);
  REQUIRE(ratio.has_value());
  const double expected = (std::sqrt(ssq) / std::sqrt(static_cast<double>(sn))) / (std::sqrt(hsq) / std::sqrt(static_cast<double>(hn)));
  CHECK(simic_test::close(*ratio, expected, 1e-5));
  // the host measured once serves every module
  const gradient_mass s2 = sensor.measure(std::vector<at::Tensor>{seed[0] * 2});
  CHECK(gradient_ratio(h, s2).has_value());
  // sync == async
  const auto p = sensor.measure_async(host);
  const gradient_mass ha = p.materialize();
  CHECK(ha.squared_norm == h.squared_norm);
  CHECK(ha.parameters == h.parameters);
}

TEST_CASE("gradient_ratio: no data is absent, distinct from a ratio of 0") {
  const gradient_mass none{};
  gradient_mass host;
  host.squared_norm = 4.0;
  host.parameters = 4;  // rms 1
  gradient_mass zero_grad;
  zero_grad.parameters = 9;
  CHECK_FALSE(gradient_ratio(host, none).has_value());
  CHECK_FALSE(gradient_ratio(none, host).has_value());
  CHECK_FALSE(gradient_ratio(zero_grad, host).has_value());  // host norm 0: nothing to compare with
  const auto z = gradient_ratio(host, zero_grad);
  REQUIRE(z.has_value());
  CHECK(*z == 0.0);
  gradient_mass m;
  m.squared_norm = 9.0;
  m.parameters = 1;  // rms 3
  CHECK(*gradient_ratio(host, m) == doctest::Approx(3.0));
}

TEST_CASE("gradient_ratio: a module's parameters through the name filter") {
  torch::nn::Linear lin(3, 2);
  lin->forward(torch::ones({1, 3})).sum().backward();
  param_filter only_weight;
  only_weight.include("weight");
  const gradient_mass m = gradient_mass_sensor<>(only_weight).measure(*lin);
  CHECK(m.parameters == 6);
  CHECK(m.tensors == 1);
  CHECK(m.squared_norm == doctest::Approx(2 * 3 * 1.0));  // d(sum)/dW = 1 for each of 2x3 entries
}
