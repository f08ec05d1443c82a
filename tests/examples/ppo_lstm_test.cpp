// In-process runs of the PPO+LSTM trainer (examples/ppo_lstm): each injected
// fault is detected, escalates telemetry to DEBUG, produces the DEBUG
// diagnostics, and the level returns afterwards; a healthy run stays clean;
// every detector in the trainer's monitor sees its signal; the monitor's
// skip/stop responses are obeyed.
#include "support/torch_doctest.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "evaluate.hpp"
#include "faults.hpp"
#include "options.hpp"
#include "ppo.hpp"

using namespace ppo_lstm;
using simic::anomaly_kind;
using simic::level;

namespace {

constexpr std::uint64_t run_updates = 44;

// The first updates of a 100-update schedule, with a smaller batch. Its early
// training (the first 10 %, which simic's shift models and gradient bounds do
// not see) ends at update 10, and their 24-check warm-up (4 checks an update)
// at update 15: the faults from update 16 on are judged.
run_options small_run(std::uint64_t updates = run_updates) {
  run_options o;
  o.updates = updates;
  o.planned_updates = 100;
  o.envs = 8;
  o.rollout = 64;
  o.seq_len = 16;
  o.ppo_epochs = 2;
  o.minibatches = 2;
  o.epoch_updates = 1;
  o.escalation_epochs = 5;
  o.progress_lines = false;
  return o;
}

const run_summary& healthy_run() {
  static const run_summary s = run(small_run());
  return s;
}

bool has_kind_in(const run_summary& s, const std::vector<anomaly_kind>& kinds, std::uint64_t first,
                 std::uint64_t last) {
  for (const auto& a : s.anomalies)
    if (a.update >= first && a.update <= last && std::find(kinds.begin(), kinds.end(), a.kind) != kinds.end())
      return true;
  return false;
}

level level_after(const run_summary& s, std::uint64_t update) { return s.updates.at(update - 1).level; }

// With one update per epoch and an escalation of E epochs, the level after
// update u's tick is DEBUG exactly when a critical anomaly (simic's defaults
// escalate on critical ones only) was reported in updates u - (E - 2) .. u
// (the E-th tick after the last one ends it).
void check_levels_follow_anomalies(const run_summary& s, std::uint32_t escalation_epochs) {
  std::set<std::uint64_t> with_anomaly;
  for (const auto& a : s.anomalies)
    if (a.severity == simic::severity::critical) with_anomaly.insert(a.update);
  for (const auto& rec : s.updates) {
    bool recent = false;
    for (std::uint64_t v = rec.update >= escalation_epochs - 2 ? rec.update - (escalation_epochs - 2) : 1;
         v <= rec.update; ++v)
      recent = recent || with_anomaly.count(v) > 0;
    INFO("update " << rec.update);
    CHECK(rec.level == (recent ? level::debug : level::normal));
  }
}

// Each fault is injected at the first update from `from` on where the
// healthy run of the same seed, computed on this machine, reports none of the
// expected kinds in that update and the three after it (its own anomalies:
// value_collapse while the critic is young, occasional gradient_norm_drift
// and performance_degradation). reward-drop comes after the performance
// check's warm-up (10% of the 200-update schedule); lr-spike after update 16,
// where a spike that early leaves this small configuration's LSTM state
// above its bound for the rest of the run.
// Every optimizer step of an update that began at DEBUG ran each of the three
// DEBUG diagnostics; no update that began and ended at NORMAL ran any.
void check_debug_diagnostics_follow_level(const run_summary& s, int steps_per_update) {
  std::set<std::tuple<std::uint64_t, int, std::string>> ran;
  for (const auto& d : s.debug) ran.insert({d.update, d.step, d.what});
  std::size_t escalated_updates = 0;
  for (std::uint64_t u = 2; u <= s.updates_done; ++u) {
    INFO("update " << u);
    if (level_after(s, u - 1) == level::debug) {
      ++escalated_updates;
      for (int step = 0; step < steps_per_update; ++step)
        for (const char* what : {"layer_gradients", "nan_inf_scan", "ratio_diagnostic"}) {
          INFO("step " << step << " diagnostic " << what);
          CHECK(ran.count({u, step, what}) == 1);
        }
    } else if (level_after(s, u) == level::normal) {
      const auto ran_here = std::count_if(s.debug.begin(), s.debug.end(), [u](const debug_record& d) { return d.update == u; });
      CHECK(ran_here == 0);
    }
  }
  if (s.count(simic::severity::critical) > 0) CHECK(escalated_updates > 0);
}

struct fault_case {
  std::string name;
  std::vector<anomaly_kind> expected;
  std::uint64_t from = 16;
  bool slow = false;  // builds up over tens of updates: scored by bench/detection, its effect tested here
  std::uint64_t duration = 1;  // updates the fault lasts
  std::uint64_t within = 3;    // detected at most this many updates after the injection
  std::vector<anomaly_kind> at_once{};  // also reported at the injected update itself
};

const std::vector<fault_case>& fault_cases() {
  static const std::vector<fault_case> c{
      {"nan-grad", {anomaly_kind::numerical_instability}},
      {"loss-scale", {anomaly_kind::loss_extreme, anomaly_kind::gradient_exploding}},
      {"grad-explode", {anomaly_kind::gradient_exploding}},
      {"grad-vanish", {anomaly_kind::gradient_vanishing}},
      {"grad-drift", {anomaly_kind::gradient_norm_drift}},
      // the update ratio shows a learning-rate step at its first optimizer step
      {"lr-spike",
       {anomaly_kind::kl_spike, anomaly_kind::kl_extreme, anomaly_kind::ratio_explosion, anomaly_kind::ratio_collapse},
       24, false, 1, 3, {anomaly_kind::update_ratio_drift}},
      {"entropy-collapse", {anomaly_kind::entropy_collapse}},
      {"value-collapse", {anomaly_kind::value_collapse}},
      {"lstm-explode", {anomaly_kind::lstm_unhealthy}},
      // the reward rate's median of three needs two bad rollouts: found one update after
      {"reward-drop", {anomaly_kind::performance_degradation}, 20, false, 3, 1},
      // the host/module ratio falls a thousandfold: host_ratio_drift at its first check
      {"core-vanish", {anomaly_kind::host_ratio_drift}},
      {"lr-ramp", {anomaly_kind::kl_spike, anomaly_kind::performance_degradation}, 20, true},
      {"reward-decay", {anomaly_kind::performance_degradation}, 20, true},
  };
  return c;
}

}  // namespace

TEST_CASE("every fault kind has a test case, and each case names a known fault") {
  CHECK(fault_cases().size() == fault_names.size());
  for (const auto& fc : fault_cases()) CHECK_NOTHROW(parse_injection(fc.name + "@1"));
}

TEST_CASE("a healthy run learns and reports none of the hard failures") {
  const run_summary& s = healthy_run();
  CHECK(s.exit_code == exit_ok);
  CHECK(s.updates_done == run_updates);
  CHECK(s.skips.empty());
  CHECK(s.weights_finite);
  for (auto k : {anomaly_kind::numerical_instability, anomaly_kind::ratio_explosion, anomaly_kind::kl_extreme,
                 anomaly_kind::lstm_unhealthy}) {
    INFO("kind " << simic::to_string(k));
    CHECK(s.count(k) == 0);
  }
  // It learns: the rolling mean return at the end is well above a random
  // policy's (about 22 on CartPole).
  CHECK(s.mean_return > 60.0);
  CHECK(s.checks == run_updates * 4);
  CHECK(s.epochs == run_updates);
  check_levels_follow_anomalies(s, 5);
  check_debug_diagnostics_follow_level(s, 4);
}

namespace {
// An injected fault is detected within three updates. A critical anomaly
// escalates to DEBUG, runs the DEBUG diagnostics, and the level returns to
// the configured one; a warning is reported and escalates nothing.
void check_fault(std::string_view name) {
  const auto it = std::find_if(fault_cases().begin(), fault_cases().end(),
                               [&](const fault_case& c) { return c.name == name; });
  REQUIRE(it != fault_cases().end());
  const fault_case& fc = *it;
  std::uint64_t inject_at = fc.from;
  while (inject_at < fc.from + 12 && has_kind_in(healthy_run(), fc.expected, inject_at, inject_at + 3)) ++inject_at;
  INFO("injected at update " << inject_at);
  run_options o = small_run();
  o.injections.push_back(parse_injection(fc.name + "@" + std::to_string(inject_at) + "-" +
                                         std::to_string(inject_at + fc.duration - 1)));
  const run_summary s = run(o);
  INFO("fault " << fc.name);
  // Reference: the same seed without the fault shows no such anomaly then.
  CHECK_FALSE(has_kind_in(healthy_run(), fc.expected, inject_at, inject_at + 3));
  // Detected at the injected update or within `within` after it.
  REQUIRE(has_kind_in(s, fc.expected, inject_at, inject_at + fc.within));
  if (!fc.at_once.empty()) {
    CHECK_FALSE(has_kind_in(healthy_run(), fc.at_once, inject_at, inject_at));
    CHECK(has_kind_in(s, fc.at_once, inject_at, inject_at));
  }
  std::uint64_t detected = 0;
  simic::severity sev{};
  for (const auto& a : s.anomalies)
    if (a.update >= inject_at &&
        std::find(fc.expected.begin(), fc.expected.end(), a.kind) != fc.expected.end()) {
      detected = a.update;
      sev = a.severity;
      break;
    }
  // The figures came with it.
  for (const auto& a : s.anomalies)
    if (a.update == detected && a.kind != anomaly_kind::numerical_instability) CHECK_FALSE(std::isnan(a.value));
  check_levels_follow_anomalies(s, o.escalation_epochs);
  CHECK(s.weights_finite);
  if (sev == simic::severity::warning) {
    // no critical anomaly of the fault's own: the level stays where the criticals put it (checked above)
    return;
  }
  // Escalated: DEBUG from the detection for the whole window of 5 epochs
  // (1 update each; the 5th tick, at the end of update detected + 4,
  // ends it unless renewed), whatever the level was before.
  for (std::uint64_t u = detected; u < detected + o.escalation_epochs - 1; ++u) {
    INFO("update " << u);
    CHECK(level_after(s, u) == level::debug);
  }
  // The DEBUG diagnostics ran during the update that detected it.
  std::set<std::string> seen;
  for (const auto& d : s.debug)
    if (d.update == detected) seen.insert(d.what);
  CHECK(seen == std::set<std::string>{"layer_gradients", "nan_inf_scan", "ratio_diagnostic"});
  // Back to the configured level once the escalation expired (later
  // anomalies may renew it; it must end within the run).
  bool returned = false;
  for (const auto& c : s.level_changes)
    if (c.update >= detected + o.escalation_epochs - 1 && c.from == level::debug && c.to == level::normal)
      returned = true;
  CHECK(returned);
  check_debug_diagnostics_follow_level(s, o.steps_per_update());
}
}  // namespace

TEST_CASE("fault nan-grad: numerical_instability (critical), DEBUG, back to NORMAL") { check_fault("nan-grad"); }
TEST_CASE("fault grad-explode: gradient_exploding (critical), DEBUG, back to NORMAL") { check_fault("grad-explode"); }
TEST_CASE("fault grad-vanish: gradient_vanishing (warning)") { check_fault("grad-vanish"); }
TEST_CASE("fault grad-drift: gradient_norm_drift (warning)") { check_fault("grad-drift"); }
TEST_CASE("fault lr-spike: KL / ratio anomalies, DEBUG, back to NORMAL") { check_fault("lr-spike"); }
TEST_CASE("fault entropy-collapse: entropy_collapse (critical), DEBUG, back to NORMAL") { check_fault("entropy-collapse"); }
TEST_CASE("fault value-collapse: value_collapse (warning)") { check_fault("value-collapse"); }
TEST_CASE("fault lstm-explode: lstm_unhealthy (critical), DEBUG, back to NORMAL") { check_fault("lstm-explode"); }
TEST_CASE("fault reward-drop: performance_degradation (warning)") { check_fault("reward-drop"); }
TEST_CASE("fault core-vanish: host_ratio_drift (warning)") { check_fault("core-vanish"); }

TEST_CASE("slow fault lr-ramp: the learning rate grows 5 % per update from the injection") {
  run_options o = small_run(8);
  o.injections.push_back(parse_injection("lr-ramp@5-"));
  o.events_path = "ppo_lstm_lr_ramp_events.jsonl";
  const run_summary s = run(o);
  std::ifstream in(o.events_path);
  std::map<std::uint64_t, double> lr;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("\"learning_rate\":");
    const auto up = line.find("\"update\":");
    if (at == std::string::npos || line.find("\"event\":\"update\"") == std::string::npos) continue;
    lr[std::stoull(line.substr(up + 9))] = std::stod(line.substr(at + 16));
  }
  std::remove(o.events_path.c_str());
  REQUIRE(lr.size() == 8);
  for (std::uint64_t u = 1; u <= 8; ++u) {
    INFO("update " << u);
    const double expect = o.lr * (u >= 5 ? std::pow(1.05, static_cast<double>(u - 4)) : 1.0);
    CHECK(lr[u] == doctest::Approx(expect).epsilon(1e-9));
  }
  CHECK(s.updates_done == 8);
}

TEST_CASE("slow fault reward-decay: the reward shrinks 1 % per update from the injection") {
  // Episodes that end in the first update saw only its rewards: their mean
  // return is exactly 0.99 times the same seed's without the fault.
  const run_summary healthy = run(small_run(1));
  run_options o = small_run(1);
  o.injections.push_back(parse_injection("reward-decay@1-"));
  const run_summary s = run(o);
  REQUIRE(healthy.episodes > 0);
  CHECK(s.episodes == healthy.episodes);
  CHECK(s.mean_return == doctest::Approx(0.99 * healthy.mean_return).epsilon(1e-9));
}

TEST_CASE("wiring: every detector of the trainer's monitor sees its signal, every sensor emits") {
  run_options o = small_run();
  // each fault for two updates; nan-grad for one (two would be 8 skips in a
  // row: a stop), reward-drop for three (a median of three figures must see
  // it) and first, while returns are steady (after lr-spike they are noise)
  std::vector<std::string_view> order(fault_names.begin(), fault_names.end());
  std::stable_partition(order.begin(), order.end(), [](std::string_view n) { return n == "reward-drop"; });
  std::uint64_t u = 20;
  for (std::string_view name : order) {
    const std::uint64_t last = name == "nan-grad" ? u : name == "reward-drop" ? u + 2 : u + 1;
    o.injections.push_back(parse_injection(std::string(name) + "@" + std::to_string(u) + "-" + std::to_string(last)));
    u += 2;
  }
  o.record_signals = true;
  // the guard skips the steps of every critical fault: no stop, so that each
  // later fault is still injected and seen
  o.max_skips = 1'000'000;
  o.events_path = "ppo_lstm_wiring_events.jsonl";
  const run_summary s = run(o);
  REQUIRE(s.signals.size() == s.checks);

  // Replay what the trainer handed the monitor through a fresh copy of each
  // detector type the monitor holds: each must report at least once. A
  // detector added to monitor_type whose signal the trainer does not fill
  // reports nothing here, and this fails.
  monitor_type::detectors_tuple fresh{};
  std::size_t detectors = 0;
  std::apply(
      [&](auto&... d) {
        auto one = [&](auto& det) {
          ++detectors;
          std::size_t reported = 0;
          for (const auto& rec : s.signals) {
            simic::anomaly_report r;
            det.observe(rec.view(), r);
            reported += r.size();
          }
          INFO("detector #" << detectors << " (category " << std::decay_t<decltype(det)>::category::name << ")");
          CHECK(reported > 0);
        };
        (one(d), ...);
      },
      fresh);
  CHECK(detectors == monitor_type::size);

  // Every sensor measured, and its event reached the hub.
  for (const char* sensor : {"gradient_health", "lstm_health", "layer_gradients", "nan_inf_scan", "ratio_diagnostic"}) {
    INFO("sensor " << sensor);
    CHECK(s.sensor_events.count(sensor) == 1);
    CHECK(s.event_counts.count(sensor) == 1);
  }
  for (const char* ev : {"update", "anomaly", "escalation_start", "escalation_end", "epoch_summary",
                         "performance_degradation"}) {
    INFO("event " << ev);
    CHECK(s.event_counts.count(ev) == 1);
  }
  // Every anomaly kind an injection targets was reported by the run itself.
  for (const auto& fc : fault_cases()) {
    if (fc.slow) continue;
    INFO("fault " << fc.name);
    CHECK(has_kind_in(s, fc.expected, 1, o.updates));
  }
  // The JSONL file holds every event emitted, closed by the hub_stats line.
  std::ifstream in(o.events_path);
  std::string line, last;
  std::uint64_t lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    last = line;
  }
  CHECK(s.events_dropped == 0);
  CHECK(s.events_failed == 0);
  CHECK(s.events_undelivered == 0);
  CHECK(s.events_lost() == 0);
  CHECK(lines == s.events_emitted + 1);
  CHECK(s.events_written == s.events_emitted);
  CHECK(last.find("\"event\":\"hub_stats\"") != std::string::npos);
  CHECK(last.find("\"written\":" + std::to_string(lines - 1)) != std::string::npos);
  std::remove(o.events_path.c_str());
}

TEST_CASE("nan-grad at one update: its steps are skipped, training goes on, weights stay finite") {
  run_options o = small_run(30);
  o.injections.push_back(parse_injection("nan-grad@24"));
  const run_summary s = run(o);
  CHECK(s.exit_code == exit_ok);
  CHECK_FALSE(s.stopped);
  CHECK(s.updates_done == 30);
  REQUIRE(s.skips.size() == static_cast<std::size_t>(o.steps_per_update()));
  for (const auto& k : s.skips) {
    CHECK(k.update == 24);
    CHECK(k.reason.find("non-finite gradients") != std::string::npos);
  }
  CHECK(s.optimizer_steps == 30 * 4 - 4);
  CHECK(s.updates.at(23).skipped_steps == 4);
  CHECK(s.weights_finite);
}

TEST_CASE("nan-grad from an update on: the run stops after the configured consecutive skips, exit code 3") {
  SUBCASE("default limit: two updates' worth of steps") {
    run_options o = small_run(30);
    o.injections.push_back(parse_injection("nan-grad@10-"));
    o.events_path = "ppo_lstm_stop_events.jsonl";
    const run_summary s = run(o);
    CHECK(s.stopped);
    CHECK(s.exit_code == exit_stopped);
    CHECK(s.skips.size() == o.effective_max_skips());
    CHECK(o.effective_max_skips() == 8);
    CHECK(s.updates_done == 11);  // updates 10 and 11 fully skipped
    CHECK(s.stop_reason.find("8 consecutive updates skipped") != std::string::npos);
    CHECK(s.weights_finite);
    // Every event was flushed before run() returned.
    std::ifstream in(o.events_path);
    std::string line, last, stop_line;
    std::uint64_t lines = 0, skip_lines = 0;
    while (std::getline(in, line)) {
      ++lines;
      last = line;
      if (line.find("\"event\":\"response\"") != std::string::npos) {
        if (line.find("\"action\":\"skip_step\"") != std::string::npos) ++skip_lines;
        if (line.find("\"action\":\"stop\"") != std::string::npos) stop_line = line;
      }
    }
    CHECK(lines == s.events_emitted + 1);
    CHECK(last.find("\"event\":\"hub_stats\"") != std::string::npos);
    // each skipped step and the stop, with its cause, are events
    CHECK(skip_lines == o.effective_max_skips() - 1);
    CHECK(stop_line.find("8 consecutive updates skipped") != std::string::npos);
    CHECK(stop_line.find("non-finite gradients") != std::string::npos);
    std::remove(o.events_path.c_str());
  }
  SUBCASE("--max-skips 3: stops at the third skipped step") {
    run_options o = small_run(30);
    o.max_skips = 3;
    o.injections.push_back(parse_injection("nan-grad@10-12"));
    const run_summary s = run(o);
    CHECK(s.exit_code == exit_stopped);
    CHECK(s.skips.size() == 3);
    CHECK(s.updates_done == 10);
    CHECK(s.optimizer_steps == 9 * 4);
  }
  SUBCASE("just below the limit the run goes on") {
    run_options o = small_run(14);
    o.max_skips = 5;
    o.injections.push_back(parse_injection("nan-grad@10"));  // 4 skips in a row, then a clean step
    const run_summary s = run(o);
    CHECK(s.exit_code == exit_ok);
    CHECK(s.skips.size() == 4);
  }
}

TEST_CASE("injection specs and options: parsed exactly, bad ones rejected with the argument named") {
  const injection a = parse_injection("lr-spike@7");
  CHECK(a.kind == fault::lr_spike);
  CHECK(a.first == 7);
  CHECK(a.last == 7);
  const injection b = parse_injection("reward-drop@3-5");
  CHECK(b.first == 3);
  CHECK(b.last == 5);
  CHECK_FALSE(b.covers(2));
  CHECK(b.covers(3));
  CHECK(b.covers(5));
  CHECK_FALSE(b.covers(6));
  CHECK(parse_injection("nan-grad@4-").last == until_end);

  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(message([] { parse_injection("nan-grads@3"); }).find("unknown fault 'nan-grads'") != std::string::npos);
  CHECK(message([] { parse_injection("nan-grad"); }).find("KIND@UPDATE") != std::string::npos);
  CHECK(message([] { parse_injection("nan-grad@0"); }).find("[1, ") != std::string::npos);
  CHECK(message([] { parse_injection("nan-grad@5-4"); }).find("last update") != std::string::npos);
  CHECK(message([] { parse_injection("nan-grad@x"); }).find("--inject update") != std::string::npos);

  CHECK(message([] { parse_command_line({"--updates", "0"}); }).find("--updates") != std::string::npos);
  CHECK(message([] { parse_command_line({"--updates", "1"}); }) == "(no error)");
  CHECK(message([] { parse_command_line({"--envs", "4097"}); }).find("--envs") != std::string::npos);
  CHECK(message([] { parse_command_line({"--envs", "4096", "--updates", "1"}); }) == "(no error)");
  CHECK(message([] { parse_command_line({"--level", "LOUD"}); }).find("OFF, MINIMAL, NORMAL, DEBUG") !=
        std::string::npos);
  CHECK(message([] { parse_command_line({"--seed"}); }).find("missing value") != std::string::npos);
  CHECK(message([] { parse_command_line({"--lr", "-1"}); }).find("--lr") != std::string::npos);
  CHECK(message([] { parse_command_line({"--frobnicate"}); }).find("unknown option") != std::string::npos);
  CHECK(message([] { parse_command_line({"--updates", "10", "--inject", "nan-grad@11"}); }).find("injection") !=
        std::string::npos);
  CHECK(message([] { parse_command_line({"--rollout", "20", "--seq-len", "16"}); }).find("rollout") !=
        std::string::npos);
  const auto ok = parse_command_line({"--updates", "12", "--envs", "3", "--seed", "9", "--level", "debug", "--inject",
                                      "grad-vanish@2", "--inject", "lstm-explode@4-6", "--events", "e.jsonl", "--tensorboard", "tb"});
  CHECK(ok.options.updates == 12);
  CHECK(ok.options.envs == 3);
  CHECK(ok.options.seed == 9);
  CHECK(ok.options.level == level::debug);
  REQUIRE(ok.options.injections.size() == 2);
  CHECK(ok.options.injections[1].kind == fault::lstm_explode);
  CHECK(ok.options.injections[1].last == 6);
  CHECK(ok.options.events_path == "e.jsonl");
  CHECK(ok.options.tensorboard_dir == "tb");
  CHECK(message([] { parse_command_line({"--tensorboard", ""}); }).find("--tensorboard: the directory is empty") !=
        std::string::npos);
  CHECK(message([] { parse_command_line({"--tensorboard"}); }).find("--tensorboard: missing value") != std::string::npos);
  CHECK(message([] { parse_command_line({"--detectors", "strict"}); }).find("valid: simic, reference") !=
        std::string::npos);
  CHECK(parse_command_line({"--detectors", "reference"}).options.detectors == detector_preset::reference);
  CHECK(parse_command_line({}).options.detectors == detector_preset::simic);
  CHECK(message([] { parse_command_line({"--evaluate", "0"}); }).find("--evaluate") != std::string::npos);
  CHECK(message([] { parse_command_line({"--evaluate", "4097"}); }).find("--evaluate") != std::string::npos);
  CHECK(parse_command_line({"--evaluate", "1"}).options.eval_episodes == 1);
  CHECK(parse_command_line({"--evaluate", "4096"}).options.eval_episodes == 4096);
  CHECK(parse_command_line({}).options.eval_episodes == 0);
  run_options bad_spike = small_run();  // 2 x 2 = 4 optimizer steps an update
  bad_spike.lr_spike_steps = -1;
  CHECK(message([&] { bad_spike.validate(); }).find("lr_spike_steps") != std::string::npos);
  bad_spike.lr_spike_steps = bad_spike.steps_per_update() + 1;
  CHECK(message([&] { bad_spike.validate(); }).find("[0, ppo_epochs * minibatches]") != std::string::npos);
  bad_spike.lr_spike_steps = bad_spike.steps_per_update();
  CHECK(message([&] { bad_spike.validate(); }) == "(no error)");
  run_options bad_eval = small_run();
  bad_eval.eval_episodes = -1;
  CHECK(message([&] { bad_eval.validate(); }).find("eval_episodes") != std::string::npos);
  bad_eval.eval_episodes = 4097;
  CHECK(message([&] { bad_eval.validate(); }).find("[0, 4096]") != std::string::npos);
  // run() validates too, before anything runs.
  run_options bad = small_run();
  bad.minibatches = 0;
  CHECK(message([&] { run(bad); }).find("minibatches") != std::string::npos);
}

TEST_CASE("--detectors reference runs the reference preset: every check, relative drift, escalation on warnings") {
  run_options o = small_run(30);
  o.detectors = detector_preset::reference;
  const run_summary ref = run(o);
  const run_summary& simic_run = healthy_run();  // the same seed with simic's defaults (44 updates)
  // The reference's relative drift bound (0.5) flags PPO's heavy-tailed minibatch norms on most updates;
  // simic's defaults flag no warning-level drift that often, and no critical anomaly at all.
  CHECK(ref.count(anomaly_kind::gradient_norm_drift) > 20);
  CHECK(simic_run.count(anomaly_kind::gradient_norm_drift) <= 2);
  CHECK(simic_run.count(simic::severity::critical) == 0);
  // any anomaly escalates in the reference preset
  std::size_t escalated = 0;
  for (const auto& u : ref.updates) escalated += u.level == level::debug;
  CHECK(escalated > 15);
  for (const auto& a : ref.anomalies) CHECK_FALSE(std::isnan(a.value));
}

// ---- greedy evaluation (evaluate.hpp) -----------------------------------------

namespace {

// A policy whose greedy action is `action` whatever it sees: zero actor
// weights, and a bias that favours the action.
lstm_policy constant_policy(int action) {
  lstm_policy m(cartpole_vec::obs_dim, cartpole_vec::actions, 8);
  torch::NoGradGuard ng;
  m->actor->weight.zero_();
  m->actor->bias.zero_();
  m->actor->bias[action] = 5.0;
  return m;
}

// The reference: the same environments stepped with the actions `choose`
// gives for their observations, each one's rewards summed until its first
// episode ends; the mean in double, and the steps the shortest and the
// longest first episode took.
struct first_episodes {
  double mean = 0.0;
  int shortest = 1 << 30, longest = 0;
};
template <class Choose>
first_episodes stepped_by_hand(int episodes, std::uint64_t seed, int max_steps, Choose choose) {
  const auto n = static_cast<std::size_t>(episodes);
  cartpole_vec env(episodes, seed, max_steps);
  std::vector<double> running(n, 0.0), first(n, -1.0);
  std::vector<std::int64_t> actions(n, 0);
  cartpole_vec::step_result r;
  first_episodes ref;
  for (int open = episodes, steps = 1; open > 0; ++steps) {
    REQUIRE(steps <= max_steps);  // every first episode ends within max_steps
    choose(env.observations(), actions);
    env.step(actions, r);
    for (std::size_t e = 0; e < n; ++e) {
      running[e] += r.reward[e];
      if (!r.done[e] || first[e] >= 0.0) continue;
      first[e] = running[e];
      ref.shortest = std::min(ref.shortest, steps);
      ref.longest = std::max(ref.longest, steps);
      --open;
    }
  }
  double sum = 0.0;
  for (double f : first) sum += f;
  ref.mean = sum / episodes;
  return ref;
}

double first_episodes_mean(int episodes, std::uint64_t seed, int max_steps, std::int64_t action) {
  return stepped_by_hand(episodes, seed, max_steps, [action](const std::vector<float>&, std::vector<std::int64_t>& a) {
           std::fill(a.begin(), a.end(), action);
         }).mean;
}

}  // namespace

TEST_CASE("greedy evaluation: a constant policy scores the mean of its first episodes, stepped by hand") {
  for (const std::int64_t action : {0, 1}) {
    CAPTURE(action);
    lstm_policy m = constant_policy(static_cast<int>(action));
    const double got = greedy_return(m, 16, evaluation_seed);
    const double want = first_episodes_mean(16, evaluation_seed, 500, action);
    CHECK(got == want);
    // A constant push drops the pole in 8 to 11 steps from any start in
    // U(-0.05, 0.05)^4 (its 16 corners simulated in float64 by hand).
    CHECK(got >= 8.0);
    CHECK(got <= 11.0);
    // Another generator, other episodes; the same one, the same score.
    CHECK(greedy_return(m, 16, evaluation_seed) == got);
    CHECK(greedy_return(m, 16, evaluation_seed + 1) == first_episodes_mean(16, evaluation_seed + 1, 500, action));
  }
}

TEST_CASE("greedy evaluation: only each environment's first episode counts, though some end twice first") {
  // Random weights with a strong actor: actions that follow the observation,
  // so episodes differ in length. The reference steps the same policy and
  // environments and sums each one's rewards until its first episode ends.
  constexpr int n = 16, hidden = 16;
  auto greedy_by_hand = [&](lstm_policy& m) {
    torch::NoGradGuard ng;
    auto h = torch::zeros({n, hidden}), c = torch::zeros({n, hidden});
    return stepped_by_hand(n, evaluation_seed, 500, [&](const std::vector<float>& obs, std::vector<std::int64_t>& a) {
      const auto out = m->step(torch::from_blob(const_cast<float*>(obs.data()), {n, 4}).clone(), h, c, torch::ones({n}));
      h = out.h;
      c = out.c;
      for (int e = 0; e < n; ++e) a[static_cast<std::size_t>(e)] = out.logits[e].argmax().item<std::int64_t>();
    });
  };
  // The case this test is for: a short episode could end twice before the
  // longest ends once. The first initialisation (by seed) that gives it.
  bool found = false;
  for (int seed = 1; seed <= 50 && !found; ++seed) {
    torch::manual_seed(seed);
    lstm_policy m(cartpole_vec::obs_dim, cartpole_vec::actions, hidden);
    {
      torch::NoGradGuard ng;
      m->actor->weight.mul_(300.0);
    }
    const first_episodes ref = greedy_by_hand(m);
    if (2 * ref.shortest >= ref.longest) continue;
    found = true;
    CAPTURE(seed);
    CHECK(greedy_return(m, n, evaluation_seed) == doctest::Approx(ref.mean).epsilon(1e-12));
  }
  CHECK(found);
}

TEST_CASE("greedy evaluation: the time limit bounds each episode (below, at and above the fall)") {
  lstm_policy m = constant_policy(1);
  // The pole does not fall within 7 steps from any start (8 at the earliest,
  // above): below the fall every episode ends at the limit.
  CHECK(greedy_return(m, 8, evaluation_seed, 1) == 1.0);
  CHECK(greedy_return(m, 8, evaluation_seed, 7) == 7.0);
  // At and above the fall the limit no longer decides alone.
  for (const int limit : {8, 11, 500})
    CHECK(greedy_return(m, 8, evaluation_seed, limit) == first_episodes_mean(8, evaluation_seed, limit, 1));
  CHECK(greedy_return(m, 8, evaluation_seed, 500) <= 11.0);
}

TEST_CASE("greedy evaluation: bad arguments are rejected, naming them") {
  lstm_policy m = constant_policy(0);
  CHECK_THROWS_WITH_AS(greedy_return(m, 0, 1), doctest::Contains("episodes"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(greedy_return(m, 4097, 1), doctest::Contains("[1, 4096]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(greedy_return(m, 1, 1, 0), doctest::Contains("max_steps"), std::invalid_argument);
  CHECK(greedy_return(m, 1, 1, 1) == 1.0);
  CHECK(greedy_return(m, 4096, 1, 1) == 1.0);
}

TEST_CASE("lr-spike: x factor on every step of its updates, or on their first lr_spike_steps only") {
  const std::vector<injection> inj{parse_injection("lr-spike@5")};
  const faults all = faults::at(inj, 5, 50.0);
  for (int step = 0; step < 8; ++step) CHECK(all.learning_rate(1e-3, step) == doctest::Approx(5e-2).epsilon(1e-15));
  const faults first3 = faults::at(inj, 5, 50.0, 3);
  CHECK(first3.learning_rate(1e-3, 0) == doctest::Approx(5e-2).epsilon(1e-15));
  CHECK(first3.learning_rate(1e-3, 2) == doctest::Approx(5e-2).epsilon(1e-15));  // the last one spiked
  CHECK(first3.learning_rate(1e-3, 3) == 1e-3);                                   // the first one not
  CHECK(first3.learning_rate(1e-3, 7) == 1e-3);
  // Outside the fault's updates nothing is spiked.
  CHECK(faults::at(inj, 4, 50.0, 3).learning_rate(1e-3, 0) == 1e-3);
  CHECK(faults::at(inj, 6, 50.0, 3).learning_rate(1e-3, 0) == 1e-3);
}
