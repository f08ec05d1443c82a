// The trainer's command line as a user runs it: exit codes 2 (bad values,
// with a message naming the option; unwritable paths; over the memory
// limit), 3 (stopped by the monitor, events flushed), 4 (events lost) and
// 128+N (SIGTERM: events flushed). The binary's path comes from Meson in
// PPO_LSTM_BIN.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

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
                        "value-collapse", "lstm-explode", "reward-drop", "core-vanish"})
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

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("simic_ppo_lstm_cli_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The number before `word` in `text` ("12 failed" -> 12); -1 if absent.
long long count_before(const std::string& text, const std::string& word) {
  const auto at = text.find(" " + word);
  if (at == std::string::npos) return -1;
  auto start = text.rfind(' ', at - 1);
  start = start == std::string::npos ? 0 : start + 1;
  const auto open = text.rfind('(', at);
  if (open != std::string::npos && open + 1 > start && open < at) start = open + 1;
  return std::stoll(text.substr(start, at - start));
}

}  // namespace

TEST_CASE("unwritable --events, --tensorboard or --profile: exit 2 with one line naming the option, nothing written") {
  const fs::path d = scratch("unwritable");
  const fs::path blocker = d / "a_file";
  std::ofstream(blocker) << "x";
  for (const std::string& args : {"--events " + (blocker / "e.jsonl").string(), "--events " + d.string(),
                                  "--profile " + (blocker / "prof").string(),
                                  "--tensorboard " + (blocker / "tb").string()}) {
    INFO("args: " << args);
    const result r = run_cli("--updates 2 --envs 2 --rollout 16 --seq-len 8 --quiet " + args);
    CHECK(r.code == 2);
    CHECK(lines_of(r.output).size() == 1);
    CHECK(r.output.find(args.substr(0, args.find(' '))) != std::string::npos);
    CHECK(r.output.find("cannot") != std::string::npos);
    CHECK(r.output.find("usage:") == std::string::npos);
  }
  CHECK(read_file(blocker) == "x");
}

TEST_CASE("a run that fails at start-up leaves an existing events file as it was") {
  const fs::path d = scratch("keep");
  const fs::path events = d / "events.jsonl";
  const std::string old = "{\"event\":\"update\",\"update\":41}\n{\"event\":\"hub_stats\",\"emitted\":1}\n";
  std::ofstream(events) << old;
  const fs::path blocker = d / "a_file";
  std::ofstream(blocker) << "x";
  // The profile directory cannot be made (a file is in the way): refused before the events file is touched.
  const result r = run_cli("--updates 2 --envs 2 --rollout 16 --seq-len 8 --quiet --events " + events.string() +
                           " --profile " + (blocker / "prof").string());
  CHECK(r.code == 2);
  CHECK(read_file(events) == old);
  // Refused by the memory limit, after parsing: the same.
  const result m = run_cli("--envs 4096 --rollout 65536 --hidden 4096 --events " + events.string());
  CHECK(m.code == 2);
  CHECK(read_file(events) == old);
  // The TensorBoard directory cannot be made: the same.
  const result tb = run_cli("--updates 2 --envs 2 --rollout 16 --seq-len 8 --quiet --events " + events.string() +
                            " --tensorboard " + (blocker / "tb").string());
  CHECK(tb.code == 2);
  CHECK(read_file(events) == old);
  // A run that starts replaces it.
  const result ok = run_cli("--updates 1 --envs 2 --rollout 16 --seq-len 8 --quiet --events " + events.string());
  CHECK(ok.code == 0);
  CHECK(read_file(events) != old);
}

TEST_CASE("options over the memory limit: exit 2 at once, naming the options and the estimate") {
  const auto t0 = std::chrono::steady_clock::now();
  const result r = run_cli("--envs 4096 --rollout 65536 --hidden 4096");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  CHECK(r.code == 2);
  CHECK(r.output.find("--envs 4096 --rollout 65536 --hidden 4096") != std::string::npos);
  CHECK(r.output.find("GiB") != std::string::npos);
  // The default options need 4862000 bytes (tests/examples/ppo_lstm_parts_test.cpp): under 1 GiB, accepted.
  CHECK(run_cli("--updates 1 --envs 8 --quiet --max-memory-gib 1").code == 0);
  const result zero = run_cli("--max-memory-gib 0");
  CHECK(zero.code == 2);
  CHECK(zero.output.find("--max-memory-gib") != std::string::npos);
}

TEST_CASE("--events /dev/full: every write fails, counted and printed; exit 4") {
  if (!fs::exists("/dev/full")) return;  // Linux
  const result r = run_cli("--updates 2 --envs 2 --rollout 16 --seq-len 8 --quiet --events /dev/full");
  CHECK(r.code == 4);
  const auto at = r.output.find("events: /dev/full");
  REQUIRE(at != std::string::npos);
  const std::string line = r.output.substr(at, r.output.find('\n', at) - at);
  INFO(line);
  const long long emitted = count_before(line, "emitted"), written = count_before(line, "written"),
                  failed = count_before(line, "failed");
  CHECK(emitted > 0);
  CHECK(written == 0);
  CHECK(failed == emitted);  // every event; the hub_stats line's failure (at finish) is reported, not counted
  CHECK(r.output.find("events lost") != std::string::npos);
  CHECK(r.output.find("No space left on device") != std::string::npos);  // the sink's error, reported once
}

TEST_CASE("SIGTERM mid-run: the run stops, every event emitted is in the file, hub_stats last, within 5 s") {
  const char* bin = std::getenv("PPO_LSTM_BIN");
  REQUIRE(bin != nullptr);
  const fs::path d = scratch("sigterm");
  const fs::path events = d / "events.jsonl", out = d / "out.txt";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(bin, bin, "--updates", "100000", "--level", "DEBUG", "--events", events.c_str(), "--quiet",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Mid-run: once the file has a good number of lines.
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    started = fs::exists(events) && lines_of(read_file(events)).size() >= 50;
  }
  CHECK(started);
  REQUIRE(::kill(child, SIGTERM) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("SIGTERM to exit: " << seconds << " s");
  CHECK(seconds < 5.0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 128 + SIGTERM);
  const std::string said = read_file(out);
  CHECK(said.find("interrupted by SIGTERM") != std::string::npos);
  const std::vector<std::string> lines = lines_of(read_file(events));
  REQUIRE(lines.size() >= 51);
  std::size_t parsed = 0;
  for (const auto& l : lines) parsed += nlohmann::json::accept(l);
  CHECK(parsed == lines.size());  // every line parses
  const nlohmann::json last = nlohmann::json::parse(lines.back());
  CHECK(last["event"] == "hub_stats");
  // Consistent with the file: every event emitted is a line before hub_stats.
  CHECK(last["written"].get<std::size_t>() == lines.size() - 1);
  CHECK(last["emitted"].get<std::size_t>() == lines.size() - 1);
  CHECK(last["delivered"] == last["emitted"]);
  CHECK(last["dropped"] == 0);
  CHECK(last["failed"] == 0);
  CHECK(last["undelivered"] == 0);
  fs::remove_all(d.parent_path());
}

TEST_CASE("an allocation that fails is one line, without LibTorch's backtrace; exit 1") {
  const char* bin = std::getenv("PPO_LSTM_BIN");
  REQUIRE(bin != nullptr);
  // Within --max-memory-gib, but the first rollout buffer (4 GiB) is over a 3 GB address-space limit.
  const std::string cmd = std::string("ulimit -v 3000000; ") + bin +
                          " --envs 4096 --rollout 65536 --seq-len 1024 --hidden 8 --max-memory-gib 100000"
                          " --updates 1 --quiet 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  INFO(out);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(lines_of(out).size() == 1);
  CHECK(out.find("failed: LibTorch:") != std::string::npos);
  CHECK(out.find("allocate") != std::string::npos);
  CHECK(out.find("frame #") == std::string::npos);
  CHECK(out.find("Exception raised from") == std::string::npos);
}

namespace {

// The pid of the process whose command line holds every one of `parts` (as
// whole arguments), or -1.
pid_t find_process(const std::vector<std::string>& parts) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_file(entry.path() / "cmdline");
    std::vector<std::string> args;
    for (std::size_t at = 0; at < cmdline.size();) {
      const std::size_t end = cmdline.find('\0', at);
      args.push_back(cmdline.substr(at, end == std::string::npos ? std::string::npos : end - at));
      if (end == std::string::npos) break;
      at = end + 1;
    }
    bool all = true;
    for (const auto& p : parts) all = all && std::find(args.begin(), args.end(), p) != args.end();
    if (all) return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

}  // namespace

TEST_CASE("--ranks 2: a killed rank, or a hung one, fails the job with a clear error within 30 s; no hang") {
  const char* bin = std::getenv("PPO_LSTM_BIN");
  REQUIRE(bin != nullptr);
  for (const bool hang : {false, true}) {
    INFO(std::string(hang ? "rank 1 stopped (SIGSTOP)" : "rank 1 killed (SIGKILL)"));
    const fs::path d = scratch(hang ? "rank_hung" : "rank_killed");
    const fs::path events = d / "events.jsonl", out = d / "out.txt";
    const pid_t launcher = ::fork();
    REQUIRE(launcher >= 0);
    if (launcher == 0) {
      const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(bin, bin, "--ranks", "2", "--updates", "100000", "--envs", "2", "--rollout", "16", "--seq-len", "8",
              "--events", events.c_str(), "--rank-timeout", "3", "--quiet", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Mid-run: once rank 1 has written a few updates' events.
    const fs::path rank1_events = d / "events.rank1.jsonl";
    bool started = false;
    for (int i = 0; i < 600 && !started; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      started = fs::exists(rank1_events) && lines_of(read_file(rank1_events)).size() >= 20;
    }
    CHECK(started);
    const pid_t rank1 = find_process({events.string(), "--rank", "1", "--master-port"});
    REQUIRE(rank1 > 0);
    REQUIRE(::kill(rank1, hang ? SIGSTOP : SIGKILL) == 0);
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    bool ended = false;
    double seconds = 0;
    while (!ended && seconds < 60) {
      ended = ::waitpid(launcher, &status, WNOHANG) == launcher;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!ended) {  // do not leave the job behind
      ::kill(rank1, SIGKILL);
      ::kill(launcher, SIGKILL);
      ::waitpid(launcher, &status, 0);
    }
    REQUIRE(ended);
    MESSAGE(std::string(hang ? "hung" : "killed") << " rank 1 to the job's exit: " << seconds << " s");
    CHECK(seconds < 30.0);  // the goal: a dead rank reported within 30 s
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    const std::string said = read_file(out);
    INFO(said);
    // Rank 0 names what failed; the launcher names the rank.
    CHECK(said.find("the gradient all-reduce of rank 0 of 2 failed (a rank stopped or timed out)") !=
          std::string::npos);
    CHECK(said.find("rank 0 failed (exit code 1)") != std::string::npos);
    CHECK(said.find(hang ? "rank 1 did not stop" : "rank 1 was killed by signal 9") != std::string::npos);
    CHECK(find_process({events.string(), "--master-port"}) == -1);  // no rank left behind
    // Rank 0's events up to the failure are in its file, closed by hub_stats.
    const std::vector<std::string> lines = lines_of(read_file(d / "events.rank0.jsonl"));
    REQUIRE(!lines.empty());
    CHECK(nlohmann::json::parse(lines.back())["event"] == "hub_stats");
    fs::remove_all(d.parent_path());
  }
}

TEST_CASE("data-parallel command line: bad values exit 2 naming the option") {
  struct bad {
    const char* args;
    const char* says;
  };
  for (const bad& b : {bad{"--ranks 0", "--ranks"}, bad{"--ranks 65", "--ranks"},
                       bad{"--ranks 2 --fault-rank 2", "--fault-rank: 2 is not below --ranks 2"},
                       bad{"--rank 1 --master-port 5000", "only with --ranks"},
                       bad{"--ranks 2 --rank 1", "--rank: needs --master-port"},
                       bad{"--ranks 2 --events-ranks all", "--events-ranks: unknown value 'all'"},
                       bad{"--ranks 2 --rank-timeout 0", "--rank-timeout"}}) {
    INFO("args: " << std::string(b.args));
    const result r = run_cli(b.args);
    INFO(r.output);
    CHECK(r.code == 2);
    CHECK(r.output.find(b.says) != std::string::npos);
  }
}
