// The trainer's command line as a user runs it: exit codes 2 (bad values,
// with a message naming the option) and 3 (stopped by the monitor, events
// flushed). The binary's path comes from Meson in PPO_LSTM_BIN.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

struct result {
  int code = -1;
  std::string output;
};

result run_cli(const std::string& args) {
  const char* bin = std::getenv("PPO_LSTM_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "PPO_LSTM_BIN is not set (meson sets it)");
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

}  // namespace

TEST_CASE("bad command-line values give a clear error and exit code 2") {
  struct bad {
    const char* args;
    const char* says;
  };
  for (const bad& b : {bad{"--updates 0", "--updates"}, bad{"--updates ten", "--updates"},
                       bad{"--envs 0", "--envs"}, bad{"--envs", "missing value"}, bad{"--seed -3", "--seed"},
                       bad{"--level LOUD", "unknown level 'LOUD'"}, bad{"--inject nan-grads@3", "unknown fault"},
                       bad{"--inject nan-grad", "KIND@UPDATE"}, bad{"--inject nan-grad@0", "--inject update"},
                       bad{"--updates 5 --inject lr-spike@6", "injection first update"},
                       bad{"--lr 0", "--lr"}, bad{"--bogus", "unknown option '--bogus'"},
                       bad{"--events ''", "--events"}}) {
    INFO("args: " << b.args);
    const result r = run_cli(b.args);
    CHECK(r.code == 2);
    CHECK(r.output.find(b.says) != std::string::npos);
    CHECK(r.output.find("usage:") != std::string::npos);
  }
}

TEST_CASE("--help exits 0 and lists every fault") {
  const result r = run_cli("--help");
  CHECK(r.code == 0);
  for (const char* f : {"nan-grad", "grad-explode", "grad-vanish", "grad-drift", "lr-spike", "entropy-collapse",
                        "value-collapse", "lstm-explode", "reward-drop"})
    CHECK(r.output.find(f) != std::string::npos);
}

TEST_CASE("a short run exits 0; nan-grad on every update stops it with exit code 3 after flushing its events") {
  const result ok = run_cli("--updates 2 --envs 2 --rollout 16 --seq-len 8 --quiet");
  CHECK(ok.code == 0);
  CHECK(ok.output.find("updates 2,") != std::string::npos);

  const std::string path = "ppo_lstm_cli_events.jsonl";
  const result r = run_cli("--updates 6 --envs 2 --rollout 16 --seq-len 8 --inject nan-grad@2- --events " + path);
  CHECK(r.code == 3);
  CHECK(r.output.find("stopped by the monitor") != std::string::npos);
  CHECK(r.output.find("numerical_instability") != std::string::npos);
  std::ifstream in(path);
  std::string line, last;
  int anomalies = 0;
  while (std::getline(in, line)) {
    last = line;
    anomalies += line.find("\"event\":\"anomaly\"") != std::string::npos;
  }
  CHECK(anomalies >= 8);
  CHECK(last.find("\"event\":\"hub_stats\"") != std::string::npos);
  std::remove(path.c_str());
}
