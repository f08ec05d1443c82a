#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "support/reduction_reference.hpp"
#include "support/written_event.hpp"
#include "simic/detect/gradient_bounds.hpp"
#include "simic/sensors/gradient_health.hpp"

using namespace simic;

namespace {
struct expected {
  std::vector<double> norms;
  double total = 0, lo = 0, hi = 0;
  std::uint64_t zeros = 0, elements = 0, nans = 0, infs = 0;
};
expected expect(const std::vector<at::Tensor>& grads) {
  expected e;
  double sq = 0;
  e.lo = std::numeric_limits<double>::infinity();
  e.hi = -e.lo;
  for (const auto& g : grads) {
    if (!g.defined()) continue;
    const auto r = simic_test::reference(g);
    e.norms.push_back(std::sqrt(r.sumsq));
    sq += r.sumsq;
    e.lo = std::min(e.lo, e.norms.back());
    e.hi = std::max(e.hi, e.norms.back());
    e.zeros += r.zeros;
    e.elements += r.numel;
    e.nans += r.nans;
    e.infs += r.infs;
  }
  e.total = std::sqrt(sq);
  return e;
}

void check_same(const gradient_health_report& a, const gradient_health_report& b) {
  CHECK(a.param_norms == b.param_norms);
  CHECK(a.total_norm == b.total_norm);
  CHECK(a.norm_per_tensor == b.norm_per_tensor);
  CHECK(a.min_param_norm == b.min_param_norm);
  CHECK(a.max_param_norm == b.max_param_norm);
  CHECK(a.max_min_ratio == b.max_min_ratio);
  CHECK(a.parameters == b.parameters);
  CHECK(a.skipped_without_grad == b.skipped_without_grad);
  CHECK(a.vanishing == b.vanishing);
  CHECK(a.exploding == b.exploding);
  CHECK(a.zeros == b.zeros);
  CHECK(a.nan_count == b.nan_count);
  CHECK(a.inf_count == b.inf_count);
  CHECK(a.health == b.health);
  CHECK(a.names == b.names);
}
}  // namespace

TEST_CASE("gradient_health: mixed shapes and dtypes, one parameter without a gradient, against loops") {
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble}) {
    std::vector<at::Tensor> grads = simic_test::mixed_tensors(31, dtype);
    grads[2].zero_();
    grads.insert(grads.begin() + 1, at::Tensor());  // a parameter without a gradient
    const expected e = expect(grads);
    const auto r = gradient_health_sensor<>{}.measure(grads);
    REQUIRE(r.param_norms.size() == e.norms.size());
    for (std::size_t i = 0; i < e.norms.size(); ++i) CHECK(simic_test::close(r.param_norms[i], e.norms[i], 1e-5));
    CHECK(r.parameters == e.norms.size());
    CHECK(r.skipped_without_grad == 1);
    CHECK(simic_test::close(r.total_norm, e.total, 1e-5));
    CHECK(simic_test::close(r.norm_per_tensor, e.total / static_cast<double>(e.norms.size()), 1e-5));
    CHECK(r.min_param_norm == 0.0);  // the zeroed gradient
    CHECK(simic_test::close(r.max_param_norm, e.hi, 1e-5));
    CHECK_FALSE(r.max_min_ratio.has_value());  // min is 0
    CHECK(r.vanishing == 1);
    CHECK(r.exploding == 0);
    CHECK(r.zeros == e.zeros);
    CHECK(r.zero_fraction == doctest::Approx(static_cast<double>(e.zeros) / static_cast<double>(e.elements)));
    CHECK(r.health == doctest::Approx(1.0 - 0.5 / static_cast<double>(e.norms.size())));
    CHECK(r.nan_count == 0);
    CHECK(r.signal().finite());
  }
}

TEST_CASE("gradient_health: smallest / largest norm and their ratio") {
  const std::vector<at::Tensor> grads{at::full({4}, 0.5), at::full({1}, 3.0), at::full({9}, 1.0)};
  const auto r = gradient_health_sensor<>{}.measure(grads);
  CHECK(r.min_param_norm == doctest::Approx(1.0));  // sqrt(4 * 0.25)
  CHECK(r.max_param_norm == doctest::Approx(3.0));
  REQUIRE(r.max_min_ratio.has_value());
  CHECK(*r.max_min_ratio == doctest::Approx(3.0));
  CHECK(r.total_norm == doctest::Approx(std::sqrt(1.0 + 9.0 + 9.0)));
  CHECK(r.norm_per_tensor == doctest::Approx(std::sqrt(19.0) / 3.0));
}

TEST_CASE("gradient_health: vanishing and exploding bounds, just below, at and just above") {
  gradient_health_options o;
  o.vanishing = 0.5;
  o.exploding = 10.0;
  const float v = 0.5f, x = 10.0f;
  const std::vector<at::Tensor> grads{at::full({1}, std::nextafter(v, 0.0f)), at::full({1}, v),
                                      at::full({1}, std::nextafter(v, 1.0f)),  at::full({1}, std::nextafter(x, 0.0f)),
                                      at::full({1}, x),                        at::full({1}, std::nextafter(x, 20.0f))};
  const auto r = gradient_health_sensor<>{o}.measure(grads);
  CHECK(r.vanishing == 1);
  CHECK(r.exploding == 1);
  CHECK(r.health == doctest::Approx(1.0 - 0.5 / 6.0 - 0.8 / 6.0));
  CHECK(r.health == gradient_health(1, 1, 6));
  // defaults: 1e-7 and 10
  const std::vector<at::Tensor> d{at::full({1}, 1e-8, at::kDouble), at::full({1}, 1e-6, at::kDouble),
                                  at::full({2}, 11.0, at::kDouble)};
  const auto rd = gradient_health_sensor<>{}.measure(d);
  CHECK(rd.vanishing == 1);
  CHECK(rd.exploding == 1);
}

TEST_CASE("gradient_health: no gradients at all is defined: norm 0, health 1") {
  const std::vector<at::Tensor> none;
  const auto r = gradient_health_sensor<>{}.measure(none);
  CHECK(r.total_norm == 0.0);
  CHECK(r.health == 1.0);
  CHECK(r.parameters == 0);
  CHECK(r.min_param_norm == 0.0);
  CHECK(r.max_param_norm == 0.0);
  CHECK_FALSE(r.max_min_ratio.has_value());
  CHECK(r.norm_per_tensor == 0.0);
  const std::vector<at::Tensor> undefined(3);
  const auto u = gradient_health_sensor<>{}.measure(undefined);
  CHECK(u.skipped_without_grad == 3);
  CHECK(u.parameters == 0);
  CHECK(u.health == 1.0);
  CHECK(u.signal().finite());
}

TEST_CASE("gradient_health: float16 / bfloat16 gradients of 1e3 give the right norm") {
  for (auto dtype : {at::kHalf, at::kBFloat16}) {
    const std::vector<at::Tensor> grads{at::full({10000}, 1000.0).to(dtype), at::full({30000}, -1000.0).to(dtype)};
    for (bool ops : {false, true}) {
      const double expected_norm = 1000.0 * std::sqrt(40000.0);
      const double n = ops ? gradient_health_sensor<torch_ops_backend>{}.measure(grads).total_norm
                           : gradient_health_sensor<>{}.measure(grads).total_norm;
      // float64 partial sums (fused CPU pass) or LibTorch's float32 accumulator
      CHECK(n == doctest::Approx(expected_norm).epsilon(ops ? 1e-4 : 1e-9));
    }
    // what a half-precision sum of squares gives
    if (dtype == at::kHalf) CHECK(std::isinf((grads[0] * grads[0]).sum().item<float>()));
  }
}

TEST_CASE("gradient_health: NaN and Inf at known places") {
  at::Tensor a = at::full({1000}, 0.01f);
  a[10] = std::numeric_limits<float>::quiet_NaN();
  a[999] = std::numeric_limits<float>::quiet_NaN();
  at::Tensor b = at::full({50}, 0.01f);
  b[0] = -std::numeric_limits<float>::infinity();
  const std::vector<at::Tensor> grads{a, b, at::full({5}, 0.1f)};
  const auto r = gradient_health_sensor<>{}.measure(grads);
  CHECK(r.nan_count == 2);
  CHECK(r.inf_count == 1);
  CHECK(std::isnan(r.total_norm));
  CHECK(std::isnan(r.param_norms[0]));
  CHECK(std::isinf(r.param_norms[1]));
  CHECK(r.exploding == 1);  // an infinite norm is above any bound
  CHECK(r.min_param_norm == doctest::Approx(std::sqrt(5 * 0.01)));
  CHECK_FALSE(r.signal().finite());
}

TEST_CASE("gradient_health: sync and async give identical values; the LibTorch-ops back end, with and without "
          "foreach, agrees") {
  std::vector<at::Tensor> grads = simic_test::mixed_tensors(41, at::kFloat, 5.0);
  const gradient_health_sensor<> s;
  const auto pending = s.measure_async(grads);
  const auto sync = s.measure(grads);
  check_same(pending.materialize(), sync);
  torch_ops_backend fe, loop;
  loop.use_foreach = false;
  const gradient_health_sensor<torch_ops_backend> a(gradient_health_options{}, fe), b(gradient_health_options{}, loop);
  const auto pa = a.measure_async(grads);
  check_same(pa.materialize(), a.measure(grads));
  const auto ra = a.measure(grads), rb = b.measure(grads);
  for (std::size_t i = 0; i < grads.size(); ++i) {
    CHECK(simic_test::close(ra.param_norms[i], rb.param_norms[i], 1e-6));
    CHECK(simic_test::close(ra.param_norms[i], sync.param_norms[i], 1e-5));
  }
  CHECK(ra.vanishing == sync.vanishing);
  CHECK(ra.exploding == sync.exploding);
  CHECK(simic_test::close(ra.total_norm, sync.total_norm, 1e-5));
}

TEST_CASE("gradient_health: a module's parameters and named parameters, filtered; sensor -> monitor in one line") {
  torch::nn::Sequential net(torch::nn::Linear(4, 8), torch::nn::Tanh(), torch::nn::Linear(8, 2));
  auto unused = net->register_parameter("unused", torch::ones({3}));  // requires grad, never gets one
  net->forward(torch::ones({5, 4})).sum().backward();
  const auto all = gradient_health_sensor<>{}.measure(*net);
  CHECK(all.parameters == 4);
  CHECK(all.skipped_without_grad == 1);
  CHECK(all.names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  double sq = 0;
  for (const auto& p : net->parameters())
    if (p.grad().defined()) sq += simic_test::reference(p.grad()).sumsq;
  CHECK(simic_test::close(all.total_norm, std::sqrt(sq), 1e-5));

  gradient_health_options o;
  o.filter.exclude("*.bias");
  const auto weights = gradient_health_sensor<>{o}.measure(net->named_parameters());
  CHECK(weights.names == std::vector<std::string>{"0.weight", "2.weight"});
  CHECK(weights.skipped_without_grad == 1);

  signals s;
  s.gradients = gradient_health_sensor<>{}.measure(*net).signal();
  REQUIRE(s.gradients.has_value());
  CHECK(s.gradients->parameters == 4);
  anomaly_report rep;
  gradient_bounds({.vanishing = 1e-7, .exploding = 1e-3}).observe(s, rep);  // any real gradient is above 1e-3 here
  CHECK(rep.has(anomaly_kind::gradient_exploding));
}

TEST_CASE("gradient_health: never modifies the gradients; runs without recording autograd") {
  at::Tensor w = torch::ones({10}, torch::requires_grad());
  (w * w).sum().backward();
  const at::Tensor before = w.grad().clone();
  const auto v = w.grad()._version();
  gradient_health_sensor<>{}.measure(std::vector<at::Tensor>{w.grad()});
  CHECK(at::equal(before, w.grad()));
  CHECK(w.grad()._version() == v);
  const std::vector<at::Tensor> grads{w * 2.0};  // requires grad
  const auto pending = gradient_health_sensor<torch_ops_backend>{}.measure_async(grads);
  CHECK_FALSE(pending.device_stats().requires_grad());
}

TEST_CASE("gradient_health: bad options and inputs are clear errors") {
  gradient_health_options o;
  o.vanishing = -1.0;
  CHECK_THROWS_WITH_AS(gradient_health_sensor<>{o}, doctest::Contains("vanishing"), std::invalid_argument);
  o.vanishing = 1.0;
  o.exploding = 1.0;
  CHECK_THROWS_WITH_AS(gradient_health_sensor<>{o}, doctest::Contains("exploding"), std::invalid_argument);
  const std::vector<at::Tensor> ints{at::ones({2}, at::kLong)};
  CHECK_THROWS_WITH_AS(gradient_health_sensor<>{}.measure(ints), doctest::Contains("dtype"), std::invalid_argument);
}

TEST_CASE("the gradient_health event: every gradient figure in JSON (NaN and Inf as strings), TensorBoard's tags") {
  using simic::test::json_of;
  using simic::test::scalars_of;
  using simic::test::tags_of;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  gradient_health_event g{.gradients = {.total_norm = nan, .health = 0.0, .min_param_norm = 0.0,
                                        .max_param_norm = inf, .parameters = 4, .vanishing = 1, .exploding = 2,
                                        .nan_count = 10, .inf_count = 1}};
  const auto j = json_of(event(5, 0, g));
  CHECK(j["event"] == "gradient_health");
  CHECK(j["total_norm"] == "nan");
  CHECK(j["max_param_norm"] == "inf");
  CHECK(j["min_param_norm"].get<double>() == 0.0);
  CHECK(j["health"].get<double>() == 0.0);
  CHECK(j["parameters"] == 4);
  CHECK(j["vanishing"] == 1);
  CHECK(j["exploding"] == 2);
  CHECK(j["nan_count"] == 10);
  CHECK(j["inf_count"] == 1);
  CHECK_FALSE(j.contains("host_module_ratio"));  // absent unless the host is named
  CHECK(j.size() == 4 + 9);
  g.host_module_ratio = 0.25;
  CHECK(json_of(event(5, 0, g))["host_module_ratio"] == 0.25);

  g.gradients = {.total_norm = 2.5, .health = 0.75, .min_param_norm = 0.1, .max_param_norm = 2.0, .parameters = 4,
                 .vanishing = 1, .exploding = 0, .nan_count = 3, .inf_count = 0};
  g.host_module_ratio.reset();
  const auto gs = scalars_of(event(3, 1, g));
  // `parameters` is no scalar: it is the model's size, not a figure of health.
  CHECK(tags_of(gs) == std::vector<std::string>{"gradients/total_norm", "gradients/health", "gradients/min_param_norm",
                                                "gradients/max_param_norm", "gradients/vanishing",
                                                "gradients/exploding", "gradients/nan_count", "gradients/inf_count"});
  CHECK(gs[0].value == 2.5);
  CHECK(gs[6].value == 3.0);
  g.host_module_ratio = 0.5;
  CHECK(scalars_of(event(3, 1, g)).back() == tensorboard_scalar{"gradients/host_module_ratio", 0.5});
}
