// Tests of examples/char_lm, the byte-level transformer LM trainer: the model's
// causal attention against a by-hand float64 reference, the learning-rate
// schedule against its formula, the data split, a short healthy run that
// learns, each fault's effect on the trainer, and bad options. In-process
// runs of a small configuration (16 sequences of 32 bytes).
#include <doctest/doctest.h>

#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "data.hpp"
#include "faults.hpp"
#include "lm.hpp"
#include "model.hpp"
#include "options.hpp"

namespace {

namespace fs = std::filesystem;
using char_lm::run_options;
using char_lm::run_summary;

bool have_fortunes() { return fs::is_directory(char_lm::default_data_dir); }

// A configuration small enough for tests: about 20 ms a step here.
run_options small(std::uint64_t steps) {
  run_options o;
  o.steps = steps;
  o.batch = 16;
  o.context = 32;
  o.eval_every = 20;
  o.eval_batches = 2;
  o.progress_lines = false;
  o.seed = 1;
  return o;
}

run_options with_fault(run_options o, char_lm::fault f, std::uint64_t at) {
  o.injections.push_back({f, at});
  return o;
}

const run_summary& healthy60() {
  static const run_summary s = char_lm::run(small(60));
  return s;
}

const char_lm::step_record& step_of(const run_summary& s, std::uint64_t step) {
  REQUIRE(step >= 1);
  REQUIRE(step <= s.steps.size());
  const auto& r = s.steps[step - 1];
  REQUIRE(r.step == step);
  return r;
}

std::string error_of(const std::vector<std::string>& args) {
  try {
    (void)char_lm::parse_command_line(args);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("causal attention: a later token leaves earlier outputs unchanged, and matches a by-hand reference") {
  torch::manual_seed(3);
  char_lm::lm model(char_lm::model_options{.vocab = 256, .d_model = 32, .heads = 4, .layers = 2, .context = 16});
  torch::NoGradGuard ng;
  const auto x = torch::randint(0, 256, {2, 16}, torch::kLong);
  const auto y = model->forward(x);
  for (const int j : {0, 5, 15}) {
    auto x2 = x.clone();
    x2.select(1, j).add_(1).remainder_(256);
    const auto y2 = model->forward(x2);
    INFO("token changed at position " << j);
    if (j > 0) CHECK(torch::equal(y.narrow(1, 0, j), y2.narrow(1, 0, j)));
    CHECK((y.narrow(1, j, 16 - j) - y2.narrow(1, j, 16 - j)).abs().max().item<double>() > 1e-4);
  }

  // One block's attention against the formula, in float64, from its weights.
  char_lm::block b = model->layer(0);
  const int T = 16, D = 32, H = 4, dh = D / H;
  const auto h = torch::randn({1, T, D});
  const auto got = b->attention(h).to(torch::kDouble)[0];
  const auto hd = h[0].to(torch::kDouble);
  const auto qkv = hd.matmul(b->attn->weight.to(torch::kDouble).t()) + b->attn->bias.to(torch::kDouble);  // [T, 3D]
  const auto acc = qkv.accessor<double, 2>();
  double worst = 0.0;
  for (int head = 0; head < H; ++head)
    for (int i = 0; i < T; ++i) {
      std::vector<double> w(static_cast<std::size_t>(i) + 1);
      double mx = -1e300, sum = 0.0;
      for (int j = 0; j <= i; ++j) {
        double s = 0.0;
        for (int c = 0; c < dh; ++c) s += acc[i][head * dh + c] * acc[j][D + head * dh + c];
        w[j] = s / std::sqrt(static_cast<double>(dh));
        mx = std::max(mx, w[j]);
      }
      for (double& v : w) sum += (v = std::exp(v - mx));
      for (int c = 0; c < dh; ++c) {
        double out = 0.0;
        for (int j = 0; j <= i; ++j) out += w[j] / sum * acc[j][2 * D + head * dh + c];
        worst = std::max(worst, std::abs(out - got[i][head * dh + c].item<double>()));
      }
    }
  CHECK(worst < 1e-5);
}

TEST_CASE("the linear layers (oneDNN where LibTorch has it) agree with torch::nn::functional::linear, gradients too") {
  torch::manual_seed(4);
  torch::nn::Linear l(24, 40);
  const auto x = torch::randn({3, 7, 24}, torch::requires_grad());
  const auto y = char_lm::linear(l, x);
  const auto g = torch::randn_like(y);
  const auto gx = torch::autograd::grad({y}, {x, l->weight, l->bias}, {g});
  const auto x_ref = x.detach().clone().requires_grad_();
  const auto y_ref = torch::nn::functional::linear(x_ref, l->weight, l->bias);
  const auto gx_ref = torch::autograd::grad({y_ref}, {x_ref, l->weight, l->bias}, {g});
  CHECK(torch::allclose(y, y_ref, 1e-5, 1e-5));
  for (std::size_t i = 0; i < 3; ++i) CHECK(torch::allclose(gx[i], gx_ref[i], 1e-4, 1e-5));
}

TEST_CASE("learning-rate schedule: linear warm-up, then cosine to a tenth, against the float64 formula") {
  run_options o;
  o.steps = 1000;
  o.warmup = 100;
  o.lr = 2e-3;
  const double hi = 2e-3, lo = 2e-4, pi = std::numbers::pi;
  CHECK(char_lm::scheduled_lr(o, 1) == hi * 1.0 / 100.0);       // the first step
  CHECK(char_lm::scheduled_lr(o, 50) == hi * 50.0 / 100.0);
  CHECK(char_lm::scheduled_lr(o, 100) == hi);                   // end of warm-up: the peak
  const double after_peak = lo + (hi - lo) * 0.5 * (1 + std::cos(pi * 1.0 / 900.0));
  CHECK(char_lm::scheduled_lr(o, 101) == doctest::Approx(after_peak).epsilon(1e-15));
  CHECK(char_lm::scheduled_lr(o, 550) == doctest::Approx((hi + lo) / 2).epsilon(1e-14));
  CHECK(char_lm::scheduled_lr(o, 1000) == doctest::Approx(lo).epsilon(1e-14));  // the last step
  for (std::uint64_t s = 100; s < 1000; ++s) CHECK(char_lm::scheduled_lr(o, s + 1) <= char_lm::scheduled_lr(o, s));
  // The default warm-up: a tenth of the run, at most 200 steps.
  o.warmup = 0;
  CHECK(o.effective_warmup() == 100);
  o.steps = 3000;
  CHECK(o.effective_warmup() == 200);
  o.steps = 5;
  CHECK(o.effective_warmup() == 0);
  CHECK(char_lm::scheduled_lr(o, 5) == doctest::Approx(lo).epsilon(1e-14));
}

TEST_CASE("data: the plain fortune files in sorted order, split 90/10 by bytes") {
  // A directory of our own: a, b; b.dat (an index) and c.u8 (a link) skipped.
  const fs::path dir = fs::temp_directory_path() / ("simic_char_lm_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "b") << std::string(60, 'b');
  std::ofstream(dir / "a") << std::string(40, 'a');
  std::ofstream(dir / "b.dat") << "index";
  fs::create_symlink(dir / "a", dir / "c.u8");
  const char_lm::corpus c = char_lm::load_fortunes(dir.string());
  CHECK((c.files == std::vector<std::string>{"a", "b"}));
  CHECK(c.train == std::string(40, 'a') + std::string(50, 'b'));
  CHECK(c.valid == std::string(10, 'b'));
  fs::remove_all(dir);

  // A missing directory names the package.
  try {
    (void)char_lm::load_fortunes(dir.string());
    FAIL("no error for a missing directory");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("install the Debian package 'fortunes'") != std::string::npos);
  }
  run_options o = small(10);
  o.data_dir = dir.string();
  CHECK_THROWS_WITH_AS(char_lm::run(o), doctest::Contains("'fortunes'"), std::invalid_argument);

  if (!have_fortunes()) {
    MESSAGE("no " << char_lm::default_data_dir << ": the Debian package fortunes is not installed; skipped");
    return;
  }
  std::uint64_t total = 0;
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(char_lm::default_data_dir))
    if (!e.is_symlink() && e.is_regular_file() && e.path().extension() != ".dat") {
      total += fs::file_size(e.path());
      ++files;
    }
  const char_lm::corpus f = char_lm::load_fortunes(char_lm::default_data_dir);
  CHECK(f.files.size() == files);
  CHECK(std::is_sorted(f.files.begin(), f.files.end()));
  CHECK(f.total() == total);
  CHECK(f.train.size() == total * 9 / 10);
  CHECK(f.valid.size() == total - total * 9 / 10);
  CHECK(total > 1'000'000);
}

TEST_CASE("a short healthy run learns: the loss falls well below the uniform-byte loss ln 256") {
  if (!have_fortunes()) return;
  const run_summary s = char_lm::run(small(200));
  CHECK(s.exit_code == 0);
  CHECK(s.steps_done == 200);
  CHECK(s.optimizer_steps == 200);
  CHECK(s.skips.empty());
  CHECK(s.weights_finite);
  CHECK(s.epochs == 10);
  CHECK(s.checks >= 200);
  CHECK(s.count(simic::severity::critical) == 0);
  const double uniform = std::log(256.0);
  CHECK(s.steps.front().loss == doctest::Approx(uniform).epsilon(0.05));  // an untrained model: about uniform
  CHECK(s.final_train_loss < uniform - 2.0);
  CHECK(s.final_valid_loss < uniform - 2.0);
  // The learning rate set each step is the schedule's.
  for (const auto& r : s.steps) CHECK(r.lr == char_lm::scheduled_lr(small(200), r.step));
  MESSAGE("200 steps: train " << s.final_train_loss << ", validation " << s.final_valid_loss << ", " << s.seconds
                              << " s");
}

TEST_CASE("faults: each one bends training as documented, and nothing before its step") {
  if (!have_fortunes()) return;
  using char_lm::fault;
  const run_summary& h = healthy60();
  REQUIRE(h.exit_code == 0);
  const std::uint64_t S = 40;
  auto same_before = [&](const run_summary& s) {
    for (std::uint64_t k = 1; k < S; ++k) CHECK(step_of(s, k).loss == step_of(h, k).loss);
  };

  SUBCASE("lr-spike: x20 from its step on") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::lr_spike, S));
    same_before(s);
    CHECK(step_of(s, S - 1).lr == char_lm::scheduled_lr(small(60), S - 1));
    for (std::uint64_t k = S; k <= 60; ++k) CHECK(step_of(s, k).lr == 20.0 * char_lm::scheduled_lr(small(60), k));
  }
  SUBCASE("lr-ramp: x1.02 per step, compounding, from its step") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::lr_ramp, S));
    same_before(s);
    for (std::uint64_t k = S; k <= 60; ++k)
      CHECK(step_of(s, k).lr ==
            doctest::Approx(std::pow(1.02, static_cast<double>(k - S + 1)) * char_lm::scheduled_lr(small(60), k))
                .epsilon(1e-13));
  }
  SUBCASE("lr-collapse: 1e-8 from its step on") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::lr_collapse, S));
    CHECK(step_of(s, S - 1).lr == char_lm::scheduled_lr(small(60), S - 1));
    for (std::uint64_t k = S; k <= 60; ++k) CHECK(step_of(s, k).lr == 1e-8);
  }
  SUBCASE("bad-batch: one batch of random bytes, whose loss is at least about ln 256") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::bad_batch, S));
    same_before(s);
    CHECK(step_of(s, S).loss > std::log(256.0) - 0.2);
    CHECK(step_of(h, S).loss < std::log(256.0) - 1.5);
    CHECK(step_of(s, S + 1).loss < std::log(256.0) - 1.0);  // the next batch is text again
  }
  SUBCASE("nan-batch: a NaN loss, numerical_instability, the step skipped, the weights finite") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::nan_batch, S));
    same_before(s);
    CHECK(std::isnan(step_of(s, S).loss));
    CHECK(step_of(s, S).skipped);
    CHECK(s.skips.size() == 1);
    CHECK(s.optimizer_steps == 59);
    CHECK(s.count(simic::anomaly_kind::numerical_instability) >= 1);
    CHECK(!step_of(s, S + 1).skipped);
    CHECK(std::isfinite(step_of(s, S + 1).loss));
    CHECK(s.weights_finite);
    CHECK(s.exit_code == 0);
  }
  SUBCASE("loss-scale: the loss and its gradients x1e6 for one step") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::loss_scale, S));
    same_before(s);
    CHECK(step_of(s, S).loss == doctest::Approx(1e6 * step_of(h, S).loss).epsilon(1e-6));
    CHECK(step_of(s, S).grad_norm == doctest::Approx(1e6 * step_of(h, S).grad_norm).epsilon(1e-3));
    CHECK(step_of(s, S + 1).loss < 10.0);
  }
  SUBCASE("dead-layer: block 0's MLP zeroed at its step") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::dead_layer, S));
    same_before(s);
    CHECK(step_of(s, S - 1).mlp_norm == step_of(h, S - 1).mlp_norm);
    CHECK(step_of(s, S - 1).mlp_norm > 1.0);
    CHECK(step_of(s, S).mlp_norm == 0.0);
    CHECK(step_of(s, S).loss != step_of(h, S).loss);
    // zeroed once: a step later only Adam's momentum has moved it
    CHECK(step_of(s, S + 1).mlp_norm < 0.25 * step_of(h, S + 1).mlp_norm);
    MESSAGE("dead-layer: MLP norm " << step_of(s, S + 1).mlp_norm << " a step later, healthy "
                                    << step_of(h, S + 1).mlp_norm);
  }
  SUBCASE("label-shuffle: the targets of another sequence, from its step on") {
    const run_summary s = char_lm::run(with_fault(small(60), fault::label_shuffle, S));
    same_before(s);
    double faulted = 0.0, healthy = 0.0;
    for (std::uint64_t k = S; k <= 60; ++k) {
      faulted += step_of(s, k).loss;
      healthy += step_of(h, k).loss;
    }
    CHECK(faulted > healthy + 0.05 * 21);  // a worse loss on every step on average
    MESSAGE("label-shuffle: mean loss of steps 40..60 " << faulted / 21 << ", healthy " << healthy / 21);
  }
}

TEST_CASE("label-shuffle's targets: every row another row's, none its own") {
  torch::manual_seed(5);
  const auto y = torch::arange(8).unsqueeze(1).repeat({1, 4});  // row r holds r
  char_lm::step_faults f;
  f.label_shuffle = true;
  const auto z = f.targets(y);
  std::vector<bool> seen(8, false);
  for (int r = 0; r < 8; ++r) {
    const auto src = z[r][0].item<std::int64_t>();
    CHECK(torch::equal(z[r], y[src]));
    CHECK(src != r);
    seen[static_cast<std::size_t>(src)] = true;
  }
  for (int r = 0; r < 8; ++r) CHECK(seen[static_cast<std::size_t>(r)]);
}

TEST_CASE("the reference preset runs the same trainer") {
  if (!have_fortunes()) return;
  run_options o = small(30);
  o.preset = char_lm::detector_preset::reference;
  const run_summary s = char_lm::run(o);
  CHECK(s.steps_done == 30);
  CHECK(s.weights_finite);
}

TEST_CASE("bad options give clear errors") {
  struct bad {
    std::vector<std::string> args;
    const char* says;
  };
  for (const bad& b : {bad{{"--layers", "5"}, "--layers: '5' is not an integer in [2, 4]"},
                       bad{{"--layers", "1"}, "--layers"},
                       bad{{"--inject", "lr-spiky"},
                           "--inject: unknown fault 'lr-spiky'; valid kinds: lr-spike, lr-ramp"},
                       bad{{"--inject", "lr-spike@0"}, "--inject step"},
                       bad{{"--steps", "100", "--inject-at", "101"}, "--inject-at: step 101 is after the last step"},
                       bad{{"--steps", "100", "--inject", "nan-batch@200"}, "--inject: nan-batch at step 200"},
                       bad{{"--heads", "3"}, "--heads: 3 does not divide --d-model 64"},
                       bad{{"--preset", "ppo"}, "--preset: unknown preset 'ppo'; valid: simic, reference"},
                       bad{{"--level", "LOUD"}, "--level: unknown level 'LOUD'"},
                       bad{{"--steps"}, "--steps: missing value"},
                       bad{{"--lr", "0"}, "--lr"},
                       bad{{"--bogus"}, "unknown option '--bogus'"}}) {
    const std::string e = error_of(b.args);
    INFO("args: " << b.args.front() << ", error: " << e);
    CHECK(e.find(b.says) != std::string::npos);
  }
  // Good ones: the defaults and a fault at half way.
  const auto cl = char_lm::parse_command_line({"--inject", "lr-spike", "--layers", "4"});
  CHECK(cl.options.layers == 4);
  CHECK(cl.options.steps == 3000);
  CHECK(cl.options.injection_step(cl.options.injections.at(0)) == 1500);
  CHECK(char_lm::parse_command_line({"--help"}).help);
  CHECK(char_lm::usage("char_lm").find("label-shuffle") != std::string::npos);
}
