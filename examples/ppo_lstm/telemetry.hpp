// The trainer's telemetry wiring: every call site where the trainer hands
// tensors to simic's sensors, signals to the monitor, and events to the hub.
// ppo.cpp calls these in the order of an update:
//   rollout:             lstm_state(h, c) at every sequence start (per environment)
//   each optimizer step: gradients() before clipping, update_ratio() (of the
//                        previous step) -> check(signals) ->
//                        debug(...) (only while the effective level is DEBUG)
//                        -> the trainer obeys the response
//   end of an update:    update_done(); at each epoch end epoch_end() -> monitor.tick()
//   end of the run:      finish() (flushes and closes the hub)
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "options.hpp"
#include "ppo.hpp"
#include "simic/core/format.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/hub.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/profile/phase_timer.hpp"
#include "simic/profile/profiler.hpp"
#include "simic/sensors/debug_layer_gradients.hpp"
#include "simic/sensors/debug_nan_inf_scan.hpp"
#include "simic/sensors/debug_ratio_explosion.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/lstm_health.hpp"
#include "simic/sensors/parameter_update.hpp"

namespace ppo_lstm {

// Monitor is monitor_type (simic's defaults) or reference_monitor_type.
template <class Monitor>
class telemetry {
 public:
  telemetry(const run_options& o, run_summary& summary)
      : opts_(o),
        sum_(summary),
        monitor_(make_monitor(o, static_cast<typename Monitor::detectors_tuple*>(nullptr))),
        // Block rather than drop when the queue is full: a trainer's events are
        // few and the JSONL sink is fast; losing one would be worse than waiting.
        hub_(simic::hub_options{.capacity = 8192,
                                .overflow = simic::overflow_policy::block,
                                .context = {.run_id = "ppo_lstm-seed" + std::to_string(o.seed), .device = "cpu"}}),
        profiler_(simic::profiler_options{.enabled = !o.profile_dir.empty(),
                                          .dir = o.profile_dir.empty() ? "profile" : o.profile_dir}),
        timers_(!o.profile_dir.empty()) {
    if (!o.events_path.empty()) hub_.add_sink(std::make_shared<simic::jsonl_sink>(o.events_path));
  }
  telemetry(const telemetry&) = delete;
  telemetry& operator=(const telemetry&) = delete;
  ~telemetry() { hub_.close(); }

  Monitor& monitor() noexcept { return monitor_; }
  simic::level level() const noexcept { return monitor_.effective_level(); }
  simic::phase_timers& timers() noexcept { return timers_; }

  void begin_update(std::uint64_t update) {
    update_ = update;
    lstm_.reset();
  }

  // --- rollout: LSTM health, per environment ------------------------------
  // The detector's bounds are on the norm of one state vector, so each
  // environment's (h, c) is measured as a row (all rows in one read and one
  // transfer); the least healthy (or else the largest) is the rollout's figure.
  void lstm_state(const torch::Tensor& h, const torch::Tensor& c) {
    for (const simic::lstm_health_report& row : lstm_sensor_.measure_rows(h, c)) {
      const simic::lstm_signal l = row.signal();
      ++sum_.sensor_events["lstm_health"];
      if (!lstm_ || (healthy(*lstm_) && (!healthy(l) || l.c_norm > lstm_->c_norm))) lstm_ = l;
    }
  }
  // The LSTM figure of this update's rollout, handed to the first check.
  std::optional<simic::lstm_signal> take_lstm() {
    if (lstm_) emit(simic::lstm_health_event{.lstm = *lstm_, .healthy = healthy(*lstm_)});
    return std::exchange(lstm_, std::nullopt);
  }

  // --- each optimizer step: gradients before clipping ----------------------
  simic::gradient_signal gradients(const torch::nn::Module& model) {
    const simic::gradient_signal g = grad_sensor_.measure(model).signal();
    ++sum_.sensor_events["gradient_health"];
    emit(simic::gradient_health_event{.gradients = g});
    return g;
  }

  // How far the previous optimizer step moved the weights (absent on the
  // first step of the run).
  std::optional<double> update_ratio(const torch::nn::Module& model) {
    const std::optional<double> r = update_sensor_.measure(model);
    ++sum_.sensor_events["parameter_update"];
    return r;
  }

  // Runs the monitor, emits what it said, records it in the summary.
  const simic::check_result& check(const simic::signals& s, int step, simic::update_metrics metrics) {
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
    // The response, in the step's metrics: 1 when the step was skipped / the run stopped.
    metrics.extra.push_back({"skipped_step", r.resp.act == simic::action::skip_step ? 1.0 : 0.0});
    metrics.extra.push_back({"stopped", r.resp.act == simic::action::stop ? 1.0 : 0.0});
    emit(std::move(metrics));
    if (r.resp.act != simic::action::proceed)
      emit(simic::response_event{.act = r.resp.act,
                                 .reason = r.resp.reason,
                                 .consecutive_skips = monitor_.responses().consecutive_skips,
                                 .total_skips = monitor_.responses().total_skips});
    std::string kinds;
    for (const auto& c : r.report.clears()) {
      sum_.clears.push_back({update_, step, c.kind, c.duration});
      emit(simic::anomaly_clear_event{.kind = c.kind, .duration = c.duration, .value = c.value});
    }
    for (const auto& a : r.report) {
      sum_.anomalies.push_back({update_, step, a.kind, a.detail, a.severity, a.value, a.threshold});
      ++update_anomalies_;
      if (update_kinds_.find(simic::to_string(a.kind)) == std::string::npos)
        update_kinds_ += (update_kinds_.empty() ? "" : ",") + std::string(simic::to_string(a.kind));
      ++epoch_anomalies_;
      emit(simic::anomaly_event::of(a, monitor_.effective_level()));
      if (a.kind == simic::anomaly_kind::performance_degradation && a.baseline) {
        const double base = *a.baseline, scale = std::abs(base);
        emit(simic::performance_degradation_event{.current = a.value,
                                                  .rolling_mean = base,
                                                  .drop = (base - a.value) / scale,
                                                  .threshold = (base - a.threshold) / scale});
      }
      if (kinds.find(simic::to_string(a.kind)) == std::string::npos)
        kinds += (kinds.empty() ? "" : ",") + std::string(simic::to_string(a.kind));
    }
    if (monitor_.effective_level() != before) {
      sum_.level_changes.push_back({update_, before, monitor_.effective_level()});
      emit(simic::escalation_start_event{.from = before,
                                         .to = monitor_.effective_level(),
                                         .epochs = monitor_.cfg().options().escalation_epochs,
                                         .reason = kinds});
    }
    return r;
  }

  // --- DEBUG diagnostics, while the effective level is DEBUG --------------
  void debug(const torch::nn::Module& model, const torch::Tensor& loss, const torch::Tensor& ratio,
             const torch::Tensor& old_logp, const torch::Tensor& new_logp, const torch::Tensor& actions, int step) {
    const auto& cfg = monitor_.cfg();
    if (cfg.per_layer_due()) {
      simic::layer_gradient_report r = layer_sensor_.measure(model);
      std::string d;
      for (const auto& l : r.layers) d += simic::detail::format("%s norm %.4g; ", l.name.c_str(), l.norm);
      sum_.debug.push_back({update_, step, "layer_gradients", d});
      ++sum_.sensor_events["layer_gradients"];
      emit(simic::layer_gradients_event{.report = std::move(r)});
    }
    if (cfg.nan_inf_scan_due()) {
      simic::nan_inf_scan_report r = scanner_.scan(model, loss.detach());
      std::string d;
      for (const auto& p : r.offenders)
        d += p.name + (p.weight_nan || p.weight_inf ? " (weights)" : "") + (p.grad_nan || p.grad_inf ? " (gradient)" : "") + "; ";
      sum_.debug.push_back({update_, step, "nan_inf_scan", d.empty() ? "clean" : d});
      ++sum_.sensor_events["nan_inf_scan"];
      emit(simic::nan_inf_scan_event{.report = std::move(r)});
    }
    if (cfg.ratio_diagnostic_due()) {
      simic::ratio_diagnostic_report r = simic::diagnose_ratio_explosion(ratio.detach(), old_logp.detach(),
                                                                         new_logp.detach(), actions);
      sum_.debug.push_back({update_, step, "ratio_diagnostic",
                            simic::detail::format("%zu outliers of %llu; max |log-prob diff| %.4g", r.outliers.size(),
                                                  static_cast<unsigned long long>(r.batch_size),
                                                  r.max_abs_logprob_diff)});
      ++sum_.sensor_events["ratio_diagnostic"];
      emit(simic::ratio_diagnostic_event{.report = std::move(r)});
    }
  }

  void skipped(int step, const std::string& reason) { sum_.skips.push_back({update_, step, reason}); }

  // --- end of an update / epoch -------------------------------------------
  std::size_t take_update_anomalies() { return std::exchange(update_anomalies_, 0); }
  std::string take_update_kinds() { return std::exchange(update_kinds_, std::string()); }

  void update_done() {
    if (auto trace = profiler_.step()) emit(*trace);
  }

  void epoch_end(std::optional<double> performance, std::uint64_t updates_in_epoch) {
    const simic::level before = monitor_.effective_level();
    monitor_.tick();
    const simic::level after = monitor_.effective_level();
    if (after != before) {
      sum_.level_changes.push_back({update_, before, after});
      emit(simic::escalation_end_event{.from = before, .to = after});
    }
    emit(simic::epoch_summary{.performance = performance,
                              .updates = updates_in_epoch,
                              .anomalies = std::exchange(epoch_anomalies_, 0),
                              .level_after = after});
    ++sum_.epochs;
  }

  // Closes the profiler and the hub: every event is written before this returns.
  void finish() {
    if (auto trace = profiler_.close()) emit(*trace);
    if (!opts_.profile_dir.empty()) emit(timers_.take());
    hub_.close();
    const auto c = hub_.counts();
    sum_.events_emitted = c.emitted;
    sum_.events_dropped = c.dropped;
  }

 private:
  template <class P>
  void emit(P payload) {
    ++sum_.event_counts[std::string(P::name)];
    hub_.emit(update_, sum_.epochs + 1, std::move(payload));
  }

  // Every detector type of the monitor, default-constructed (simic's
  // defaults), or the reference preset: a detector added to monitor_type is
  // held here without further edits (and the wiring test then asks for its
  // signal).
  template <class... Ds>
  static Monitor make_monitor(const run_options& o, std::tuple<Ds...>*) {
    if constexpr (std::is_same_v<Monitor, simic::reference_monitor>)
      return simic::make_reference_monitor(simic::reference_config_options(config_options(o)),
                                           o.effective_max_skips());
    else
      return Monitor(simic::config(config_options(o)), simic::skip_nonfinite_then_stop(o.effective_max_skips()),
                     Ds{}...);
  }

  static simic::config_options config_options(const run_options& o) {
    simic::config_options c;
    c.configured = o.level;
    c.escalation_epochs = o.escalation_epochs;
    return c;
  }

  // The least healthy environment's state is the rollout's figure, judged by
  // the LSTM detector the monitor holds.
  bool healthy(const simic::lstm_signal& l) const {
    if constexpr (std::is_same_v<Monitor, simic::reference_monitor>)
      return monitor_.template get<simic::lstm_bounds>().healthy(l);
    else
      return monitor_.template get<simic::lstm_rms_bounds>().healthy(l);
  }

  const run_options& opts_;
  run_summary& sum_;
  Monitor monitor_;
  simic::hub hub_;
  simic::profiler profiler_;
  simic::phase_timers timers_;
  simic::gradient_health_sensor<> grad_sensor_{};
  simic::lstm_health_sensor<> lstm_sensor_{};
  simic::parameter_update_sensor update_sensor_{};
  simic::layer_gradient_sensor<> layer_sensor_{};
  simic::nan_inf_scanner<> scanner_{};
  std::optional<simic::lstm_signal> lstm_;
  std::uint64_t update_ = 0;
  std::size_t update_anomalies_ = 0;
  std::string update_kinds_;
  std::uint64_t epoch_anomalies_ = 0;
};

}  // namespace ppo_lstm
