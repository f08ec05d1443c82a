#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/reduction_reference.hpp"
#include "support/written_event.hpp"
#include "simic/sensors/layer_gradient.hpp"

using namespace simic;

namespace {
using named = std::vector<std::pair<std::string, at::Tensor>>;

at::Tensor param_with_grad(const at::Tensor& g) {
  at::Tensor p = at::zeros_like(g).requires_grad_(true);
  p.mutable_grad() = g;
  return p;
}
}  // namespace

TEST_CASE("layer gradients: every statistic of every layer against loops, fp32 / fp16 / bf16, strided") {
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    std::vector<at::Tensor> gs = simic_test::mixed_tensors(71, dtype, 2.0);
    gs[4].view({-1}).narrow(0, 0, 30).zero_();
    named params;
    for (std::size_t i = 0; i < gs.size(); ++i) params.emplace_back("layer" + std::to_string(i), param_with_grad(gs[i]));
    params.emplace_back("frozen", at::ones({3}));  // no gradient
    // a strided gradient (a transposed view)
    at::Tensor p = at::zeros({33, 64}).requires_grad_(true);
    p.mutable_grad() = gs[3].t();
    params.emplace_back("strided", p);
    layer_gradient_options o;
    o.small = 1e-3;
    o.large = 3.0;
    const auto r = layer_gradient_sensor<>{o}.measure(params);
    REQUIRE(r.layers.size() == gs.size() + 1);
    CHECK(r.skipped_without_grad == 1);
    for (std::size_t i = 0; i < r.layers.size(); ++i) {
      const at::Tensor& g = i < gs.size() ? gs[i] : gs[3].t();
      const auto ref = simic_test::reference(g, o.small, o.large);
      const layer_gradient_stats& l = r.layers[i];
      INFO("dtype " << dtype << " layer " << l.name);
      const double n = static_cast<double>(ref.numel);
      CHECK(l.numel == static_cast<std::uint64_t>(ref.numel));
      CHECK(simic_test::close(l.norm, std::sqrt(ref.sumsq), 1e-5));
      CHECK(simic_test::close(l.mean, ref.mean, 1e-4, 1e-5 * std::sqrt(ref.sumsq / n)));
      CHECK(simic_test::close(l.std, ref.std, 1e-4));
      CHECK(l.min == ref.min);
      CHECK(l.max == ref.max);
      CHECK(l.zero_fraction == static_cast<double>(ref.zeros) / n);
      CHECK(l.small_fraction == static_cast<double>(ref.small) / n);
      CHECK(l.large_fraction == static_cast<double>(ref.large) / n);
      CHECK(l.nan_count == 0);
      CHECK(l.health == doctest::Approx(std::clamp(1 - 0.5 * ref.small / n - 0.8 * ref.large / n, 0.0, 1.0)));
    }
    CHECK(r.layers.back().name == "strided");
  }
}

TEST_CASE("layer gradients: health score by hand; dead and exploding bounds just below, at and just above") {
  // 10 elements per layer; dead bound 0.9 (zero fraction), exploding bound 0.1 (large fraction)
  auto layer = [](int zeros, int large, int nan) {
    std::vector<float> v(10, 1.0f);
    int k = 0;
    for (int i = 0; i < zeros; ++i) v[k++] = 0.0f;
    for (int i = 0; i < large; ++i) v[k++] = 20.0f;
    for (int i = 0; i < nan; ++i) v[k++] = std::numeric_limits<float>::quiet_NaN();
    return param_with_grad(at::from_blob(v.data(), {10}, at::kFloat).clone());
  };
  const named params{{"z8", layer(8, 0, 0)}, {"z9", layer(9, 0, 0)}, {"z10", layer(10, 0, 0)},
                     {"l0", layer(0, 0, 0)}, {"l1", layer(0, 1, 0)}, {"l2", layer(0, 2, 0)},
                     {"nan", layer(0, 0, 1)}};
  const auto r = layer_gradient_sensor<>{}.measure(params);
  CHECK(r.dead_layers == std::vector<std::string>{"z10"});
  CHECK(r.exploding_layers == std::vector<std::string>{"l2"});
  CHECK_FALSE(r.layers[1].dead);  // 0.9 is not above 0.9
  CHECK_FALSE(r.layers[4].exploding);  // 0.1 is not above 0.1
  // hand computation: 1 - 0.5 * small_fraction - 0.8 * large_fraction (zeros are small)
  CHECK(r.layers[0].health == doctest::Approx(1 - 0.5 * 0.8));
  CHECK(r.layers[2].health == doctest::Approx(0.5));
  CHECK(r.layers[3].health == 1.0);
  CHECK(r.layers[5].health == doctest::Approx(1 - 0.8 * 0.2));
  CHECK(r.layers[6].health == 0.0);  // NaN present
  CHECK(r.layers[6].nan_count == 1);
  CHECK(std::isnan(r.layers[6].mean));
  CHECK(r.layers[6].max == 1.0);  // min / max over non-NaN elements
  CHECK(layer_gradient_health(3, 1, 10, 0) == doctest::Approx(1 - 0.15 - 0.08));
  CHECK(layer_gradient_health(0, 0, 0, 0) == 1.0);
  CHECK(layer_gradient_health(0, 0, 10, 2) == 0.0);
}

TEST_CASE("layer gradients: a module through the filter; sync == async; LibTorch-ops back end agrees") {
  torch::nn::Sequential net(torch::nn::Linear(6, 16), torch::nn::ReLU(), torch::nn::Linear(16, 3));
  net->forward(torch::randn({8, 6})).pow(2).sum().backward();
  layer_gradient_options o;
  o.filter.include("2.*");
  const layer_gradient_sensor<> s(o);
  const auto r = s.measure(*net);
  REQUIRE(r.layers.size() == 2);
  CHECK(r.layers[0].name == "2.weight");
  const auto a = s.measure_async(*net).materialize();
  const auto t = layer_gradient_sensor<torch_ops_backend>(o).measure(*net);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(a.layers[i].norm == r.layers[i].norm);
    CHECK(a.layers[i].std == r.layers[i].std);
    CHECK(a.layers[i].min == r.layers[i].min);
    CHECK(simic_test::close(t.layers[i].norm, r.layers[i].norm, 1e-5));
    CHECK(simic_test::close(t.layers[i].std, r.layers[i].std, 1e-4));
    CHECK(t.layers[i].max == r.layers[i].max);
    CHECK(t.layers[i].small_fraction == r.layers[i].small_fraction);
  }
}

TEST_CASE("layer gradients: empty input and bad options") {
  const named none;
  const auto r = layer_gradient_sensor<>{}.measure(none);
  CHECK(r.layers.empty());
  CHECK(r.dead_layers.empty());
  layer_gradient_options o;
  o.dead_zero_fraction = 1.0;
  CHECK_THROWS_WITH_AS(layer_gradient_sensor<>{o}, doctest::Contains("dead_zero_fraction"), std::invalid_argument);
  o = {};
  o.large = o.small;
  CHECK_THROWS_WITH_AS(layer_gradient_sensor<>{o}, doctest::Contains("large"), std::invalid_argument);
  o = {};
  o.exploding_large_fraction = -0.1;
  CHECK_THROWS_WITH_AS(layer_gradient_sensor<>{o}, doctest::Contains("exploding_large_fraction"), std::invalid_argument);
}

TEST_CASE("the layer_gradients event: every layer's statistics in JSON, each layer's norm and health in TensorBoard") {
  layer_gradient_report lr;
  lr.layers.push_back({.name = "lstm.weight_ih_l0", .numel = 512, .norm = 2.0, .mean = 0.01, .std = 0.1,
                       .min = -0.5, .max = 0.4, .zero_fraction = 0.95, .small_fraction = 0.96,
                       .large_fraction = 0.0, .nan_count = 0, .inf_count = 0, .health = 0.2, .dead = true,
                       .exploding = false});
  lr.layers.push_back({.name = "head.bias", .numel = 3, .norm = 40.0, .large_fraction = 1.0, .exploding = true});
  lr.dead_layers = {"lstm.weight_ih_l0"};
  lr.exploding_layers = {"head.bias"};
  lr.skipped_without_grad = 2;
  const auto j = simic::test::json_of(event(3, 0, layer_gradients_event{.report = lr}));
  REQUIRE(j["layers"].size() == 2);
  CHECK(j["layers"][0]["name"] == "lstm.weight_ih_l0");
  CHECK(j["layers"][0]["numel"] == 512);
  CHECK(j["layers"][0]["zero_fraction"].get<double>() == 0.95);
  CHECK(j["layers"][0]["dead"] == true);
  CHECK(j["layers"][1]["norm"].get<double>() == 40.0);
  CHECK(j["layers"][1]["exploding"] == true);
  CHECK(j["layers"][0].size() == 15);
  CHECK(j["dead_layers"] == nlohmann::json::array({"lstm.weight_ih_l0"}));
  CHECK(j["exploding_layers"] == nlohmann::json::array({"head.bias"}));
  CHECK(j["skipped_without_grad"] == 2);
  CHECK(simic::test::scalars_of(event(3, 1, layer_gradients_event{.report = lr})) ==
        std::vector<tensorboard_scalar>{{"layers/lstm.weight_ih_l0/norm", 2.0},
                                        {"layers/lstm.weight_ih_l0/health", 0.2},
                                        {"layers/head.bias/norm", 40.0},
                                        {"layers/head.bias/health", 1.0}});
}
