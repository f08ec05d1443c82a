// Recovery and resume through the trainers' command lines (docs/trainer.md,
// "Recovery and resume"): a run resumed by the binary prints the weights
// digest of the uninterrupted run; a checkpoint of the other trainer, a
// missing, damaged or foreign file, or one of another model size exits 2
// with one line naming the file and what is wrong, before anything is
// trained or written; bad recovery options exit 2 naming the option. The
// binaries' paths come from Meson in CHAR_LM_BIN and PPO_LSTM_BIN.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "resume_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace resume_support;

struct result {
  int code = -1;
  std::string output;
};

result run_bin(const char* env, const std::string& args) {
  const char* bin = std::getenv(env);
  REQUIRE_MESSAGE(bin != nullptr, env << " is not set (meson sets it)");
  const std::string cmd = std::string(bin) + " " + args + " 2>&1";
  result r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Small runs of each trainer.
const std::string lm_args = "--steps 60 --d-model 32 --context 32 --batch 16 --eval-every 20 --eval-batches 2 --quiet";
const std::string ppo_args =
    "--updates 6 --planned-updates 100 --envs 4 --rollout 32 --seq-len 16 --ppo-epochs 2 --minibatches 2 --quiet";

result lm(const std::string& args) { return run_bin("CHAR_LM_BIN", lm_args + " " + args); }
result ppo(const std::string& args) { return run_bin("PPO_LSTM_BIN", ppo_args + " " + args); }

bool have_fortunes() { return fs::is_directory("/usr/share/games/fortunes"); }

// The "weights digest 0x..." of a run's summary ("" : none).
std::string digest_of(const std::string& output) {
  const auto at = output.find("weights digest 0x");
  return at == std::string::npos ? "" : output.substr(at + 15, 18);
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

TEST_CASE("resumed through the command line: the uninterrupted run's weights digest and events") {
  const fs::path d = scratch("simic_recovery_cli", "resume");
  {
    const result whole = ppo("--recover --recover-every 4 --inject nan-grad@2 --checkpoint-every 4 --events " +
                             q(d / "ppo.jsonl"));
    REQUIRE(whole.code == 0);
    CHECK(whole.output.find("checkpoints: 1 written to " + (d / "ppo.jsonl.ckpt").string() + " (last at update 4)") !=
          std::string::npos);
    CHECK(whole.output.find("recovery: 1 rollbacks, lr scale 0.5") != std::string::npos);
    const result resumed = ppo("--recover --recover-every 4 --inject nan-grad@2 --events " + q(d / "ppo2.jsonl") +
                               " --resume " + q(d / "ppo.jsonl.ckpt"));
    REQUIRE(resumed.code == 0);
    CHECK(resumed.output.find("resumed from " + (d / "ppo.jsonl.ckpt").string() + " at update 4") !=
          std::string::npos);
    REQUIRE_FALSE(digest_of(whole.output).empty());
    CHECK(digest_of(resumed.output) == digest_of(whole.output));
    const auto all = timeless_events(d / "ppo.jsonl");
    CHECK(timeless_events(d / "ppo2.jsonl") == from(all, events_through(all, 4)));
  }
  if (!have_fortunes()) return;
  const result whole = lm("--recover --recover-every 10 --checkpoint-every 40 --checkpoint " + q(d / "lm.pt") +
                          " --events " + q(d / "lm.jsonl"));
  REQUIRE(whole.code == 0);
  const result resumed = lm("--recover --recover-every 10 --events " + q(d / "lm2.jsonl") + " --resume " +
                            q(d / "lm.pt"));
  REQUIRE(resumed.code == 0);
  REQUIRE_FALSE(digest_of(whole.output).empty());
  CHECK(digest_of(resumed.output) == digest_of(whole.output));
  const auto all = timeless_events(d / "lm.jsonl");
  CHECK(timeless_events(d / "lm2.jsonl") == from(all, events_through(all, 40)));
}

TEST_CASE("char_lm stopped by SIGTERM checkpoints the step it stopped after; resumed, it is the uninterrupted run") {
  if (!have_fortunes()) return;
  const char* bin = std::getenv("CHAR_LM_BIN");
  REQUIRE(bin != nullptr);
  const fs::path d = scratch("simic_recovery_cli", "sigterm");
  const std::vector<std::string> common{"--steps", "400", "--d-model", "32", "--context", "32", "--batch", "16",
                                        "--eval-every", "20", "--eval-batches", "2"};
  std::vector<std::string> args{bin};
  args.insert(args.end(), common.begin(), common.end());
  for (const std::string a : {"--checkpoint-every", "1000", "--checkpoint", "", "--events", ""}) args.push_back(a);
  args[args.size() - 3] = (d / "stopped.ckpt").string();  // never reached by the interval: only the signal writes it
  args.back() = (d / "stopped.jsonl").string();
  const fs::path out = d / "out.txt";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin, argv.data());
    ::_exit(127);
  }
  // mid-run: once two epochs (40 steps) are done
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    started = read_bytes(out).find("step     40") != std::string::npos;
  }
  CHECK(started);
  REQUIRE(::kill(child, SIGTERM) == 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  const std::string said = read_bytes(out);
  INFO("output: " << said);
  REQUIRE(WEXITSTATUS(status) == 128 + SIGTERM);
  const auto at = said.find("checkpoints: 1 written to " + (d / "stopped.ckpt").string() + " (last at step ");
  REQUIRE(at != std::string::npos);
  const std::uint64_t k = std::stoull(said.substr(said.find("(last at step ", at) + 14));
  const auto steps_at = said.find("\nsteps ");
  REQUIRE(steps_at != std::string::npos);
  CHECK(std::stoull(said.substr(steps_at + 7)) == k);  // the checkpoint is at the last step done
  CHECK(k >= 40);
  CHECK(k < 400);

  std::string tail;
  for (const std::string& a : common) tail += " " + a;
  const result whole = run_bin("CHAR_LM_BIN", tail + " --quiet --events " + q(d / "whole.jsonl"));
  REQUIRE(whole.code == 0);
  const result resumed = run_bin("CHAR_LM_BIN", tail + " --quiet --events " + q(d / "resumed.jsonl") +
                                                    " --resume " + q(d / "stopped.ckpt"));
  REQUIRE(resumed.code == 0);
  CHECK(resumed.output.find("at step " + std::to_string(k) + ";") != std::string::npos);
  REQUIRE_FALSE(digest_of(whole.output).empty());
  CHECK(digest_of(resumed.output) == digest_of(whole.output));
  const auto all = timeless_events(d / "whole.jsonl");
  const std::size_t before = events_through(all, k);
  CHECK(timeless_events(d / "resumed.jsonl") == from(all, before));
  // the stopped run's file begins with those events (its close may add the
  // check of a last epoch's performance that no step carried)
  const auto first = timeless_events(d / "stopped.jsonl");
  REQUIRE(first.size() >= before);
  CHECK(std::vector<std::string>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(before)) ==
        std::vector<std::string>(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(before)));
  MESSAGE("SIGTERM after step " << k << ": resumed to the uninterrupted run's digest " << digest_of(whole.output));
}

TEST_CASE("a bad --resume file exits 2 with one line naming it, before anything is trained or written") {
  const fs::path d = scratch("simic_recovery_cli", "bad");
  REQUIRE(ppo("--checkpoint-every 3 --checkpoint " + q(d / "ppo.ckpt")).code == 0);
  const bool lm_too = have_fortunes();
  if (lm_too) REQUIRE(lm("--checkpoint-every 40 --checkpoint " + q(d / "lm.ckpt")).code == 0);
  write_bytes(d / "events.jsonl", "an older file\n");
  const std::string events = " --events " + q(d / "events.jsonl");
  auto refused = [&](const result& r, const std::string& says) {
    INFO("output: " << r.output);
    CHECK(r.code == 2);
    CHECK(r.output.find("error: --resume: ") != std::string::npos);
    CHECK(r.output.find(says) != std::string::npos);
    CHECK(r.output.find("usage:") == std::string::npos);  // the command line was fine
    CHECK(r.output.find("weights digest") == std::string::npos);  // no summary: nothing ran
    CHECK(read_bytes(d / "events.jsonl") == "an older file\n");
  };
  // missing
  refused(ppo("--resume " + q(d / "none.ckpt") + events), "'" + (d / "none.ckpt").string() + "' does not exist");
  // a byte flipped in the data, the file cut short, a file of text
  flip_byte(d / "ppo.ckpt", d / "flipped.ckpt", fs::file_size(d / "ppo.ckpt") / 2);
  refused(ppo("--resume " + q(d / "flipped.ckpt") + events), "cannot be used: simic::verify_zip");
  write_bytes(d / "cut.ckpt", read_bytes(d / "ppo.ckpt").substr(0, 1000));
  refused(ppo("--resume " + q(d / "cut.ckpt") + events), "cannot be used");
  write_bytes(d / "text.ckpt", "hello\n");
  refused(ppo("--resume " + q(d / "text.ckpt") + events), "cannot be used");
  // another model size
  refused(ppo("--hidden 32 --resume " + q(d / "ppo.ckpt") + events),
          "was written by a run with --hidden 64; this run has --hidden 32");
  if (!lm_too) return;
  // the other trainer's checkpoint, both ways
  refused(lm("--resume " + q(d / "ppo.ckpt") + events), "is a checkpoint of ppo_lstm, not of char_lm");
  refused(ppo("--resume " + q(d / "lm.ckpt") + events), "is a checkpoint of char_lm, not of ppo_lstm");
  refused(lm("--d-model 64 --resume " + q(d / "lm.ckpt") + events),
          "was written by a run with --d-model 32; this run has --d-model 64");
  flip_byte(d / "lm.ckpt", d / "lm_flipped.ckpt", fs::file_size(d / "lm.ckpt") - 12);
  refused(lm("--resume " + q(d / "lm_flipped.ckpt") + events), "cannot be used: simic::verify_zip");
}

TEST_CASE("bad recovery options exit 2 with the usage, naming the option") {
  const fs::path d = scratch("simic_recovery_cli", "options");
  write_bytes(d / "a_file", "x");
  struct bad {
    std::string args;
    std::string says;
  };
  for (const bad& b : {bad{"--checkpoint-every 0 --events e.jsonl", "--checkpoint-every: '0' is not an integer"},
                       bad{"--recover --recover-every 0", "--recover-every: '0' is not an integer in [1, 100000000]"},
                       bad{"--recover --recover-keep 0", "--recover-keep: '0' is not an integer in [1, 1000]"},
                       bad{"--recover-keep 3", "--recover-keep: needs --recover"},
                       bad{"--checkpoint x.pt", "--checkpoint: needs --checkpoint-every N"},
                       bad{"--checkpoint-every 5", "--checkpoint-every: needs --checkpoint PATH"},
                       bad{"--recover --max-skips 3", "--max-skips: 3 with --recover"}}) {
    for (const bool is_lm : {true, false}) {
      INFO((is_lm ? "char_lm " : "ppo_lstm ") << b.args);
      const result r = is_lm ? lm(b.args) : ppo(b.args);
      CHECK(r.code == 2);
      CHECK(r.output.find(b.says) != std::string::npos);
      CHECK(r.output.find("usage:") != std::string::npos);
    }
  }
  // an unwritable checkpoint path is refused before training: exit 2, one line
  const result r = ppo("--checkpoint-every 2 --checkpoint " + q(d / "a_file" / "run.ckpt"));
  CHECK(r.code == 2);
  CHECK(r.output.find("error: --checkpoint: cannot create the directory") != std::string::npos);
  CHECK(r.output.find("updates ") == std::string::npos);
  const result dp = ppo("--ranks 2 --recover");
  CHECK(dp.code == 2);
  CHECK(dp.output.find("--recover: not with --ranks") != std::string::npos);
}
