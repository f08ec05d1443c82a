#include "options.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "../common/cli_names.hpp"
#include "../common/cli_numbers.hpp"
#include "../common/text.hpp"
#include "simic/core/error.hpp"

namespace char_lm {
namespace {

using examples_common::fail;
using examples_common::format;
using examples_common::join_names;
using examples_common::parse_u64;

constexpr std::uint64_t max_steps = 100'000'000;

// --lr's bound as this trainer's messages write it ("1").
double parse_positive(std::string_view text, std::string_view what, double hi) {
  return examples_common::parse_positive(text, what, hi, format("%g", hi));
}

}  // namespace

injection parse_injection(std::string_view spec) {
  const auto at = spec.find('@');
  const std::string_view name = spec.substr(0, at);
  injection inj{};
  const auto kind = examples_common::name_index(fault_names, name);
  if (!kind) fail("--inject: unknown fault '" + std::string(name) + "'; valid kinds: " + join_names(fault_names));
  inj.kind = static_cast<fault>(*kind);
  if (at == std::string_view::npos) return inj;
  const std::string_view when = spec.substr(at + 1);
  const auto dash = when.find('-');
  inj.at = parse_u64(when.substr(0, dash), "--inject step", 1, max_steps);
  if (dash != std::string_view::npos)
    inj.last = parse_u64(when.substr(dash + 1), "--inject last step", inj.at, max_steps);
  return inj;
}

std::uint64_t run_options::effective_warmup() const noexcept {
  return warmup != 0 ? warmup : std::min<std::uint64_t>(200, steps / 10);
}

examples_common::run_definition run_options::definition(std::uint64_t train_bytes, std::uint64_t valid_bytes) const {
  examples_common::run_definition d;
  auto add = [&](const char* name, const std::string& v) { d.emplace_back(name, v); };
  add("--layers", std::to_string(layers));
  add("--d-model", std::to_string(d_model));
  add("--heads", std::to_string(heads));
  add("--context", std::to_string(context));
  add("--steps", std::to_string(steps));
  add("--batch", std::to_string(batch));
  add("--lr", format("%.17g", lr));
  add("min_lr_ratio", format("%.17g", min_lr_ratio));
  add("--warmup", std::to_string(effective_warmup()));
  add("clip", format("%.17g", clip));
  add("--eval-every", std::to_string(eval_every));
  add("--eval-batches", std::to_string(eval_batches));
  add("--seed", std::to_string(seed));
  add("--data", format("%llu training and %llu validation bytes", static_cast<unsigned long long>(train_bytes),
                       static_cast<unsigned long long>(valid_bytes)));
  add("--preset", std::string(detector_preset_names[static_cast<unsigned>(preset)]));
  add("--level", std::string(simic::to_string(level)));
  add("--escalation-epochs", std::to_string(escalation_epochs));
  add("--max-skips", std::to_string(max_skips));
  std::string faults;
  for (const injection& i : injections)
    faults += (faults.empty() ? "" : ",") + std::string(to_string(i.kind)) + "@" + std::to_string(injection_step(i)) +
              (i.last != 0 ? "-" + std::to_string(i.last) : std::string());
  add("--inject", faults.empty() ? "none" : faults);
  if (lr_spike_factor != default_lr_spike_factor) add("lr_spike_factor", format("%.17g", lr_spike_factor));
  recovery.define(d);
  return d;
}

std::uint64_t run_options::injection_step(const injection& i) const noexcept {
  if (i.at != 0) return i.at;
  if (inject_at != 0) return inject_at;
  return std::max<std::uint64_t>(1, steps / 2);
}

std::uint64_t run_options::injection_last(const injection& i) const noexcept {
  if (i.last != 0) return i.last;
  return lasts(i.kind) ? std::max(steps, injection_step(i)) : injection_step(i);
}

double scheduled_lr(const run_options& o, std::uint64_t step) noexcept {
  const auto w = o.effective_warmup();
  if (step <= w) return o.lr * static_cast<double>(step) / static_cast<double>(w);
  const double lo = o.lr * o.min_lr_ratio;
  const double p = static_cast<double>(step - w) / static_cast<double>(o.steps - w);
  return lo + (o.lr - lo) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
}

void run_options::validate() const {
  constexpr auto where = "char_lm::run_options";
  simic::require_argument(layers >= 2 && layers <= 4, where, "layers", layers, "[2, 4]");
  simic::require_argument(d_model >= 8 && d_model <= 1024, where, "d_model", d_model, "[8, 1024]");
  simic::require_argument(heads >= 1 && heads <= 64 && d_model % heads == 0, where, "heads", heads,
                          "[1, 64], dividing d_model");
  simic::require_argument(context >= 2 && context <= 1024, where, "context", context, "[2, 1024]");
  simic::require_argument(steps >= 1 && steps <= max_steps, where, "steps", steps, "[1, 100000000]");
  simic::require_argument(batch >= 1 && batch <= 4096, where, "batch", batch, "[1, 4096]");
  simic::require_argument(std::isfinite(lr) && lr > 0.0 && lr <= 1.0, where, "lr", lr, "(0, 1]");
  simic::require_argument(std::isfinite(min_lr_ratio) && min_lr_ratio >= 0.0 && min_lr_ratio <= 1.0, where,
                          "min_lr_ratio", min_lr_ratio, "[0, 1]");
  simic::require_argument(effective_warmup() <= steps, where, "warmup", warmup, "<= steps");
  simic::require_argument(std::isfinite(clip) && clip > 0.0, where, "clip", clip, "> 0");
  simic::require_argument(eval_every >= 1, where, "eval_every", eval_every, ">= 1");
  simic::require_argument(eval_batches >= 1 && eval_batches <= 10000, where, "eval_batches", eval_batches,
                          "[1, 10000]");
  simic::require_argument(threads >= 1 && threads <= 256, where, "threads", threads, "[1, 256]");
  simic::require_argument(static_cast<unsigned>(level) <= 3u, where, "level", static_cast<unsigned>(level),
                          "OFF, MINIMAL, NORMAL or DEBUG");
  simic::require_argument(static_cast<unsigned>(preset) <= 1u, where, "preset", static_cast<unsigned>(preset),
                          "simic or reference");
  simic::require_argument(max_skips >= 1, where, "max_skips", max_skips, ">= 1");
  simic::require_argument(inject_at <= steps, where, "inject_at", inject_at, "[1, steps]");
  simic::require_argument(std::isfinite(lr_spike_factor) && lr_spike_factor > 0.0, where, "lr_spike_factor",
                          lr_spike_factor, "> 0 (finite)");
  for (const auto& inj : injections) {
    simic::require_argument(injection_step(inj) >= 1 && injection_step(inj) <= steps, where, "injection step",
                            injection_step(inj), "[1, steps]");
    simic::require_argument(inj.last == 0 || inj.last >= injection_step(inj), where, "injection last step", inj.last,
                            "0 (the kind's own) or >= the injection step");
  }
  recovery.validate(where, events_path, max_skips);
}

std::string usage(std::string_view program) {
  std::string u = "usage: " + std::string(program) + R"( [options]
A byte-level transformer language model trained on the fortune files of the
Debian package `fortunes`, monitored by simic.
  --steps N          optimizer steps (default 3000)
  --seed S           random seed (default 1)
  --events PATH      write every telemetry event as JSON lines to PATH
  --tensorboard DIR  write the events' scalars as a TensorBoard event file in DIR
  --level LEVEL      OFF, MINIMAL, NORMAL or DEBUG (default NORMAL)
  --preset NAME      simic (default: simic::supervised_monitor) or
                     reference (the reference telemetry's thresholds, every check)
  --inject KIND[@S]  inject a fault at step S (default --inject-at); repeatable;
                     KIND@S-L: at steps S through L
                     kinds: )";
  u += join_names(fault_names);
  u += R"(
                     (lr-spike, lr-ramp, lr-collapse, label-shuffle last to the end)
  --inject-at S      the step of an --inject without @S (default: half way)
  --layers N         transformer blocks, 2..4 (default 2)
  --d-model N        model width (default 64)
  --heads N          attention heads, dividing --d-model (default 4)
  --context N        tokens per sequence (default 64)
  --batch N          sequences per step (default 32)
  --lr X             peak Adam learning rate (default 0.002)
  --warmup N         linear warm-up steps (default min(200, steps / 10)), then
                     cosine decay to lr / 10 at the last step
  --eval-every N     steps per epoch: validation loss, end of epoch (default 250)
  --eval-batches N   validation batches per evaluation (default 8)
  --escalation-epochs N  epochs at DEBUG after an anomaly (default 2)
  --max-skips N      consecutive skipped optimizer steps before stopping (default 10)
  --threads N        LibTorch intra-op threads (default 1)
  --data DIR         the fortune files (default /usr/share/games/fortunes)
  --quiet            no progress lines
  --help             this text
)";
  u += examples_common::recovery_usage("steps");
  u += R"(Exit codes: 0 done, 2 bad command line (also: an unwritable --events,
--tensorboard or --checkpoint path, no fortune files, a --resume file that is
missing, damaged or of another run), 3 stopped by the monitor, 4 events
lost, 128+N stopped by signal N (SIGTERM, SIGINT: events flushed first),
1 any other failure.
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
    } else if (a == "--steps") {
      o.steps = int_in(1, max_steps);
    } else if (a == "--seed") {
      o.seed = int_in(0, ~std::uint64_t{0});
    } else if (a == "--events") {
      o.events_path = value();
      if (o.events_path.empty()) fail("--events: the path is empty");
    } else if (a == "--tensorboard") {
      o.tensorboard_dir = value();
      if (o.tensorboard_dir.empty()) fail("--tensorboard: the directory is empty");
    } else if (a == "--data") {
      o.data_dir = value();
      if (o.data_dir.empty()) fail("--data: the directory is empty");
    } else if (a == "--level") {
      o.level = examples_common::parse_level_option(value());
    } else if (a == "--preset") {
      o.preset = examples_common::parse_preset<detector_preset>(a, value(), detector_preset_names);
    } else if (a == "--inject") {
      o.injections.push_back(parse_injection(value()));
    } else if (a == "--inject-at") {
      o.inject_at = int_in(1, max_steps);
    } else if (a == "--layers") {
      o.layers = static_cast<int>(int_in(2, 4));
    } else if (a == "--d-model") {
      o.d_model = static_cast<int>(int_in(8, 1024));
    } else if (a == "--heads") {
      o.heads = static_cast<int>(int_in(1, 64));
    } else if (a == "--context") {
      o.context = static_cast<int>(int_in(2, 1024));
    } else if (a == "--batch") {
      o.batch = static_cast<int>(int_in(1, 4096));
    } else if (a == "--lr") {
      o.lr = parse_positive(value(), a, 1.0);
    } else if (a == "--warmup") {
      o.warmup = int_in(1, max_steps);
    } else if (a == "--eval-every") {
      o.eval_every = int_in(1, max_steps);
    } else if (a == "--eval-batches") {
      o.eval_batches = static_cast<int>(int_in(1, 10000));
    } else if (a == "--escalation-epochs") {
      o.escalation_epochs = static_cast<std::uint32_t>(int_in(0, 1'000'000));
    } else if (a == "--max-skips") {
      o.max_skips = static_cast<std::uint32_t>(int_in(1, 1'000'000));
    } else if (a == "--threads") {
      o.threads = static_cast<int>(int_in(1, 256));
    } else {
      fail("unknown option '" + a + "' (see --help)");
    }
  }
  if (!out.help) {
    if (o.d_model % o.heads != 0)
      fail("--heads: " + std::to_string(o.heads) + " does not divide --d-model " + std::to_string(o.d_model));
    if (o.inject_at > o.steps)
      fail("--inject-at: step " + std::to_string(o.inject_at) + " is after the last step (--steps " +
           std::to_string(o.steps) + ")");
    for (const auto& inj : o.injections)
      if (o.injection_step(inj) > o.steps)
        fail("--inject: " + std::string(to_string(inj.kind)) + " at step " + std::to_string(o.injection_step(inj)) +
             " is after the last step (--steps " + std::to_string(o.steps) + ")");
    if (o.effective_warmup() > o.steps)
      fail("--warmup: " + std::to_string(o.warmup) + " is more than --steps " + std::to_string(o.steps));
    examples_common::check_recovery_cli(o.recovery, seen, o.events_path, o.max_skips);
    o.validate();
  }
  return out;
}

}  // namespace char_lm
