// The C++ side of the Python module's cost, loaded into the Python process
// that times the same calls (bench/python_overhead.py, through ctypes):
// both sides then run on the same LibTorch, allocator and machine state,
// their rounds alternate, so a drift of the machine's speed does not enter
// the ratio, and the C++ side's parameters and gradients are views of the
// script's own tensors' memory, so that both read the same bytes at the
// same addresses. C functions only: no C++ object crosses the boundary.
//
//   void* simic_bench_open(long tensors, long elements_each,
//                          void* const* parameters, void* const* gradients)  // float32 data
//   double simic_bench_round(void* bench, const char* call, int calls)  // ns a call
//   void simic_bench_close(void* bench)
//   const char* simic_bench_torch_version()                            // "1.13"
#include <torch/torch.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "simic/presets/ppo_session.hpp"
#include "simic/presets/supervised_session.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using named = std::vector<std::pair<std::string, torch::Tensor>>;

// Parameters named p0, p1, ... as the script names them, over its memory.
named views_of(std::int64_t tensors, std::int64_t each, void* const* parameters, void* const* gradients) {
  named out;
  for (std::int64_t i = 0; i < tensors; ++i) {
    auto p = torch::from_blob(parameters[i], {each}, torch::kFloat32).requires_grad_();
    p.mutable_grad() = torch::from_blob(gradients[i], {each}, torch::kFloat32);
    std::string name = "p";  // (not "p" + to_string: GCC 12's -Wrestrict false positive at -O3)
    name += std::to_string(i);
    out.emplace_back(std::move(name), p);
  }
  return out;
}

struct bench {
  explicit bench(named p)
      : params(std::move(p)), sup(simic::session_options{}, params, {}),
        ppo(simic::session_options{}, params, {}) {}
  named params;
  simic::supervised_session<> sup;
  simic::ppo_session<> ppo;
  std::int64_t step = 0;  // the signals vary with it, as the script's do
  double sink = 0;        // keeps the results alive
};

template <class F>
double mean_ns(int calls, F&& f) {
  const auto t0 = clock_type::now();
  for (int i = 0; i < calls; ++i) f();
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / calls;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* simic_bench_open(long tensors, long elements_each,
                                                               void* const* parameters, void* const* gradients) {
  if (tensors < 1 || elements_each < 1 || !parameters || !gradients) return nullptr;
  at::set_num_threads(1);
  return new bench(views_of(tensors, elements_each, parameters, gradients));
}

__attribute__((visibility("default"))) void simic_bench_close(void* b) { delete static_cast<bench*>(b); }

__attribute__((visibility("default"))) const char* simic_bench_torch_version() {
  static const std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR);
  return v.c_str();
}

// The mean time of `calls` calls of `call` (the script's names), or -1 for
// an unknown name.
__attribute__((visibility("default"))) double simic_bench_round(void* p, const char* call, int calls) {
  bench& b = *static_cast<bench*>(p);
  const auto is = [call](const char* name) { return std::strcmp(call, name) == 0; };
  if (is("supervised_step"))
    return mean_ns(calls, [&] {
      const std::int64_t i = b.step++;
      simic::signals s;
      s.loss = 1.0 + 1e-3 * static_cast<double>(i % 7);
      b.sink += static_cast<double>(b.sup.step(s).report.size());
    });
  if (is("ppo_step"))
    return mean_ns(calls, [&] {
      const std::int64_t i = b.step++;
      simic::signals s;
      s.loss = 1.0 + 1e-3 * static_cast<double>(i % 7);
      s.approx_kl = 0.01 + 1e-4 * static_cast<double>(i % 5);
      s.ratio_max = 1.1;
      s.ratio_min = 0.9;
      b.sink += static_cast<double>(b.ppo.step(s).report.size());
    });
  if (is("gradient_health"))
    return mean_ns(calls, [&] { b.sink += simic::gradient_health_sensor<>{}.measure(b.params).total_norm; });
  if (is("layer_gradients"))
    return mean_ns(calls, [&] {
      b.sink += static_cast<double>(simic::layer_gradient_sensor<>{}.measure(b.params).layers.size());
    });
  if (is("nan_inf_scan"))
    return mean_ns(calls, [&] { b.sink += static_cast<double>(simic::nan_inf_scanner<>{}.scan(b.params).clean()); });
  return -1;
}

}  // extern "C"
