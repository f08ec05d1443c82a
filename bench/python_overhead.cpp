// The C++ side of the Python module's cost (bench/python/overhead.py runs
// this and the same calls from Python, and prints both): the session's step
// and the sensors on the same model and signals as the Python script, timed
// the same way (after one untimed repetition, the median over repetitions of
// the mean per call).
//   python_overhead PARAMETERS TENSORS STEPS REPETITIONS
// prints one JSON object: ns per call for each measured call.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "simic/presets/ppo_session.hpp"
#include "simic/presets/supervised_session.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

// The model: `tensors` parameters of `total / tensors` elements each, with
// gradients, as the Python script makes them (seed 0).
std::vector<std::pair<std::string, torch::Tensor>> make_model(std::int64_t total, std::int64_t tensors) {
  torch::manual_seed(0);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (std::int64_t i = 0; i < tensors; ++i) {
    auto p = torch::randn({total / tensors}).requires_grad_();
    p.mutable_grad() = torch::randn({total / tensors}) * 1e-2;
    std::string name = "p";  // (not "p" + to_string: GCC 12's -Wrestrict false positive at -O3)
    name += std::to_string(i);
    out.emplace_back(std::move(name), p);
  }
  return out;
}

template <class F>
double median_ns(int steps, int reps, F&& f) {
  std::vector<double> means;
  for (int i = 0; i < steps; ++i) f(i);  // warm-up, untimed: first calls take copies and fill caches
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < steps; ++i) f(i);
    means.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / steps);
  }
  std::nth_element(means.begin(), means.begin() + reps / 2, means.end());
  return means[reps / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: python_overhead PARAMETERS TENSORS STEPS REPETITIONS\n";
    return 2;
  }
  at::set_num_threads(1);
  const std::int64_t total = std::atoll(argv[1]), tensors = std::atoll(argv[2]);
  const int steps = std::atoi(argv[3]), reps = std::atoi(argv[4]);
  const auto params = make_model(total, tensors);
  double sink = 0;
  simic::supervised_session<> sup(simic::session_options{}, params, {});
  const double supervised = median_ns(steps, reps, [&](int i) {
    simic::signals s;
    s.loss = 1.0 + 1e-3 * (i % 7);
    sink += static_cast<double>(sup.step(s).report.size());
  });
  simic::ppo_session<> ppo(simic::session_options{}, params, {});
  const double ppo_step = median_ns(steps, reps, [&](int i) {
    simic::signals s;
    s.loss = 1.0 + 1e-3 * (i % 7);
    s.approx_kl = 0.01 + 1e-4 * (i % 5);
    s.ratio_max = 1.1;
    s.ratio_min = 0.9;
    sink += static_cast<double>(ppo.step(s).report.size());
  });
  const int sensor_steps = std::max(1, steps / 10);
  const double health = median_ns(sensor_steps, reps, [&](int) {
    sink += simic::gradient_health_sensor<>{}.measure(params).total_norm;
  });
  const double layers = median_ns(sensor_steps, reps, [&](int) {
    sink += static_cast<double>(simic::layer_gradient_sensor<>{}.measure(params).layers.size());
  });
  const double scan = median_ns(sensor_steps, reps, [&](int) {
    sink += static_cast<double>(simic::nan_inf_scanner<>{}.scan(params).clean());
  });
  std::cout << "{\"supervised_step\": " << supervised << ", \"ppo_step\": " << ppo_step
            << ", \"gradient_health\": " << health << ", \"layer_gradients\": " << layers
            << ", \"nan_inf_scan\": " << scan << ", \"checksum\": " << (sink != sink ? 0 : 1) << "}\n";
}
