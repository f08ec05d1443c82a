// What simic::profiler costs: step() when disabled (the default), and a small
// CPU workload (one training-step stand-in) without the profiler, with it
// disabled, and with every step recorded (active window), in one run.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>

#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "simic/profile/profiler.hpp"

using namespace simic;

namespace {

std::filesystem::path bench_dir() {
  return std::filesystem::temp_directory_path() / ("simic_bench_profile_" + std::to_string(::getpid()));
}

void BM_profiler_step_disabled(benchmark::State& state) {
  profiler p;  // enabled = false
  for (auto _ : state) benchmark::DoNotOptimize(p.step());
}
BENCHMARK(BM_profiler_step_disabled);

// 100 tiny operators per step, so that the per-operator cost of recording
// shows: 0 = no profiler, 1 = disabled, 2 = recording every step.
void BM_workload_step(benchmark::State& state) {
  const auto mode = state.range(0);
  at::Tensor a = at::rand({16});
  const at::Tensor b = at::rand({16});
  const profiler_schedule rec{.wait = 0, .warmup = 0, .active = 1u << 30, .repeat = 1};
  std::unique_ptr<profiler> p;
  if (mode == 1) p = std::make_unique<profiler>(profiler_options{});
  if (mode == 2) p = std::make_unique<profiler>(profiler_options{.enabled = true, .dir = bench_dir(), .schedule = rec});
  for (auto _ : state) {
    for (int k = 0; k < 100; ++k) a = at::add(a, b);
    benchmark::DoNotOptimize(a.data_ptr());
    if (p) benchmark::DoNotOptimize(p->step());
  }
  p.reset();  // after the loop (not timed): writes the trace of mode 2
}
BENCHMARK(BM_workload_step)->Arg(0)->Arg(1)->Arg(2)->ArgName("mode")->Iterations(2000);

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(bench_dir());
}
