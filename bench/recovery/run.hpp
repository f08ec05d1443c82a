// bench/recovery: one training run as the matrix sees it (what to run, what
// came of it), and how the matrix runs them: each in a forked worker of its
// own (bench/common/forked_pool.hpp), its result sent back as JSON.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/forked_pool.hpp"

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
  double metric = 0.0;              // the task metric at the end (char_lm: validation loss; PPO: greedy return)
  std::vector<double> curve;        // the metric along the run (char_lm: each evaluation; PPO: each update's mean return)
  // A second measure shown beside the metric (PPO: training's mean return
  // over the last updates; char_lm: none, NaN).
  double training_metric = std::numeric_limits<double>::quiet_NaN();
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
  j["training_metric"] = r.training_metric;
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
  r.training_metric = number(j["training_metric"]);
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

// Runs every spec in a forked worker of its own, up to `jobs` at once;
// `label` names a spec in the progress lines on stderr.
inline std::vector<run_result> run_all(const std::vector<run_spec>& specs, int jobs,
                                       const std::function<run_result(const run_spec&)>& run,
                                       const std::function<std::string(const run_spec&)>& label) {
  return bench::run_forked<run_result>(
      specs.size(), jobs, [&](std::size_t i) { return run(specs[i]); }, serialize, deserialize,
      [&](std::size_t i, std::size_t done, const run_result& r) {
        std::fprintf(stderr, "[%zu/%zu] %s: %.1f s, metric %.4g, %llu rollbacks, %llu skips%s%s%s\n", done,
                     specs.size(), label(specs[i]).c_str(), r.seconds, r.metric,
                     static_cast<unsigned long long>(r.rollbacks), static_cast<unsigned long long>(r.skips),
                     r.stopped ? ", stopped" : "", r.error.empty() ? "" : " ERROR: ", r.error.c_str());
      });
}

}  // namespace recovery_bench
