#include "options.hpp"

#include <cmath>
#include <stdexcept>

#include "../common/cli_names.hpp"
#include "../common/cli_numbers.hpp"
#include "../common/text.hpp"
#include "simic/core/error.hpp"

namespace ppo_lstm {
namespace {

using examples_common::fail;
using examples_common::format;
using examples_common::join_names;
using examples_common::parse_u64;

// --lr's bound as this trainer's messages write it ("1.000000").
double parse_positive(std::string_view text, std::string_view what, double hi) {
  return examples_common::parse_positive(text, what, hi, std::to_string(hi));
}

}  // namespace

injection parse_injection(std::string_view spec) {
  const auto at = spec.find('@');
  const std::string valid = "valid kinds: " + join_names(fault_names);
  if (at == std::string_view::npos)
    fail("--inject: '" + std::string(spec) + "' is not KIND@UPDATE, KIND@FIRST-LAST or KIND@FIRST-; " + valid);
  const std::string_view name = spec.substr(0, at), when = spec.substr(at + 1);
  injection inj{};
  const auto kind = examples_common::name_index(fault_names, name);
  if (!kind) fail("--inject: unknown fault '" + std::string(name) + "'; " + valid);
  inj.kind = static_cast<fault>(*kind);
  const auto dash = when.find('-');
  constexpr std::uint64_t max_update = 100'000'000;
  if (dash == std::string_view::npos) {
    inj.first = inj.last = parse_u64(when, "--inject update", 1, max_update);
  } else {
    inj.first = parse_u64(when.substr(0, dash), "--inject first update", 1, max_update);
    inj.last = dash + 1 == when.size() ? until_end
                                       : parse_u64(when.substr(dash + 1), "--inject last update", inj.first, max_update);
  }
  return inj;
}

examples_common::run_definition run_options::definition() const {
  examples_common::run_definition d;
  auto add = [&](const char* name, const std::string& v) { d.emplace_back(name, v); };
  add("--updates", std::to_string(updates));
  add("--planned-updates", std::to_string(schedule()));
  add("--envs", std::to_string(envs));
  add("--rollout", std::to_string(rollout));
  add("--seq-len", std::to_string(seq_len));
  add("--ppo-epochs", std::to_string(ppo_epochs));
  add("--minibatches", std::to_string(minibatches));
  add("--lr", format("%.17g", lr));
  add("--hidden", std::to_string(hidden));
  add("--seed", std::to_string(seed));
  add("--detectors", std::string(detector_preset_names[static_cast<unsigned>(detectors)]));
  add("--level", std::string(simic::to_string(level)));
  add("--epoch-updates", std::to_string(epoch_updates));
  add("--escalation-epochs", std::to_string(escalation_epochs));
  add("--max-skips", std::to_string(effective_max_skips()));
  std::string faults;
  for (const injection& i : injections)
    faults += (faults.empty() ? "" : ",") + std::string(to_string(i.kind)) + "@" + std::to_string(i.first) + "-" +
              (i.last == until_end ? std::string() : std::to_string(i.last));
  add("--inject", faults.empty() ? "none" : faults);
  if (lr_spike_factor != default_lr_spike_factor) add("lr_spike_factor", format("%.17g", lr_spike_factor));
  if (lr_spike_steps != 0) add("lr_spike_steps", std::to_string(lr_spike_steps));
  recovery.define(d);
  return d;
}

double run_options::estimated_memory_bytes() const noexcept {
  // In float32 units (4 bytes); doubles: the products reach 1e13 and beyond.
  const double T = rollout, E = envs, H = hidden, L = seq_len, C = T / L, mb = minibatches;
  constexpr double obs = 4;  // CartPole's observation
  // Per environment step: obs, keep, action (int64: 2), log-prob, value,
  // reward, done, advantage, return (13); their [L, S] copies: obs, keep,
  // action, log-prob, advantage, return (10).
  const double rollout_buffers = (obs + 9 + obs + 6) * T * E;
  const double sequence_states = 2 * C * E * H;  // h0, c0 at each sequence start
  const double params = (obs * H + H) + (8 * H * H + 8 * H) + (2 * H + 2) + (H + 1);
  const double weights = 4 * params;  // weights, gradients, Adam's two moments
  // BPTT: per (step, sequence) of a minibatch about 16 H kept for backward
  // (encoding, 4 gates, their activations, c, tanh c, h, the stacked h), as
  // much again for their gradients.
  const double activations = 32 * (T * E / mb) * H;
  return 4.0 * (rollout_buffers + sequence_states + weights + activations);
}

void run_options::validate() const {
  constexpr auto where = "ppo_lstm::run_options";
  simic::require_argument(updates >= 1 && updates <= 100'000'000, where, "updates", updates, "[1, 100000000]");
  simic::require_argument(planned_updates == 0 || planned_updates >= updates, where, "planned_updates", planned_updates,
          "0 or >= updates");
  simic::require_argument(envs >= 1 && envs <= 4096, where, "envs", envs, "[1, 4096]");
  simic::require_argument(seq_len >= 1 && seq_len <= 1024, where, "seq_len", seq_len, "[1, 1024]");
  simic::require_argument(rollout >= seq_len && rollout % seq_len == 0 && rollout <= 65536, where, "rollout", rollout,
          "a multiple of seq_len, up to 65536");
  simic::require_argument(ppo_epochs >= 1 && ppo_epochs <= 100, where, "ppo_epochs", ppo_epochs, "[1, 100]");
  simic::require_argument(minibatches >= 1 && minibatches <= envs * (rollout / seq_len), where, "minibatches", minibatches,
          "[1, envs * rollout / seq_len]");
  simic::require_argument(std::isfinite(lr) && lr > 0.0 && lr <= 1.0, where, "lr", lr, "(0, 1]");
  simic::require_argument(hidden >= 1 && hidden <= 4096, where, "hidden", hidden, "[1, 4096]");
  simic::require_argument(threads >= 1 && threads <= 256, where, "threads", threads, "[1, 256]");
  simic::require_argument(static_cast<unsigned>(level) <= 3u, where, "level", static_cast<unsigned>(level),
          "OFF, MINIMAL, NORMAL or DEBUG");
  simic::require_argument(epoch_updates >= 1, where, "epoch_updates", epoch_updates, ">= 1");
  simic::require_argument(static_cast<unsigned>(detectors) <= 1u, where, "detectors", static_cast<unsigned>(detectors),
          "simic or reference");
  simic::require_argument(std::isfinite(lr_spike_factor) && lr_spike_factor > 0.0, where, "lr_spike_factor",
                          lr_spike_factor, "> 0 (finite)");
  simic::require_argument(lr_spike_steps >= 0 && lr_spike_steps <= steps_per_update(), where, "lr_spike_steps",
                          lr_spike_steps, "[0, ppo_epochs * minibatches]");
  for (const auto& inj : injections) {
    simic::require_argument(inj.first >= 1 && inj.first <= updates, where, "injection first update", inj.first, "[1, updates]");
    simic::require_argument(inj.last >= inj.first, where, "injection last update", inj.last, ">= first update");
  }
  const data_parallel_options& dp = parallel;
  simic::require_argument(dp.ranks >= 1 && dp.ranks <= max_ranks, where, "ranks", dp.ranks, "[1, 64]");
  simic::require_argument(dp.rank >= 0 && dp.rank < dp.ranks, where, "rank", dp.rank, "[0, ranks - 1]");
  simic::require_argument(dp.fault_rank >= -1 && dp.fault_rank < dp.ranks, where, "fault_rank", dp.fault_rank,
          "-1 (every rank) or [0, ranks - 1]");
  simic::require_argument(dp.timeout_s >= 1 && dp.timeout_s <= 3600, where, "timeout_s", dp.timeout_s, "[1, 3600]");
  simic::require_argument(static_cast<unsigned>(dp.events) <= 1u, where, "events_ranks", static_cast<unsigned>(dp.events),
          "every or rank0");
  simic::require_argument(eval_episodes >= 0 && eval_episodes <= 4096, where, "eval_episodes", eval_episodes,
                          "[0, 4096]");
  simic::require_argument(memory_budget >= 1, where, "memory_budget", memory_budget, ">= 1 byte");
  recovery.validate(where, events_path, effective_max_skips());
  const bool continuity = recovery.recover || recovery.checkpoint_every != 0 || !recovery.resume_path.empty();
  simic::require_argument(!continuity || dp.ranks == 1, where, "ranks", dp.ranks,
                          "1 with recovery, checkpoints or resume (a data-parallel job has neither)");
  const double need = estimated_memory_bytes();
  if (need > static_cast<double>(memory_budget))
    throw std::invalid_argument(format(
        "--envs %d --rollout %d --hidden %d --seq-len %d --minibatches %d need an estimated %.3g GiB "
        "(%.0f bytes), over the limit of %.3g GiB (--max-memory-gib); use fewer environments, a shorter "
        "rollout, a narrower LSTM or more minibatches",
        envs, rollout, hidden, seq_len, minibatches, need / static_cast<double>(gib), need,
        static_cast<double>(memory_budget) / static_cast<double>(gib)));
}

namespace {
// PATH.rank<R>.EXT ("events.jsonl" -> "events.rank1.jsonl").
std::string with_rank(const std::string& path, int rank) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  const std::string tag = ".rank" + std::to_string(rank);
  return has_ext ? path.substr(0, dot) + tag + path.substr(dot) : path + tag;
}
}  // namespace

std::string run_options::rank_events_path() const {
  if (events_path.empty() || parallel.ranks == 1) return events_path;
  if (parallel.events == events_ranks::rank0) return parallel.rank == 0 ? events_path : "";
  return with_rank(events_path, parallel.rank);
}

std::string run_options::rank_tensorboard_dir() const {
  // Every rank's file goes in the directory (each names its process); with
  // rank0, only rank 0 writes one.
  if (parallel.ranks > 1 && parallel.events == events_ranks::rank0 && parallel.rank != 0) return "";
  return tensorboard_dir;
}

std::string usage(std::string_view program) {
  std::string u = "usage: " + std::string(program) + R"( [options]
PPO with an LSTM policy on CartPole, monitored by simic.
  --updates N        PPO updates (default 200)
  --envs N           parallel environments (default 8)
  --seed S           random seed (default 1)
  --events PATH      write every telemetry event as JSON lines to PATH
  --level LEVEL      OFF, MINIMAL, NORMAL or DEBUG (default NORMAL)
  --detectors NAME   simic (default: noise-grounded, onset and clear) or
                     reference (the reference telemetry's thresholds, every check)
  --tensorboard DIR  write the events' scalars as a TensorBoard event file in DIR
  --profile DIR      write profiler traces and phase timings under DIR
  --inject KIND@U    inject a fault at update U (also KIND@U-V, KIND@U-); repeatable
                     kinds: )";
  u += join_names(fault_names);
  u += R"(
  --planned-updates N  measure progress against a schedule of N updates
                     (default --updates; N >= --updates runs its first part)
  --epoch-updates N  updates per telemetry epoch (default 1)
  --escalation-epochs N  epochs at DEBUG after an anomaly (default 5)
  --max-skips N      consecutive skipped optimizer steps before stopping
                     (default: two updates' worth, 2 * ppo-epochs * minibatches)
  --rollout N        steps per environment per update (default 128)
  --seq-len N        BPTT sequence length; divides --rollout (default 16)
  --ppo-epochs N     passes over each rollout (default 4)
  --minibatches N    minibatches per pass (default 2)
  --lr X             Adam learning rate (default 0.001)
  --hidden N         LSTM width (default 64)
  --threads N        LibTorch intra-op threads (default 1)
  --evaluate N       at the end, play N episodes greedily with the final policy
                     and print their mean return (1..4096; default: none)
  --max-memory-gib N refuse options whose estimated memory exceeds N GiB (default 8)
data-parallel (docs/trainer.md):
  --ranks N          train as N processes on 127.0.0.1 (1..64; default 1): this
                     process launches them and waits; each has its own
                     environments (seed + rank) and the same initial weights;
                     gradients are averaged over the ranks; simic decides once
                     for the job (skips, escalations and the stop are agreed)
  --fault-rank R     --inject on rank R only (default: every rank)
  --events-ranks W   every (default: each rank writes PATH.rank<R>.EXT and its
                     own TensorBoard file) or rank0 (rank 0 alone: the job's
                     anomalies, naming the ranks they came from)
  --rank-timeout S   seconds after which a rank that stopped answering fails
                     the others (1..3600; default 20)
  --rank R --master-port P  set by the launcher: this process is rank R of a
                     job whose rank 0 serves a TCPStore on 127.0.0.1:P
  --quiet            no per-update progress lines
  --help             this text
)";
  u += examples_common::recovery_usage("updates");
  u += R"(Exit codes: 0 done, 2 bad command line (also: an unwritable --events,
--tensorboard, --profile or --checkpoint path, options over the memory limit,
a --resume file that is missing, damaged or of another run), 3 stopped
by the monitor, 4 events lost (dropped, failed or undelivered), 128+N stopped by signal N
(SIGTERM, SIGINT: events flushed first), 1 any other failure. A data-parallel
launcher exits 1 if a rank failed, else the ranks' code (they stop together).
)";
  return u;
}

parsed_command_line parse_command_line(const std::vector<std::string>& args) {
  parsed_command_line out;
  run_options& o = out.options;
  examples_common::recovery_cli_seen seen;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (examples_common::parse_recovery_option(args, i, o.recovery, seen)) continue;
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) fail(a + ": missing value");
      return args[++i];
    };
    auto int_in = [&](std::uint64_t lo, std::uint64_t hi) { return parse_u64(value(), a, lo, hi); };
    if (a == "--help" || a == "-h") {
      out.help = true;
    } else if (a == "--quiet") {
      o.progress_lines = false;
    } else if (a == "--updates") {
      o.updates = int_in(1, 100'000'000);
    } else if (a == "--planned-updates") {
      o.planned_updates = int_in(1, 100'000'000);
    } else if (a == "--envs") {
      o.envs = static_cast<int>(int_in(1, 4096));
    } else if (a == "--seed") {
      o.seed = int_in(0, ~std::uint64_t{0});
    } else if (a == "--events") {
      o.events_path = value();
      if (o.events_path.empty()) fail("--events: the path is empty");
    } else if (a == "--tensorboard") {
      o.tensorboard_dir = value();
      if (o.tensorboard_dir.empty()) fail("--tensorboard: the directory is empty");
    } else if (a == "--profile") {
      o.profile_dir = value();
      if (o.profile_dir.empty()) fail("--profile: the directory is empty");
    } else if (a == "--level") {
      o.level = examples_common::parse_level_option(value());
    } else if (a == "--detectors") {
      o.detectors = examples_common::parse_preset<detector_preset>(a, value(), detector_preset_names);
    } else if (a == "--inject") {
      o.injections.push_back(parse_injection(value()));
    } else if (a == "--epoch-updates") {
      o.epoch_updates = static_cast<std::uint32_t>(int_in(1, 1'000'000));
    } else if (a == "--escalation-epochs") {
      o.escalation_epochs = static_cast<std::uint32_t>(int_in(0, 1'000'000));
    } else if (a == "--max-skips") {
      o.max_skips = static_cast<std::uint32_t>(int_in(1, 1'000'000));
    } else if (a == "--rollout") {
      o.rollout = static_cast<int>(int_in(1, 65536));
    } else if (a == "--seq-len") {
      o.seq_len = static_cast<int>(int_in(1, 1024));
    } else if (a == "--ppo-epochs") {
      o.ppo_epochs = static_cast<int>(int_in(1, 100));
    } else if (a == "--minibatches") {
      o.minibatches = static_cast<int>(int_in(1, 65536));
    } else if (a == "--lr") {
      o.lr = parse_positive(value(), a, 1.0);
    } else if (a == "--hidden") {
      o.hidden = static_cast<int>(int_in(1, 4096));
    } else if (a == "--threads") {
      o.threads = static_cast<int>(int_in(1, 256));
    } else if (a == "--evaluate") {
      o.eval_episodes = static_cast<int>(int_in(1, 4096));
    } else if (a == "--ranks") {
      o.parallel.ranks = static_cast<int>(int_in(1, max_ranks));
    } else if (a == "--rank") {
      o.parallel.rank = static_cast<int>(int_in(0, max_ranks - 1));
    } else if (a == "--master-port") {
      o.parallel.master_port = static_cast<std::uint16_t>(int_in(1, 65535));
    } else if (a == "--fault-rank") {
      o.parallel.fault_rank = static_cast<int>(int_in(0, max_ranks - 1));
    } else if (a == "--rank-timeout") {
      o.parallel.timeout_s = static_cast<std::uint32_t>(int_in(1, 3600));
    } else if (a == "--events-ranks") {
      const std::string& v = value();
      if (v == "every") o.parallel.events = events_ranks::every;
      else if (v == "rank0") o.parallel.events = events_ranks::rank0;
      else fail("--events-ranks: unknown value '" + v + "'; valid: " + join_names(events_ranks_names));
    } else if (a == "--max-memory-gib") {
      o.memory_budget = int_in(1, 1'048'576) * gib;
    } else {
      fail("unknown option '" + a + "' (see --help)");
    }
  }
  if (!out.help) {
    const data_parallel_options& dp = o.parallel;
    if ((dp.rank != 0 || dp.master_port != 0) && dp.ranks == 1)
      fail("--rank and --master-port: only with --ranks N > 1 (set by the launcher)");
    if (dp.rank >= dp.ranks) fail("--rank: " + std::to_string(dp.rank) + " is not below --ranks " + std::to_string(dp.ranks));
    if (dp.fault_rank >= dp.ranks)
      fail("--fault-rank: " + std::to_string(dp.fault_rank) + " is not below --ranks " + std::to_string(dp.ranks));
    if (dp.rank != 0 && dp.master_port == 0) fail("--rank: needs --master-port (set by the launcher)");
    if (dp.ranks > 1) {
      if (o.recovery.recover) fail("--recover: not with --ranks (a rollback is not agreed between the ranks)");
      if (o.recovery.checkpoint_every != 0) fail("--checkpoint-every: not with --ranks (one process's checkpoint)");
      if (!o.recovery.resume_path.empty()) fail("--resume: not with --ranks (one process's checkpoint)");
    }
    examples_common::check_recovery_cli(o.recovery, seen, o.events_path, o.effective_max_skips());
    o.validate();
  }
  return out;
}

}  // namespace ppo_lstm
