// The trainer's telemetry wiring: every call site where the trainer hands
// tensors to simic's sensors, signals to the monitor, and events to the hub.
// ppo.cpp calls these in the order of an update:
//   rollout:  lstm_state(h, c) after every LSTM step
//   each optimizer step: gradients() before clipping -> check(signals) ->
//             debug(...) while at DEBUG -> obey the response
//   epoch end: epoch_end() -> monitor.tick()
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "options.hpp"
#include "ppo.hpp"
#include "simic/core/format.hpp"

namespace ppo_lstm {

namespace interim {
// Stand-ins until simic's tensor sensors are in the tree.
inline simic::gradient_signal gradient_health(const std::vector<torch::Tensor>& grads) {
  simic::gradient_signal g;
  double sum_sq = 0.0;
  g.min_param_norm = INFINITY;
  for (const auto& t : grads) {
    if (!t.defined()) continue;
    const auto d = t.detach().to(torch::kDouble);
    const double n = d.norm().item<double>();
    g.nan_count += static_cast<std::uint64_t>(d.isnan().sum().item<std::int64_t>());
    g.inf_count += static_cast<std::uint64_t>(d.isinf().sum().item<std::int64_t>());
    sum_sq += n * n;
    g.min_param_norm = std::min(g.min_param_norm, n);
    g.max_param_norm = std::max(g.max_param_norm, n);
    ++g.parameters;
    g.vanishing += n < simic::defaults::grad_vanishing;
    g.exploding += n > simic::defaults::grad_exploding;
  }
  if (g.parameters == 0) g.min_param_norm = 0.0;
  g.total_norm = std::sqrt(sum_sq);
  g.health = simic::gradient_health(g.vanishing, g.exploding, g.parameters);
  return g;
}
inline simic::lstm_signal lstm_health(const torch::Tensor& h, const torch::Tensor& c) {
  simic::lstm_signal l;
  const auto hd = h.detach().to(torch::kDouble), cd = c.detach().to(torch::kDouble);
  l.h_norm = hd.norm().item<double>();
  l.c_norm = cd.norm().item<double>();
  l.h_max_abs = hd.abs().max().item<double>();
  l.c_max_abs = cd.abs().max().item<double>();
  l.has_nan = hd.isnan().any().item<bool>() || cd.isnan().any().item<bool>();
  l.has_inf = hd.isinf().any().item<bool>() || cd.isinf().any().item<bool>();
  return l;
}
}  // namespace interim

// PPO's per-minibatch gradient norms are heavy-tailed: on healthy CartPole
// runs 26% of steps lie more than 0.5 (relative) from their EMA, 1.3% more
// than 2.0 (docs/trainer.md). The trainer flags a norm beyond 3x its EMA.
inline constexpr double drift_threshold = 2.0;

class telemetry {
 public:
  telemetry(const run_options& o, run_summary& summary)
      : opts_(o),
        sum_(summary),
        monitor_(make_config(o), simic::skip_nonfinite_then_stop(o.effective_max_skips()), simic::numerical_stability{},
                 simic::lstm_bounds{}, simic::ratio_bounds{}, simic::value_function{}, simic::entropy_floor{},
                 simic::kl_divergence{}, simic::gradient_drift{drift_threshold}, simic::gradient_bounds{},
                 simic::performance_degradation{}) {}

  monitor_type& monitor() noexcept { return monitor_; }
  simic::level level() const noexcept { return monitor_.effective_level(); }

  void begin_update(std::uint64_t update) {
    update_ = update;
    lstm_.reset();
  }

  // --- rollout: LSTM state after each step -------------------------------
  void lstm_state(const torch::Tensor& h, const torch::Tensor& c) {
    const simic::lstm_signal l = interim::lstm_health(h, c);
    ++sum_.sensor_events["lstm_health"];
    // Keep the first unhealthy state of the rollout, else the latest.
    if (!lstm_ || bounds_.healthy(*lstm_)) lstm_ = l;
  }
  // The LSTM figure of this update's rollout, handed over once (first check).
  std::optional<simic::lstm_signal> take_lstm() { return std::exchange(lstm_, std::nullopt); }

  // --- each optimizer step: gradients before clipping ----------------------
  simic::gradient_signal gradients(const std::vector<torch::Tensor>& params) {
    std::vector<torch::Tensor> grads;
    grads.reserve(params.size());
    for (const auto& p : params) grads.push_back(p.grad());
    ++sum_.sensor_events["gradient_health"];
    return interim::gradient_health(grads);
  }

  // Runs the monitor and records what it said.
  const simic::check_result& check(const simic::signals& s, int step) {
    const simic::level before = monitor_.effective_level();
    const simic::check_result& r = monitor_.check(s);
    ++sum_.checks;
    if (opts_.record_signals) {
      recorded_signals rec;
      rec.base = s;
      rec.base.entropy = {};
      rec.heads.assign(s.entropy.begin(), s.entropy.end());
      sum_.signals.push_back(std::move(rec));
    }
    for (const auto& a : r.report) {
      sum_.anomalies.push_back({update_, step, a.kind, a.detail});
      ++update_anomalies_;
    }
    if (monitor_.effective_level() != before)
      sum_.level_changes.push_back({update_, before, monitor_.effective_level()});
    return r;
  }

  // --- DEBUG diagnostics, run while the effective level is DEBUG ----------
  void debug(const std::vector<std::pair<std::string, torch::Tensor>>& named_params, const torch::Tensor& ratio,
             const torch::Tensor& log_ratio, int step) {
    const auto& cfg = monitor_.cfg();
    if (cfg.per_layer_due()) {
      std::string d;
      for (const auto& [name, p] : named_params) {
        const auto g = p.grad();
        if (!g.defined()) continue;
        const auto a = g.detach().abs().to(torch::kDouble);
        d += simic::detail::format("%s: norm %.4g, zero %.3f, small %.3f, large %.3f; ", name.c_str(),
                                   a.norm().item<double>(), (a == 0).to(torch::kDouble).mean().item<double>(),
                                   (a < simic::defaults::layer_small).to(torch::kDouble).mean().item<double>(),
                                   (a > simic::defaults::layer_large).to(torch::kDouble).mean().item<double>());
      }
      sum_.debug.push_back({update_, step, "layer_stats", d});
      ++sum_.sensor_events["layer_stats"];
    }
    if (cfg.nan_inf_scan_due()) {
      std::string d;
      for (const auto& [name, p] : named_params) {
        const auto g = p.grad();
        if (!torch::isfinite(p.detach()).all().item<bool>()) d += name + " (weights) ";
        if (g.defined() && !torch::isfinite(g.detach()).all().item<bool>()) d += name + " (gradient) ";
      }
      sum_.debug.push_back({update_, step, "nan_inf_scan", d.empty() ? "clean" : d});
      ++sum_.sensor_events["nan_inf_scan"];
    }
    if (cfg.ratio_diagnostic_due()) {
      const auto r = ratio.detach().to(torch::kDouble);
      const auto lr = log_ratio.detach().to(torch::kDouble);
      sum_.debug.push_back(
          {update_, step, "ratio_diagnostic",
           simic::detail::format("ratio max %.4g min %.4g; above %.3g: %.4f; below %.3g: %.4f; |log ratio| max %.4g",
                                 r.max().item<double>(), r.min().item<double>(), simic::defaults::ratio_explosion,
                                 (r > simic::defaults::ratio_explosion).to(torch::kDouble).mean().item<double>(),
                                 simic::defaults::ratio_collapse,
                                 (r < simic::defaults::ratio_collapse).to(torch::kDouble).mean().item<double>(),
                                 lr.abs().max().item<double>())});
      ++sum_.sensor_events["ratio_diagnostic"];
    }
  }

  void skipped(int step, const std::string& reason) { sum_.skips.push_back({update_, step, reason}); }

  // --- end of an update / epoch -------------------------------------------
  std::size_t take_update_anomalies() { return std::exchange(update_anomalies_, 0); }

  void epoch_end() {
    const simic::level before = monitor_.effective_level();
    monitor_.tick();
    ++sum_.epochs;
    if (monitor_.effective_level() != before)
      sum_.level_changes.push_back({update_, before, monitor_.effective_level()});
  }

  void finish() {}

 private:
  static simic::config make_config(const run_options& o) {
    simic::config_options c;
    c.configured = o.level;
    c.escalation_epochs = o.escalation_epochs;
    return simic::config(c);
  }

  const run_options& opts_;
  run_summary& sum_;
  monitor_type monitor_;
  simic::lstm_bounds bounds_{};
  std::optional<simic::lstm_signal> lstm_;
  std::uint64_t update_ = 0;
  std::size_t update_anomalies_ = 0;
};

}  // namespace ppo_lstm
