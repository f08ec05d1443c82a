// What one recovery snapshot holds, against the model and optimizer state it
// protects (docs/recovery.md, "Memory and cost"): MLPs of 10 thousand to 10
// million float32 parameters trained by Adam under a supervised session
// (gradient health, update ratio, memory sensors), one snapshot each through
// simic::recovery. Prints per model: parameters, model + Adam state bytes
// (parameters, both moments; the step counts), the snapshot's bytes, their
// ratio and the bytes beyond the state (the session's state and the archive's
// structure, which do not grow with the model).
//
//   snapshot_size [--markdown]
#include <cstdint>
#include <cstdio>
#include <string>

#include <torch/torch.h>

#include "simic/presets/supervised_session.hpp"
#include "simic/recovery.hpp"

namespace {

struct row {
  std::int64_t parameters = 0;
  std::uint64_t state_bytes = 0;  // model + Adam state as tensors hold them
  std::uint64_t snapshot_bytes = 0;
};

row measure(std::int64_t width, std::int64_t depth) {
  torch::manual_seed(1);
  torch::nn::Sequential net;
  for (std::int64_t i = 0; i < depth; ++i) {
    net->push_back(torch::nn::Linear(width, width));
    net->push_back(torch::nn::Tanh());
  }
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
  simic::supervised_session<> tel(simic::session_options{}, *net);
  simic::recovery_options ro;
  ro.snapshot_every = 1;
  ro.keep = 1;
  simic::recovery guard(tel, *net, opt, ro);
  const at::Tensor x = torch::randn({16, width});
  for (std::uint64_t step = 1; step <= 2; ++step) {  // Adam's state exists after the first step
    opt.zero_grad();
    const at::Tensor loss = net->forward(x).square().mean();
    loss.backward();
    simic::signals s;
    s.loss = loss.item<double>();
    s.progress = simic::training_progress(step, 1000);
    if (guard.step(step, s).resp.act == simic::action::proceed) opt.step();
  }
  row r;
  for (const auto& p : net->parameters()) {
    r.parameters += p.numel();
    r.state_bytes += static_cast<std::uint64_t>(p.numel()) * 4 * 3 + 8;  // weights, both moments; the step count
  }
  r.snapshot_bytes = guard.held_bytes();
  tel.close();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const bool markdown = argc > 1 && std::string(argv[1]) == "--markdown";
  if (argc > 2 || (argc == 2 && !markdown)) {
    std::fprintf(stderr, "usage: snapshot_size [--markdown]\n");
    return 2;
  }
  torch::set_num_threads(1);
  std::printf("| parameters | model + Adam state | snapshot | snapshot / state | beyond the state |\n"
              "| ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& [width, depth] : {std::pair<std::int64_t, std::int64_t>{70, 2}, {100, 4}, {300, 4}, {1000, 4},
                                     {1000, 10}, {2000, 2}}) {
    const row r = measure(width, depth);
    std::printf("| %lld | %.1f KiB | %.1f KiB | %.3f | %.1f KiB |\n", static_cast<long long>(r.parameters),
                static_cast<double>(r.state_bytes) / 1024.0, static_cast<double>(r.snapshot_bytes) / 1024.0,
                static_cast<double>(r.snapshot_bytes) / static_cast<double>(r.state_bytes),
                (static_cast<double>(r.snapshot_bytes) - static_cast<double>(r.state_bytes)) / 1024.0);
    std::fflush(stdout);
  }
  return 0;
}
