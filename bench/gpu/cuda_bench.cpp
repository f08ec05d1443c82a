// The fused CUDA back end on the cases of shared/bench/anchor_ops.py
// (same tensor-size recipe, so the byte counts match), as Google Benchmark
// runs. Per case and sensor:
//   <case>/<sensor>/sync     wall time of one complete call, its one event
//                            wait included (real time): what a trainer waits
//   <case>/<sensor>/device   device time of the enqueued work alone, by
//                            events around it (manual time): the bandwidth figure
//   <case>/async_enqueue     host time to enqueue gradient health and its
//                            copy to pinned memory, no wait; LibTorch's
//                            sync-debug mode is set to error meanwhile
//   <case>/floor/device      LibTorch's float32 sum over one flat buffer of
//                            the same bytes (anchor_ops' floor), by events
//   <case>/ceiling/device    a plain float4 sum-of-squares read kernel over
//                            those bytes (NVRTC, 8 blocks of 256 per SM,
//                            four loads in flight per thread): what reading
//                            the bytes costs on this card, by events
//   <case>/ceiling_blocked/device  the same reads in the stats kernels'
//                            order (a contiguous range per block, their grid)
// Counters: extra_bytes (peak device memory above what was allocated before
// the call, caching allocator statistics), host_syncs (simic's waits per
// call), bytes (gradient bytes read). Repetitions report their median.
// bench/gpu/table.py sets these beside anchor_ops.py's figures.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <dlfcn.h>

#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "simic/reduce/cuda/fused_backend.hpp"
#include "simic/sensors/layer_gradient.hpp"
#include "simic/sensors/nan_inf_scanner.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/lstm_health.hpp"

#if !SIMIC_CUDA
#error "cuda_bench.cpp needs SIMIC_CUDA=1"
#endif

namespace {

namespace cd = simic::cuda::detail;

// Device events through the driver (no libcudart at link time).
struct timer {
  using elapsed_fn = int (*)(float*, cd::driver_api::event, cd::driver_api::event);
  const cd::driver_api& d = cd::runtime::get().driver();
  elapsed_fn elapsed = reinterpret_cast<elapsed_fn>(dlsym(d.handle, "cuEventElapsedTime"));
  cd::driver_api::event a = nullptr, b = nullptr;
  timer() {
    d.event_create(&a, 0);
    d.event_create(&b, 0);
  }
  static cd::driver_api::stream stream() {
    return reinterpret_cast<cd::driver_api::stream>(c10::cuda::getCurrentCUDAStream().stream());
  }
  void start() { d.event_record(a, stream()); }
  double stop_seconds() {
    d.event_record(b, stream());
    d.event_synchronize(b);
    float ms = 0;
    elapsed(&ms, a, b);
    return ms * 1e-3;
  }
  void sync() {
    d.event_record(b, stream());
    d.event_synchronize(b);
  }
};

// The ceiling: the simplest kernel that reads every byte once (float4 loads,
// a sum of squares so that the loads are used), compiled by NVRTC like the
// back end's kernels. Values are whatever the bytes hold; only the time counts.
constexpr const char ceiling_source[] = R"(
extern "C" __global__ void __launch_bounds__(256) simic_ceiling_read(const float4* x, long long n4, float* out) {
  const long long stride = (long long)gridDim.x * 256;
  long long i = (long long)blockIdx.x * 256 + threadIdx.x;
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  for (; i + 3 * stride < n4; i += 4 * stride) {
    const float4 a = __ldg(x + i), b = __ldg(x + i + stride), c = __ldg(x + i + 2 * stride), d = __ldg(x + i + 3 * stride);
    s0 += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
    s1 += b.x * b.x + b.y * b.y + b.z * b.z + b.w * b.w;
    s2 += c.x * c.x + c.y * c.y + c.z * c.z + c.w * c.w;
    s3 += d.x * d.x + d.y * d.y + d.z * d.z + d.w * d.w;
  }
  for (; i < n4; i += stride) { const float4 a = __ldg(x + i); s0 += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w; }
  float s = (s0 + s1) + (s2 + s3);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, s);
}
// The same reads in the stats kernels' order: block b reads its own
// contiguous range of `per_block` vectors, four loads 256 vectors apart per
// step. Beside the grid-stride kernel above it tells how much of the stats
// kernels' time is the access order alone (docs/cuda.md).
extern "C" __global__ void __launch_bounds__(256) simic_ceiling_blocked(const float4* x, long long n4, long long per_block,
                                                                      float* out) {
  const long long lo = (long long)blockIdx.x * per_block;
  const long long hi = lo + per_block < n4 ? lo + per_block : n4;
  long long i = lo + threadIdx.x;
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  for (; i + 3 * 256 < hi; i += 4 * 256) {
    const float4 a = __ldg(x + i), b = __ldg(x + i + 256), c = __ldg(x + i + 512), d = __ldg(x + i + 768);
    s0 += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
    s1 += b.x * b.x + b.y * b.y + b.z * b.z + b.w * b.w;
    s2 += c.x * c.x + c.y * c.y + c.z * c.z + c.w * c.w;
    s3 += d.x * d.x + d.y * d.y + d.z * d.z + d.w * d.w;
  }
  for (; i < hi; i += 256) { const float4 a = __ldg(x + i); s0 += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w; }
  float s = (s0 + s1) + (s2 + s3);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, s);
}
)";

struct ceiling_kernel {
  cd::driver_api::function fn = nullptr, blocked = nullptr;
  unsigned grid = 0, blocked_grid = 0;
  at::Tensor out;
  ceiling_kernel() {
    const cd::driver_api& d = cd::runtime::get().driver();
    const int dev = c10::cuda::current_device();
    // The back end's kernels are loaded by now: their context, and the
    // target (sm_XY, or compute_XY where this NVRTC has no CUBIN for it).
    const cd::device_kernels& k = cd::runtime::get().kernels(dev);
    const cd::context_scope scope(cd::runtime::get(), k.ctx);
    int sms = 0;
    cd::driver_api::device handle = 0;
    cd::check(d, d.device_get(&handle, dev), "cuDeviceGet");
    cd::check(d, d.device_get_attribute(&sms, cd::driver_api::attr_multiprocessor_count, handle), "cuDeviceGetAttribute");
    const cd::compile_output img = cd::nvrtc_compile(cd::nvrtc(), ceiling_source, k.arch);
    if (!img.ok) throw std::runtime_error("ceiling kernel: " + img.log);
    cd::driver_api::module mod = nullptr;
    cd::check(d, d.module_load_data(&mod, img.image.data()), "cuModuleLoadData");
    cd::check(d, d.module_get_function(&fn, mod, "simic_ceiling_read"), "cuModuleGetFunction");
    cd::check(d, d.module_get_function(&blocked, mod, "simic_ceiling_blocked"), "cuModuleGetFunction");
    grid = static_cast<unsigned>(sms) * 8;
    blocked_grid = static_cast<unsigned>(sms) * cd::basic_blocks_per_sm;  // the basic stats kernel's grid
    out = at::zeros({1}, at::TensorOptions().device(at::kCUDA));
  }
  void launch(const at::Tensor& flat) {
    const cd::driver_api& d = cd::runtime::get().driver();
    const void* x = flat.data_ptr();
    long long n4 = static_cast<long long>(flat.numel() * flat.element_size() / 16);
    float* o = out.data_ptr<float>();
    void* args[] = {&x, &n4, &o};
    cd::check(d, d.launch_kernel(fn, grid, 1, 1, 256, 1, 1, 0, timer::stream(), args, nullptr), "cuLaunchKernel(ceiling)");
  }
  void launch_blocked(const at::Tensor& flat) {
    const cd::driver_api& d = cd::runtime::get().driver();
    const void* x = flat.data_ptr();
    long long n4 = static_cast<long long>(flat.numel() * flat.element_size() / 16);
    long long per_block = (n4 + blocked_grid - 1) / blocked_grid;
    float* o = out.data_ptr<float>();
    void* args[] = {&x, &n4, &per_block, &o};
    cd::check(d, d.launch_kernel(blocked, blocked_grid, 1, 1, 256, 1, 1, 0, timer::stream(), args, nullptr),
              "cuLaunchKernel(ceiling, blocked)");
  }
};

struct case_data {
  std::string name;
  std::int64_t total = 0;
  int tensors = 0;
  at::ScalarType dtype = at::kFloat;
  std::vector<at::Tensor> grads, weights;
  std::vector<std::pair<std::string, at::Tensor>> named;  // weights with .grad() set
  at::Tensor flat;
  std::int64_t bytes = 0;
};

// anchor_ops.make_grads: sizes from logspace(0, 3, n) normalised to the
// total (float32 arithmetic, as torch does it), N(0, 1e-2) values.
std::vector<at::Tensor> make_grads(std::int64_t total, int n, at::ScalarType dt, std::uint64_t seed) {
  const at::Tensor w = at::logspace(0, 3, n);
  const at::Tensor sizes = (w / w.sum() * total).to(at::kLong).clamp_min(1);
  at::manual_seed(seed);
  std::vector<at::Tensor> out;
  for (int i = 0; i < n; ++i)
    out.push_back((at::randn({sizes[i].item<std::int64_t>()}, at::TensorOptions().device(at::kCUDA)) * 1e-2).to(dt));
  return out;
}

std::map<std::string, std::unique_ptr<case_data>>& case_map() {
  static std::map<std::string, std::unique_ptr<case_data>> cases;
  return cases;
}

case_data& get_case(const std::string& name) {
  auto& cases = case_map();
  auto it = cases.find(name);
  if (it != cases.end()) return *it->second;
  auto c = std::make_unique<case_data>();
  c->name = name;
  c->tensors = 400;
  c->total = 100'000'000;
  if (name == "ppo_lstm_policy") {
    c->total = 1'200'000;
    c->tensors = 24;
  } else if (name == "mid_25M") {
    c->total = 25'000'000;
    c->tensors = 200;
  } else if (name == "large_100M_bf16") {
    c->dtype = at::kBFloat16;
  }
  c->grads = make_grads(c->total, c->tensors, c->dtype, 0);
  c->weights = make_grads(c->total, c->tensors, c->dtype, 1);
  for (std::size_t i = 0; i < c->grads.size(); ++i) {
    at::Tensor p = c->weights[i].detach().set_requires_grad(true);
    p.mutable_grad() = c->grads[i];
    c->named.emplace_back("p" + std::to_string(i), p);
    c->bytes += c->grads[i].numel() * c->grads[i].element_size();
  }
  std::vector<at::Tensor> views;
  for (const auto& g : c->grads) views.push_back(g.reshape({-1}));
  c->flat = at::cat(views);
  return *(cases[name] = std::move(c));
}

// Peak device memory a call adds over what was allocated before it.
template <class F>
std::int64_t extra_bytes(F&& call) {
  timer t;
  t.sync();
  const int dev = c10::cuda::current_device();
  c10::cuda::CUDACachingAllocator::resetPeakStats(dev);
  const auto before = c10::cuda::CUDACachingAllocator::getDeviceStats(dev);
  call();
  t.sync();
  const auto after = c10::cuda::CUDACachingAllocator::getDeviceStats(dev);
  return after.allocated_bytes[0].peak - before.allocated_bytes[0].current;
}

void set_counters(benchmark::State& st, const case_data& c, std::int64_t extra, double syncs, double byte_factor = 1.0) {
  st.counters["extra_bytes"] = static_cast<double>(extra);
  st.counters["host_syncs"] = syncs;
  st.counters["bytes"] = static_cast<double>(c.bytes) * byte_factor;
}

// A sync-path benchmark: wall time of `call` (which waits for its result).
template <class F>
void sync_bench(benchmark::State& st, const std::string& case_name, double byte_factor, F call) {
  case_data& c = get_case(case_name);
  for (int i = 0; i < 3; ++i) call(c);  // warm-up: NVRTC compile, module load, pinned slots
  const std::int64_t extra = extra_bytes([&] { call(c); });
  const std::uint64_t s0 = simic::cuda::host_syncs();
  std::int64_t n = 0;
  for (auto _ : st) {
    call(c);
    ++n;
  }
  set_counters(st, c, extra, static_cast<double>(simic::cuda::host_syncs() - s0) / static_cast<double>(n), byte_factor);
}

// A device-time benchmark: events around the enqueued work.
template <class F>
void device_bench(benchmark::State& st, const std::string& case_name, double byte_factor, F enqueue) {
  case_data& c = get_case(case_name);
  for (int i = 0; i < 3; ++i) enqueue(c);
  const std::int64_t extra = extra_bytes([&] { enqueue(c); });
  timer t;
  for (auto _ : st) {
    t.start();
    enqueue(c);
    st.SetIterationTime(t.stop_seconds());
  }
  set_counters(st, c, extra, 0.0, byte_factor);
}

const simic::cuda::fused_backend fused{};

void register_case(const std::string& name, int iters) {
  // A CUDA error (or a host sync under sync-debug "error") ends that
  // benchmark with its message instead of the whole run.
  auto reg = [&](const std::string& what, auto fn) {
    auto guarded = [fn](benchmark::State& st) {
      try {
        fn(st);
      } catch (const std::exception& e) {
        c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
        st.SkipWithError(e.what());
      }
    };
    return benchmark::RegisterBenchmark((name + "/" + what).c_str(), guarded)
        ->Iterations(iters)
        ->Repetitions(5)
        ->ReportAggregatesOnly(true)
        ->Unit(benchmark::kMillisecond);
  };
  reg("floor/device", [name](benchmark::State& st) {
    device_bench(st, name, 1.0, [](case_data& c) { benchmark::DoNotOptimize(c.flat.sum(at::kFloat)); });
  })->UseManualTime();
  reg("ceiling/device", [name](benchmark::State& st) {
    static ceiling_kernel ceiling;
    device_bench(st, name, 1.0, [](case_data& c) { ceiling.launch(c.flat); });
  })->UseManualTime();
  reg("ceiling_blocked/device", [name](benchmark::State& st) {
    static ceiling_kernel ceiling;
    device_bench(st, name, 1.0, [](case_data& c) { ceiling.launch_blocked(c.flat); });
  })->UseManualTime();

  // Gradient health, all counts (anchor_collect_enhanced).
  reg("gradient_health/sync", [name](benchmark::State& st) {
    sync_bench(st, name, 1.0, [](case_data& c) {
      const simic::gradient_health_sensor<simic::cuda::fused_backend> s({}, fused);
      benchmark::DoNotOptimize(simic::cuda::pin(s.measure_async(c.grads)).materialize());
    });
  })->UseRealTime();
  reg("gradient_health/device", [name](benchmark::State& st) {
    device_bench(st, name, 1.0, [](case_data& c) {
      benchmark::DoNotOptimize(fused.reduce(simic::reduce_request{c.grads, simic::stat_set::basic}));
    });
  })->UseManualTime();
  reg("gradient_health/device_summary_sync", [name](benchmark::State& st) {
    sync_bench(st, name, 1.0, [](case_data& c) {
      benchmark::DoNotOptimize(fused.reduce_async(simic::reduce_request{c.grads, simic::stat_set::basic}).summary());
    });
  })->UseRealTime();

  // Per-layer statistics (anchor_per_layer_debug).
  reg("per_layer/sync", [name](benchmark::State& st) {
    sync_bench(st, name, 1.0, [](case_data& c) {
      const simic::layer_gradient_sensor<simic::cuda::fused_backend> s({}, fused);
      benchmark::DoNotOptimize(simic::cuda::pin(s.measure_async(c.named)).materialize());
    });
  })->UseRealTime();
  reg("per_layer/device", [name](benchmark::State& st) {
    device_bench(st, name, 1.0, [](case_data& c) {
      benchmark::DoNotOptimize(fused.reduce(simic::reduce_request{c.grads, simic::stat_set::full}));
    });
  })->UseManualTime();

  // NaN/Inf scan of weights and gradients (anchor_numerical_scan): two reads.
  reg("nan_inf_scan/sync", [name](benchmark::State& st) {
    sync_bench(st, name, 2.0, [](case_data& c) {
      const simic::nan_inf_scanner<simic::cuda::fused_backend> s({}, fused);
      benchmark::DoNotOptimize(simic::cuda::pin(s.scan_async(c.named)).materialize());
    });
  })->UseRealTime();
  reg("nan_inf_scan/device", [name](benchmark::State& st) {
    device_bench(st, name, 2.0, [](case_data& c) {
      std::vector<at::Tensor> both = c.weights;
      both.insert(both.end(), c.grads.begin(), c.grads.end());
      benchmark::DoNotOptimize(fused.reduce(simic::reduce_request{both, simic::stat_set::basic}));
    });
  })->UseManualTime();

  // Async enqueue: host time, no wait, no host sync allowed.
  reg("async_enqueue", [name](benchmark::State& st) {
    case_data& c = get_case(name);
    const simic::gradient_health_sensor<simic::cuda::fused_backend> s({}, fused);
    for (int i = 0; i < 3; ++i) simic::cuda::pin(s.measure_async(c.grads)).materialize();
    std::vector<simic::cuda::pinned_report<simic::gradient_health_report>> pending;
    pending.reserve(static_cast<std::size_t>(st.max_iterations));
    const std::int64_t extra = extra_bytes([&] { simic::cuda::pin(s.measure_async(c.grads)).materialize(); });
    const std::uint64_t s0 = simic::cuda::host_syncs();
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
    try {
      for (auto _ : st) pending.push_back(simic::cuda::pin(s.measure_async(c.grads)));
    } catch (const std::exception& e) {  // a host sync under sync-debug "error", or a CUDA error
      c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
      st.SkipWithError(e.what());
      return;
    }
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    const double syncs = static_cast<double>(simic::cuda::host_syncs() - s0) / static_cast<double>(pending.size());
    for (const auto& p : pending) benchmark::DoNotOptimize(p.materialize());
    set_counters(st, c, extra, syncs);
  })->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  if (c10::cuda::device_count() == 0 || !simic::cuda::fused_backend::unavailable_reason().empty()) {
    std::fprintf(stderr, "bench_cuda: no CUDA device or no fused path: %s\n",
                 simic::cuda::fused_backend::unavailable_reason().c_str());
    return 2;
  }
  register_case("ppo_lstm_policy", 200);
  register_case("mid_25M", 50);
  register_case("large_100M_fp32", 20);
  register_case("large_100M_bf16", 20);
  benchmark::RegisterBenchmark("lstm_state_2x64x512/lstm_health/sync", [](benchmark::State& st) {
    const at::Tensor h = at::randn({2, 64, 512}, at::TensorOptions().device(at::kCUDA));
    const at::Tensor c = at::randn({2, 64, 512}, at::TensorOptions().device(at::kCUDA));
    const simic::lstm_health_sensor<simic::cuda::fused_backend> s(fused);
    for (int i = 0; i < 3; ++i) s.measure(h, c);
    for (auto _ : st) benchmark::DoNotOptimize(simic::cuda::pin(s.measure_async(h, c)).materialize());
  })->Iterations(200)->Repetitions(5)->ReportAggregatesOnly(true)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  case_map().clear();  // free the device tensors before CUDA's own teardown
  return 0;
}
