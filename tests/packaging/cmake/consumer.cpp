// Built through simic::simic from an installed simic (tests/packaging/cmake):
// LibTorch's headers, libraries and ABI flag must all arrive through the
// package. Checks the gradient-health sensor against a reference computed
// here with plain LibTorch in float64, and the monitor's answer to a NaN
// gradient. Exits non-zero on a mismatch.
#include <torch/torch.h>

#include <simic/simic.hpp>
#include <simic/sensors/gradient_health.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what);
    ++failures;
  }
}

// sqrt of the sum of squares of every gradient element, in float64: the
// total norm clip_grad_norm_ computes, without simic's code.
double reference_total_norm(const torch::nn::Module& m) {
  std::vector<torch::Tensor> flat;
  for (const auto& p : m.parameters()) flat.push_back(p.grad().flatten().to(torch::kFloat64));
  return torch::cat(flat).norm().item<double>();
}

}  // namespace

int main() {
  torch::manual_seed(0);
  torch::nn::Linear lin(4, 3);
  const auto x = torch::randn({8, 4});
  lin->forward(x).pow(2).mean().backward();

  const simic::gradient_health_sensor<> sensor;
  const simic::gradient_health_report r = sensor.measure(*lin);
  const double ref = reference_total_norm(*lin);
  std::printf("total gradient norm: simic %.9g, reference %.9g\n", r.total_norm, ref);
  expect(ref > 0.0, "the reference norm is positive");
  expect(std::abs(r.total_norm - ref) <= 1e-6 * ref, "total norm matches the float64 reference");
  expect(r.parameters == 2 && r.elements == 15, "weight (3x4) and bias (3) counted");
  expect(r.nan_count == 0 && r.inf_count == 0, "no non-finite gradient");

  simic::default_monitor monitor;
  simic::signals s;
  s.gradients = r.signal();
  expect(!monitor.check(s).report.has(simic::anomaly_kind::numerical_instability), "finite gradients: no instability");

  // One NaN in the weight's gradient: counted by the sensor, and the monitor
  // must answer that this optimizer step be skipped.
  {
    torch::NoGradGuard no_grad;
    torch::Tensor g = lin->weight.grad();  // a handle on the same storage
    g.index_put_({1, 2}, std::numeric_limits<float>::quiet_NaN());
  }
  const simic::gradient_health_report bad = sensor.measure(*lin);
  expect(bad.nan_count == 1, "one NaN counted");
  s.gradients = bad.signal();
  const simic::check_result& c = monitor.check(s);
  expect(c.report.has(simic::anomaly_kind::numerical_instability), "NaN gradient: numerical_instability");
  expect(c.resp.act == simic::action::skip_step, "NaN gradient: skip the step");

  if (failures == 0) std::printf("simic::simic consumer: ok\n");
  return failures == 0 ? 0 : 1;
}
