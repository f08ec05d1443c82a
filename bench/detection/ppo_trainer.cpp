// bench/detection: the PPO example trainer's faults, matrices and cases.
#include "ppo_trainer.hpp"

#include <algorithm>
#include <string>

#include "ppo_lstm/options.hpp"
#include "ppo_lstm/ppo.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/presets/reference.hpp"

namespace detection {
namespace {

// Every fault the trainer can inject, with the kinds that count as detecting it.
std::vector<fault_spec> faults() {
  return {
      {"nan-grad", {anomaly_kind::numerical_instability}, false},
      {"grad-explode", {anomaly_kind::gradient_exploding, anomaly_kind::gradient_norm_drift}, false},
      {"grad-vanish", {anomaly_kind::gradient_vanishing, anomaly_kind::gradient_norm_drift}, false},
      {"grad-drift", {anomaly_kind::gradient_norm_drift}, false},
      {"lr-spike",
       {anomaly_kind::update_ratio_drift, anomaly_kind::kl_spike, anomaly_kind::kl_extreme,
        anomaly_kind::ratio_explosion, anomaly_kind::ratio_collapse},
       false},
      {"entropy-collapse", {anomaly_kind::entropy_collapse, anomaly_kind::entropy_low}, false},
      {"value-collapse", {anomaly_kind::value_collapse}, false},
      {"lstm-explode", {anomaly_kind::lstm_unhealthy}, false},
      {"reward-drop", {anomaly_kind::performance_degradation}, false},
      {"core-vanish", {anomaly_kind::host_ratio_drift}, false},
      // slow: whatever shows the run going wrong
      {"lr-ramp",
       {anomaly_kind::update_ratio_drift, anomaly_kind::kl_spike, anomaly_kind::kl_extreme, anomaly_kind::ratio_explosion,
        anomaly_kind::ratio_collapse, anomaly_kind::gradient_norm_drift, anomaly_kind::performance_degradation,
        anomaly_kind::value_collapse, anomaly_kind::entropy_collapse, anomaly_kind::entropy_low},
       true},
      {"reward-decay", {anomaly_kind::performance_degradation, anomaly_kind::value_collapse}, true},
  };
}

// Fault runs end at the end of their window; the schedule stays 200 updates.
matrix full_matrix() { return {{1, 2, 3, 4, 5}, 200, {1, 2, 3}, 30, 150, 10, 60, 200, true}; }
matrix quick_matrix() { return {{1}, 100, {1}, 30, 40, 4, 50, 200, true}; }

template <class Monitor>
void replay(Monitor m, const ppo_lstm::run_summary& s, std::vector<reported>& out, std::vector<std::uint8_t>& esc) {
  esc.assign(s.updates_done, 0);
  for (std::size_t i = 0; i < s.signals.size(); ++i) {
    const simic::signals sig = s.signals[i].view();
    const std::uint64_t u = sig.progress->episode();
    for (const simic::anomaly& a : m.check(sig).report) out.push_back({u, a.kind, a.severity, a.value});
    const bool update_ends = i + 1 == s.signals.size() || s.signals[i + 1].base.progress->episode() != u;
    if (update_ends) {
      esc.at(u - 1) = m.effective_level() == simic::level::debug;
      m.tick();  // one update per epoch, as the trainer runs here
    }
  }
}

case_result run_case(const std::vector<fault_spec>& fs, const case_spec& c) {
  ppo_lstm::run_options o;
  o.updates = c.steps;
  o.planned_updates = std::max(c.schedule, c.steps);
  o.seed = c.seed;
  o.progress_lines = false;
  o.record_signals = true;
  if (c.fault >= 0)
    o.injections.push_back(ppo_lstm::parse_injection(fs[static_cast<std::size_t>(c.fault)].name + "@" +
                                                     std::to_string(c.inject) + "-"));
  const ppo_lstm::run_summary s = ppo_lstm::run(o);
  case_result r;
  for (std::size_t p = 0; p < preset_count; ++p) {
    r.steps_done[p] = s.updates_done;
    r.stopped[p] = s.stopped;
  }
  r.seconds = s.seconds;
  for (const auto& u : s.updates) r.metric[0].push_back(u.mean_return);
  r.metric[1] = r.metric[0];  // both presets judge the same run
  simic::config_options co;
  co.escalation_epochs = o.escalation_epochs;
  replay(ppo_lstm::monitor_type(simic::config(co), simic::skip_nonfinite_then_stop(o.effective_max_skips())), s,
         r.anomalies[0], r.escalated[0]);
  replay(simic::make_reference_monitor(simic::reference_config_options(co), o.effective_max_skips()), s,
         r.anomalies[1], r.escalated[1]);
  // The replay of simic's defaults must reproduce what the trainer's monitor said.
  bool same = s.anomalies.size() == r.anomalies[0].size();
  for (std::size_t i = 0; same && i < s.anomalies.size(); ++i)
    same = s.anomalies[i].update == r.anomalies[0][i].step && s.anomalies[i].kind == r.anomalies[0][i].kind;
  if (!same)
    r.error = "the replay of simic's defaults differs from the trainer's own monitor (" +
              std::to_string(s.anomalies.size()) + " vs " + std::to_string(r.anomalies[0].size()) + " anomalies)";
  return r;
}

// The first update at or after the injection whose mean return is at most 80 % of the one before it.
std::optional<std::uint64_t> fell_20_percent(const std::vector<double>& mean_return, const case_spec& c) {
  const std::uint64_t from = c.inject;
  if (from < 2 || mean_return.size() < from - 1) return std::nullopt;
  const double ref = mean_return[from - 2];
  for (std::uint64_t u = from; u <= mean_return.size(); ++u)
    if (mean_return[u - 1] <= 0.8 * ref) return u;
  return std::nullopt;
}

}  // namespace

trainer ppo_trainer() {
  trainer t;
  t.name = "ppo";
  t.title = "PPO (examples/ppo_lstm)";
  t.unit = "updates";
  t.rate_per = 1000;
  t.metric_name = "mean_return";
  t.slow_rule = "20 % fall";
  t.slow_rule_key = "20pct_fall";
  t.faults = faults();
  t.make_matrix = [](bool quick, std::uint64_t) { return quick ? quick_matrix() : full_matrix(); };
  t.run_case = [fs = t.faults](const case_spec& c) { return run_case(fs, c); };
  t.degraded_at = fell_20_percent;
  return t;
}

}  // namespace detection
