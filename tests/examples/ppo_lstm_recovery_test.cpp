// Recovery and resume of examples/ppo_lstm (docs/trainer.md, "Recovery and
// resume"), in-process on a small configuration (8 environments x 64 steps,
// 2 x 2 minibatch steps an update, 12 updates of a 100-update schedule):
// a run checkpointed every 5 updates and resumed from update 10 against the
// uninterrupted run (weights bitwise, events but their time stamps and
// resident memory, the summary's records), with and without --recover and
// NaN gradients on both sides of the checkpoint; --recover on a healthy run
// (the same weights as without), on one update of NaN gradients (a rollback
// at its third skipped step, the learning rate halved from the next update)
// and on four (three rollbacks, then the stop); bad options.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "options.hpp"
#include "ppo.hpp"
#include "resume_support.hpp"

namespace {

namespace fs = std::filesystem;
using ppo_lstm::run_options;
using ppo_lstm::run_summary;
using namespace resume_support;

run_options small(std::uint64_t updates = 12) {
  run_options o;
  o.updates = updates;
  o.planned_updates = 100;
  o.envs = 8;
  o.rollout = 64;
  o.seq_len = 16;
  o.ppo_epochs = 2;
  o.minibatches = 2;
  o.progress_lines = false;
  o.threads = 1;
  return o;
}

run_options with_nan_grad(run_options o, std::uint64_t first, std::uint64_t last) {
  o.injections.push_back({ppo_lstm::fault::nan_grad, first, last});
  return o;
}

fs::path dir(const std::string& name) { return scratch("simic_ppo_lstm_recovery", name); }

const run_summary& healthy() {
  static const run_summary s = ppo_lstm::run(small());
  return s;
}

bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

void check_same_records(const run_summary& a, const run_summary& b) {
  CHECK(a.updates_done == b.updates_done);
  CHECK(a.episodes == b.episodes);
  CHECK(same_bits(a.mean_return, b.mean_return));
  CHECK(same_bits(a.best_mean_return, b.best_mean_return));
  CHECK(a.optimizer_steps == b.optimizer_steps);
  CHECK(a.checks == b.checks);
  CHECK(a.epochs == b.epochs);
  REQUIRE(a.updates.size() == b.updates.size());
  for (std::size_t i = 0; i < a.updates.size(); ++i) {
    INFO("update " << a.updates[i].update);
    CHECK(a.updates[i].update == b.updates[i].update);
    CHECK(same_bits(a.updates[i].mean_return, b.updates[i].mean_return));
    CHECK(same_bits(a.updates[i].grad_norm, b.updates[i].grad_norm));
    CHECK(a.updates[i].level == b.updates[i].level);
    CHECK(a.updates[i].kinds == b.updates[i].kinds);
    CHECK(a.updates[i].skipped_steps == b.updates[i].skipped_steps);
    CHECK(a.updates[i].rollback == b.updates[i].rollback);
  }
  CHECK(a.anomalies.size() == b.anomalies.size());
  CHECK(a.skips.size() == b.skips.size());
  CHECK(a.level_changes.size() == b.level_changes.size());
  CHECK(a.debug.size() == b.debug.size());
  REQUIRE(a.recovery.rollbacks.size() == b.recovery.rollbacks.size());
  for (std::size_t i = 0; i < a.recovery.rollbacks.size(); ++i) {
    CHECK(a.recovery.rollbacks[i].at == b.recovery.rollbacks[i].at);
    CHECK(a.recovery.rollbacks[i].restored_update == b.recovery.rollbacks[i].restored_update);
    CHECK(a.recovery.rollbacks[i].lr_scale == b.recovery.rollbacks[i].lr_scale);
  }
  CHECK(a.weights_checksum == b.weights_checksum);
  CHECK(a.weights_digest == b.weights_digest);
}

// `o` run whole with a checkpoint every `every` updates (the file keeps the
// last, at `k`), then resumed from it: the whole run's weights, records and,
// after the checkpoint's events, its events.
void check_resume(run_options o, std::uint64_t every, std::uint64_t k, const std::string& name) {
  const fs::path d = dir(name);
  run_options whole = o;
  whole.events_path = (d / "whole.jsonl").string();
  whole.recovery.checkpoint_every = every;
  const run_summary w = ppo_lstm::run(whole);
  REQUIRE(w.exit_code == 0);
  CHECK(w.checkpoints.written == o.updates / every);
  CHECK(w.checkpoints.last_at == k);
  CHECK(w.checkpoints.failed == 0);

  run_options again = o;
  again.events_path = (d / "resumed.jsonl").string();
  again.recovery.resume_path = whole.events_path + ".ckpt";
  const run_summary r = ppo_lstm::run(again);
  REQUIRE(r.exit_code == 0);
  CHECK(r.checkpoints.resumed_at == k);
  check_same_records(r, w);

  const std::vector<std::string> all = timeless_events(whole.events_path);
  const std::size_t before = events_through(all, k);
  CHECK(r.checkpoints.events_before == before);
  const std::vector<std::string> rest = timeless_events(again.events_path);
  REQUIRE_FALSE(rest.empty());
  CHECK(nlohmann::json::parse(rest.front()).at("update") == k + 1);
  CHECK(rest == from(all, before));
  MESSAGE(name << ": " << all.size() << " events, " << before << " before the checkpoint at update " << k);
}

std::string parse_error(const std::vector<std::string>& args) {
  try {
    (void)ppo_lstm::parse_command_line(args);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// The learning rate of each update's `update` events (the update's first one).
std::vector<double> learning_rates(const fs::path& events) {
  std::vector<double> out;
  for (const auto& e : named(timeless_events(events), "update")) {
    const auto u = e.at("update").get<std::uint64_t>();
    if (u > out.size()) out.push_back(e.at("learning_rate").get<double>());
  }
  return out;
}

}  // namespace

TEST_CASE("checkpoints change nothing of the run; resumed at update 10 it gives the uninterrupted run, bitwise") {
  const fs::path d = dir("plain");
  run_options plain = small();
  plain.events_path = (d / "plain.jsonl").string();
  const run_summary a = ppo_lstm::run(plain);
  CHECK(a.weights_digest == healthy().weights_digest);
  run_options ckpt = plain;
  ckpt.events_path = (d / "ckpt.jsonl").string();
  ckpt.recovery.checkpoint_every = 5;
  CHECK(ppo_lstm::run(ckpt).weights_digest == a.weights_digest);
  CHECK(timeless_events(ckpt.events_path) == timeless_events(plain.events_path));
  check_resume(small(), 5, 10, "healthy");
}

TEST_CASE("resume with --recover: rollbacks before and after the checkpoint come out the same") {
  run_options o = with_nan_grad(with_nan_grad(small(), 3, 3), 11, 11);
  o.recovery.recover = true;
  o.recovery.every = 8;
  check_resume(o, 5, 10, "recover");
  const run_summary s = ppo_lstm::run(o);
  REQUIRE(s.recovery.rollbacks.size() == 2);
  CHECK(s.recovery.rollbacks[0].at == 3);
  CHECK(s.recovery.rollbacks[1].at == 11);
  CHECK(s.recovery.lr_scale == 0.25);
}

TEST_CASE("--recover on a healthy run: no rollback, the weights of the run without it") {
  const fs::path d = dir("healthy_recover");
  run_options o = small();
  o.recovery.recover = true;
  o.recovery.every = 8;
  o.events_path = (d / "run.jsonl").string();
  const run_summary s = ppo_lstm::run(o);
  REQUIRE(s.exit_code == 0);
  CHECK(s.recovery.rollbacks.empty());
  CHECK(s.skips.empty());
  CHECK(s.weights_digest == healthy().weights_digest);
  CHECK(s.weights_checksum == healthy().weights_checksum);
  // snapshots at check 1 and every 8 healthy checks: before updates 1, 3, 5, ... (4 checks an update)
  const auto snaps = named(timeless_events(o.events_path), "snapshot");
  REQUIRE(snaps.size() == 6);
  for (std::size_t i = 0; i < snaps.size(); ++i) CHECK(snaps[i].at("update") == 2 * i + 1);
  CHECK(snaps[1].at("data_position") == 2);  // rollouts collected before the snapshot's step
}

TEST_CASE("--recover with one update of NaN gradients: a rollback at its third skip, the learning rate halved") {
  const fs::path d = dir("rollback");
  run_options o = with_nan_grad(small(), 6, 6);
  o.recovery.recover = true;
  o.recovery.every = 8;
  o.events_path = (d / "run.jsonl").string();
  const run_summary s = ppo_lstm::run(o);
  REQUIRE(s.exit_code == 0);
  CHECK(s.updates_done == 12);
  CHECK(s.weights_finite);
  REQUIRE(s.recovery.rollbacks.size() == 1);
  const auto& b = s.recovery.rollbacks[0];
  CHECK(b.at == 6);
  CHECK(b.cause == "consecutive_skips");
  CHECK(b.restored_update == 5);  // snapshots at checks 1, 9, 17 (updates 1, 3, 5); the onset at check 21
  CHECK(b.window_first == 4);     // the rollouts the restored weights had trained on
  CHECK(b.window_last == 6);
  CHECK(b.lr_scale == 0.5);
  CHECK(b.attribution == "not replayed");
  // update 6: three steps skipped, the fourth not attempted
  CHECK(s.updates[5].skipped_steps == 3);
  CHECK(s.updates[5].rollback);
  CHECK(s.skips.size() == 3);
  CHECK(s.optimizer_steps == 12 * 4 - 4);
  CHECK(s.checks == 12 * 4 - 1);
  const std::vector<double> lrs = learning_rates(o.events_path);
  REQUIRE(lrs.size() == 12);
  for (std::size_t u = 1; u <= 12; ++u) {
    INFO("update " << u);
    CHECK(lrs[u - 1] == (u <= 6 ? 1e-3 : 0.5e-3));
  }
  const auto rb = named(timeless_events(o.events_path), "rollback");
  REQUIRE(rb.size() == 1);
  CHECK(rb[0].at("restored_update") == 5);
  CHECK(rb[0].at("lr_scale") == 0.5);
}

TEST_CASE("--recover with four updates of NaN gradients: three rollbacks, then the stop (exit code 3)") {
  run_options o = with_nan_grad(small(), 4, 7);
  o.recovery.recover = true;
  o.recovery.every = 8;
  const run_summary s = ppo_lstm::run(o);
  CHECK(s.exit_code == ppo_lstm::exit_stopped);
  CHECK(s.stopped);
  CHECK(s.updates_done == 7);
  REQUIRE(s.recovery.rollbacks.size() == 3);
  CHECK(s.recovery.rollbacks[0].at == 4);
  CHECK(s.recovery.rollbacks[2].at == 6);
  CHECK(s.recovery.lr_scale == 0.125);
  CHECK(s.stop_reason.find("stopping: 3 rollbacks (limit 3)") == 0);
  CHECK(s.weights_finite);
}

TEST_CASE("bad --resume input and options: a clear error naming what is wrong") {
  const fs::path d = dir("bad");
  run_options o = small(6);
  o.events_path = (d / "first.jsonl").string();
  o.recovery.checkpoint_every = 3;
  REQUIRE(ppo_lstm::run(o).checkpoints.written == 2);
  run_options r = small(6);
  r.events_path = (d / "second.jsonl").string();
  r.recovery.resume_path = o.events_path + ".ckpt";
  auto error_of = [](const run_options& x) -> std::string {
    try {
      (void)ppo_lstm::run(x);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  run_options wider = r;
  wider.hidden = 32;
  CHECK(error_of(wider).find("was written by a run with --hidden 64; this run has --hidden 32") != std::string::npos);
  run_options faulty = with_nan_grad(r, 5, 5);
  CHECK(error_of(faulty).find("was written by a run with --inject none; this run has --inject nan-grad@5-5") !=
        std::string::npos);
  run_options same = r;
  same.events_path = o.events_path;
  CHECK(error_of(same).find("is the events file of the run that wrote") != std::string::npos);
  CHECK(ppo_lstm::run(r).exit_code == 0);

  struct bad {
    std::vector<std::string> args;
    const char* says;
  };
  for (const bad& b :
       {bad{{"--checkpoint-every", "0", "--events", "e"}, "--checkpoint-every: '0' is not an integer in [1, 100000000]"},
        bad{{"--recover", "--recover-every", "0"}, "--recover-every: '0' is not an integer in [1, 100000000]"},
        bad{{"--recover", "--recover-keep", "0"}, "--recover-keep: '0' is not an integer in [1, 1000]"},
        bad{{"--recover-every", "3"}, "--recover-every: needs --recover"},
        bad{{"--checkpoint-every", "3"}, "--checkpoint-every: needs --checkpoint PATH, or --events PATH"},
        bad{{"--recover", "--max-skips", "2"}, "--max-skips: 2 with --recover; it must be at least 4"},
        bad{{"--ranks", "2", "--recover"}, "--recover: not with --ranks"},
        bad{{"--ranks", "2", "--checkpoint-every", "3", "--events", "e"}, "--checkpoint-every: not with --ranks"},
        bad{{"--ranks", "2", "--resume", "x.ckpt"}, "--resume: not with --ranks"}}) {
    const std::string e = parse_error(b.args);
    INFO("args: " << b.args.front() << ", error: " << e);
    CHECK(e.find(b.says) != std::string::npos);
  }
  // the default --max-skips (two updates' worth) leaves room for the rollback
  CHECK(ppo_lstm::parse_command_line({"--recover", "--ppo-epochs", "1", "--minibatches", "2"}).options.recovery.recover);
  CHECK(ppo_lstm::usage("ppo_lstm").find("--checkpoint-every N  write a whole-run checkpoint every N updates") !=
        std::string::npos);
}
