// The shortest correct integration of simic: a small network trained with
// Adam, its telemetry wired by one simic session (the supervised preset's
// sensors and detectors). docs/guide.md opens with
// the lines between the "simic:" markers; a test builds and runs this file
// and checks that the guide quotes it exactly. Usage: quickstart [events.jsonl]
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <memory>

// simic: begin
#include "simic/emit/sink_jsonl.hpp"
#include "simic/presets/supervised_session.hpp"
// simic: end

int main(int argc, char** argv) {
  torch::manual_seed(0);
  torch::nn::Sequential net(torch::nn::Linear(8, 32), torch::nn::Tanh(), torch::nn::Linear(32, 1));
  torch::optim::Adam opt(net->parameters(), 1e-2);
  const auto x = torch::randn({512, 8});
  const auto y = x.sum(1, true).sin();
  const std::uint64_t epochs = 20;
  // simic: begin
  simic::supervised_session<> tel({}, *net, {std::make_shared<simic::jsonl_sink>(argc > 1 ? argv[1] : "run.jsonl")});
  for (std::uint64_t epoch = 1; epoch <= epochs; ++epoch) {
    for (int batch = 0; batch < 16; ++batch) {
      const auto idx = torch::randint(512, {32}, torch::kLong);
      const auto loss = torch::mse_loss(net->forward(x.index_select(0, idx)), y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      simic::signals s;
      s.loss = loss.item<double>();
      s.progress = simic::training_progress(epoch, epochs);
      const simic::check_result& r = tel.step(s);  // gradients, update ratio, check, events
      if (r.resp.act == simic::action::stop) return 3;
      if (r.resp.act == simic::action::proceed) opt.step();
    }
    tel.end_epoch(-torch::mse_loss(net->forward(x), y).item<double>());  // performance: higher is better
  }
  // simic: end
  std::printf("final loss %.4f after %llu checks\n", torch::mse_loss(net->forward(x), y).item<double>(),
              static_cast<unsigned long long>(tel.checks()));
  return 0;
}
