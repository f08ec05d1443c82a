// bench/recovery: one training run as the matrix sees it (what to run, what
// came of it), and the forked worker pool that runs them (LibTorch's seed
// and thread settings are process-wide, so each run has a process of its own).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recovery_bench {

// One run: a trainer's seed, healthy (fault -1) or with one of its faults,
// with the guard (--recover) or without.
struct run_spec {
  int fault = -1;
  std::uint64_t seed = 1;
  bool recover = false;
};

struct run_result {
  std::string error;                // "" : it ran
  double metric = 0.0;              // the task metric at the end (char_lm: validation loss; PPO: mean return)
  std::vector<double> curve;        // the metric along the run (char_lm: each evaluation; PPO: each update)
  std::uint64_t digest = 0;         // the final weights' FNV-1a 64
  std::uint64_t done = 0;           // steps (char_lm) or updates (PPO) done
  bool stopped = false;
  std::string stop_reason;
  std::uint64_t skips = 0;          // optimizer steps skipped
  std::uint64_t rollbacks = 0;
  std::string rollback_list;        // "at:cause:restored" for each rollback
  double lr_scale = 1.0;            // the guard's at the end
  double seconds = 0.0;             // the run's training time
  double snapshot_seconds = 0.0;    // the guard's time in snapshots
  std::uint64_t snapshot_bytes = 0; // the most snapshot bytes held at once
  std::uint64_t snapshots_held = 0;
  std::uint64_t parameters = 0;     // the model's parameter count
};

inline std::string serialize(const run_result& r) {
  nlohmann::json j;
  j["error"] = r.error;
  j["metric"] = r.metric;
  j["curve"] = r.curve;
  j["digest"] = r.digest;
  j["done"] = r.done;
  j["stopped"] = r.stopped;
  j["stop_reason"] = r.stop_reason;
  j["skips"] = r.skips;
  j["rollbacks"] = r.rollbacks;
  j["rollback_list"] = r.rollback_list;
  j["lr_scale"] = r.lr_scale;
  j["seconds"] = r.seconds;
  j["snapshot_seconds"] = r.snapshot_seconds;
  j["snapshot_bytes"] = r.snapshot_bytes;
  j["snapshots_held"] = r.snapshots_held;
  j["parameters"] = r.parameters;
  return j.dump();
}

// NaN and infinities travel as null (JSON has neither).
inline double number(const nlohmann::json& v) {
  return v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN();
}

inline run_result deserialize(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  run_result r;
  r.error = j["error"];
  r.metric = number(j["metric"]);
  for (const auto& x : j["curve"]) r.curve.push_back(number(x));
  r.digest = j["digest"];
  r.done = j["done"];
  r.stopped = j["stopped"];
  r.stop_reason = j["stop_reason"];
  r.skips = j["skips"];
  r.rollbacks = j["rollbacks"];
  r.rollback_list = j["rollback_list"];
  r.lr_scale = number(j["lr_scale"]);
  r.seconds = number(j["seconds"]);
  r.snapshot_seconds = number(j["snapshot_seconds"]);
  r.snapshot_bytes = j["snapshot_bytes"];
  r.snapshots_held = j["snapshots_held"];
  r.parameters = j["parameters"];
  return r;
}

// Runs every spec in up to `jobs` forked workers, each writing its result
// (a few KiB: within a pipe's buffer) to its pipe and exiting; the parent
// takes whichever finishes first. `label` names a spec in the progress lines
// on stderr.
inline std::vector<run_result> run_all(const std::vector<run_spec>& specs, int jobs,
                                       const std::function<run_result(const run_spec&)>& run,
                                       const std::function<std::string(const run_spec&)>& label) {
  struct worker {
    int fd;
    std::size_t index;
  };
  std::vector<run_result> results(specs.size());
  std::map<pid_t, worker> running;
  std::size_t next = 0, done = 0;
  while (done < specs.size()) {
    while (next < specs.size() && static_cast<int>(running.size()) < jobs) {
      int fds[2];
      if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
      std::fflush(nullptr);
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
      if (pid == 0) {
        close(fds[0]);
        std::string text;
        try {
          text = serialize(run(specs[next]));
        } catch (const std::exception& e) {
          run_result r;
          r.error = e.what();
          text = serialize(r);
        }
        std::size_t off = 0;
        while (off < text.size()) {
          const ssize_t n = write(fds[1], text.data() + off, text.size() - off);
          if (n <= 0) _exit(3);
          off += static_cast<std::size_t>(n);
        }
        close(fds[1]);
        _exit(0);
      }
      close(fds[1]);
      running[pid] = {fds[0], next};
      ++next;
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const worker w = it->second;
    running.erase(it);
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = read(w.fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    close(w.fd);
    run_result& r = results[w.index];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) {
      r.error = "worker failed (status " + std::to_string(status) + ")";
    } else {
      try {
        r = deserialize(out);
      } catch (const std::exception& e) {
        r = run_result{};
        r.error = std::string("unreadable result: ") + e.what();
      }
    }
    ++done;
    std::fprintf(stderr, "[%zu/%zu] %s: %.1f s, metric %.4g, %llu rollbacks, %llu skips%s%s%s\n", done, specs.size(),
                 label(specs[w.index]).c_str(), r.seconds, r.metric, static_cast<unsigned long long>(r.rollbacks),
                 static_cast<unsigned long long>(r.skips), r.stopped ? ", stopped" : "",
                 r.error.empty() ? "" : " ERROR: ", r.error.c_str());
  }
  return results;
}

}  // namespace recovery_bench
