// What simic::update_guard costs (docs/recovery.md, "The device-side guard,
// measured"): for MLPs of 0.26 to 16.8 million float32 parameters and each
// optimizer the guard takes, the bytes it holds between steps (its copy of
// what a step changes, B), the bytes it moves per step beside the
// optimizer (5 B: the copy read and written, the where's two reads and one
// write), and the median time of optimizer.step() against guard.step(ok)
// over the same gradients (each timed step followed by a device
// synchronize on CUDA; `ok` judged from the packed gradient rows
// beforehand, outside the timing). Runs on CUDA when a device is visible,
// else on the CPU.
//
//   update_guard_cost [--steps N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "simic/reduce/auto_backend.hpp"
#include "simic/recovery/update_guard.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct optimizer_case {
  const char* name;
  std::function<std::unique_ptr<torch::optim::Optimizer>(const std::vector<at::Tensor>&)> make;
};

}  // namespace

int main(int argc, char** argv) {
  int steps = 30;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--steps") == 0) steps = std::max(3, std::atoi(argv[i + 1]));
  const bool cuda = torch::cuda::is_available();
  const torch::Device device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };
  namespace o = torch::optim;
  const std::vector<optimizer_case> optimizers{
      {"Adam", [](const auto& p) { return std::make_unique<o::Adam>(p, o::AdamOptions(1e-3)); }},
      {"AdamW", [](const auto& p) { return std::make_unique<o::AdamW>(p, o::AdamWOptions(1e-3)); }},
      {"SGD momentum", [](const auto& p) { return std::make_unique<o::SGD>(p, o::SGDOptions(1e-2).momentum(0.9)); }},
      {"RMSprop", [](const auto& p) { return std::make_unique<o::RMSprop>(p, o::RMSpropOptions(1e-3)); }},
  };
  std::printf("device: %s, %d timed steps each, float32\n\n", device.str().c_str(), steps);
  std::printf("| parameters | optimizer | parameter bytes | held B | B / parameter bytes | moved per step (5B) | "
              "step, plain (ms) | step, guarded (ms) | extra |\n");
  std::printf("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const std::int64_t width : {256, 1024, 2048}) {
    for (const optimizer_case& c : optimizers) {
      torch::manual_seed(1);
      torch::nn::Sequential net;
      for (int i = 0; i < 4; ++i) net->push_back(torch::nn::Linear(width, width));
      net->to(device);
      std::int64_t parameters = 0;
      for (const auto& p : net->parameters()) parameters += p.numel();
      auto opt = c.make(net->parameters());
      simic::update_guard guard(*opt);
      const auto x = torch::randn({64, width}, device);
      std::vector<double> plain, guarded;
      for (int k = 0; k < 2 * steps + 4; ++k) {
        opt->zero_grad();
        net->forward(x).pow(2).mean().backward();
        std::vector<at::Tensor> grads;
        for (const auto& p : net->parameters()) grads.push_back(p.grad());
        const at::Tensor ok =
            guard.judge(simic::auto_backend{}.reduce(simic::reduce_request{grads, simic::stat_set::basic}));
        sync();
        const bool use_guard = k % 2 == 1;  // interleaved, so that both see the same machine state
        const auto t0 = clock_type::now();
        if (use_guard)
          guard.step(ok);
        else
          opt->step();
        sync();
        const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        if (k >= 4) (use_guard ? guarded : plain).push_back(ms);
      }
      const double bytes = static_cast<double>(parameters) * 4.0;
      const double held = static_cast<double>(guard.backup_bytes());
      const double p = median(plain), g = median(guarded);
      std::printf("| %lld | %s | %.0f | %.0f | %.2f | %.0f | %.3f | %.3f | %+.1f %% |\n",
                  static_cast<long long>(parameters), c.name, bytes, held, held / bytes, 5.0 * held, p, g,
                  100.0 * (g - p) / p);
    }
  }
  return 0;
}
