#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "support/reduction_reference.hpp"
#include "support/written_event.hpp"
#include "simic/sensors/nan_inf_scanner.hpp"

using namespace simic;

namespace {
using named = std::vector<std::pair<std::string, at::Tensor>>;
using simic_test::inf_f;
using simic_test::nan_f;

named poisoned_params() {
  named ps;
  auto gen = at::detail::createCPUGenerator(81);
  for (int i = 0; i < 12; ++i) {
    at::Tensor w = at::randn({100 + 37 * i}, gen).requires_grad_(true);
    if (i != 7) w.mutable_grad() = at::randn({100 + 37 * i}, gen) * 0.01;
    ps.emplace_back("p" + std::to_string(i), w);
  }
  at::NoGradGuard ng;
  ps[2].second[50] = nan_f;                // weight NaN
  ps[5].second.mutable_grad()[0] = inf_f;  // grad +Inf
  ps[9].second[3] = -inf_f;                // weight -Inf
  ps[9].second.mutable_grad()[100] = nan_f;  // and grad NaN
  ps[11].second.mutable_grad()[-1] = nan_f;  // last element of the last grad
  return ps;
}
}  // namespace

TEST_CASE("nan_inf_scan: names exactly the poisoned parameters, in order, with what is wrong") {
  const named ps = poisoned_params();
  const auto r = nan_inf_scanner<>{}.scan(ps);
  REQUIRE(r.offenders.size() == 4);
  CHECK(r.offenders[0].name == "p2");
  CHECK(r.offenders[0].weight_nan);
  CHECK_FALSE(r.offenders[0].weight_inf);
  CHECK_FALSE(r.offenders[0].grad_nan);
  CHECK(r.offenders[1].name == "p5");
  CHECK(r.offenders[1].grad_inf);
  CHECK_FALSE(r.offenders[1].grad_nan);
  CHECK(r.offenders[2].name == "p9");
  CHECK(r.offenders[2].weight_inf);
  CHECK(r.offenders[2].grad_nan);
  CHECK(r.offenders[3].name == "p11");
  CHECK(r.offenders[3].grad_nan);
  CHECK(r.parameters_scanned == 12);
  CHECK_FALSE(r.loss_finite.has_value());
  CHECK(r.max_abs_weight == std::numeric_limits<double>::infinity());
  CHECK(r.max_abs_grad == std::numeric_limits<double>::infinity());
  CHECK_FALSE(r.clean());
}

TEST_CASE("nan_inf_scan: clean parameters, max |weight| and max |grad| against loops, loss finiteness") {
  named ps = poisoned_params();
  ps.erase(ps.begin() + 2);  // drop every poisoned one
  ps.erase(ps.begin() + 4);
  ps.erase(ps.begin() + 7);
  ps.pop_back();
  double wmax = 0, gmax = 0;
  for (const auto& [n, p] : ps) {
    wmax = std::max(wmax, simic_test::reference(p).max_abs);
    if (p.grad().defined()) gmax = std::max(gmax, simic_test::reference(p.grad()).max_abs);
  }
  const nan_inf_scanner<> s;
  const auto r = s.scan(ps, at::scalar_tensor(1.5));
  CHECK(r.offenders.empty());
  CHECK(r.max_abs_weight == wmax);
  CHECK(r.max_abs_grad == gmax);
  REQUIRE(r.loss_finite.has_value());
  CHECK(*r.loss_finite);
  CHECK(r.clean());
  CHECK_FALSE(*s.scan(ps, at::scalar_tensor(nan_f)).loss_finite);
  CHECK_FALSE(s.scan(ps, at::scalar_tensor(nan_f)).clean());
  CHECK_FALSE(*s.scan(ps, std::numeric_limits<double>::infinity()).loss_finite);
  CHECK(*s.scan(ps, 0.25).loss_finite);
  // async == sync; the LibTorch-ops back end names the same
  const auto a = s.scan_async(poisoned_params()).materialize();
  const auto o = nan_inf_scanner<torch_ops_backend>{}.scan(poisoned_params());
  REQUIRE(a.offenders.size() == 4);
  REQUIRE(o.offenders.size() == 4);
  for (int i = 0; i < 4; ++i) {
    CHECK(a.offenders[i].name == o.offenders[i].name);
    CHECK(a.offenders[i].grad_nan == o.offenders[i].grad_nan);
    CHECK(a.offenders[i].weight_inf == o.offenders[i].weight_inf);
  }
}

TEST_CASE("nan_inf_scan: one device->host transfer whatever the parameter count (one packed buffer)") {
  const named ps = poisoned_params();
  const auto p = nan_inf_scanner<>{}.scan_async(ps, at::scalar_tensor(1.0));
  // weights (12) + gradients (11) + loss (1) rows in the single buffer materialize() copies
  CHECK(p.device_stats().size(0) == 24);
}

TEST_CASE("nan_inf_scan: module, filter, empty and bad input") {
  torch::nn::Linear lin(2, 2);
  {
    at::NoGradGuard ng;
    lin->bias[1] = nan_f;
  }
  CHECK(nan_inf_scanner<>{}.scan(*lin).offenders.size() == 1);
  param_filter no_bias;
  no_bias.exclude("bias");
  CHECK(nan_inf_scanner<>{{.filter = no_bias}}.scan(*lin).clean());
  const named none;
  const auto e = nan_inf_scanner<>{}.scan(none, at::scalar_tensor(2.0));
  CHECK(e.parameters_scanned == 0);
  CHECK(e.clean());
  CHECK_THROWS_WITH_AS(nan_inf_scanner<>{}.scan(none, at::ones({1}, at::kLong)), doctest::Contains("loss.dtype"),
                       std::invalid_argument);
  const named undefined{{"ghost", at::Tensor()}};
  CHECK_THROWS_WITH_AS(nan_inf_scanner<>{}.scan(undefined), doctest::Contains("ghost"), std::invalid_argument);
}

TEST_CASE("the nan_inf_scan event: offenders, extremes, the loss's finiteness and clean in JSON") {
  nan_inf_scan_report scan;
  scan.offenders.push_back({.name = "fc.weight", .weight_nan = false, .weight_inf = false, .grad_nan = true,
                            .grad_inf = false});
  scan.max_abs_weight = 3.0;
  scan.max_abs_grad = std::numeric_limits<double>::quiet_NaN();
  scan.parameters_scanned = 8;
  auto j = simic::test::json_of(event(3, 0, nan_inf_scan_event{.report = scan}));
  CHECK(j["event"] == "nan_inf_scan");
  REQUIRE(j["offenders"].size() == 1);
  CHECK(j["offenders"][0]["name"] == "fc.weight");
  CHECK(j["offenders"][0]["grad_nan"] == true);
  CHECK(j["offenders"][0]["weight_nan"] == false);
  CHECK(j["max_abs_weight"].get<double>() == 3.0);
  CHECK(j["max_abs_grad"] == "nan");
  CHECK(j["parameters_scanned"] == 8);
  CHECK(j["clean"] == false);
  CHECK_FALSE(j.contains("loss_finite"));  // no loss was scanned
  const auto tb = simic::test::scalars_of(event(3, 0, nan_inf_scan_event{.report = scan}));
  REQUIRE(tb.size() == 3);
  CHECK(tb[0] == tensorboard_scalar{"nan_inf_scan/offenders", 1.0});
  CHECK(tb[1] == tensorboard_scalar{"nan_inf_scan/max_abs_weight", 3.0});
  CHECK(tb[2].tag == "nan_inf_scan/max_abs_grad");
  CHECK(std::isnan(tb[2].value));
  scan = {};
  scan.loss_finite = false;
  j = simic::test::json_of(event(3, 0, nan_inf_scan_event{.report = scan}));
  CHECK(j["loss_finite"] == false);
  CHECK(j["clean"] == false);
  scan.loss_finite = true;
  CHECK(simic::test::json_of(event(3, 0, nan_inf_scan_event{.report = scan}))["clean"] == true);
}
