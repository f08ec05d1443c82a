// The supervised session's step beside the language model's optimizer step
// (examples/char_lm: 2 blocks, d_model 64, context 64, batch 32), on the same
// model: the goal is a session step of at most 2 % of an optimizer step
// (docs/performance.md). Each benchmark is the median of its repetitions:
//
//   bench_supervised_step --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// BM_optimizer_step: forward, loss, backward, gradient clipping, Adam.
// BM_session_step:   simic::supervised_session<>::step on that model's
//                    gradients (gradient health, the update ratio, the
//                    check, the step record to a counting sink), at NORMAL.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>

#include "char_lm/model.hpp"
#include "simic/emit/sink.hpp"
#include "simic/presets/supervised_session.hpp"

namespace {

constexpr int batch = 32;

struct lm_fixture {
  char_lm::lm model{char_lm::model_options{}};
  torch::optim::Adam opt{model->parameters(), torch::optim::AdamOptions(1e-3)};
  torch::Tensor x, y;
  lm_fixture() {
    torch::manual_seed(1);
    x = torch::randint(256, {batch, 64}, torch::kLong);
    y = torch::randint(256, {batch, 64}, torch::kLong);
  }
  double backward() {
    opt.zero_grad();
    const auto loss = torch::nn::functional::cross_entropy(model->forward(x).view({-1, 256}), y.view({-1}));
    loss.backward();
    return loss.item<double>();
  }
};

// Counts events, writes nothing: the session's own cost, not a file's.
struct counting_sink final : simic::sink {
  std::atomic<std::uint64_t> n{0};

 protected:
  void do_write(const simic::event&) override { ++n; }
};

void BM_optimizer_step(benchmark::State& state) {
  at::set_num_threads(1);
  lm_fixture f;
  for (auto _ : state) {
    f.backward();
    torch::nn::utils::clip_grad_norm_(f.model->parameters(), 1.0);
    f.opt.step();
  }
}
BENCHMARK(BM_optimizer_step)->Unit(benchmark::kMillisecond);

void BM_session_step(benchmark::State& state) {
  at::set_num_threads(1);
  lm_fixture f;
  simic::supervised_session<> tel({}, *f.model, {std::make_shared<counting_sink>()});
  const double loss = f.backward();
  std::uint64_t step = 0;
  for (auto _ : state) {
    simic::signals s;
    s.loss = loss;
    s.progress = simic::training_progress(++step % 100000 + 1, 100001);
    benchmark::DoNotOptimize(tel.step(s));
  }
}
BENCHMARK(BM_session_step)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
