// simic::update_guard (recovery/update_guard.hpp) against references made
// here: a plain optimizer.step() on a twin network (a kept step must equal
// it bitwise, for every supported optimizer), the state copied before the
// step (a kept-out step must leave it bitwise, weights and optimizer state,
// counters and entries included, once settled), a run that skips the bad
// step by itself, and norms computed by hand. Then bad input, the guard with
// a deferred session (docs/guide.md, "A deferred check"), the structural
// no-host-read check, and, on a GPU, the same loop under CUDA's sync debug
// mode set to error.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "recovery/recovery_test_support.hpp"
#include "simic/emit/sink_memory.hpp"
#include "simic/presets/supervised_session.hpp"
#include "simic/recovery/update_guard.hpp"
#include "simic/sensors/torch_compat.hpp"
#include "support/host_reads.hpp"

#if SIMIC_CUDA
#include <c10/cuda/CUDAFunctions.h>

#include "simic/reduce/cuda/fused_backend.hpp"
#endif

using namespace simic;
using simic::test::recovery::optimizer_case;
using simic::test::recovery::optimizer_cases;

namespace {

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_value = std::numeric_limits<double>::infinity();

struct net : torch::nn::Module {
  net() {
    fc1 = register_module("fc1", torch::nn::Linear(3, 8));
    fc2 = register_module("fc2", torch::nn::Linear(8, 2));
    to(torch::kDouble);
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2->forward(torch::tanh(fc1->forward(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
std::shared_ptr<net> make_net() {
  torch::manual_seed(11);
  return std::make_shared<net>();
}

struct batch {
  torch::Tensor x, y;
};
batch batch_of(std::uint64_t k) {
  torch::manual_seed(500 + k);
  return {torch::randn({16, 3}, torch::kDouble), torch::randn({16, 2}, torch::kDouble)};
}
// Gradients of batch k (x `scale` on the loss); a NaN or Inf in fc1's weight gradient on request.
void backward(net& m, torch::optim::Optimizer& opt, std::uint64_t k, double scale = 1.0, double poison = 0.0) {
  opt.zero_grad();
  const batch b = batch_of(k);
  (torch::mse_loss(m.forward(b.x), b.y) * scale).backward();
  if (poison != 0.0) {
    torch::NoGradGuard ng;
    m.fc1->weight.grad().view(-1)[2] = poison;
  }
}

std::string bytes_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  const at::Tensor c = t.detach().cpu().contiguous();
  return std::string(c10::toString(c.scalar_type())) + std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}
// Everything a step may change: every parameter, and every state entry's
// counter and tensors (an absent entry as such), as bytes.
std::vector<std::string> everything(torch::optim::Optimizer& opt) {
  namespace o = torch::optim;
  std::vector<std::string> out;
  for (auto& g : opt.param_groups())
    for (auto& p : g.params()) {
      out.push_back(bytes_of(p));
      auto* st = simic::detail::optimizer_param_state(opt, p);
      if (st == nullptr) {
        out.push_back("no state");
      } else if (auto* a = dynamic_cast<o::AdamParamState*>(st)) {
        out.insert(out.end(), {std::to_string(a->step()), bytes_of(a->exp_avg()), bytes_of(a->exp_avg_sq()),
                               bytes_of(a->max_exp_avg_sq())});
      } else if (auto* w = dynamic_cast<o::AdamWParamState*>(st)) {
        out.insert(out.end(), {std::to_string(w->step()), bytes_of(w->exp_avg()), bytes_of(w->exp_avg_sq()),
                               bytes_of(w->max_exp_avg_sq())});
      } else if (auto* s = dynamic_cast<o::SGDParamState*>(st)) {
        out.push_back(bytes_of(s->momentum_buffer()));
      } else if (auto* r = dynamic_cast<o::RMSpropParamState*>(st)) {
        out.insert(out.end(), {std::to_string(r->step()), bytes_of(r->square_avg()), bytes_of(r->momentum_buffer()),
                               bytes_of(r->grad_avg())});
      } else if (auto* d = dynamic_cast<o::AdagradParamState*>(st)) {
        out.insert(out.end(), {std::to_string(d->step()), bytes_of(d->sum())});
      } else {
        FAIL("an optimizer state type this test does not know");
      }
    }
  return out;
}
// The same without the counters: what the device restores by itself.
std::vector<std::string> tensors_only(torch::optim::Optimizer& opt) {
  std::vector<std::string> out;
  for (auto& s : everything(opt))
    if (!s.empty() && !std::isdigit(static_cast<unsigned char>(s[0]))) out.push_back(s);
  return out;
}

// The packed rows of the optimizer's gradients: the one read the guard judges by.
at::Tensor rows_of(torch::optim::Optimizer& opt) {
  std::vector<at::Tensor> grads;
  for (auto& g : opt.param_groups())
    for (auto& p : g.params())
      if (p.grad().defined()) grads.push_back(p.grad());
  return auto_backend{}.reduce(reduce_request{grads, stat_set::basic});
}

struct twins {
  std::shared_ptr<net> plain = make_net(), guarded = make_net();
  std::unique_ptr<torch::optim::Optimizer> plain_opt, guarded_opt;
  explicit twins(const optimizer_case& c)
      : plain_opt(c.make(plain->parameters())), guarded_opt(c.make(guarded->parameters())) {}
};

}  // namespace

TEST_CASE("update_guard: a finite step through the guard is bitwise the plain optimizer.step()") {
  for (const optimizer_case& c : optimizer_cases()) {
    CAPTURE(c.name);
    twins t(c);
    update_guard guard(*t.guarded_opt, {.max_norm = 1e6});
    for (std::uint64_t k = 1; k <= 6; ++k) {
      CAPTURE(k);
      backward(*t.plain, *t.plain_opt, k);
      backward(*t.guarded, *t.guarded_opt, k);
      t.plain_opt->step();
      guard.step(guard.judge(rows_of(*t.guarded_opt)));
      REQUIRE(everything(*t.guarded_opt) == everything(*t.plain_opt));
    }
    CHECK(guard.settle() == std::optional<bool>(true));
    CHECK(guard.steps() == 6);
    CHECK(guard.kept_out() == 0);
    CHECK(everything(*t.guarded_opt) == everything(*t.plain_opt));
  }
}

TEST_CASE("update_guard: a NaN or Inf gradient leaves weights and optimizer state bitwise as before") {
  for (const optimizer_case& c : optimizer_cases()) {
    for (const double poison : {nan_value, inf_value, -inf_value}) {
      for (const std::uint64_t bad : {1u, 4u}) {  // the first step (no state yet), or a later one
        CAPTURE(c.name);
        CAPTURE(poison);
        CAPTURE(bad);
        twins t(c);  // plain: the reference run that skips step `bad` by itself
        update_guard guard(*t.guarded_opt);
        for (std::uint64_t k = 1; k <= 6; ++k) {
          CAPTURE(k);
          backward(*t.plain, *t.plain_opt, k);
          backward(*t.guarded, *t.guarded_opt, k, 1.0, k == bad ? poison : 0.0);
          if (k != bad) t.plain_opt->step();
          const auto before = everything(*t.guarded_opt);
          const auto tensors_before = tensors_only(*t.guarded_opt);
          guard.step(guard.judge(rows_of(*t.guarded_opt)));
          if (k == bad) {
            // on the device, at once: every tensor as before (a first step's new entries aside)
            if (bad > 1 || c.name == std::string("Adagrad")) CHECK(tensors_only(*t.guarded_opt) == tensors_before);
            CHECK(guard.settle() == std::optional<bool>(false));  // the host part, from the verdict's copy
            CHECK(everything(*t.guarded_opt) == before);
            CHECK(guard.kept_out() == 1);
          }
          REQUIRE(everything(*t.guarded_opt) == everything(*t.plain_opt));
        }
      }
    }
  }
}

TEST_CASE("update_guard: the norm limit keeps out a step above it; below and at it the step is taken") {
  // Two parameters whose gradients are set by hand: {3, 4} and {0, 0, 0}, total norm 5 (by hand, exactly).
  const double limit_at = 5.0, above = std::nextafter(5.0, 0.0), below = std::nextafter(5.0, 10.0);
  for (const auto& [limit, kept] : {std::pair{limit_at, true}, std::pair{below, true}, std::pair{above, false},
                                    std::pair{4.0, false}, std::pair{6.0, true}}) {
    CAPTURE(limit);
    at::Tensor a = at::tensor({1.0, 2.0}).set_requires_grad(true), b = at::tensor({-1.0, 0.5, 2.0}).set_requires_grad(true);
    torch::optim::Adam opt({a, b}, torch::optim::AdamOptions(0.1));
    // one ordinary step first, so that the state exists
    a.mutable_grad() = at::tensor({0.1, 0.1});
    b.mutable_grad() = at::tensor({0.1, 0.1, 0.1});
    opt.step();
    a.mutable_grad() = at::tensor({3.0, 4.0});
    b.mutable_grad() = at::zeros({3}, at::kDouble);
    update_guard guard(opt, {.max_norm = limit});
    const at::Tensor rows = rows_of(opt);
    CHECK(std::sqrt(rows.select(1, stat::sumsq).sum().item<double>()) == 5.0);  // the read's own norm
    const at::Tensor ok = guard.judge(rows);
    CHECK(ok.item<bool>() == kept);
    const auto before = everything(opt);
    guard.step(ok);
    CHECK(guard.settle() == std::optional<bool>(kept));
    CHECK((everything(opt) == before) == !kept);
  }
}

TEST_CASE("update_guard::judge: non-finite counts and the total norm, from packed rows made by hand") {
  torch::optim::SGD opt({at::zeros({1}).set_requires_grad(true)}, torch::optim::SGDOptions(0.1));
  update_guard limited(opt, {.max_norm = 2.0}), unlimited(opt);
  auto rows = [](std::vector<std::vector<double>> sumsq_nans_infs) {
    at::Tensor r = at::zeros({static_cast<std::int64_t>(sumsq_nans_infs.size()), stat::count}, at::kDouble);
    for (std::size_t i = 0; i < sumsq_nans_infs.size(); ++i) {
      r[i][stat::sumsq] = sumsq_nans_infs[i][0];
      r[i][stat::nans] = sumsq_nans_infs[i][1];
      r[i][stat::infs] = sumsq_nans_infs[i][2];
      r[i][stat::numel] = 4;
    }
    return r;
  };
  CHECK(limited.judge(rows({{1.0, 0, 0}, {3.0, 0, 0}})).item<bool>());   // norm 2: at the limit
  CHECK_FALSE(limited.judge(rows({{1.0, 0, 0}, {3.5, 0, 0}})).item<bool>());
  CHECK_FALSE(limited.judge(rows({{1.0, 1, 0}, {0.0, 0, 0}})).item<bool>());  // one NaN
  CHECK_FALSE(unlimited.judge(rows({{1.0, 0, 0}, {inf_value, 0, 2}})).item<bool>()); // two Inf
  CHECK(unlimited.judge(rows({{1e300, 0, 0}, {1e300, 0, 0}})).item<bool>());   // large is not bad without a limit
  CHECK(limited.judge(rows({})).item<bool>());  // no gradients: nothing to keep out
  const at::Tensor ok = limited.judge(rows({{1.0, 0, 0}}));
  CHECK((ok.scalar_type() == at::kBool));
  CHECK(ok.dim() == 0);
}

TEST_CASE("update_guard::undo takes a kept update back bitwise; nothing when it was kept out") {
  for (const optimizer_case& c : optimizer_cases()) {
    CAPTURE(c.name);
    twins t(c);  // plain: skips step 3, as undo() makes the guarded run do
    update_guard guard(*t.guarded_opt);
    CHECK_FALSE(guard.undo());  // no step yet
    for (std::uint64_t k = 1; k <= 5; ++k) {
      backward(*t.plain, *t.plain_opt, k);
      if (k != 3) t.plain_opt->step();
      backward(*t.guarded, *t.guarded_opt, k);
      const auto before = everything(*t.guarded_opt);
      guard.step(guard.judge(rows_of(*t.guarded_opt)));
      if (k == 3) {
        CHECK(guard.undo());
        CHECK(everything(*t.guarded_opt) == before);
        CHECK_FALSE(guard.undo());  // once
      }
      REQUIRE(everything(*t.guarded_opt) == everything(*t.plain_opt));
    }
    CHECK(guard.undone() == 1);
    // a kept-out step: nothing to take back
    backward(*t.guarded, *t.guarded_opt, 6, 1.0, nan_value);
    guard.step(guard.judge(rows_of(*t.guarded_opt)));
    CHECK_FALSE(guard.undo());
    CHECK(guard.kept_out() == 1);
  }
}

TEST_CASE("update_guard: bad input is refused, naming the argument and its range, and changes nothing") {
  auto m = make_net();
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
  for (const double bad : {0.0, -1.0, nan_value, -inf_value}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(update_guard(opt, {.max_norm = bad}), doctest::Contains("max_norm"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(update_guard(opt, {.max_norm = bad}), doctest::Contains("valid: (0, inf]"),
                         std::invalid_argument);
  }
  CHECK_NOTHROW(update_guard(opt, {.max_norm = inf_value}));
  torch::optim::LBFGS lbfgs(m->parameters());
  CHECK_THROWS_WITH_AS(update_guard{lbfgs}, doctest::Contains("optimizer = torch::optim::LBFGS"), std::invalid_argument);
  torch::optim::SGD empty(std::vector<at::Tensor>{}, torch::optim::SGDOptions(0.1));
  CHECK_THROWS_WITH_AS(update_guard{empty}, doctest::Contains("at least one parameter"), std::invalid_argument);

  update_guard guard(opt);
  backward(*m, opt, 1);
  guard.step(guard.judge(rows_of(opt)));
  backward(*m, opt, 2, 1.0, nan_value);
  const auto before = everything(opt);
  const at::Tensor rows = rows_of(opt);
  for (const at::Tensor& ok : {at::ones({}, at::kFloat), at::ones({1}, at::kBool), at::Tensor()}) {
    CHECK_THROWS_WITH_AS(guard.step(ok), doctest::Contains("a 0-dim bool tensor on the parameters' device (cpu)"),
                         std::invalid_argument);
  }
  CHECK_THROWS_WITH_AS(guard.judge(rows.narrow(1, 0, 5)), doctest::Contains("rows = Double [4, 5] on cpu"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(guard.judge(rows.to(at::kFloat)), doctest::Contains("[tensors, stat::count] float64"),
                       std::invalid_argument);
  CHECK(everything(opt) == before);
  CHECK(guard.steps() == 1);

  // a session that does not watch every parameter the optimizer steps
  session_options o;
  o.watch = param_filter().exclude("fc2.*");
  supervised_session<> tel(o, *m);
  tel.step({});
  CHECK_THROWS_WITH_AS(guard.step(tel), doctest::Contains("session = watches 2 parameters"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(guard.step(tel), doctest::Contains("valid: a session that watches every parameter"),
                       std::invalid_argument);
  CHECK(everything(opt) == before);
  CHECK(guard.steps() == 1);
  // the guard's step without the session's step for these gradients
  supervised_session<> all({}, *m);
  all.step({});
  guard.step(all);
  CHECK(guard.steps() == 2);
  CHECK_THROWS_WITH_AS(guard.step(all), doctest::Contains("call session.step(...) for this step's gradients first"),
                       std::logic_error);
  // a step of the optimizer outside the guard, then the guard's settle: refused, nothing changed
  opt.step();
  const auto outside = everything(opt);
  all.step({});
  CHECK_THROWS_WITH_AS(guard.step(all), doctest::Contains("reset()"), std::logic_error);
  CHECK(everything(opt) == outside);
  guard.reset();
  CHECK_NOTHROW(guard.step(all));
}

namespace {

// A deferred session and the guard, in the loop of docs/guide.md; the faults
// by step: a NaN gradient (kept out on the device), a loss spike the guard
// does not see (the late skip_step is taken back by undo(), and the next
// step's update, taken at the undone weights, is dropped).
struct guarded_run {
  std::vector<std::string> final_state;
  std::vector<std::uint64_t> applied;  // steps whose update is in the weights
  std::uint64_t kept_out = 0, undone = 0;
  std::vector<event> events;
};
template <class Fault>
guarded_run run_deferred(std::uint64_t steps, Fault fault, double max_norm) {
  auto m = make_net();
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
  auto sink = std::make_shared<memory_sink>();
  session_options o;
  o.check = check_timing::deferred;
  guarded_run out;
  supervised_session<> tel(o, *m, {sink});
  update_guard guard(opt, {.max_norm = max_norm});
  auto drop = [&](std::uint64_t k) { out.applied.erase(std::find(out.applied.begin(), out.applied.end(), k)); };
  std::uint64_t last = 0;  // the step of the guard's latest step
  for (std::uint64_t k = 1; k <= steps; ++k) {
    const auto [scale, poison, loss_spike] = fault(k);
    backward(*m, opt, k, scale, poison);
    signals s;
    s.loss = loss_spike ? 1e6 : 1.0;  // a constant loss: the loss detector's warm-up ends after 16 steps
    s.progress = training_progress(k, 100);
    const step_result& r = tel.step(s);
    if (r.resp.act == action::stop) break;
    if (r.resp.act == action::skip_step && guard.undo(r.judged)) {
      drop(r.judged->update);
      continue;  // this step's gradients were taken at the weights just undone
    }
    if (last && guard.settle() == std::optional<bool>(false)) drop(last);
    guard.step(tel);
    out.applied.push_back(last = k);
  }
  const step_result& f = tel.flush();
  if (f.resp.act != action::proceed && guard.undo(f.judged)) drop(last);
  if (guard.settle() == std::optional<bool>(false)) drop(last);
  out.final_state = everything(opt);
  out.kept_out = guard.kept_out();
  out.undone = guard.undone();
  tel.close();
  out.events = sink->events();
  return out;
}
struct fault_at {
  double scale = 1.0, poison = 0.0;
  bool loss_spike = false;
};

}  // namespace

TEST_CASE("update_guard with a deferred check: the sync run's weights, with the faults kept out or taken back") {
  auto faults = [](std::uint64_t k) {
    if (k == 7) return fault_at{.poison = nan_value};  // the guard keeps it out; the late skip finds nothing to undo
    if (k == 12) return fault_at{.scale = 1e4};        // norm over the limit: kept out on the device
    if (k == 22) return fault_at{.loss_spike = true};  // only the host sees it: undone one step late
    return fault_at{};
  };
  const guarded_run g = run_deferred(30, faults, 50.0);
  CHECK(g.kept_out == 2);
  CHECK(g.undone >= 1);
  auto in = [&](std::uint64_t k) { return std::count(g.applied.begin(), g.applied.end(), k) > 0; };
  CHECK_FALSE(in(7));
  CHECK_FALSE(in(12));
  CHECK_FALSE(in(22));  // taken back
  CHECK_FALSE(in(23));  // its gradients were taken at the undone weights
  CHECK(in(1));
  CHECK(in(30));
  // the reference: a plain loop that applies exactly the steps the guarded run kept
  auto m = make_net();
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
  for (const std::uint64_t k : g.applied) {
    backward(*m, opt, k);
    opt.step();
  }
  CHECK(g.final_state == everything(opt));
  // the verdicts as a sync check gives them: the NaN step and the loss spike skipped, one step late
  std::vector<std::uint64_t> skipped;
  for (const auto& e : g.events)
    if (const auto* r = e.get_if<response_event>(); r && r->act == action::skip_step) skipped.push_back(e.update());
  CHECK(std::count(skipped.begin(), skipped.end(), 7) == 1);
  CHECK(std::count(skipped.begin(), skipped.end(), 22) == 1);
}

TEST_CASE("update_guard: the guarded step (judge, backup, the optimizer's step, where, the verdict's copy) "
          "dispatches no operation that reads a value to the host") {
  for (const optimizer_case& c : optimizer_cases()) {
    CAPTURE(c.name);
    auto m = make_net();
    auto opt = c.make(m->parameters());
    session_options o;
    o.check = check_timing::deferred;
    supervised_session<> tel(o, *m);
    update_guard guard(*opt, {.max_norm = 10.0});
    for (std::uint64_t k = 1; k <= 4; ++k) {
      CAPTURE(k);
      backward(*m, *opt, k, 1.0, k == 3 ? nan_value : 0.0);
      tel.step({});
      const simic::test::host_reads r([&] { guard.step(tel); });
      CHECK(r.reads == std::vector<std::string>{});
      CHECK(std::count(r.ops.begin(), r.ops.end(), "aten::where.self_out") >= 4);  // each parameter, where not ok
    }
    // the check sees a read where there is one
    const simic::test::host_reads r([&] { (void)guard.judge(rows_of(*opt)).item<bool>(); });
    CHECK(r.reads == std::vector<std::string>{"aten::item.", "aten::_local_scalar_dense."});
    CHECK(guard.settle() == std::optional<bool>(true));
    CHECK(guard.kept_out() == 1);
  }
}

TEST_CASE("update_guard: a step the session read no gradients for is judged by a read of its own") {
  auto m = make_net();
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
  session_options o;
  o.check = check_timing::deferred;
  supervised_session<> tel(o, *m, {}, gradient_health_options{.every = 2});  // reads in updates 1, 3, 5
  update_guard guard(opt);
  // no gradients at all: nothing to keep out, nothing changes
  const auto before = everything(opt);
  tel.step({});
  guard.step(tel);
  CHECK(guard.settle() == std::optional<bool>(true));
  CHECK(everything(opt) == before);
  CHECK(guard.backup_bytes() == 0);
  // update 2 is not due: the session has no rows; the NaN is found by the guard's own read
  backward(*m, opt, 2, 1.0, nan_value);
  tel.step({});
  CHECK_FALSE(tel.sensor<gradient_health_sensor<>>().step_stats().defined());
  const auto before_nan = everything(opt);
  guard.step(tel);
  CHECK(guard.settle() == std::optional<bool>(false));
  CHECK(everything(opt) == before_nan);
  // update 3 is due: the session's rows are the ones judged
  backward(*m, opt, 3);
  tel.step({});
  CHECK(tel.sensor<gradient_health_sensor<>>().step_stats().size(0) == 4);
  guard.step(tel);
  CHECK(guard.settle() == std::optional<bool>(true));
  CHECK(guard.kept_out() == 1);
}

TEST_CASE("update_guard: memory held and traffic per step, by the bytes it copies") {
  auto m = make_net();  // 3x8 + 8 + 8x2 + 2 = 50 float64 parameters: 400 bytes
  torch::optim::Adam adam(m->parameters(), torch::optim::AdamOptions(1e-2));
  update_guard guard(adam);
  backward(*m, adam, 1);
  guard.step(guard.judge(rows_of(adam)));
  CHECK(guard.backup_bytes() == 400);  // the first step: the parameters (no state yet)
  backward(*m, adam, 2);
  guard.step(guard.judge(rows_of(adam)));
  CHECK(guard.backup_bytes() == 3 * 400);  // then the parameters and Adam's two moments
  torch::optim::SGD sgd(m->parameters(), torch::optim::SGDOptions(0.1));  // no momentum: no state
  update_guard plain(sgd);
  backward(*m, sgd, 3);
  plain.step(plain.judge(rows_of(sgd)));
  backward(*m, sgd, 4);
  plain.step(plain.judge(rows_of(sgd)));
  CHECK(plain.backup_bytes() == 400);
}

#if SIMIC_CUDA
TEST_CASE("device: a deferred session and the guard make no host sync per step (CUDA sync debug mode: error)") {
  if (!torch::cuda::is_available()) {
    MESSAGE("skipped: no CUDA device");
    return;
  }
  for (const bool fused : {false, true}) {
    CAPTURE(fused);
    if (fused) simic::cuda::use_with_auto_backend();
    torch::manual_seed(11);
    auto m = std::make_shared<net>();
    m->to(torch::kCUDA, torch::kFloat);
    torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
    session_options o;
    o.check = check_timing::deferred;
    // the per-step sensors (the DEBUG diagnostics of an escalation read to the host by design)
    session<supervised_monitor, gradient_health_sensor<>, parameter_update_sensor, memory_sensor> tel(o, *m);
    update_guard guard(opt, {.max_norm = 1e3});
    const auto x = torch::randn({64, 3}, torch::device(torch::kCUDA)), y = torch::randn({64, 2}, torch::device(torch::kCUDA));
    // warm-up outside the check: allocations, the kernels' first compile, pinned blocks
    for (int k = 0; k < 3; ++k) {
      opt.zero_grad();
      torch::mse_loss(m->forward(x), y).backward();
      tel.step({});
      guard.step(tel);
    }
    const std::uint64_t waits = host_copy_waits(), syncs = simic::cuda::host_syncs();
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
    try {
      for (int k = 0; k < 50; ++k) {
        opt.zero_grad();
        torch::mse_loss(m->forward(x), y).backward();
        if (k == 20) {  // a NaN gradient, set on the device
          torch::NoGradGuard ng;
          m->fc1->weight.grad().view(-1)[0].fill_(std::numeric_limits<float>::quiet_NaN());
        }
        const step_result& r = tel.step({});
        if (r.resp.act == action::stop) break;
        if (r.resp.act == action::skip_step && guard.undo(r.judged)) continue;
        guard.step(tel);
      }
    } catch (...) {
      c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
      throw;
    }
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    MESSAGE("host_copy waits in 50 steps: " << host_copy_waits() - waits
                                            << "; fused back end event waits: " << simic::cuda::host_syncs() - syncs);
    tel.flush();
    CHECK(guard.settle().has_value());
    CHECK(guard.kept_out() == 1);
    for (const auto& p : m->parameters()) CHECK(at::isfinite(p).all().item<bool>());
  }
}
#endif
