// Recovery and resume of examples/char_lm (docs/trainer.md, "Recovery and
// resume"), in-process on the bench model (width 32, context 32, batch 16;
// about 10 ms a step): a run checkpointed at step 200 and resumed against the
// uninterrupted run (weights bitwise, events but their time stamps and
// resident memory, the summary's records), with and without --recover and
// faults on both sides of the checkpoint; --recover on a healthy run (the
// same weights as without), on one loss x1e6 (skipped, no rollback) and on
// three NaN batches in a row (a rollback, the learning rate halved); a
// checkpoint that cannot be written; and every kind of bad --resume input.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "lm.hpp"
#include "options.hpp"
#include "resume_support.hpp"

namespace {

namespace fs = std::filesystem;
using char_lm::run_options;
using char_lm::run_summary;
using namespace resume_support;

bool have_fortunes() { return fs::is_directory(char_lm::default_data_dir); }

// The bench's model (bench/detection/char_lm_trainer.cpp), 300 steps.
run_options bench(std::uint64_t steps = 300) {
  run_options o;
  o.steps = steps;
  o.d_model = 32;
  o.context = 32;
  o.batch = 16;
  o.eval_every = 50;
  o.eval_batches = 2;
  o.progress_lines = false;
  o.seed = 1;
  o.threads = 1;
  return o;
}

run_options with_faults(run_options o, char_lm::fault f, std::vector<std::uint64_t> steps) {
  for (const std::uint64_t s : steps) o.injections.push_back({f, s});
  return o;
}

fs::path dir(const std::string& name) { return scratch("simic_char_lm_recovery", name); }

// The healthy run without recovery or checkpoints: the reference.
const run_summary& healthy() {
  static const run_summary s = char_lm::run(bench());
  return s;
}

bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

// Everything of the two summaries that is the whole run's.
void check_same_records(const run_summary& a, const run_summary& b) {
  CHECK(a.steps_done == b.steps_done);
  CHECK(a.optimizer_steps == b.optimizer_steps);
  CHECK(a.checks == b.checks);
  CHECK(a.epochs == b.epochs);
  CHECK(same_bits(a.final_train_loss, b.final_train_loss));
  CHECK(same_bits(a.final_valid_loss, b.final_valid_loss));
  REQUIRE(a.steps.size() == b.steps.size());
  for (std::size_t i = 0; i < a.steps.size(); ++i) {
    INFO("step " << a.steps[i].step);
    CHECK(a.steps[i].step == b.steps[i].step);
    CHECK(same_bits(a.steps[i].lr, b.steps[i].lr));
    CHECK(same_bits(a.steps[i].loss, b.steps[i].loss));
    CHECK(a.steps[i].skipped == b.steps[i].skipped);
    CHECK(a.steps[i].rollback == b.steps[i].rollback);
  }
  REQUIRE(a.anomalies.size() == b.anomalies.size());
  for (std::size_t i = 0; i < a.anomalies.size(); ++i) {
    CHECK(a.anomalies[i].step == b.anomalies[i].step);
    CHECK(a.anomalies[i].kind == b.anomalies[i].kind);
    CHECK(a.anomalies[i].detail == b.anomalies[i].detail);
  }
  CHECK(a.skips.size() == b.skips.size());
  CHECK(a.level_changes.size() == b.level_changes.size());
  CHECK(a.epoch_log.size() == b.epoch_log.size());
  REQUIRE(a.recovery.rollbacks.size() == b.recovery.rollbacks.size());
  for (std::size_t i = 0; i < a.recovery.rollbacks.size(); ++i) {
    const auto &x = a.recovery.rollbacks[i], &y = b.recovery.rollbacks[i];
    CHECK(x.at == y.at);
    CHECK(x.cause == y.cause);
    CHECK(x.restored_update == y.restored_update);
    CHECK(x.window_first == y.window_first);
    CHECK(x.window_last == y.window_last);
    CHECK(x.lr_scale == y.lr_scale);
    CHECK(x.attribution == y.attribution);
  }
  CHECK(a.recovery.lr_scale == b.recovery.lr_scale);
  CHECK(a.weights_digest == b.weights_digest);
}

// `o` run whole with a checkpoint at step `k` (the only one: 2k > steps),
// then resumed from it in a new run: the resumed run must give the whole
// run's weights, records and, after the checkpoint's events, its events.
void check_resume(run_options o, std::uint64_t k, const std::string& name) {
  REQUIRE(2 * k > o.steps);
  const fs::path d = dir(name);
  run_options whole = o;
  whole.events_path = (d / "whole.jsonl").string();
  whole.recovery.checkpoint_every = k;
  const run_summary w = char_lm::run(whole);
  REQUIRE(w.exit_code == 0);
  CHECK(w.checkpoints.written == 1);
  CHECK(w.checkpoints.failed == 0);
  CHECK(w.checkpoints.last_at == k);
  CHECK(w.checkpoints.path == whole.events_path + ".ckpt");  // the default: beside the events file
  REQUIRE(fs::is_regular_file(whole.events_path + ".ckpt"));
  CHECK_FALSE(fs::exists(whole.events_path + ".ckpt.tmp"));

  run_options again = o;
  again.events_path = (d / "resumed.jsonl").string();
  again.recovery.resume_path = whole.events_path + ".ckpt";
  const run_summary r = char_lm::run(again);
  REQUIRE(r.exit_code == 0);
  CHECK(r.checkpoints.resumed_from == again.recovery.resume_path);
  CHECK(r.checkpoints.resumed_at == k);
  CHECK(r.checkpoints.events_file_before == fs::weakly_canonical(whole.events_path).string());
  check_same_records(r, w);

  const std::vector<std::string> all = timeless_events(whole.events_path);
  const std::size_t before = events_through(all, k);  // counted from the file itself
  CHECK(r.checkpoints.events_before == before);
  const std::vector<std::string> rest = timeless_events(again.events_path);
  REQUIRE_FALSE(rest.empty());
  CHECK(nlohmann::json::parse(rest.front()).at("update") == k + 1);  // it starts after the checkpoint
  CHECK(rest == from(all, before));
  CHECK(r.events_emitted == rest.size());
  MESSAGE(name << ": " << all.size() << " events, " << before << " before the checkpoint at step " << k
               << "; weights digest " << std::hex << w.weights_digest);
}

std::string error_of(const run_options& o) {
  try {
    (void)char_lm::run(o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::string parse_error(const std::vector<std::string>& args) {
  try {
    (void)char_lm::parse_command_line(args);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("checkpoints change nothing of the run; resumed at step 200 it gives the uninterrupted run, bitwise") {
  if (!have_fortunes()) return;
  // the checkpointed run is the plain run: the same weights and events
  const fs::path d = dir("plain");
  run_options plain = bench();
  plain.events_path = (d / "plain.jsonl").string();
  run_options ckpt = plain;
  ckpt.events_path = (d / "ckpt.jsonl").string();
  ckpt.recovery.checkpoint_every = 200;
  const run_summary a = char_lm::run(plain), b = char_lm::run(ckpt);
  CHECK(a.weights_digest == healthy().weights_digest);
  CHECK(b.weights_digest == a.weights_digest);
  CHECK(timeless_events(ckpt.events_path) == timeless_events(plain.events_path));
  check_resume(bench(), 200, "healthy");
}

TEST_CASE("resume with --recover: rollbacks before and after the checkpoint come out the same") {
  if (!have_fortunes()) return;
  run_options o = with_faults(bench(), char_lm::fault::nan_batch, {100, 101, 102, 250, 251, 252});
  o.recovery.recover = true;
  o.recovery.every = 20;
  check_resume(o, 200, "recover");
  // and the run itself: one rollback each side of step 200
  const run_summary s = char_lm::run(o);
  REQUIRE(s.recovery.rollbacks.size() == 2);
  CHECK(s.recovery.rollbacks[0].at == 102);
  CHECK(s.recovery.rollbacks[1].at == 252);
  CHECK(s.recovery.lr_scale == 0.25);
}

TEST_CASE("a checkpoint every 100 steps: the last one stands, and a run resumed at its end trains nothing") {
  if (!have_fortunes()) return;
  const fs::path d = dir("every100");
  run_options o = bench();
  o.events_path = (d / "run.jsonl").string();
  o.recovery.checkpoint_every = 100;
  o.recovery.checkpoint_path = (d / "run.pt").string();
  const run_summary w = char_lm::run(o);
  CHECK(w.checkpoints.written == 3);
  CHECK(w.checkpoints.last_at == 300);
  run_options r = bench();
  r.events_path = (d / "after.jsonl").string();
  r.recovery.resume_path = o.recovery.checkpoint_path;
  const run_summary s = char_lm::run(r);
  CHECK(s.exit_code == 0);
  CHECK(s.checkpoints.resumed_at == 300);
  CHECK(s.checkpoints.events_before == timeless_events(o.events_path).size());
  CHECK(timeless_events(r.events_path).empty());
  check_same_records(s, w);
}

TEST_CASE("--recover on a healthy run: no rollback, snapshots every 100 checks, the weights of the run without it") {
  if (!have_fortunes()) return;
  const fs::path d = dir("healthy_recover");
  run_options o = bench();
  o.recovery.recover = true;
  o.events_path = (d / "run.jsonl").string();
  const run_summary s = char_lm::run(o);
  REQUIRE(s.exit_code == 0);
  CHECK(s.recovery.on);
  CHECK(s.recovery.rollbacks.empty());
  CHECK(s.recovery.lr_scale == 1.0);
  CHECK(s.skips.empty());
  CHECK(s.weights_digest == healthy().weights_digest);
  for (std::size_t i = 0; i < s.steps.size(); ++i) CHECK(same_bits(s.steps[i].lr, healthy().steps[i].lr));
  // snapshots at the first healthy check and every 100 after: the data
  // positions (batches drawn) before checks 1, 101 and 201; two kept
  const auto snaps = named(timeless_events(o.events_path), "snapshot");
  REQUIRE(snaps.size() == 3);
  CHECK(snaps[0].at("data_position") == 0);
  CHECK(snaps[1].at("data_position") == 100);
  CHECK(snaps[2].at("data_position") == 200);
  CHECK(snaps[2].at("held") == 2);
  CHECK(s.recovery.snapshots_held == 2);
}

TEST_CASE("--recover with one loss x1e6: the step is skipped, no rollback, the validation loss within 5 %") {
  if (!have_fortunes()) return;
  run_options o = with_faults(bench(), char_lm::fault::loss_scale, {150});
  o.recovery.recover = true;
  const run_summary s = char_lm::run(o);
  REQUIRE(s.exit_code == 0);
  REQUIRE(s.skips.size() == 1);
  CHECK(s.skips[0].step == 150);
  CHECK(s.recovery.rollbacks.empty());
  CHECK(s.steps_done == 300);
  CHECK(s.weights_finite);
  const double healthy_loss = healthy().final_valid_loss;
  CHECK(std::abs(s.final_valid_loss - healthy_loss) <= 0.05 * healthy_loss);
  // the skip is the session's: the run without --recover is the same run
  o.recovery.recover = false;
  CHECK(char_lm::run(o).weights_digest == s.weights_digest);
  MESSAGE("loss-scale: validation loss " << s.final_valid_loss << ", healthy " << healthy_loss);
}

TEST_CASE("--recover with three NaN batches in a row: a rollback to the snapshot before, the learning rate halved") {
  if (!have_fortunes()) return;
  const fs::path d = dir("rollback");
  run_options o = with_faults(bench(), char_lm::fault::nan_batch, {150, 151, 152});
  o.recovery.recover = true;
  o.recovery.every = 20;
  o.events_path = (d / "run.jsonl").string();
  const run_summary s = char_lm::run(o);
  REQUIRE(s.exit_code == 0);
  CHECK(s.steps_done == 300);
  CHECK(s.weights_finite);
  REQUIRE(s.recovery.rollbacks.size() == 1);
  const auto& b = s.recovery.rollbacks[0];
  CHECK(b.at == 152);                  // the third skip in a row
  CHECK(b.cause == "consecutive_skips");
  CHECK(b.restored_update == 141);     // snapshots at checks 1, 21, ..., 141 (every 20 healthy); 121 and 141 kept
  CHECK(b.window_first == 140);        // the batches the restored weights had seen
  CHECK(b.window_last == 152);
  CHECK(b.lr_scale == 0.5);
  CHECK(b.attribution == "reproducible");  // the replayed batch is NaN again
  CHECK(s.recovery.lr_scale == 0.5);
  REQUIRE(s.skips.size() == 3);
  CHECK(s.skips[0].step == 150);
  CHECK(s.skips[2].step == 152);
  CHECK(s.steps[151].rollback);
  // the schedule's learning rate before, half of it from the next step on
  const run_options plain = bench();
  for (const auto& r : s.steps) {
    INFO("step " << r.step);
    CHECK(r.lr == (r.step <= 152 ? 1.0 : 0.5) * char_lm::scheduled_lr(plain, r.step));
    if (r.step > 152) CHECK(std::isfinite(r.loss));
  }
  const auto events = timeless_events(o.events_path);
  const auto rb = named(events, "rollback");
  REQUIRE(rb.size() == 1);
  CHECK(rb[0].at("update") == 152);
  CHECK(rb[0].at("restored_update") == 141);
  CHECK(rb[0].at("lr_scale") == 0.5);
  CHECK(rb[0].at("window_first") == 140);
  // the update events carry the halved rate
  for (const auto& u : named(events, "update"))
    if (u.at("update") == 153) CHECK(u.at("learning_rate") == 0.5 * char_lm::scheduled_lr(plain, 153));
  CHECK(s.final_valid_loss < healthy().final_valid_loss * 1.05);
}

TEST_CASE("a checkpoint that cannot be written: counted, the previous file kept, training goes on") {
  if (!have_fortunes()) return;
  const fs::path d = dir("unwritable");
  run_options o = bench(200);
  o.recovery.checkpoint_every = 100;
  o.recovery.checkpoint_path = (d / "run.ckpt").string();
  write_bytes(o.recovery.checkpoint_path, "the previous checkpoint");
  fs::create_directories(d / "run.ckpt.tmp" / "in_the_way");  // the tmp file cannot be created
  const run_summary s = char_lm::run(o);
  CHECK(s.exit_code == 0);
  CHECK(s.steps_done == 200);
  CHECK(s.checkpoints.written == 0);
  CHECK(s.checkpoints.failed == 2);
  CHECK(s.checkpoints.last_error.find("run.ckpt.tmp") != std::string::npos);
  CHECK(read_bytes(o.recovery.checkpoint_path) == "the previous checkpoint");
  CHECK(char_lm::describe(s).find("0 written to " + o.recovery.checkpoint_path) != std::string::npos);
}

TEST_CASE("bad --resume input: a clear error before anything is trained or written") {
  if (!have_fortunes()) return;
  const fs::path d = dir("bad_resume");
  run_options o = bench(60);
  o.recovery.recover = true;
  o.recovery.every = 10;
  o.recovery.dir = (d / "snapshots").string();
  o.events_path = (d / "first.jsonl").string();
  o.recovery.checkpoint_every = 40;
  REQUIRE(char_lm::run(o).checkpoints.written == 1);
  const std::string good = o.events_path + ".ckpt";
  const std::size_t size = fs::file_size(good);

  run_options r = o;
  r.recovery.checkpoint_every = 0;
  r.events_path = (d / "second.jsonl").string();
  write_bytes(r.events_path, "an older file\n");
  auto refused = [&](const run_options& x, const std::string& says) {
    const std::string e = error_of(x);
    INFO("error: " << e);
    CHECK(e.find(says) != std::string::npos);
    CHECK(read_bytes(r.events_path) == "an older file\n");  // not touched
  };
  r.recovery.resume_path = (d / "missing.ckpt").string();
  refused(r, "--resume: '" + r.recovery.resume_path + "' does not exist");
  r.recovery.resume_path = d.string();
  refused(r, "is not a regular file");
  // One byte flipped: refused with a clear error, or (a byte that carries
  // nothing: a time stamp, padding) resumed to the very same run. Every byte
  // of the first entry's header, bytes spread over the data, and the last 64
  // (the central directory's end records).
  run_options good_run = r;
  good_run.events_path = (d / "good.jsonl").string();
  good_run.recovery.resume_path = good;
  const std::uint64_t good_digest = char_lm::run(good_run).weights_digest;
  std::vector<std::size_t> offsets;
  for (std::size_t at = 0; at < 64; ++at) offsets.push_back(at);
  for (std::size_t k = 1; k < 32; ++k) offsets.push_back(size * k / 32);
  for (std::size_t at = size - 64; at < size; ++at) offsets.push_back(at);
  std::size_t refusals = 0, harmless = 0;
  r.recovery.resume_path = (d / "flipped.ckpt").string();
  for (const std::size_t at : offsets) {
    CAPTURE(at);
    flip_byte(good, r.recovery.resume_path, at);
    write_bytes(r.events_path, "an older file\n");
    try {
      const run_summary s = char_lm::run(r);
      ++harmless;
      CHECK(s.weights_digest == good_digest);
    } catch (const std::invalid_argument& e) {
      ++refusals;
      CHECK(std::string(e.what()).find("--resume: '" + r.recovery.resume_path + "' cannot be") == 0);
      CHECK(read_bytes(r.events_path) == "an older file\n");
    }
  }
  CHECK(refusals >= offsets.size() * 3 / 4);
  MESSAGE(offsets.size() << " bytes flipped one at a time: " << refusals << " refused, " << harmless
                         << " carried nothing (the same run)");
  write_bytes(r.events_path, "an older file\n");
  r.recovery.resume_path = (d / "cut.ckpt").string();
  write_bytes(r.recovery.resume_path, read_bytes(good).substr(0, size / 2));
  refused(r, "cannot be used");
  r.recovery.resume_path = (d / "text.ckpt").string();
  write_bytes(r.recovery.resume_path, "not a checkpoint at all");
  refused(r, "cannot be used");
  // a sound torch archive that is no checkpoint: a recovery snapshot file
  REQUIRE_FALSE(fs::is_empty(o.recovery.dir));
  r.recovery.resume_path = fs::directory_iterator(o.recovery.dir)->path().string();
  refused(r, "not a trainer checkpoint");
  // another run: another width, another length, without --recover
  r.recovery.resume_path = good;
  run_options wider = r;
  wider.d_model = 64;
  refused(wider, "was written by a run with --d-model 32; this run has --d-model 64");
  run_options longer = r;
  longer.steps = 61;
  refused(longer, "was written by a run with --steps 60; this run has --steps 61");
  run_options unguarded = r;
  unguarded.recovery.recover = false;
  refused(unguarded, "--recover on; this run has --recover off");
  // the events file of the run that wrote it
  run_options same = r;
  same.events_path = o.events_path;
  const std::string first = read_bytes(o.events_path);
  CHECK(error_of(same).find("--events: '" + o.events_path + "' is the events file of the run that wrote") !=
        std::string::npos);
  CHECK(read_bytes(o.events_path) == first);
  // and the good one resumes
  CHECK(char_lm::run(r).exit_code == 0);
}

TEST_CASE("recovery and checkpoint options: bad values name the option and the valid range") {
  struct bad {
    std::vector<std::string> args;
    const char* says;
  };
  for (const bad& b : {bad{{"--checkpoint-every", "0", "--events", "e"}, "--checkpoint-every: '0' is not an integer in [1, 100000000]"},
                       bad{{"--checkpoint-every", "x"}, "--checkpoint-every: 'x' is not an integer"},
                       bad{{"--recover", "--recover-every", "0"}, "--recover-every: '0' is not an integer in [1, 100000000]"},
                       bad{{"--recover", "--recover-keep", "0"}, "--recover-keep: '0' is not an integer in [1, 1000]"},
                       bad{{"--recover", "--recover-keep", "1001"}, "--recover-keep: '1001' is not an integer in [1, 1000]"},
                       bad{{"--recover-every", "5"}, "--recover-every: needs --recover"},
                       bad{{"--recover-keep", "5"}, "--recover-keep: needs --recover"},
                       bad{{"--recover-dir", "d"}, "--recover-dir: needs --recover"},
                       bad{{"--recover", "--recover-dir", ""}, "--recover-dir: the path is empty"},
                       bad{{"--checkpoint", "c.pt"}, "--checkpoint: needs --checkpoint-every N"},
                       bad{{"--checkpoint-every", "10"}, "--checkpoint-every: needs --checkpoint PATH, or --events PATH"},
                       bad{{"--resume", ""}, "--resume: the path is empty"},
                       bad{{"--resume"}, "--resume: missing value"},
                       bad{{"--recover", "--max-skips", "3"}, "--max-skips: 3 with --recover; it must be at least 4"}}) {
    const std::string e = parse_error(b.args);
    INFO("args: " << b.args.front() << ", error: " << e);
    CHECK(e.find(b.says) != std::string::npos);
  }
  const auto cl = char_lm::parse_command_line({"--recover", "--recover-every", "5", "--recover-keep", "3",
                                               "--recover-dir", "snaps", "--checkpoint-every", "10", "--events",
                                               "runs/e.jsonl", "--max-skips", "4"});
  CHECK(cl.options.recovery.recover);
  CHECK(cl.options.recovery.every == 5);
  CHECK(cl.options.recovery.keep == 3);
  CHECK(cl.options.recovery.dir == "snaps");
  CHECK(cl.options.recovery.checkpoint_every == 10);
  CHECK(cl.options.recovery.checkpoint_file(cl.options.events_path) == "runs/e.jsonl.ckpt");
  const auto defaults = char_lm::parse_command_line({"--recover"});
  CHECK(defaults.options.recovery.every == 100);
  CHECK(defaults.options.recovery.keep == 2);
  CHECK(char_lm::usage("char_lm").find("--recover-every N") != std::string::npos);
  // the library's own check names the field
  run_options o = bench();
  o.recovery.every = 0;
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("recovery.every"), std::invalid_argument);
  o = bench();
  o.recovery.checkpoint_every = 5;  // no path, no events file
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("recovery.checkpoint_path"), std::invalid_argument);
}
