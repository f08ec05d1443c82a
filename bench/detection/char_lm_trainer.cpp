// bench/detection: the language-model trainer's faults, matrices and cases.
#include "char_lm_trainer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "char_lm/lm.hpp"
#include "char_lm/options.hpp"

namespace detection {
namespace {

// Every fault the trainer can inject, with the kinds that count as detecting
// it: only the fault's own effects (docs/detection.md, "The benchmark").
std::vector<fault_spec> faults() {
  using k = anomaly_kind;
  return {
      {"lr-spike",
       {k::update_ratio_drift, k::loss_spike, k::loss_extreme, k::loss_divergence, k::gradient_norm_drift,
        k::learning_stall},
       false},
      {"bad-batch", {k::loss_spike, k::loss_extreme, k::gradient_exploding, k::gradient_norm_drift}, false},
      {"nan-batch", {k::numerical_instability}, false},
      {"loss-scale", {k::loss_extreme, k::gradient_exploding}, false},
      {"dead-layer", {k::gradient_vanishing, k::gradient_health_drift}, false},
      {"lr-collapse", {k::update_ratio_drift}, false},
      // slow
      {"lr-ramp", {k::update_ratio_drift, k::loss_divergence, k::learning_stall, k::gradient_norm_drift}, true},
      {"label-shuffle", {k::loss_divergence, k::loss_spike, k::learning_stall}, true},
  };
}

// Injection in [40 %, 60 %] of the run; windows: abrupt steps / 60 (20..50),
// slow min(300, 40 % of the run); every case runs the whole schedule.
matrix make(std::vector<std::uint64_t> healthy, std::vector<std::uint64_t> faulty, std::uint64_t steps) {
  matrix m;
  m.healthy_seeds = std::move(healthy);
  m.fault_seeds = std::move(faulty);
  m.healthy_steps = steps;
  m.schedule = steps;
  m.inject_min = std::max<std::uint64_t>(1, steps * 4 / 10);
  m.inject_max = std::max(m.inject_min, steps * 6 / 10);
  m.abrupt_window = std::clamp<std::uint64_t>(steps / 60, 20, 50);
  m.slow_window = std::max<std::uint64_t>(1, std::min<std::uint64_t>(300, steps * 4 / 10));
  m.stop_after_window = false;
  return m;
}

// The steps per epoch: 12 epochs a run, as the trainer's defaults (3000 / 250).
std::uint64_t eval_every(std::uint64_t steps) { return std::max<std::uint64_t>(1, steps / 12); }

// The bench's model: the trainer's at half width and context, batch 16 (about
// 10 ms a step here, against 80 ms at the defaults), so that the full matrix
// (58 runs) takes minutes, not hours; docs/detection.md says so beside its table.
void bench_model(char_lm::run_options& o) {
  o.d_model = 32;
  o.context = 32;
  o.batch = 16;
}

case_result run_case(const std::vector<fault_spec>& fs, const case_spec& c) {
  case_result r;
  for (std::size_t p = 0; p < preset_count; ++p) {
    char_lm::run_options o;
    bench_model(o);
    o.steps = c.steps;
    o.eval_every = eval_every(c.steps);
    o.seed = c.seed;
    o.threads = 1;
    o.progress_lines = false;
    o.preset = p == 0 ? char_lm::detector_preset::simic : char_lm::detector_preset::reference;
    if (c.fault >= 0)
      o.injections.push_back(
          char_lm::parse_injection(fs[static_cast<std::size_t>(c.fault)].name + "@" + std::to_string(c.inject)));
    const char_lm::run_summary s = char_lm::run(o);
    r.steps_done[p] = s.steps_done;
    r.stopped[p] = s.stopped;
    r.seconds += s.seconds;
    for (const auto& a : s.anomalies) r.anomalies[p].push_back({a.step, a.kind, a.severity, a.value});
    r.escalated[p] = debug_steps(s.level_changes, s.steps_done, o.level, simic::level::debug);
    for (const auto& st : s.steps) r.metric[p].push_back(st.loss);
  }
  return r;
}

// The first step at or after the injection where the mean training loss over
// the last 50 steps is more than 20 % above its best such mean before the injection.
std::optional<std::uint64_t> rose_20_percent(const std::vector<double>& loss, const case_spec& c) {
  constexpr std::uint64_t w = 50;
  auto mean_at = [&](std::uint64_t s) -> std::optional<double> {  // steps (s - w, s]
    double sum = 0.0;
    std::uint64_t n = 0;
    for (std::uint64_t i = s - w + 1; i <= s; ++i)
      if (std::isfinite(loss[i - 1])) {
        sum += loss[i - 1];
        ++n;
      }
    if (n == 0) return std::nullopt;
    return sum / static_cast<double>(n);
  };
  if (c.inject <= w || loss.size() < c.inject) return std::nullopt;
  double best = std::numeric_limits<double>::infinity();
  for (std::uint64_t s = w; s < c.inject; ++s)
    if (const auto m = mean_at(s)) best = std::min(best, *m);
  if (!std::isfinite(best)) return std::nullopt;
  for (std::uint64_t s = c.inject; s <= loss.size(); ++s)
    if (const auto m = mean_at(s); m && *m > 1.2 * best) return s;
  return std::nullopt;
}

}  // namespace

trainer char_lm_trainer() {
  trainer t;
  t.name = "char_lm";
  t.title = "Language model (examples/char_lm)";
  t.unit = "steps";
  t.rate_per = 10000;
  t.metric_name = "step_loss";
  t.slow_rule = "20 % loss rise";
  t.slow_rule_key = "20pct_loss_rise";
  t.faults = faults();
  t.make_matrix = [](bool quick, std::uint64_t steps) {
    if (quick) return make({1}, {1}, steps ? steps : char_lm_quick_steps);
    return make({1, 2, 3, 4, 5}, {1, 2, 3}, steps ? steps : char_lm::run_options{}.steps);
  };
  t.run_case = [fs = t.faults](const case_spec& c) { return run_case(fs, c); };
  t.degraded_at = rose_20_percent;
  return t;
}

}  // namespace detection
