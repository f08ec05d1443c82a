// simic::recovery (recovery.hpp) on a small regression loop: snapshots of
// the last good state, the rollback's choice of snapshot, its learning-rate
// backoff and data window, the stop after R rollbacks, attribution, bad
// input, and a resumed run against the uninterrupted one. References are
// copies of the weights taken here and runs made without recovery.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "simic/emit/json.hpp"
#include "simic/emit/sink_memory.hpp"
#include "simic/presets/supervised_session.hpp"
#include "simic/recovery.hpp"
#include "simic/recovery/update_guard.hpp"
#include "support/temp_dir.hpp"
#include "support/written_event.hpp"

using namespace simic;

namespace {

const simic::test::remove_at_exit recovery_files_cleanup{"recovery"};

template <class P>
std::vector<P> payloads(const std::vector<event>& es) {
  std::vector<P> out;
  for (const auto& e : es)
    if (const P* p = e.get_if<P>()) out.push_back(*p);
  return out;
}

using simic::test::timeless;  // support/written_event.hpp

std::vector<at::Tensor> weights_of(torch::nn::Module& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}
bool same(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!a[i].equal(b[i])) return false;
  return true;
}

struct regression {
  torch::nn::Sequential net;
  std::unique_ptr<torch::optim::Adam> opt;
  at::Tensor x, y;
  explicit regression(double lr = 0.01) {
    torch::manual_seed(5);
    net = torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::Tanh(), torch::nn::Linear(16, 1));
    opt = std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(lr));
    x = torch::randn({256, 4});
    y = x.sum(1, true).sin();
  }
  // Batch `b`'s loss (x `scale`), gradients set; a NaN in the gradients when `nan`.
  double backward(std::uint64_t b, double scale = 1.0, bool nan = false) {
    const auto i = static_cast<std::int64_t>(b % 8);
    const auto idx = torch::arange(32 * i, 32 * (i + 1), torch::kLong);
    opt->zero_grad();
    const auto loss = torch::mse_loss(net->forward(x.index_select(0, idx)), y.index_select(0, idx)) * scale;
    loss.backward();
    if (nan) {
      torch::NoGradGuard ng;
      net->parameters()[0].grad().view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
    }
    return loss.item<double>();
  }
};

constexpr std::uint64_t planned = 400;

signals at_step(double loss, std::uint64_t step) {
  signals s;
  s.loss = loss;
  s.progress = training_progress(step, planned);
  return s;
}

// A run of `steps` steps; `fault(step)` says how step `step` goes wrong.
struct fault {
  double scale = 1.0;
  bool nan = false;
};
struct run_result {
  std::vector<at::Tensor> weights;
  std::vector<event> events;
  std::vector<rollback_report> rollbacks;
  std::vector<std::uint64_t> skipped;
  bool stopped = false;
};

template <class Fault>
run_result run(std::uint64_t steps, const recovery_options* ro, Fault f, session_options so = {}) {
  regression m;
  auto sink = std::make_shared<memory_sink>();
  run_result out;
  {
    supervised_session<> tel(so, *m.net, {sink});
    std::optional<recovery<supervised_session<>>> guard;
    if (ro) guard.emplace(tel, *m.net, *m.opt, *ro);
    for (std::uint64_t step = 1; step <= steps; ++step) {
      const fault x = f(step);
      const double loss = m.backward(step, x.scale, x.nan);
      const check_result* r = nullptr;
      if (guard) {
        const recovery_result& rr = guard->step(step, at_step(loss, step));
        if (rr.rollback) out.rollbacks.push_back(*rr.rollback);
        r = &rr;
      } else {
        r = &tel.step(at_step(loss, step));
      }
      if (r->resp.act == action::proceed) {
        m.opt->step();
      } else {
        out.skipped.push_back(step);
        if (r->resp.act == action::stop) {
          out.stopped = true;
          break;
        }
      }
    }
    tel.close();
  }
  out.weights = weights_of(*m.net);
  out.events = sink->events();
  return out;
}

auto healthy = [](std::uint64_t) { return fault{}; };

}  // namespace

TEST_CASE("recovery on a healthy run: snapshots every N healthy checks, K kept, no rollback, the same weights") {
  recovery_options ro;
  ro.snapshot_every = 25;
  ro.keep = 2;
  const auto with = run(200, &ro, healthy);
  const auto without = run(200, nullptr, healthy);
  CHECK(with.rollbacks.empty());
  CHECK(with.skipped.empty());
  CHECK(same(with.weights, without.weights));  // snapshots read, never change training
  const auto snaps = payloads<snapshot_event>(with.events);
  // the first healthy check, then every 25 healthy checks: 1, 26, 51, ..., 176
  REQUIRE(snaps.size() == 8);
  std::vector<std::uint64_t> positions;
  for (const auto& s : snaps) positions.push_back(s.data_position);
  CHECK(positions == std::vector<std::uint64_t>{0, 25, 50, 75, 100, 125, 150, 175});  // before the step's batch
  CHECK(snaps[0].held == 1);
  CHECK(snaps[1].held == 2);
  CHECK(snaps.back().held == 2);  // K = 2
  CHECK(snaps.back().held_bytes == snaps.back().bytes + snaps[snaps.size() - 2].bytes);
  // the memory event (every 50 updates) carries the snapshots' bytes
  const auto mem = payloads<memory_event>(with.events);
  REQUIRE(mem.size() >= 2);
  bool carried = false;
  for (const auto& e : mem)
    for (const auto& [name, bytes] : e.memory.held)
      if (name == "snapshot_bytes" && bytes > 0) carried = true;
  CHECK(carried);
}

TEST_CASE("the guard: a loss x1e6 for one step is kept out of the weights, and the run goes on") {
  auto spike = [](std::uint64_t step) { return step == 150 ? fault{.scale = 1e6} : fault{}; };
  const auto guarded = run(200, nullptr, spike);
  REQUIRE(guarded.skipped == std::vector<std::uint64_t>{150});
  // the reference: the same run that skips step 150 by itself
  regression ref;
  for (std::uint64_t step = 1; step <= 200; ++step) {
    ref.backward(step);
    if (step != 150) ref.opt->step();
  }
  CHECK(same(guarded.weights, weights_of(*ref.net)));
  // the guard off (the policy before it): the update is applied and the weights differ
  session_options off;
  off.skip = skip_rules{.critical = false, .pass_on = {}, .skip_on = {}};
  const auto unguarded = run(200, nullptr, spike, off);
  CHECK(unguarded.skipped.empty());
  CHECK_FALSE(same(unguarded.weights, guarded.weights));
}

TEST_CASE("S skips in a row roll back to the newest snapshot M checks before the onset, with the LR x factor") {
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.keep = 3;
  ro.skips_before_rollback = 3;
  // NaN gradients at steps 101..103: skipped, the third is a rollback
  auto nans = [](std::uint64_t step) { return step >= 101 && step <= 103 ? fault{.nan = true} : fault{}; };
  regression probe;  // the weights at each snapshot, by a run that takes none
  std::vector<at::Tensor> at_81;
  for (std::uint64_t step = 1; step <= 100; ++step) {
    probe.backward(step);
    if (step == 81) at_81 = weights_of(*probe.net);  // snapshot at check 81 holds the state before its update
    probe.opt->step();
  }
  const auto r = run(103, &ro, nans);
  REQUIRE(r.rollbacks.size() == 1);
  const rollback_report& rb = r.rollbacks[0];
  CHECK(rb.cause == rollback_cause::consecutive_skips);
  CHECK(rb.onset_update == 101);
  CHECK(rb.restored_update == 81);  // snapshots at 1, 21, 41, 61, 81; K = 3 keeps 41, 61, 81; margin 0
  CHECK(rb.margin_met);
  CHECK(rb.window_first == 80);     // the data position the snapshot's weights had consumed
  CHECK(rb.window_last == 103);     // where the data stream is now
  CHECK(rb.lr_factor == 0.5);
  CHECK(rb.lr_scale == 0.5);
  CHECK(rb.rollbacks == 1);
  CHECK(rb.attribution == attribution::not_replayed);
  CHECK(rb.reason.find("3 consecutive updates skipped (rollback at 3)") != std::string::npos);
  CHECK(same(r.weights, at_81));    // the restored weights, bitwise
  const auto ev = payloads<rollback_event>(r.events);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].r.restored_update == 81);
  CHECK(r.skipped == std::vector<std::uint64_t>{101, 102, 103});
}

TEST_CASE("the margin M: the newest snapshot at least M checks before the onset; else the oldest, said so") {
  auto nans = [](std::uint64_t step) { return step >= 101 && step <= 103 ? fault{.nan = true} : fault{}; };
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.keep = 3;  // 41, 61, 81 held at the onset (check 101)
  for (const auto& [margin, restored, met] : {std::tuple{19u, 81u, true}, std::tuple{20u, 81u, true},
                                              std::tuple{21u, 61u, true}, std::tuple{60u, 41u, true},
                                              std::tuple{61u, 41u, false}}) {
    CAPTURE(margin);
    ro.margin = margin;
    const auto r = run(103, &ro, nans);
    REQUIRE(r.rollbacks.size() == 1);
    CHECK(r.rollbacks[0].restored_update == restored);
    CHECK(r.rollbacks[0].margin_met == met);
  }
}

TEST_CASE("non-finite weights roll back at once; after R rollbacks the run stops") {
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.max_rollbacks = 2;
  // a NaN gradient that Adam would carry into the weights: here the weights
  // themselves are poisoned from step 120 on, which no skip undoes
  regression m;
  auto sink = std::make_shared<memory_sink>();
  supervised_session<> tel(session_options{}, *m.net, {sink});
  recovery guard(tel, *m.net, *m.opt, ro);
  std::vector<rollback_report> rbs;
  std::string stop_reason;
  std::vector<double> lrs;
  for (std::uint64_t step = 1; step <= 200 && stop_reason.empty(); ++step) {
    if (step == 120 || step == 140 || step == 160) {
      torch::NoGradGuard ng;
      m.net->parameters()[2].view(-1)[3] = std::numeric_limits<float>::infinity();
    }
    const double loss = m.backward(step);
    const recovery_result& r = guard.step(step, at_step(loss, step));
    if (r.rollback) {
      rbs.push_back(*r.rollback);
      lrs.push_back(group_learning_rates(*m.opt)[0]);
      for (const auto& p : m.net->parameters()) CHECK(at::isfinite(p).all().item<bool>());
    }
    if (r.resp.act == action::proceed) m.opt->step();
    if (r.resp.act == action::stop) stop_reason = r.resp.reason;
  }
  REQUIRE(rbs.size() == 2);
  CHECK(rbs[0].cause == rollback_cause::nonfinite_weights);
  CHECK(rbs[0].reason.find("non-finite weights (parameter '2.weight')") != std::string::npos);
  CHECK(rbs[0].onset_update == 120);
  CHECK(rbs[0].restored_update == 101);
  CHECK(lrs == std::vector<double>{0.005, 0.0025});  // 0.01 x 0.5, then x 0.5 again
  CHECK(rbs[1].lr_scale == 0.25);
  CHECK(stop_reason.find("stopping: 2 rollbacks (limit 2); non-finite weights") == 0);
  CHECK(guard.rollbacks() == 2);
  tel.close();
  const auto stops = payloads<response_event>(sink->events());
  REQUIRE_FALSE(stops.empty());
  CHECK(stops.back().act == action::stop);
}

TEST_CASE("attribution: the failing batch replayed from the snapshot fails again (data) or not (transient)") {
  for (const bool poisoned : {true, false}) {
    CAPTURE(poisoned);
    regression m;
    supervised_session<> tel(session_options{}, *m.net);
    recovery_options ro;
    ro.snapshot_every = 20;
    std::uint64_t failing = 0;
    // the batch of steps 101..103 is poisoned (NaN inputs) when `poisoned`;
    // otherwise the fault is the step's (a NaN gradient written after backward)
    auto forward = [&](std::uint64_t step, bool fault_of_step) {
      const auto i = static_cast<std::int64_t>(step % 8);
      const auto idx = torch::arange(32 * i, 32 * (i + 1), torch::kLong);
      at::Tensor x = m.x.index_select(0, idx);
      if (poisoned && step >= 101 && step <= 103) x[0][0] = std::numeric_limits<float>::quiet_NaN();
      m.opt->zero_grad();
      const auto loss = torch::mse_loss(m.net->forward(x), m.y.index_select(0, idx));
      loss.backward();
      if (fault_of_step) {
        torch::NoGradGuard ng;
        m.net->parameters()[0].grad().view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
      }
      return loss.item<double>();
    };
    ro.replay = [&] { return at_step(forward(failing, false), failing); };
    recovery guard(tel, *m.net, *m.opt, ro);
    std::optional<rollback_report> rb;
    for (std::uint64_t step = 1; step <= 103; ++step) {
      failing = step;
      const double loss = forward(step, !poisoned && step >= 101);
      const recovery_result& r = guard.step(step, at_step(loss, step));
      if (r.rollback) rb = r.rollback;
      if (r.resp.act == action::proceed) m.opt->step();
    }
    REQUIRE(rb);
    CHECK(rb->attribution == (poisoned ? attribution::reproducible : attribution::transient));
  }
}

TEST_CASE("a replay that throws: the rollback is completed all the same, and the event says why the replay failed") {
  // After the rollback: the weights, the learning rate and the next random
  // draw; the reference is the same run without a replay.
  struct after {
    std::vector<at::Tensor> weights;
    double lr = 0.0;
    at::Tensor next_draw;
    std::optional<rollback_report> rb;
    std::vector<event> events;
  };
  auto run_with = [](std::function<signals(regression&)> replay) {
    regression m;
    auto sink = std::make_shared<memory_sink>();
    after out;
    {
      supervised_session<> tel(session_options{}, *m.net, {sink});
      recovery_options ro;
      ro.snapshot_every = 20;
      ro.keep = 3;
      if (replay) ro.replay = [&] { return replay(m); };
      recovery guard(tel, *m.net, *m.opt, ro);
      for (std::uint64_t step = 1; step <= 103 && !out.rb; ++step) {
        const double loss = m.backward(step, 1.0, step >= 101);
        const recovery_result& r = guard.step(step, at_step(loss, step));
        if (r.rollback) out.rb = r.rollback;
        if (r.resp.act == action::proceed) m.opt->step();
      }
      out.weights = weights_of(*m.net);
      out.lr = group_learning_rates(*m.opt)[0];
      out.next_draw = torch::randn({4});
      tel.close();
    }
    out.events = sink->events();
    return out;
  };
  const after reference = run_with({});
  REQUIRE(reference.rb);
  CHECK(reference.rb->attribution == attribution::not_replayed);
  CHECK(reference.lr == 0.005);

  // The rollback event as its JSONL object.
  auto rollback_json = [](const std::vector<event>& es) {
    for (const auto& e : es)
      if (e.get_if<rollback_event>()) return to_json(e).dump();
    return std::string();
  };
  CHECK(rollback_json(reference.events).find("replay_error") == std::string::npos);  // none without a failure

  struct failure {
    std::string message;
    bool standard = true;  // a std::exception, else an int is thrown
    std::string kept;      // replay_error
  };
  const std::string long_line(201, 'a');
  for (const failure& f :
       {failure{"no batch at this position\nException raised from replay at lm.cpp:12", true, "no batch at this position"},
        failure{std::string(199, 'b'), true, std::string(199, 'b')},  // below the 200-byte cut
        failure{std::string(200, 'c'), true, std::string(200, 'c')},  // at it
        failure{long_line + "\nsecond line", true, std::string(200, 'a')},  // above it: cut
        failure{"", true, "an exception without a message"},
        failure{"", false, "a non-standard exception"}}) {
    CAPTURE(f.kept);
    // The replay damages the weights and draws random numbers before it throws.
    const after r = run_with([&f](regression& x) -> signals {
      {
        torch::NoGradGuard ng;
        x.net->parameters()[0].fill_(7.0f);
      }
      (void)torch::randn({1000});
      if (!f.standard) throw 42;
      throw std::runtime_error(f.message);
    });
    REQUIRE(r.rb);
    CHECK(r.rb->attribution == attribution::replay_failed);
    CHECK(r.rb->replay_error == f.kept);
    CHECK(r.rb->restored_update == reference.rb->restored_update);
    CHECK(r.rb->lr_scale == 0.5);
    CHECK(same(r.weights, reference.weights));      // restored again after the replay
    CHECK(r.lr == reference.lr);                    // backed off
    CHECK(r.next_draw.equal(reference.next_draw));  // the RNG as the snapshot had it
    const std::string j = rollback_json(r.events);
    CHECK(j.find("\"attribution\":\"replay failed\"") != std::string::npos);
    CHECK(j.find("\"replay_error\":\"" + f.kept + "\"") != std::string::npos);
  }
}

TEST_CASE("a divergence kind rolls back whatever its severity") {
  // learning_stall and loss_divergence by default; here a kind of the test's
  // own, reported once at check 90, stands for them
  static const anomaly_kind diverging = register_anomaly_kind("recovery_test_diverging", severity::warning);
  struct diverge_at_90 {
    using category = cat::critical;
    std::uint64_t n = 0;
    void observe(const signals&, anomaly_report& r) {
      if (++n == 90) r.add(diverging, "the test's divergence", {.value = 2.0, .threshold = 1.0});
    }
  };
  using tagged = session<monitor<diverge_at_90>>;
  regression m;
  tagged tel(session_options{}, *m.net);
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.rollback_on = {diverging};
  recovery guard(tel, *m.net, *m.opt, ro);
  std::optional<rollback_report> rb;
  for (std::uint64_t step = 1; step <= 95; ++step) {
    const recovery_result& r = guard.step(step * 10, at_step(m.backward(step), step));
    if (r.rollback) rb = r.rollback;
    if (r.resp.act == action::proceed) m.opt->step();
  }
  REQUIRE(rb);
  CHECK(rb->cause == rollback_cause::divergence);
  CHECK(rb->reason == "recovery_test_diverging (the test's divergence)");
  CHECK(rb->restored_update == 81);
  CHECK(rb->window_first == 800);
  CHECK(rb->window_last == 900);
}

TEST_CASE("recovery options and data positions: bad input is refused and changes nothing") {
  regression m;
  supervised_session<> tel(session_options{}, *m.net);
  auto refused = [&](recovery_options o, const char* name) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(recovery(tel, *m.net, *m.opt, o), doctest::Contains(name), std::invalid_argument);
  };
  recovery_options o;
  o.snapshot_every = 0;
  refused(o, "snapshot_every");
  o = {};
  o.keep = 0;
  refused(o, "keep");
  o = {};
  o.lr_factor = 0.0;
  refused(o, "lr_factor");
  o.lr_factor = 1.5;
  refused(o, "lr_factor");
  o.lr_factor = std::nan("");
  refused(o, "lr_factor");
  o = {};
  o.max_rollbacks = 0;
  refused(o, "max_rollbacks");
  o = {};
  o.skips_before_rollback = 5;  // = the policy's stop (5): the stop would come first
  refused(o, "skips_before_rollback");
  o.skips_before_rollback = 4;  // just below: accepted
  CHECK_NOTHROW(recovery(tel, *m.net, *m.opt, o));
  o.lr_factor = 1.0;  // at the bound: accepted
  CHECK_NOTHROW(recovery(tel, *m.net, *m.opt, o));

  recovery guard(tel, *m.net, *m.opt);
  guard.step(10, at_step(m.backward(1), 1));
  const std::uint64_t checks = tel.checks();
  CHECK_THROWS_WITH_AS(guard.step(9, at_step(m.backward(2), 2)), doctest::Contains("data_position"),
                       std::invalid_argument);
  CHECK(tel.checks() == checks);  // nothing checked
  signals bad = at_step(1.0, 2);
  bad.performance = 1.0;
  bad.progress.reset();  // a performance needs the progress
  CHECK_THROWS_AS(guard.step(11, bad), std::invalid_argument);
  CHECK(tel.checks() == checks);
  CHECK_NOTHROW(guard.step(10, at_step(m.backward(2), 2)));  // the same position again is allowed
}

TEST_CASE("resume: a run saved at step k and resumed gives the uninterrupted run's weights and events, bitwise") {
  recovery_options ro;
  ro.snapshot_every = 20;
  auto nans = [](std::uint64_t step) { return step >= 101 && step <= 103 ? fault{.nan = true} : fault{}; };
  auto drive = [&](regression& m, supervised_session<>& tel, recovery<supervised_session<>>& guard,
                   std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t step = from; step <= to; ++step) {
      const fault x = nans(step);
      const double loss = m.backward(step, x.scale, x.nan);
      const recovery_result& r = guard.step(step, at_step(loss, step));
      if (r.resp.act == action::proceed) m.opt->step();
      if (step % 50 == 0) tel.end_epoch(-loss);
    }
  };
  // uninterrupted
  regression a;
  auto sink_a = std::make_shared<memory_sink>();
  std::vector<at::Tensor> weights_a;
  {
    supervised_session<> tel(session_options{}, *a.net, {sink_a});
    recovery guard(tel, *a.net, *a.opt, ro);
    drive(a, tel, guard, 1, 160);
    tel.close();
    weights_a = weights_of(*a.net);
  }
  for (const std::uint64_t k : {std::uint64_t{60}, std::uint64_t{102}}) {  // before, and inside the trouble
    CAPTURE(k);
    std::ostringstream saved;
    auto sink_b = std::make_shared<memory_sink>();
    {
      regression b;
      supervised_session<> tel(session_options{}, *b.net, {sink_b});
      recovery guard(tel, *b.net, *b.opt, ro);
      drive(b, tel, guard, 1, k);
      torch::serialize::OutputArchive ar, model, optimizer;  // the trainer's checkpoint, with simic's state
      b.net->save(model);
      b.opt->save(optimizer);
      ar.write("model", model);
      ar.write("optimizer", optimizer);
      save_session(ar, tel);
      guard.save(ar);
      ar.save_to(saved);
      tel.close();
    }
    auto sink_c = std::make_shared<memory_sink>();
    std::vector<at::Tensor> weights_c;
    {
      regression c;  // a new process: fresh model, optimizer, session and recovery
      torch::manual_seed(999);  // the RNG is not the saved one until loaded
      supervised_session<> tel(session_options{}, *c.net, {sink_c});
      recovery guard(tel, *c.net, *c.opt, ro);
      torch::serialize::InputArchive ar, model, optimizer;
      std::istringstream in(saved.str());
      ar.load_from(in);
      ar.read("model", model);
      ar.read("optimizer", optimizer);
      c.net->load(model);
      c.opt->load(optimizer);
      load_session(ar, tel);
      guard.load(ar);
      drive(c, tel, guard, k + 1, 160);
      tel.close();
      weights_c = weights_of(*c.net);
    }
    CHECK(same(weights_c, weights_a));
    std::vector<std::string> joined = timeless(sink_b->events());
    const auto rest = timeless(sink_c->events());
    joined.insert(joined.end(), rest.begin(), rest.end());
    CHECK(joined == timeless(sink_a->events()));
  }
}

TEST_CASE("snapshots on disk: the last K files; after a restart the newest valid one, past a damaged newer one") {
  const auto dir = simic::test::fresh_dir("recovery", "files");
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.keep = 2;
  ro.directory = dir;
  std::vector<at::Tensor> at_41;
  {
    regression m;
    supervised_session<> tel(session_options{}, *m.net);
    recovery guard(tel, *m.net, *m.opt, ro);
    for (std::uint64_t step = 1; step <= 70; ++step) {
      const double loss = m.backward(step);
      if (step == 41) at_41 = weights_of(*m.net);
      guard.step(step, at_step(loss, step));
      m.opt->step();
    }
    CHECK(guard.file_failures() == 0);
  }
  // snapshots at 1, 21, 41, 61: the last two files kept
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"snapshot-000000000041.pt", "snapshot-000000000061.pt"});
  // damage the newest: cut it in half (a flipped byte may fall in padding no check covers)
  const auto newest = dir / "snapshot-000000000061.pt";
  std::filesystem::resize_file(newest, std::filesystem::file_size(newest) / 2);
  regression fresh;  // a new process
  auto sink = std::make_shared<memory_sink>();
  supervised_session<> tel(session_options{}, *fresh.net, {sink});
  recovery guard(tel, *fresh.net, *fresh.opt, ro);
  const auto rep = guard.restore_from_files();
  REQUIRE(rep);
  CHECK(rep->cause == rollback_cause::restart);
  CHECK(rep->restored_update == 41);
  CHECK(rep->window_first == 40);
  CHECK(tel.update() == 41);  // the session's counters restored with the rest
  CHECK(same(weights_of(*fresh.net), at_41));
  tel.close();  // every event delivered (the hub writes on its own thread)
  const auto ev = payloads<rollback_event>(sink->events());
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].snapshot_file == (dir / "snapshot-000000000041.pt").string());
  CHECK(ev[0].skipped_files.find("snapshot-000000000061.pt") != std::string::npos);
  // no valid file at all: nothing restored
  std::filesystem::remove(dir / "snapshot-000000000041.pt");
  regression other;
  supervised_session<> tel2(session_options{}, *other.net);
  recovery guard2(tel2, *other.net, *other.opt, ro);
  const auto before = weights_of(*other.net);
  CHECK_FALSE(guard2.restore_from_files());
  CHECK(same(weights_of(*other.net), before));
  CHECK(tel2.update() == 0);
}

TEST_CASE("snapshot files that cannot be written: each failure counted in the snapshot event, training goes on") {
  // Every write fails as on a full disk: each snapshot's tmp name is taken by
  // a folder (a forked child with a file size limit would hang in LibTorch
  // 2.x's thread pool, so no fork here; tests/recovery/snapshot_files_test.cpp
  // fills a disk for the files alone).
  const auto dir = simic::test::fresh_dir("recovery", "full");
  for (const char* update : {"000000000001", "000000000021", "000000000041"})
    std::filesystem::create_directories(dir / (std::string("snapshot-") + update + ".pt.tmp"));
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.directory = dir;
  regression m;
  auto sink = std::make_shared<memory_sink>();
  supervised_session<> tel(session_options{}, *m.net, {sink});
  recovery guard(tel, *m.net, *m.opt, ro);
  for (std::uint64_t step = 1; step <= 45; ++step) {
    guard.step(step, at_step(m.backward(step), step));
    m.opt->step();
  }
  tel.close();
  const auto snaps = payloads<snapshot_event>(sink->events());
  REQUIRE(snaps.size() == 3);  // 1, 21, 41
  for (std::size_t i = 0; i < snaps.size(); ++i) {
    CAPTURE(i);
    CHECK(snaps[i].file_failures == i + 1);
    CHECK(snaps[i].file.empty());
  }
  CHECK(guard.snapshots() == 2);  // K = 2 in memory all the same
  CHECK(guard.file_failures() == 3);
  for (const auto& e : std::filesystem::directory_iterator(dir)) CHECK(e.is_directory());  // no file written
}

TEST_CASE("a rollback past newer snapshots drops their files too, so that a restart never prefers them") {
  const auto dir = simic::test::fresh_dir("recovery", "rolled");
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.keep = 3;
  ro.margin = 21;  // restores 61 of 41, 61, 81 (onset 101)
  ro.directory = dir;
  auto nans = [](std::uint64_t step) { return step >= 101 && step <= 103 ? fault{.nan = true} : fault{}; };
  const auto r = run(103, &ro, nans);
  REQUIRE(r.rollbacks.size() == 1);
  CHECK(r.rollbacks[0].restored_update == 61);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"snapshot-000000000041.pt", "snapshot-000000000061.pt"});
}

// ---- with a deferred check (session_options::check, docs/recovery.md) ----

namespace {

// A run whose verdicts come one step late: the trainer takes each step's
// update (through an update guard when `guarded`) unless the verdict it
// got says otherwise; a rollback resets the guard.
struct deferred_result {
  std::vector<at::Tensor> weights;
  std::vector<event> events;
  std::vector<rollback_report> rollbacks;
  std::vector<std::vector<at::Tensor>> restored;  // the weights right after each rollback
  std::vector<std::uint64_t> applied;
};
template <class Fault>
deferred_result run_deferred(std::uint64_t steps, const recovery_options& ro, Fault f, bool guarded) {
  regression m;
  auto sink = std::make_shared<memory_sink>();
  session_options so;
  so.check = check_timing::deferred;
  deferred_result out;
  {
    supervised_session<> tel(so, *m.net, {sink});
    recovery rec(tel, *m.net, *m.opt, ro);
    update_guard guard(*m.opt);
    for (std::uint64_t step = 1; step <= steps; ++step) {
      const fault x = f(step);
      const double loss = m.backward(step, x.scale, x.nan);
      const recovery_result& r = rec.step(step, at_step(loss, step));
      if (r.rollback) {
        out.rollbacks.push_back(*r.rollback);
        out.restored.push_back(weights_of(*m.net));
        guard.reset();  // the optimizer's state is the snapshot's now
        continue;       // this step's gradients were taken at the weights replaced
      }
      if (r.resp.act == action::stop) break;
      // a late skip: the guard takes the update back (then this step's gradients are stale), or it stays
      if (r.resp.act == action::skip_step && guarded && guard.undo(r.judged)) continue;
      if (guarded)
        guard.step(tel);
      else
        m.opt->step();
      out.applied.push_back(step);
    }
    rec.flush();
    tel.close();
  }
  out.weights = weights_of(*m.net);
  out.events = sink->events();
  return out;
}

// The weights after the first `n` steps of the healthy run.
std::vector<at::Tensor> healthy_weights_after(std::uint64_t n) {
  regression ref;
  for (std::uint64_t step = 1; step <= n; ++step) {
    ref.backward(step);
    ref.opt->step();
  }
  return weights_of(*ref.net);
}

}  // namespace

TEST_CASE("deferred check: a snapshot is kept once the check of its weights is healthy; healthy runs unchanged") {
  recovery_options ro;
  ro.snapshot_every = 25;
  ro.keep = 2;
  const auto with = run_deferred(200, ro, healthy, false);
  CHECK(with.rollbacks.empty());
  CHECK(same(with.weights, run(200, nullptr, healthy).weights));  // snapshots read, never change training
  const auto snaps = payloads<snapshot_event>(with.events);
  std::vector<std::uint64_t> positions;
  for (const auto& s : snaps) positions.push_back(s.data_position);
  // taken at the call after a healthy verdict, of the weights after that step's update: one step later than
  // a sync check's (0, 25, 50, ...), each kept at the next healthy check
  CHECK(positions == std::vector<std::uint64_t>{1, 26, 51, 76, 101, 126, 151, 176});
  CHECK(snaps.back().held == 2);
}

TEST_CASE("deferred check: a snapshot whose weights' check is unhealthy is dropped, not kept") {
  // step 2's gradients are NaN: its update is kept out by the guard, and its check (unhealthy) judges the
  // weights the candidate taken at step 2's call holds, so that candidate is dropped
  recovery_options ro;
  ro.snapshot_every = 25;
  auto nan_at_2 = [](std::uint64_t step) { return step == 2 ? fault{.nan = true} : fault{}; };
  const auto r = run_deferred(40, ro, nan_at_2, true);
  const auto snaps = payloads<snapshot_event>(r.events);
  REQUIRE_FALSE(snaps.empty());
  CHECK(snaps[0].data_position == 3);  // the next candidate: taken at step 4's call, after a healthy step 3
  CHECK(r.rollbacks.empty());
  CHECK(std::count(r.applied.begin(), r.applied.end(), 2) == 1);  // taken through the guard, which kept it out
}

TEST_CASE("deferred check: non-finite weights from a late verdict roll back to a confirmed snapshot") {
  // without a guard the NaN step's update reaches the weights before its verdict does
  recovery_options ro;
  ro.snapshot_every = 20;
  ro.keep = 3;
  auto nan_at_101 = [](std::uint64_t step) { return step == 101 ? fault{.nan = true} : fault{}; };
  const auto r = run_deferred(130, ro, nan_at_101, false);
  REQUIRE(r.rollbacks.size() == 1);
  const rollback_report& rb = r.rollbacks[0];
  CHECK(rb.cause == rollback_cause::nonfinite_weights);
  CHECK(rb.onset_update == 101);
  CHECK(rb.restored_update <= 101);
  // the restored weights are the healthy run's before the snapshot's update
  CHECK(same(r.restored[0], healthy_weights_after(rb.restored_update - 1)));
  CHECK(rb.window_first == rb.restored_update - 1);
  CHECK(rb.window_last == 102);
  // step 102's check was dropped with its step (taken on the weights replaced): no events of update 102's check
  int of_102 = 0;
  for (const auto& e : r.events) of_102 += e.update() == 102 && (e.is<update_metrics>() || e.is<gradient_health_event>());
  CHECK(of_102 == 0);
  CHECK(std::count(r.applied.begin(), r.applied.end(), 102) == 0);
  for (const auto& w : r.weights) CHECK(at::isfinite(w).all().item<bool>());
}

TEST_CASE("deferred check with the update guard: a NaN step never reaches the weights, so nothing rolls back") {
  recovery_options ro;
  ro.snapshot_every = 20;
  auto nan_at_101 = [](std::uint64_t step) { return step == 101 ? fault{.nan = true} : fault{}; };
  const auto r = run_deferred(130, ro, nan_at_101, true);
  CHECK(r.rollbacks.empty());
  // the reference: the healthy run without step 101's update
  regression ref;
  for (std::uint64_t step = 1; step <= 130; ++step) {
    ref.backward(step);
    if (step != 101) ref.opt->step();
  }
  CHECK(same(r.weights, weights_of(*ref.net)));
}
