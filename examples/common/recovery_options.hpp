// The example trainers' recovery and resume options (docs/trainer.md,
// "Recovery and resume"): --recover with --recover-every, --recover-keep and
// --recover-dir (a simic::recovery guard around the session's step), and
// --checkpoint-every, --checkpoint and --resume (whole-run checkpoints). No
// LibTorch here: the command line is parsed and checked without it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cli_numbers.hpp"
#include "simic/core/error.hpp"

namespace examples_common {

// simic's defaults (simic::defaults in simic/recovery.hpp; the trainers
// static_assert that these match).
inline constexpr std::uint32_t default_recover_every = 100;  // snapshot_every: healthy checks between snapshots
inline constexpr std::uint32_t default_recover_keep = 2;     // snapshots_kept
inline constexpr std::uint32_t recover_skips = 3;            // skips_before_rollback
inline constexpr std::uint32_t max_recover_keep = 1000;
inline constexpr std::uint64_t max_every = 100'000'000;

// The options that define a run, as (option, value) in a fixed order: a
// resumed run must have the same (its output options may differ).
using run_definition = std::vector<std::pair<std::string, std::string>>;

struct recovery_settings {
  bool recover = false;                        // --recover: the guard wraps the session's step
  std::uint32_t every = default_recover_every; // --recover-every: healthy checks between snapshots
  std::uint32_t keep = default_recover_keep;   // --recover-keep: snapshots kept (in memory; and files)
  std::string dir;                             // --recover-dir: snapshots also as files here ("" : memory only)
  std::uint64_t checkpoint_every = 0;          // --checkpoint-every: steps/updates between checkpoints (0: none)
  std::string checkpoint_path;                 // --checkpoint ("" : <events>.ckpt)
  std::string resume_path;                     // --resume ("" : a new run)

  // The checkpoint file: --checkpoint, else the events file's path + ".ckpt"
  // ("" when neither is set).
  std::string checkpoint_file(const std::string& events_path) const {
    if (!checkpoint_path.empty()) return checkpoint_path;
    return events_path.empty() ? std::string() : events_path + ".ckpt";
  }

  // Its part of a run's definition: whether the guard runs, and how.
  void define(run_definition& d) const {
    d.emplace_back("--recover", recover ? "on" : "off");
    if (recover) {
      d.emplace_back("--recover-every", std::to_string(every));
      d.emplace_back("--recover-keep", std::to_string(keep));
    }
  }

  // The checks of run_options::validate(): std::invalid_argument naming the
  // field (as `where`.field) and its valid range. `max_skips`: the run's
  // consecutive skips before its stop.
  void validate(const char* where, const std::string& events_path, std::uint32_t max_skips) const {
    simic::require_argument(every >= 1 && every <= max_every, where, "recovery.every", every, "[1, 100000000]");
    simic::require_argument(keep >= 1 && keep <= max_recover_keep, where, "recovery.keep", keep, "[1, 1000]");
    simic::require_argument(checkpoint_every <= max_every, where, "recovery.checkpoint_every", checkpoint_every,
                            "0 (none) or [1, 100000000]");
    simic::require_argument(checkpoint_every == 0 || !checkpoint_file(events_path).empty(), where,
                            "recovery.checkpoint_path", "empty", "a path (or an events path beside which it goes)");
    if (recover)
      simic::require_argument(max_skips > recover_skips, where, "max_skips", max_skips,
                              "> 3 with recover (the rollback comes at 3 consecutive skips, before the stop)");
  }
};

// Which of the options the command line gave (for the checks between them).
struct recovery_cli_seen {
  bool every = false, keep = false, dir = false, checkpoint = false;
};

// If args[i] is one of the options above, takes it (and its value: i moves
// on) into `r` and returns true. Bad values: std::invalid_argument naming the
// option and the valid range (a usage error).
inline bool parse_recovery_option(const std::vector<std::string>& args, std::size_t& i, recovery_settings& r,
                                  recovery_cli_seen& seen) {
  const std::string& a = args[i];
  auto value = [&]() -> const std::string& {
    if (i + 1 >= args.size()) fail(a + ": missing value");
    return args[++i];
  };
  auto path = [&]() {
    const std::string& v = value();
    if (v.empty()) fail(a + ": the path is empty");
    return v;
  };
  if (a == "--recover") {
    r.recover = true;
  } else if (a == "--recover-every") {
    r.every = static_cast<std::uint32_t>(parse_u64(value(), a, 1, max_every));
    seen.every = true;
  } else if (a == "--recover-keep") {
    r.keep = static_cast<std::uint32_t>(parse_u64(value(), a, 1, max_recover_keep));
    seen.keep = true;
  } else if (a == "--recover-dir") {
    r.dir = path();
    seen.dir = true;
  } else if (a == "--checkpoint-every") {
    r.checkpoint_every = parse_u64(value(), a, 1, max_every);
  } else if (a == "--checkpoint") {
    r.checkpoint_path = path();
    seen.checkpoint = true;
  } else if (a == "--resume") {
    r.resume_path = path();
  } else {
    return false;
  }
  return true;
}

// The checks between the options, after the whole command line was read:
// "--recover-every: needs --recover", "--checkpoint: needs
// --checkpoint-every N", "--checkpoint-every: needs --checkpoint PATH or
// --events PATH", "--max-skips: ...". `max_skips`: the run's (effective).
inline void check_recovery_cli(const recovery_settings& r, const recovery_cli_seen& seen,
                               const std::string& events_path, std::uint32_t max_skips) {
  if (!r.recover) {
    if (seen.every) fail("--recover-every: needs --recover");
    if (seen.keep) fail("--recover-keep: needs --recover");
    if (seen.dir) fail("--recover-dir: needs --recover");
  }
  if (seen.checkpoint && r.checkpoint_every == 0) fail("--checkpoint: needs --checkpoint-every N");
  if (r.checkpoint_every != 0 && r.checkpoint_file(events_path).empty())
    fail("--checkpoint-every: needs --checkpoint PATH, or --events PATH (the checkpoint is then PATH.ckpt)");
  if (r.recover && max_skips <= recover_skips)
    fail("--max-skips: " + std::to_string(max_skips) +
         " with --recover; it must be at least 4 (a rollback comes at 3 consecutive skipped steps, before the stop)");
}

// The options' lines of the usage text; `unit`: "steps" or "updates".
inline std::string recovery_usage(const std::string& unit) {
  return R"(recovery and resume (docs/trainer.md):
  --recover          guard each step with simic::recovery: snapshots of the
                     last good state, a rollback (learning rate x0.5) on
                     non-finite weights, 3 skipped steps in a row or a divergence
  --recover-every N  healthy checks between snapshots (default 100; needs --recover)
  --recover-keep K   snapshots kept, 1..1000 (default 2; needs --recover)
  --recover-dir DIR  also write each snapshot to DIR (the last K files)
  --checkpoint-every N  write a whole-run checkpoint every N )" +
         unit + R"( (atomically)
  --checkpoint PATH  the checkpoint file (default: the --events path + ".ckpt")
  --resume PATH      continue the run a checkpoint was written by (same options;
                     the events go to this run's --events file, which must not
                     be the file of the run that wrote the checkpoint)
)";
}

}  // namespace examples_common
