// A deferred check (session_options::check = check_timing::deferred) against
// the sync check on the same signals: the verdict of step k arrives with
// step k + 1's call (or flush) and is the sync verdict of step k, anomaly
// for anomaly; the events are the same, in the same order, with the same
// stamps; the DEBUG diagnostics follow the level one step later (the one
// stated difference). Also: the last step's flush, a step without
// gradients, reads not due, epoch ends between steps, the caller's spans,
// an LSTM state fed between steps, bad input, saving, and the structural
// check that a deferred step dispatches no operation that reads a value to
// the host. The sync path is the reference: its own tests
// (session_test.cpp) check it against float64 figures.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "simic/emit/json.hpp"
#include "simic/emit/sink_memory.hpp"
#include "simic/presets/ppo_session.hpp"
#include "simic/presets/supervised_session.hpp"
#include "simic/session_state.hpp"
#include "support/host_reads.hpp"
#include "support/written_event.hpp"

using namespace simic;

namespace deferred_check_test {

// The supervised monitor with the two per-step sensors: no diagnostics.
using quiet_t = session<supervised_monitor, gradient_health_sensor<>, parameter_update_sensor>;

constexpr std::uint64_t planned = 40;
constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_value = std::numeric_limits<double>::infinity();

// Three parameters whose values and gradients a step sets by hand, the same
// in both runs (float64: the update ratio takes the ATen path, as on a device).
struct params {
  std::vector<std::pair<std::string, at::Tensor>> named;
  explicit params(at::ScalarType dtype = at::kDouble) {
    for (const char* n : {"a.w", "a.b", "b.w"})
      named.emplace_back(n, at::zeros({n[2] == 'b' ? 3 : 6}, at::TensorOptions().dtype(dtype)).set_requires_grad(true));
  }
  // Step k's weights and gradients; `fault` spoils the gradients.
  void set(std::uint64_t k, const std::string& fault) {
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < named.size(); ++i) {
      at::Tensor& p = named[i].second;
      const auto gen = at::detail::createCPUGenerator(1000 * k + i);
      p.copy_(at::normal(1.0, 0.5, p.sizes(), gen).to(p.scalar_type()) * (1.0 + 0.01 * static_cast<double>(k)));
      if (fault == "no gradients") {
        p.mutable_grad() = at::Tensor();
        continue;
      }
      p.mutable_grad() = (at::normal(0.0, 0.1, p.sizes(), gen)).to(p.scalar_type());
      if (i == 0 && fault == "nan") p.mutable_grad()[1] = nan_value;
      if (i == 2 && fault == "inf") p.mutable_grad()[0] = -inf_value;
    }
  }
};

struct step_plan {
  std::string fault;        // "", "nan", "inf", "loss", "no gradients"
  bool end_epoch = false;   // end_epoch after the step
};

std::vector<step_plan> script() {
  std::vector<step_plan> s(32);
  s[11].fault = "nan";
  s[14].fault = "inf";
  s[17].fault = "loss";
  s[19].fault = "no gradients";
  for (std::size_t k = 23; k <= 27; ++k) s[k].fault = "nan";  // five in a row: the fifth stops
  s[9].end_epoch = s[19].end_epoch = true;
  return s;
}

signals signals_of(std::uint64_t k, const std::string& fault) {
  signals s;
  s.loss = (fault == "loss" ? 1e6 : 1.0) * (1.0 / (1.0 + 0.05 * static_cast<double>(k)));
  s.progress = training_progress(k, planned);
  return s;
}

// A verdict with its judged step, as plain values (the results are references into the sessions).
struct verdict {
  std::optional<judged_step> judged;
  action act = action::proceed;
  std::string reason;
  std::vector<std::string> anomalies;  // kind, severity, value, threshold, detail
  bool escalation_started = false, escalation_ended = false;
};
verdict verdict_of(const step_result& r) {
  verdict v{r.judged, r.resp.act, r.resp.reason, {}, r.escalation_started, r.escalation_ended};
  for (const anomaly& a : r.report)
    v.anomalies.push_back(std::string(to_string(a.kind)) + "/" + std::string(to_string(a.severity)) + "/" +
                          std::to_string(a.value) + "/" + std::to_string(a.threshold) + "/" + a.detail);
  return v;
}

using simic::test::timeless;  // support/written_event.hpp

bool diagnostic(const event& e) { return e.name() == "layer_gradients" || e.name() == "nan_inf_scan"; }
std::vector<event> without_diagnostics(const std::vector<event>& es) {
  std::vector<event> out;
  for (const auto& e : es)
    if (!diagnostic(e)) out.push_back(e);
  return out;
}

// A run of the script; the results in call order, the level after each call.
template <class Tel>
struct run {
  std::shared_ptr<memory_sink> sink = std::make_shared<memory_sink>();
  std::vector<verdict> verdicts;  // one per call (and the flush's, last, when deferred)
  std::vector<level> levels;      // the effective level after each call
  params p;

  run(session_options o, const std::vector<step_plan>& plan, at::ScalarType dtype = at::kDouble) : p(dtype) {
    Tel tel(o, p.named, {sink});
    for (std::uint64_t k = 1; k <= plan.size(); ++k) {
      const step_plan& x = plan[k - 1];
      p.set(k, x.fault);
      verdicts.push_back(verdict_of(tel.step(signals_of(k, x.fault))));
      levels.push_back(tel.level());
      if (x.end_epoch) tel.end_epoch(0.5);
    }
    if (o.check == check_timing::deferred) verdicts.push_back(verdict_of(tel.flush()));
    tel.close();
  }
};

session_options with(check_timing c, level configured = level::normal) {
  session_options o;
  o.check = c;
  o.config.configured = configured;
  return o;
}

}  // namespace deferred_check_test

using namespace deferred_check_test;

TEST_CASE("deferred check: step k's verdict arrives at k + 1 with the sync check's anomalies and response") {
  const auto plan = script();
  const run<quiet_t> sync(with(check_timing::sync), plan);
  const run<quiet_t> late(with(check_timing::deferred), plan);
  REQUIRE(sync.verdicts.size() == plan.size());
  REQUIRE(late.verdicts.size() == plan.size() + 1);
  CHECK_FALSE(late.verdicts[0].judged);  // the first call judges nothing: proceed, no anomaly
  CHECK(late.verdicts[0].act == action::proceed);
  CHECK(late.verdicts[0].anomalies.empty());
  std::set<std::string> kinds;
  for (std::size_t k = 1; k <= plan.size(); ++k) {
    CAPTURE(k);
    const verdict& s = sync.verdicts[k - 1];
    const verdict& d = late.verdicts[k];  // the call after step k (the flush after the last)
    REQUIRE(s.judged);
    CHECK(s.judged->check == k);  // sync: this step
    REQUIRE(d.judged);
    CHECK(*d.judged == *s.judged);  // deferred: the previous step, by number and update
    CHECK(d.act == s.act);
    CHECK(d.reason == s.reason);
    CHECK(d.anomalies == s.anomalies);
    CHECK(d.escalation_started == s.escalation_started);
    CHECK(d.escalation_ended == s.escalation_ended);
    for (const auto& a : s.anomalies) kinds.insert(a.substr(0, a.find('/')));
  }
  // the script's faults were seen: non-finite gradients, the loss spike, the skips and the stop
  CHECK(kinds.count("numerical_instability") == 1);
  CHECK(kinds.count("loss_extreme") == 1);
  CHECK(sync.verdicts[11].act == action::skip_step);
  CHECK(sync.verdicts[14].act == action::skip_step);
  CHECK(sync.verdicts[17].act == action::skip_step);
  CHECK(sync.verdicts[19].act == action::proceed);  // no gradients: nothing to judge them by
  CHECK(sync.verdicts[27].act == action::stop);      // the fifth non-finite step in a row
  CHECK(late.verdicts[28].act == action::stop);      // ... one call later
  // the events: the same, in the same order, with the same stamps
  CHECK(timeless(sync.sink->events()) == timeless(late.sink->events()));
  CHECK(sync.sink->size() > plan.size() * 2);
}

TEST_CASE("deferred check: reads not due, float32 weights (the fused CPU pass), steps per update") {
  const auto plan = script();
  SUBCASE("gradients every 3 updates") {
    auto s = with(check_timing::sync), d = with(check_timing::deferred);
    // the options of the gradient sensor go through the session's constructor: a session type of its own
    struct every3 : quiet_t {
      every3(const session_options& o, const std::vector<std::pair<std::string, at::Tensor>>& p,
             const sink_list& sinks)
          : quiet_t(o, p, sinks, gradient_health_options{.every = 3}) {}
    };
    const run<every3> sync(s, plan), late(d, plan);
    CHECK(timeless(sync.sink->events()) == timeless(late.sink->events()));
    int read = 0;
    for (const auto& e : late.sink->events()) read += e.is<gradient_health_event>();
    CHECK(read == 11);  // updates 1, 4, ..., 31
  }
  SUBCASE("float32 weights") {
    const run<quiet_t> sync(with(check_timing::sync), plan, at::kFloat), late(with(check_timing::deferred), plan, at::kFloat);
    CHECK(timeless(sync.sink->events()) == timeless(late.sink->events()));
  }
  SUBCASE("begin_update with several steps per update, performance and rollout figures between steps") {
    std::vector<std::vector<std::string>> streams;
    for (const auto c : {check_timing::sync, check_timing::deferred}) {
      auto sink = std::make_shared<memory_sink>();
      params p;
      ppo_session<> tel(with(c), p.named, {sink});
      std::uint64_t k = 0;
      for (std::uint64_t u = 1; u <= 6; ++u) {
        tel.begin_update();
        tel.end_rollout({.reward_rate = 0.1 * static_cast<double>(u), .explained_variance = 0.5});
        for (int m = 0; m < 3; ++m) {
          ++k;
          p.set(k, k == 8 ? "nan" : "");
          signals s = signals_of(k, "");
          s.approx_kl = 0.01;
          s.ratio_max = 1.1;
          s.ratio_min = 0.9;
          tel.step(s, update_metrics{.learning_rate = 1e-3});
        }
        tel.end_epoch(10.0 * static_cast<double>(u));
      }
      tel.close();  // the last step's check, without flush()
      streams.push_back(timeless(without_diagnostics(sink->events())));
    }
    CHECK(streams[0] == streams[1]);  // the NaN step escalates: the diagnostics differ as the next case says
  }
}

TEST_CASE("deferred check: the DEBUG diagnostics read the step's own tensors at its call, one level behind") {
  const auto plan = script();
  using full_t = supervised_session<>;
  auto diagnostics = [](const std::vector<event>& es) {
    std::map<std::string, std::vector<std::string>> by_name;
    std::set<std::uint64_t> steps;
    for (const auto& e : es) {
      if (!diagnostic(e)) continue;
      by_name[std::string(e.name())].push_back(timeless({e})[0]);
      steps.insert(e.update());
    }
    return std::pair{by_name, steps};
  };
  auto others = [](const std::vector<event>& es) { return timeless(without_diagnostics(es)); };
  SUBCASE("configured DEBUG: the same diagnostics") {
    const run<full_t> sync(with(check_timing::sync, level::debug), plan);
    const run<full_t> late(with(check_timing::deferred, level::debug), plan);
    CHECK(others(sync.sink->events()) == others(late.sink->events()));
    CHECK(diagnostics(sync.sink->events()).first == diagnostics(late.sink->events()).first);
    CHECK(diagnostics(late.sink->events()).second.size() == plan.size());
  }
  SUBCASE("escalated: from the step after the check that escalates to the step after the one that ends it") {
    const run<full_t> sync(with(check_timing::sync), plan);
    const run<full_t> late(with(check_timing::deferred), plan);
    CHECK(others(sync.sink->events()) == others(late.sink->events()));
    std::set<std::uint64_t> sync_steps, late_steps;
    for (std::uint64_t k = 1; k <= plan.size(); ++k) {
      if (sync.levels[k - 1] == level::debug) sync_steps.insert(k);           // the level after step k's check
      if (k > 1 && sync.levels[k - 2] == level::debug) late_steps.insert(k);  // the level at step k's call
    }
    REQUIRE_FALSE(sync_steps.empty());
    CHECK(diagnostics(sync.sink->events()).second == sync_steps);
    CHECK(diagnostics(late.sink->events()).second == late_steps);
    // where both read, they read the same tensors
    const auto a = diagnostics(sync.sink->events()).first, b = diagnostics(late.sink->events()).first;
    std::set<std::string> common_a, common_b;
    for (const auto& [name, v] : a)
      for (const auto& j : v)
        if (late_steps.count(nlohmann::json::parse(j)["update"].get<std::uint64_t>())) common_a.insert(j);
    for (const auto& [name, v] : b)
      for (const auto& j : v)
        if (sync_steps.count(nlohmann::json::parse(j)["update"].get<std::uint64_t>())) common_b.insert(j);
    CHECK(common_a == common_b);
    CHECK_FALSE(common_a.empty());
  }
}

TEST_CASE("deferred check: flush judges the last step; pending, close, a second flush") {
  params p;
  auto sink = std::make_shared<memory_sink>();
  quiet_t tel(with(check_timing::deferred), p.named, {sink});
  CHECK_FALSE(tel.pending());
  CHECK_FALSE(tel.flush().judged);  // nothing pending: nothing judged
  p.set(1, "");
  CHECK_FALSE(tel.step(signals_of(1, "")).judged);
  REQUIRE(tel.pending());
  CHECK(tel.pending()->check == 1);
  CHECK(tel.checks() == 0);
  CHECK(tel.steps() == 1);
  CHECK(sink->size() == 0);  // nothing written before the check
  p.set(2, "nan");
  CHECK(tel.step(signals_of(2, "nan")).judged->check == 1);
  const step_result& last = tel.flush();
  REQUIRE(last.judged);
  CHECK(last.judged->check == 2);
  CHECK(last.judged->update == 2);
  CHECK(last.resp.act == action::skip_step);
  CHECK(last.report.has(anomaly_kind::numerical_instability));
  CHECK(tel.last_signals().gradients->nan_count == 1);
  CHECK_FALSE(tel.pending());
  CHECK(tel.checks() == 2);
  CHECK_FALSE(tel.flush().judged);
  // close() checks a step still pending (its events written) without returning the verdict
  p.set(3, "");
  tel.step(signals_of(3, ""));
  const auto before = sink->size();
  tel.close();
  CHECK(sink->size() > before);
  CHECK(tel.checks() == 3);
  CHECK(sink->events().back().update() == 3);
}

TEST_CASE("deferred check: the caller's spans and an LSTM state fed between steps") {
  std::vector<std::vector<std::string>> streams;
  for (const auto c : {check_timing::sync, check_timing::deferred}) {
    auto sink = std::make_shared<memory_sink>();
    params p;
    ppo_session<> tel(with(c), p.named, {sink});
    for (std::uint64_t k = 1; k <= 6; ++k) {
      tel.feed(lstm_state{at::full({2, 4}, 0.5 * static_cast<double>(k)), at::full({2, 4}, 0.25 * static_cast<double>(k))});
      p.set(k, "");
      {
        std::string name = "head" + std::to_string(k);  // the caller's memory: gone after the call
        std::string user = "mine";
        const head_entropy heads[] = {{name, 0.5 + 0.01 * static_cast<double>(k)}};
        const user_signal figures[] = {{user, static_cast<double>(k)}};
        signals s = signals_of(k, "");
        s.entropy = heads;
        s.user = figures;
        tel.step(s);
        name.assign(name.size(), 'x');
        user.assign(user.size(), 'y');
      }
      // the next rollout's state (healthy, larger: it will be held), fed before the deferred check of step k
      tel.feed(lstm_state{at::full({2, 4}, 3.0), at::full({2, 4}, 3.0)});
    }
    tel.close();
    streams.push_back(timeless(sink->events()));
  }
  CHECK(streams[0] == streams[1]);
  int lstm = 0;
  for (const auto& j : streams[1]) lstm += j.find("\"lstm_health\"") != std::string::npos;
  CHECK(lstm == 6);
}

TEST_CASE("deferred check: bad input throws before anything is judged; options; saving with a step pending") {
  params p;
  auto sink = std::make_shared<memory_sink>();
  quiet_t tel(with(check_timing::deferred), p.named, {sink});
  p.set(1, "");
  tel.step(signals_of(1, ""));
  signals bad;
  bad.performance = 0.5;  // without the training progress its thresholds need
  CHECK_THROWS_AS(tel.step(bad), std::invalid_argument);
  CHECK(tel.pending()->check == 1);  // still pending, not judged
  CHECK(tel.checks() == 0);
  CHECK(sink->size() == 0);
  torch::serialize::OutputArchive ar;
  CHECK_THROWS_WITH_AS(save_session(ar, tel), doctest::Contains("flush()"), std::logic_error);
  tel.flush();
  CHECK_NOTHROW(save_session(ar, tel));
  session_options o;
  o.check = static_cast<check_timing>(7);
  CHECK_THROWS_WITH_AS(quiet_t(o, p.named), doctest::Contains("check = 7 is out of range; valid: sync or deferred"),
                       std::invalid_argument);
}

TEST_CASE("deferred check: a step's call dispatches no operation that reads a value to the host") {
  // float64 weights: the update ratio takes its ATen path (the one a device takes)
  params p;
  quiet_t tel(with(check_timing::deferred), p.named, {std::make_shared<memory_sink>()});
  for (std::uint64_t k = 1; k <= 4; ++k) {
    CAPTURE(k);
    p.set(k, k == 3 ? "nan" : "");
    const simic::test::host_reads r([&] { tel.step(signals_of(k, k == 3 ? "nan" : "")); });
    CHECK(r.reads == std::vector<std::string>{});
    if (k > 1) CHECK(std::count(r.ops.begin(), r.ops.end(), "aten::copy_.") >= 2);  // the host copies started
  }
  // a sync check reads to the host, and this test sees it
  quiet_t sync(with(check_timing::sync), p.named);
  const simic::test::host_reads r([&] { sync.step(signals_of(5, "")); });
  CHECK_FALSE(r.reads.empty());
}
