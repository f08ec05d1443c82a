// docs/guide.md's GAN recipe: two networks, two optimizers, one session each
// (the supervised sensors, a monitor without the loss detectors). A generator
// whose healthy per-parameter gradient norms sit above the reference's fixed
// bound (10) raises nothing; a loss x1e6 in the generator's step is critical
// at that step, in the generator's session only.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "simic/emit/sink_memory.hpp"
#include "simic/presets/supervised_session.hpp"

using namespace simic;

namespace {

using gan_monitor = monitor<numerical_stability, gradient_shift, update_shift, relative_gradient_bounds>;
using gan_session = supervised_sensor_session<gan_monitor>;

struct gan_run {
  std::vector<check_result> d_results, g_results;
  double largest_g_norm = 0.0;  // the generator's largest per-parameter gradient norm seen
};

// A 1-D GAN: the generator maps noise to samples of N(3, 0.5). `scale`
// multiplies the generator's loss (its gradients' scale: healthy, only
// larger); `fault_at`: the iteration whose generator loss is x1e6 (0: none).
gan_run train(std::uint64_t seed, double scale, int iterations, int fault_at) {
  torch::manual_seed(seed);
  torch::nn::Sequential g(torch::nn::Linear(4, 16), torch::nn::ReLU(), torch::nn::Linear(16, 1));
  torch::nn::Sequential d(torch::nn::Linear(1, 16), torch::nn::LeakyReLU(), torch::nn::Linear(16, 1));
  torch::optim::Adam g_opt(g->parameters(), torch::optim::AdamOptions(1e-3).betas({0.5, 0.999}));
  torch::optim::Adam d_opt(d->parameters(), torch::optim::AdamOptions(1e-3).betas({0.5, 0.999}));
  gan_session d_tel({}, *d, {std::make_shared<memory_sink>()});
  gan_session g_tel({}, *g, {std::make_shared<memory_sink>()});
  gan_run out;
  const auto ones = torch::ones({64, 1}), zeros = torch::zeros({64, 1});
  for (int i = 1; i <= iterations; ++i) {
    simic::signals s;
    s.progress = training_progress(static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(iterations));
    const auto real = torch::randn({64, 1}) * 0.5 + 3.0;
    const auto fake = g->forward(torch::randn({64, 4}));
    d_opt.zero_grad();
    const auto d_loss = torch::binary_cross_entropy_with_logits(d->forward(real), ones) +
                        torch::binary_cross_entropy_with_logits(d->forward(fake.detach()), zeros);
    d_loss.backward();
    out.d_results.push_back(d_tel.step(s));
    if (out.d_results.back().resp.act == action::proceed) d_opt.step();
    g_opt.zero_grad();
    auto g_loss = torch::binary_cross_entropy_with_logits(d->forward(fake), ones) * scale;
    if (i == fault_at) g_loss = g_loss * 1e6;
    g_loss.backward();
    out.g_results.push_back(g_tel.step(s));
    const auto& grads = g_tel.sensor<gradient_health_sensor<>>().last();
    if (grads) out.largest_g_norm = std::max(out.largest_g_norm, grads->max_param_norm);
    if (out.g_results.back().resp.act == action::proceed) g_opt.step();
  }
  return out;
}

bool any_critical(const std::vector<check_result>& rs) {
  for (const auto& r : rs)
    for (const auto& a : r.report)
      if (a.severity == severity::critical) return true;
  return false;
}

}  // namespace

TEST_CASE("GAN recipe: healthy seeds whose generator norms exceed the fixed bound raise no critical anomaly") {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    INFO("seed " << seed);
    const gan_run r = train(seed, 50.0, 400, 0);
    CHECK(r.largest_g_norm > defaults::grad_exploding);  // the reference's bound would have fired
    CHECK_FALSE(any_critical(r.d_results));
    CHECK_FALSE(any_critical(r.g_results));
  }
}

TEST_CASE("GAN recipe: a generator loss x1e6 is critical at its step, in the generator's session only") {
  const gan_run r = train(1, 50.0, 300, 200);
  const auto& at = r.g_results[199].report;
  CHECK(at.has(anomaly_kind::gradient_exploding));
  for (std::size_t i = 0; i < 199; ++i) CHECK_FALSE(any_critical({r.g_results[i]}));
  CHECK_FALSE(any_critical(std::vector<check_result>(r.d_results.begin(), r.d_results.begin() + 200)));
}
