// bench/sensors: every sensor over the cases of shared/bench/anchor_ops.py
// (same sizes, same seed recipe), beside the one-read floor (a float32 sum
// over one contiguous buffer of the same bytes) timed in the same run, each
// printed as a multiple of that floor.
//
//   bench_sensors [--device=cpu|cuda] [--out=FILE.jsonl] [google-benchmark flags]
//
// bench/compare_sensors.py runs it beside anchor_ops.py and prints one table.
#include <benchmark/benchmark.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "simic/sensors/layer_gradient.hpp"
#include "simic/sensors/nan_inf_scanner.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/gradient_ratio.hpp"
#include "simic/sensors/lstm_health.hpp"
#include "simic/sensors/parameter_update.hpp"

namespace {

using named = std::vector<std::pair<std::string, at::Tensor>>;

// anchor_ops.make_grads: sizes from logspace(0, 3, n) normalised to the
// total, N(0, 1e-2) values from one generator seeded `seed`.
std::vector<at::Tensor> make_grads(std::int64_t total, std::int64_t n, at::ScalarType dtype, at::Device device,
                                   std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const at::Tensor w = at::logspace(0, 3, n);
  const at::Tensor sizes = (w / w.sum() * static_cast<double>(total)).to(at::kLong).clamp_min(1);
  std::vector<at::Tensor> out;
  for (std::int64_t i = 0; i < n; ++i)
    out.push_back((at::randn({sizes[i].item<std::int64_t>()}, gen) * 1e-2).to(dtype).to(device));
  return out;
}

struct bench_case {
  std::string name;
  std::vector<at::Tensor> grads;
  named params;  // weights (seed 1) holding the gradients as .grad()
  at::Tensor flat;
  std::int64_t bytes = 0;
  simic::parameter_update_sensor update_sensor;  // holds its copy of the weights
};

std::vector<std::unique_ptr<bench_case>> g_cases;
at::Tensor g_h, g_c;

void register_case(const std::string& name, std::int64_t total, std::int64_t n, at::ScalarType dtype,
                   at::Device device) {
  auto c = std::make_unique<bench_case>();
  c->name = name;
  c->grads = make_grads(total, n, dtype, device, 0);
  std::vector<at::Tensor> weights = make_grads(total, n, dtype, device, 1);
  for (std::int64_t i = 0; i < n; ++i) {
    at::Tensor w = weights[static_cast<std::size_t>(i)].requires_grad_(true);
    w.mutable_grad() = c->grads[static_cast<std::size_t>(i)];
    c->params.emplace_back(std::string("p").append(std::to_string(i)), w);
    c->bytes += c->grads[static_cast<std::size_t>(i)].numel() * c->grads[static_cast<std::size_t>(i)].element_size();
  }
  {
    std::vector<at::Tensor> flat;
    for (const auto& g : c->grads) flat.push_back(g.reshape({-1}));
    c->flat = at::cat(flat);
  }
  bench_case* cp = c.get();
  // Every timed function ends in a device->host copy (item() or
  // materialize()), so device work is complete when an iteration ends.
  auto reg = [&](const std::string& fn, auto body) {
    benchmark::RegisterBenchmark((name + "/" + fn).c_str(),
                                 [cp, body](benchmark::State& st) {
                                   for (auto _ : st) body(*cp);
                                   st.SetBytesProcessed(st.iterations() * cp->bytes);
                                 })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Repetitions(5)
        ->ReportAggregatesOnly(true);
  };
  reg("floor_one_read_sum", [](bench_case& b) { benchmark::DoNotOptimize(b.flat.sum(at::kFloat).item<float>()); });
  reg("simic_gradient_health", [](bench_case& b) {
    static const simic::gradient_health_sensor<> s;
    benchmark::DoNotOptimize(s.measure(b.grads).total_norm);
  });
  reg("simic_gradient_health_torch_ops", [](bench_case& b) {
    static const simic::gradient_health_sensor<simic::torch_ops_backend> s;
    benchmark::DoNotOptimize(s.measure(b.grads).total_norm);
  });
  reg("simic_total_norm", [](bench_case& b) {
    static const simic::gradient_mass_sensor<> s;
    benchmark::DoNotOptimize(s.measure(b.grads).squared_norm);
  });
  reg("simic_layer_gradients", [](bench_case& b) {
    static const simic::layer_gradient_sensor<> s;
    benchmark::DoNotOptimize(s.measure(b.params).layers.size());
  });
  cp->update_sensor.measure(cp->params);  // the first call only takes the copy
  reg("simic_parameter_update", [](bench_case& b) {
    benchmark::DoNotOptimize(b.update_sensor.measure(b.params));
  });
  reg("simic_nan_inf_scan", [](bench_case& b) {
    static const simic::nan_inf_scanner<> s;
    benchmark::DoNotOptimize(s.scan(b.params).max_abs_grad);
  });
  g_cases.push_back(std::move(c));
}

// Collects the median of each benchmark's repetitions.
class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  std::vector<std::pair<std::string, double>> medians;  // name, seconds
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.aggregate_name == "median") {
        std::string n = r.benchmark_name();
        n = n.substr(0, n.find("_median"));
        if (auto p = n.find("/repeats"); p != std::string::npos) n = n.substr(0, p);
        if (auto p = n.find("/real_time"); p != std::string::npos) n = n.substr(0, p);
        medians.emplace_back(n, r.GetAdjustedRealTime() / 1e3);  // ms -> s
      }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu", out;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--device=", 0) == 0)
      device = a.substr(9);
    else if (a.rfind("--out=", 0) == 0)
      out = a.substr(6);
    else
      args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  const at::Device dev(device);
  register_case("ppo_lstm_policy", 1'200'000, 24, at::kFloat, dev);
  register_case("mid_25M", 25'000'000, 200, at::kFloat, dev);
  // 400 tensors of 64 elements on average: the per-call cost of a sensor
  // (validation, planning, one result), not its bytes. No reference case.
  register_case("many_small_400x64", 400 * 64, 400, at::kFloat, dev);
  if (dev.is_cuda()) {
    register_case("large_100M_fp32", 100'000'000, 400, at::kFloat, dev);
    register_case("large_100M_bf16", 100'000'000, 400, at::kBFloat16, dev);
  }
  auto gen = at::detail::createCPUGenerator(0);
  g_h = at::randn({2, 64, 512}, gen).to(dev);
  g_c = at::randn({2, 64, 512}, gen).to(dev);
  benchmark::RegisterBenchmark("lstm_state_2x64x512/simic_lstm_health",
                               [](benchmark::State& st) {
                                 static const simic::lstm_health_sensor<> s;
                                 for (auto _ : st) benchmark::DoNotOptimize(s.measure(g_h, g_c).h_norm);
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Repetitions(5)
      ->ReportAggregatesOnly(true);

  collecting_reporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);

  std::map<std::string, double> floor;
  for (const auto& [name, s] : rep.medians)
    if (name.size() > 19 && name.substr(name.size() - 19) == "/floor_one_read_sum") floor[name.substr(0, name.size() - 19)] = s;
  std::printf("\n{\"device\": \"%s\", \"threads\": %d}\n", device.c_str(), at::get_num_threads());
  std::printf("%-20s%-34s%11s%9s\n", "case", "fn", "median_ms", "x_floor");
  std::ofstream jl;
  if (!out.empty()) jl.open(out);
  for (const auto& [name, s] : rep.medians) {
    const std::string cs = name.substr(0, name.find('/')), fn = name.substr(name.find('/') + 1);
    const double xf = floor.count(cs) ? s / floor[cs] : 0.0 / 0.0;
    std::printf("%-20s%-34s%11.3f%9.2f\n", cs.c_str(), fn.c_str(), s * 1e3, xf);
    if (jl) {
      jl << "{\"case\": \"" << cs << "\", \"fn\": \"" << fn << "\", \"median_s\": " << s << ", \"x_floor\": ";
      if (std::isnan(xf))
        jl << "null";  // no floor for this case
      else
        jl << xf;
      jl << ", \"device\": \"" << device << "\"}\n";
    }
  }
  benchmark::Shutdown();
  return 0;
}
