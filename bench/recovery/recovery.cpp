// bench/recovery: the recovery matrix (docs/recovery.md, "Measured: the
// recovery matrix"). For each example trainer (examples/char_lm,
// examples/ppo_lstm) and seed it trains
//
//   - a healthy run without and with the guard (run_options::recovery.recover,
//     the trainers' --recover): the guard must not roll back, and the run must
//     end with the same weights (digest) and the same task metric;
//   - each weight-corrupting fault, injected half way, without and with the
//     guard: the loss x1e6 for one optimizer step, the learning rate x50 for 3
//     optimizer steps (PPO also for 3 whole updates), and a poisoned batch (char_lm: a
//     batch of random bytes, and a NaN batch; PPO: a NaN gradient for one
//     update, and an update without reward);
//
// and scores a run "within 5 %" when its final task metric m satisfies
// |m - h| <= 0.05 |h| for h the same seed's healthy run without the guard.
// char_lm's metric is the final validation loss (lower is better), PPO's the
// final policy's greedy mean return over 32 episodes (examples/ppo_lstm/
// evaluate.hpp; higher is better), with training's mean return over the last
// 10 updates (each a rolling mean of the last 20 episodes) beside it. It also
// reports the guard's cost: its time in snapshots against the training time,
// and the snapshot bytes it held against the model and optimizer state
// (parameters x 4 bytes x 3 for Adam).
//
//   recovery_matrix [--trainer ppo|char_lm|all] [--seeds N] [--jobs N] [--quick]
//                   [--steps N] [--updates N] [--recover-every N] [--recover-keep K]
//                   [--faults KIND,...] [--markdown FILE] [--json FILE]
//
// --quick: 300 LM steps and 30 PPO updates, for a smoke run. --steps and
// --updates set the run lengths; --recover-every and --recover-keep the
// guard's snapshot interval and count (simic's defaults otherwise); --faults
// runs only the faults of these --inject kinds (e.g. lr-spike) beside the
// healthy runs; --json writes every run's result (metric, curve, digest,
// rollbacks, times). Each run is a forked process (run.hpp). Not a test: it
// prints the tables and exits 0 unless a run failed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "char_lm/lm.hpp"
#include "char_lm/options.hpp"
#include "ppo_lstm/cartpole.hpp"
#include "ppo_lstm/model.hpp"
#include "ppo_lstm/options.hpp"
#include "ppo_lstm/ppo.hpp"
#include "run.hpp"
#include "simic/core/detail/format.hpp"

namespace recovery_bench {
namespace {

using simic::detail::format;

// The learning-rate spike of the matrix (the trainers' default is 20).
constexpr double spike_factor = 50.0;
constexpr double tolerance = 0.05;
// PPO's task metric: greedy episodes of the final policy; beside it, the mean
// of the last updates' rolling mean returns.
constexpr int ppo_eval_episodes = 32;
constexpr std::size_t ppo_metric_updates = 10;

struct settings {
  std::uint64_t lm_steps = 1500;
  std::uint64_t ppo_updates = 80;
  std::uint32_t every = examples_common::default_recover_every;
  std::uint32_t keep = examples_common::default_recover_keep;
  std::vector<std::string> only;  // --faults: these kinds alone (empty: every fault)
};

struct fault_def {
  std::string label;       // what the table says
  std::string spec;        // the trainer's --inject
  int lr_spike_steps = 0;  // PPO's lr-spike on its update's first steps only (run_options::lr_spike_steps)
};

// The faults --faults keeps: those whose --inject kind it names.
std::vector<fault_def> selected(std::vector<fault_def> all, const settings& st) {
  if (st.only.empty()) return all;
  std::vector<fault_def> out;
  for (fault_def& f : all)
    if (std::find(st.only.begin(), st.only.end(), f.spec.substr(0, f.spec.find('@'))) != st.only.end())
      out.push_back(std::move(f));
  return out;
}

struct trainer_def {
  std::string name, title, unit, metric_name, length_note;
  std::string training_metric_name;  // "" : the runs have no second measure
  bool higher_better = false;
  std::uint64_t length = 0, inject_at = 0;
  std::vector<fault_def> faults;
  std::function<run_result(const run_spec&)> run;
};

std::string rollback_list(const examples_common::recovery_summary& r) {
  std::string out;
  for (const auto& b : r.rollbacks)
    out += format("%s%llu:%s->%llu", out.empty() ? "" : " ", static_cast<unsigned long long>(b.at), b.cause.c_str(),
                  static_cast<unsigned long long>(b.restored_update));
  return out;
}

// A trainer's run options (char_lm::run_options, ppo_lstm::run_options) for
// `r`: its seed, its fault (the matrix's LR spike), the guard at the
// settings' interval and count; no progress lines.
template <class Options, class Injection>
void set_run(Options& o, const run_spec& r, const settings& st, const std::vector<fault_def>& faults,
             Injection (*parse_injection)(std::string_view)) {
  o.seed = r.seed;
  o.progress_lines = false;
  o.lr_spike_factor = spike_factor;
  if (r.fault >= 0) o.injections.push_back(parse_injection(faults[static_cast<std::size_t>(r.fault)].spec));
  o.recovery.recover = r.recover;
  if (r.recover) {
    o.recovery.every = st.every;
    o.recovery.keep = st.keep;
  }
}

template <class Summary>
void fill_recovery(run_result& r, const Summary& s) {
  r.digest = s.weights_digest;
  r.stopped = s.stopped;
  r.stop_reason = s.stop_reason;
  r.skips = s.skips.size();
  r.rollbacks = s.recovery.rollbacks.size();
  r.rollback_list = rollback_list(s.recovery);
  r.lr_scale = s.recovery.lr_scale;
  r.seconds = s.seconds;
  r.snapshot_seconds = s.recovery.snapshot_seconds;
  r.snapshot_bytes = s.recovery.snapshot_bytes;
  r.snapshots_held = s.recovery.snapshots_held;
}

// ---- the language model (examples/char_lm) ----------------------------------

trainer_def char_lm_def(const settings& st) {
  trainer_def t;
  t.name = "char_lm";
  t.title = "Language model (examples/char_lm)";
  t.unit = "step";
  t.metric_name = "final validation loss (nats/byte; lower is better)";
  t.higher_better = false;
  t.length = st.lm_steps;
  t.inject_at = std::max<std::uint64_t>(1, st.lm_steps / 2);
  const std::uint64_t eval = std::max<std::uint64_t>(1, st.lm_steps / 12);
  t.length_note = format("%llu optimizer steps, the detection bench's model (d_model 32, context 32, batch 16, 2 "
                         "layers), validation every %llu steps, 1 thread",
                         static_cast<unsigned long long>(st.lm_steps), static_cast<unsigned long long>(eval));
  const std::string at = std::to_string(t.inject_at);
  t.faults = {
      {"loss x1e6, 1 step", "loss-scale@" + at},
      {"LR x50, 3 steps", "lr-spike@" + at + "-" + std::to_string(t.inject_at + 2)},
      {"poisoned batch: random bytes, 1 step", "bad-batch@" + at},
      {"poisoned batch: NaN, 1 step", "nan-batch@" + at},
  };
  t.faults = selected(std::move(t.faults), st);
  t.run = [st, eval, faults = t.faults](const run_spec& r) {
    char_lm::run_options o;
    o.d_model = 32;  // bench/detection's bench_model()
    o.context = 32;
    o.batch = 16;
    o.steps = st.lm_steps;
    o.eval_every = eval;
    o.threads = 1;
    set_run(o, r, st, faults, char_lm::parse_injection);
    const char_lm::run_summary s = char_lm::run(o);
    run_result out;
    out.metric = s.final_valid_loss;
    for (const auto& e : s.epoch_log) out.curve.push_back(e.valid_loss);
    out.done = s.steps_done;
    out.parameters = s.parameters;
    fill_recovery(out, s);
    return out;
  };
  return t;
}

// ---- PPO (examples/ppo_lstm) ---------------------------------------------------

trainer_def ppo_def(const settings& st) {
  trainer_def t;
  t.name = "ppo";
  t.title = "PPO (examples/ppo_lstm)";
  t.unit = "update";
  t.metric_name = format("the final policy's greedy mean return over %d episodes (evaluate.hpp; higher is better)",
                         ppo_eval_episodes);
  t.training_metric_name = format("training's mean return over the last %zu updates", ppo_metric_updates);
  t.higher_better = true;
  t.length = st.ppo_updates;
  t.inject_at = std::max<std::uint64_t>(1, st.ppo_updates / 2);
  const ppo_lstm::run_options d;
  t.length_note = format("%llu updates of the trainer's defaults (%d envs x %d steps, %d optimizer steps an "
                         "update, LSTM %d), 1 thread",
                         static_cast<unsigned long long>(st.ppo_updates), d.envs, d.rollout, d.steps_per_update(),
                         d.hidden);
  const std::string at = std::to_string(t.inject_at);
  t.faults = {
      {"loss x1e6, 1 step", "loss-scale@" + at},
      {"LR x50, 3 steps (the update's first 3 optimizer steps)", "lr-spike@" + at, 3},
      {"LR x50, 3 updates (24 optimizer steps)", "lr-spike@" + at + "-" + std::to_string(t.inject_at + 2)},
      {"poisoned batch: NaN gradient, 1 update", "nan-grad@" + at},
      {"poisoned batch: no reward, 1 update", "reward-drop@" + at},
  };
  t.faults = selected(std::move(t.faults), st);
  t.run = [st, faults = t.faults](const run_spec& r) {
    ppo_lstm::run_options o;
    o.updates = st.ppo_updates;
    o.eval_episodes = ppo_eval_episodes;
    set_run(o, r, st, faults, ppo_lstm::parse_injection);
    if (r.fault >= 0) o.lr_spike_steps = faults[static_cast<std::size_t>(r.fault)].lr_spike_steps;
    const ppo_lstm::run_summary s = ppo_lstm::run(o);
    run_result out;
    for (const auto& u : s.updates) out.curve.push_back(u.mean_return);
    const std::size_t n = std::min(ppo_metric_updates, out.curve.size());
    out.training_metric =
        n == 0 ? 0.0
               : std::accumulate(out.curve.end() - static_cast<std::ptrdiff_t>(n), out.curve.end(), 0.0) /
                     static_cast<double>(n);
    out.metric = s.eval_return;
    out.done = s.updates_done;
    fill_recovery(out, s);
    const ppo_lstm::lstm_policy m(ppo_lstm::cartpole_vec::obs_dim, ppo_lstm::cartpole_vec::actions, o.hidden);
    for (const auto& p : m->parameters()) out.parameters += static_cast<std::uint64_t>(p.numel());
    return out;
  };
  return t;
}

// ---- scores --------------------------------------------------------------------

double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

bool within(double m, double healthy) {
  return std::isfinite(m) && std::isfinite(healthy) && std::fabs(m - healthy) <= tolerance * std::fabs(healthy);
}

// One-sided: not more than 5 % worse than the healthy run (better counts).
bool not_worse(double m, double healthy, bool higher_better) {
  if (!std::isfinite(m) || !std::isfinite(healthy)) return false;
  return higher_better ? m >= healthy - tolerance * std::fabs(healthy) : m <= healthy + tolerance * std::fabs(healthy);
}

std::string bytes_text(double b) {
  if (b >= 1024.0 * 1024.0) return format("%.2f MiB", b / (1024.0 * 1024.0));
  return format("%.1f KiB", b / 1024.0);
}

std::string metric_text(double m) { return std::isfinite(m) ? format("%.4g", m) : std::string("n/a"); }

struct row {
  std::string label, spec;
  std::vector<const run_result*> off, on;  // per seed: without, with the guard
};

// The markdown of one trainer's matrix; `unmet` counts the faults below the goal.
std::string report(const trainer_def& t, const settings& st, const std::vector<std::uint64_t>& seeds,
                   const std::vector<row>& rows, double seconds, int& unmet, int& errors) {
  const std::size_t n = seeds.size();
  const row& healthy = rows.front();
  std::string md;
  md += format("%s; seeds %llu-%llu; faults injected at %s %llu (half way); the guard at snapshot_every %u, keep "
               "%u, simic's other defaults. Metric: %s. Within 5 %%: |m - h| <= 0.05 |h|, h the same seed's healthy "
               "run without the guard; no worse than 5 %%: at most 5 %% worse than h (better counts). Wall time %.0f s.\n\n",
               t.length_note.c_str(), static_cast<unsigned long long>(seeds.front()),
               static_cast<unsigned long long>(seeds.back()), t.unit.c_str(),
               static_cast<unsigned long long>(t.inject_at), st.every, st.keep, t.metric_name.c_str(), seconds);
  const bool second = !t.training_metric_name.empty();
  if (second)
    md += format("Beside it, %s (\"training\"): within 5 %% of the healthy run's, without / with the guard.\n\n",
                 t.training_metric_name.c_str());
  md += "| run | within 5 % without recovery | within 5 % with `--recover` | no worse than 5 % without / with | "
        "rollbacks (per run) | skips without / with | stops without / with | median metric without / with |";
  md += second ? " training within 5 % without / with |\n" : "\n";
  md += second ? "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" : "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const row& r : rows) {
    std::size_t in_off = 0, in_on = 0, nw_off = 0, nw_on = 0, stops_off = 0, stops_on = 0, tr_off = 0, tr_on = 0;
    std::uint64_t rb = 0, sk_off = 0, sk_on = 0;
    std::string per;
    std::vector<double> m_off, m_on;
    for (std::size_t i = 0; i < n; ++i) {
      const double h = healthy.off[i]->metric;
      in_off += within(r.off[i]->metric, h);
      in_on += within(r.on[i]->metric, h);
      tr_off += within(r.off[i]->training_metric, healthy.off[i]->training_metric);
      tr_on += within(r.on[i]->training_metric, healthy.off[i]->training_metric);
      nw_off += not_worse(r.off[i]->metric, h, t.higher_better);
      nw_on += not_worse(r.on[i]->metric, h, t.higher_better);
      stops_off += r.off[i]->stopped;
      stops_on += r.on[i]->stopped;
      rb += r.on[i]->rollbacks;
      per += (per.empty() ? "" : " ") + std::to_string(r.on[i]->rollbacks);
      sk_off += r.off[i]->skips;
      sk_on += r.on[i]->skips;
      m_off.push_back(r.off[i]->metric);
      m_on.push_back(r.on[i]->metric);
      errors += !r.off[i]->error.empty() + !r.on[i]->error.empty();
    }
    if (&r != &healthy && 10 * in_on < 9 * n) ++unmet;
    md += format("| %s%s | %zu of %zu | %zu of %zu | %zu / %zu | %llu (%s) | %llu / %llu | %zu / %zu | %s / %s |",
                 r.label.c_str(), r.spec.empty() ? "" : (" (`" + r.spec + "`)").c_str(), in_off, n, in_on, n, nw_off,
                 nw_on,
                 static_cast<unsigned long long>(rb), per.c_str(), static_cast<unsigned long long>(sk_off),
                 static_cast<unsigned long long>(sk_on), stops_off, stops_on,
                 metric_text(median(m_off)).c_str(), metric_text(median(m_on)).c_str());
    md += second ? format(" %zu / %zu |\n", tr_off, tr_on) : std::string("\n");
  }
  // Healthy: identical with and without the guard?
  std::size_t same_digest = 0, same_metric = 0;
  std::uint64_t healthy_rb = 0;
  std::vector<double> cost, t_off, t_on, snaps;
  double held = 0.0;
  std::uint64_t params = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const run_result& a = *healthy.off[i];
    const run_result& b = *healthy.on[i];
    same_digest += a.digest == b.digest;
    same_metric += a.metric == b.metric;
    healthy_rb += b.rollbacks;
    if (b.seconds > 0.0) cost.push_back(b.snapshot_seconds / b.seconds);
    t_off.push_back(a.seconds);
    t_on.push_back(b.seconds);
    snaps.push_back(b.snapshot_seconds);
    params = std::max(params, b.parameters);
  }
  for (const row& r : rows)
    for (const run_result* x : r.on) held = std::max(held, static_cast<double>(x->snapshot_bytes));
  const double state = static_cast<double>(params) * 4.0 * 3.0;
  md += "\n";
  md += format("- Healthy runs with the guard: %llu rollbacks; final weights identical (FNV-1a digest) to the run "
               "without it in %zu of %zu, final metric identical in %zu of %zu.\n",
               static_cast<unsigned long long>(healthy_rb), same_digest, n, same_metric, n);
  md += format("- Snapshot cost (healthy runs with the guard): median %.3f s in snapshots of %.1f s training = "
               "%.2f %% (max %.2f %%; goal <= 2 %%). Median run time without / with the guard: %.1f / %.1f s.\n",
               median(snaps), median(t_on), 100.0 * median(cost),
               cost.empty() ? 0.0 : 100.0 * *std::max_element(cost.begin(), cost.end()), median(t_off),
               median(t_on));
  md += format("- Snapshot memory: at most %s held (%u snapshots kept); model + Adam state %llu parameters x 4 "
               "bytes x 3 = %s; held / (K x state) = %.2f (goal <= 1).\n",
               bytes_text(held).c_str(), st.keep, static_cast<unsigned long long>(params), bytes_text(state).c_str(),
               state > 0 ? held / (st.keep * state) : 0.0);
  // Per run.
  md += "\nPer run (seed: metric without / with the guard; with the guard: rollbacks as "
        "`" + t.unit + ":cause->restored update`, the final LR scale):\n\n";
  md += "| run | seed | healthy | without | with | skips without / with | rollbacks | lr scale |";
  md += second ? " training: healthy, without / with |\n" : "\n";
  md += second ? "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" : "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const row& r : rows)
    for (std::size_t i = 0; i < n; ++i) {
      const run_result& a = *r.off[i];
      const run_result& b = *r.on[i];
      std::string with = metric_text(b.metric) + (within(b.metric, healthy.off[i]->metric) ? "" : " (out)");
      std::string without = metric_text(a.metric) + (within(a.metric, healthy.off[i]->metric) ? "" : " (out)");
      if (a.stopped) without += " stopped";
      if (b.stopped) with += " stopped";
      if (!a.error.empty()) without = "error: " + a.error;
      if (!b.error.empty()) with = "error: " + b.error;
      md += format("| %s | %llu | %s | %s | %s | %llu / %llu | %s | %g |", i == 0 ? r.label.c_str() : "",
                   static_cast<unsigned long long>(seeds[i]), metric_text(healthy.off[i]->metric).c_str(),
                   without.c_str(), with.c_str(), static_cast<unsigned long long>(a.skips),
                   static_cast<unsigned long long>(b.skips), b.rollback_list.empty() ? "-" : b.rollback_list.c_str(),
                   b.lr_scale);
      md += second ? format(" %s, %s / %s |\n", metric_text(healthy.off[i]->training_metric).c_str(),
                            metric_text(a.training_metric).c_str(), metric_text(b.training_metric).c_str())
                   : std::string("\n");
    }
  return md;
}

std::string seed_label(const trainer_def& t, const run_spec& s) {
  return format("%s seed %llu %s%s", t.name.c_str(), static_cast<unsigned long long>(s.seed),
                s.fault < 0 ? "healthy" : t.faults[static_cast<std::size_t>(s.fault)].spec.c_str(),
                s.recover ? " --recover" : "");
}

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr,
               "recovery_matrix: %s\nusage: recovery_matrix [--trainer ppo|char_lm|all] [--seeds N] [--jobs N] "
               "[--quick] [--steps N] [--updates N] [--recover-every N] [--recover-keep K] [--faults KIND,...] [--markdown FILE] [--json FILE]\n",
               what.c_str());
  std::exit(2);
}

std::uint64_t number_arg(const std::string& option, const std::string& v, std::uint64_t lo, std::uint64_t hi) {
  char* end = nullptr;
  const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < lo || x > hi)
    usage_error(format("%s: '%s' is not an integer in [%llu, %llu]", option.c_str(), v.c_str(),
                       static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi)));
  return x;
}

}  // namespace
}  // namespace recovery_bench

int main(int argc, char** argv) {
  using namespace recovery_bench;
  settings st;
  std::string which = "all", markdown_path, json_path;
  std::uint64_t seed_count = 5;
  int jobs = 2;
  bool quick = false, steps_set = false, updates_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + ": missing value");
      return argv[++i];
    };
    if (a == "--quick") {
      quick = true;
    } else if (a == "--trainer") {
      which = value();
      if (which != "ppo" && which != "char_lm" && which != "all")
        usage_error("--trainer: '" + which + "' is not one of ppo, char_lm, all");
    } else if (a == "--seeds") {
      seed_count = number_arg(a, value(), 1, 100);
    } else if (a == "--jobs") {
      jobs = static_cast<int>(number_arg(a, value(), 1, 64));
    } else if (a == "--steps") {
      st.lm_steps = number_arg(a, value(), 24, 1'000'000);
      steps_set = true;
    } else if (a == "--updates") {
      st.ppo_updates = number_arg(a, value(), 10, 100'000);
      updates_set = true;
    } else if (a == "--recover-every") {
      st.every = static_cast<std::uint32_t>(number_arg(a, value(), 1, 100'000'000));
    } else if (a == "--recover-keep") {
      st.keep = static_cast<std::uint32_t>(number_arg(a, value(), 1, 1000));
    } else if (a == "--markdown") {
      markdown_path = value();
    } else if (a == "--json") {
      json_path = value();
    } else if (a == "--faults") {
      const std::string v = value();
      for (std::size_t b = 0; b <= v.size();) {
        const std::size_t e = std::min(v.find(',', b), v.size());
        const std::string kind = v.substr(b, e - b);
        const char* known[] = {"loss-scale", "lr-spike", "bad-batch", "nan-batch", "nan-grad", "reward-drop"};
        if (std::find(std::begin(known), std::end(known), kind) == std::end(known))
          usage_error("--faults: '" + kind + "' is not one of loss-scale, lr-spike, bad-batch, nan-batch (char_lm), "
                      "nan-grad, reward-drop (ppo)");
        st.only.push_back(kind);
        b = e + 1;
      }
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  if (quick) {
    if (!steps_set) st.lm_steps = 300;
    if (!updates_set) st.ppo_updates = 30;
  }
  std::vector<std::uint64_t> seeds(seed_count);
  std::iota(seeds.begin(), seeds.end(), std::uint64_t{1});
  std::vector<trainer_def> trainers;
  if (which == "ppo" || which == "all") trainers.push_back(ppo_def(st));
  if (which == "char_lm" || which == "all") trainers.push_back(char_lm_def(st));

  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", std::localtime(&now));
  std::string md = format("Recovery matrix, %s; %llu seeds, %d jobs%s.\n\n", date,
                          static_cast<unsigned long long>(seed_count), jobs, quick ? ", --quick" : "");
  std::fputs(md.c_str(), stdout);
  int unmet = 0, errors = 0;
  nlohmann::ordered_json json;
  const auto all0 = std::chrono::steady_clock::now();
  for (const trainer_def& t : trainers) {
    // Every (fault, seed) without and with the guard; the faults first (their
    // runs are the longest with PPO's rollbacks), the healthy runs last.
    std::vector<run_spec> specs;
    for (int f = static_cast<int>(t.faults.size()) - 1; f >= -1; --f)
      for (const std::uint64_t s : seeds)
        for (const bool rec : {false, true}) specs.push_back({f, s, rec});
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<run_result> results =
        run_all(specs, jobs, t.run, [&t](const run_spec& s) { return seed_label(t, s); });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<row> rows(t.faults.size() + 1);
    rows[0].label = "healthy";
    for (std::size_t f = 0; f < t.faults.size(); ++f) {
      rows[f + 1].label = t.faults[f].label;
      rows[f + 1].spec = t.faults[f].spec;
    }
    for (row& r : rows) {
      r.off.assign(seeds.size(), nullptr);
      r.on.assign(seeds.size(), nullptr);
    }
    for (std::size_t i = 0; i < specs.size(); ++i) {
      row& r = rows[static_cast<std::size_t>(specs[i].fault + 1)];
      const std::size_t k = static_cast<std::size_t>(specs[i].seed - seeds.front());
      (specs[i].recover ? r.on : r.off)[k] = &results[i];
    }
    for (std::size_t i = 0; i < specs.size(); ++i)
      json[t.name].push_back({{"fault", specs[i].fault < 0 ? std::string("healthy")
                                                          : t.faults[static_cast<std::size_t>(specs[i].fault)].spec},
                              {"seed", specs[i].seed},
                              {"recover", specs[i].recover},
                              {"result", nlohmann::json::parse(serialize(results[i]))}});
    const std::string section = "### " + t.title + "\n\n" + report(t, st, seeds, rows, seconds, unmet, errors) + "\n";
    std::fputs(section.c_str(), stdout);
    std::fflush(stdout);
    md += section;
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - all0).count();
  const std::string tail = format("Total wall time %.0f s. Faults below the goal (within 5 %% with the guard in >= "
                                  "90 %% of runs): %d. Failed runs: %d.\n",
                                  total, unmet, errors);
  std::fputs(tail.c_str(), stdout);
  md += tail;
  if (!markdown_path.empty()) std::ofstream(markdown_path) << md;
  if (!json_path.empty()) std::ofstream(json_path) << json.dump(1) << "\n";
  return errors == 0 ? 0 : 1;
}
