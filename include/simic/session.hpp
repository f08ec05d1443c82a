// simic::session: simic wired into a training loop by one object. It owns the
// monitor, the sensors and the path to the sinks, so a trainer hands in only
// what it alone knows (its PPO statistics, its LSTM state, its performance)
// and obeys the response:
//
//   simic::session tel({}, *model, {std::make_shared<simic::jsonl_sink>("run.jsonl")});
//   for (...) {                                     // one update
//     tel.begin_update();                           // intervals, memory statistics
//     ... rollout: tel.lstm_state(h, c) at each sequence start ...
//     tel.end_rollout({.reward_rate = r});          // handed to the next check
//     for (...) {                                   // each optimizer step
//       loss.backward();
//       const auto& r = tel.step(ppo_statistics);   // gradients, update ratio, check, events
//       if (r.resp.act == simic::action::proceed) optimizer.step();
//       if (r.resp.act == simic::action::stop) ...;
//     }
//     if (epoch ended) tel.end_epoch(mean_return);  // epoch summary, tick()
//   }
//
// Per optimizer step it reads the gradients (gradient health, and the
// host/module gradient ratio when the host's parameters are named), the
// update ratio of the previous step, adds the rollout's LSTM state and
// figures, runs the check, and emits every event: the step's figures,
// gradient and LSTM health, anomalies and their clears, escalation start,
// the response (skip, stop and its cause), and at DEBUG the per-layer
// statistics, the NaN/Inf scan and the ratio diagnostic. begin_update()
// emits memory statistics every config memory_interval updates; end_epoch()
// ticks the config and emits the escalation end and the epoch summary.
// Every config interval is honoured (docs/guide.md lists them).
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "simic/core/config.hpp"
#include "simic/core/detail/error.hpp"
#include "simic/core/signal_agreement.hpp"
#include "simic/core/signal_guard.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/hub.hpp"
#include "simic/emit/sink.hpp"
#include "simic/monitor.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/sensors/debug_layer_gradients.hpp"
#include "simic/sensors/debug_nan_inf_scan.hpp"
#include "simic/sensors/debug_ratio_explosion.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/gradient_ratio.hpp"
#include "simic/sensors/lstm_health.hpp"
#include "simic/sensors/memory.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameter_update.hpp"
#include "simic/sensors/parameters.hpp"

namespace simic {
inline namespace v0 {

// When the gradients are read: in step() (sync), or enqueued earlier by
// enqueue_gradients() and collected in step() (async: on CUDA the reduction
// runs while the host prepares the step's statistics).
enum class gradient_read : unsigned char { sync, async };

struct session_options {
  config_options config{};  // level, gradient_interval, memory_interval, debug switches, escalation
  std::uint32_t max_consecutive_skips = defaults::max_consecutive_skips;  // the response policy's stop
  param_filter watch{};                  // the named parameters every sensor reads
  std::optional<param_filter> host{};    // names the host network's parameters: the rest of the
                                         // watched ones are the module (host/module gradient ratio)
  gradient_health_options gradients{};   // vanishing / exploding bounds
  layer_gradient_options layers{};       // DEBUG per-layer statistics
  ratio_diagnostic_options ratio{};      // DEBUG ratio diagnostic
  memory_sensor_options memory{};        // e.g. .device_reader = simic::cuda::caching_allocator_memory
  gradient_read read = gradient_read::sync;
  hub_options hub{};  // the hub made from sinks: never blocks training by default (drops are counted)
  // close() and the destructor wait at most this for the sinks (>= 0; the
  // session's own hub only): what is still queued then is counted undelivered.
  std::chrono::milliseconds close_deadline = hub::no_deadline;
  // Opt in: while the session lives, SIGTERM and SIGINT set stop_requested()
  // instead of ending the process (a simic::signal_guard; previous handlers
  // come back when the session goes). Off: simic installs no handler.
  bool stop_on_signals = false;
  // Data-parallel training: every check is made on the job's signals, which
  // this agreement makes from every rank's (simic::distributed::agreement),
  // so that every rank skips, escalates and stops together. The events keep
  // this rank's own figures; anomaly events name the ranks they came from.
  std::shared_ptr<signal_agreement> agreement{};
};

// What the session measured, per sensor (each a count of measurements).
struct session_counts {
  std::uint64_t checks = 0;
  std::uint64_t gradient_health = 0;
  std::uint64_t host_module_ratio = 0;
  std::uint64_t update_ratio = 0;
  std::uint64_t lstm_health = 0;
  std::uint64_t layer_gradients = 0;
  std::uint64_t nan_inf_scan = 0;
  std::uint64_t ratio_diagnostic = 0;
  std::uint64_t memory = 0;
  friend bool operator==(const session_counts&, const session_counts&) = default;
};

// Figures known once per rollout, handed to the next check.
struct rollout_figures {
  std::optional<double> reward_rate{};
  std::optional<double> explained_variance{};
};

// Optional per-step input beyond the signals.
struct step_extras {
  update_metrics metrics{};  // more figures for the step's "update" event (losses, learning rate)
  at::Tensor loss{};         // DEBUG NaN/Inf scan: the loss is scanned too
  at::Tensor ratio{}, old_log_prob{}, new_log_prob{}, actions{};  // DEBUG ratio diagnostic
};

// The DEBUG diagnostics of the latest step (absent: not run).
struct step_diagnostics {
  std::optional<layer_gradient_report> layers{};
  std::optional<nan_inf_scan_report> scan{};
  std::optional<ratio_diagnostic_report> ratio{};
};

// No parameters: the session runs the monitor and emits events, but reads no
// tensors (the caller hands in every signal).
inline const std::vector<std::pair<std::string, at::Tensor>> no_parameters{};

// Not thread-safe: use a session from one thread at a time; debug builds
// throw std::logic_error when its per-update calls overlap (docs/guide.md, Threads).
template <class Monitor = default_monitor, reduction_backend Backend = auto_backend>
class session {
 public:
  using monitor_type = Monitor;
  using sink_list = std::vector<std::shared_ptr<sink>>;

  // The session makes its hub (options.hub) and adds `sinks`; close() closes it.
  template <named_parameter_source Params>
  session(const session_options& o, const Params& params, const sink_list& sinks = {})
      : session(make_monitor(o), o, params, owned_hub(o.hub, sinks), true) {}
  // Events go to `shared` (kept open by close(), which flushes it).
  template <named_parameter_source Params>
  session(const session_options& o, const Params& params, std::shared_ptr<hub> shared)
      : session(make_monitor(o), o, params, require_hub(std::move(shared)), false) {}
  // A monitor built by the caller (e.g. make_reference_monitor()): its config
  // rules; o.config and o.max_consecutive_skips are not used.
  template <named_parameter_source Params>
  session(Monitor m, const session_options& o, const Params& params, const sink_list& sinks = {})
      : session(std::move(m), o, params, owned_hub(o.hub, sinks), true) {}

  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() { close(); }

  // ---- per update ---------------------------------------------------------
  // Starts update number update() + 1. Intervals count updates from the
  // first: gradients are read in updates 1, 1 + gradient_interval, ...;
  // memory statistics are emitted in updates 1, 1 + memory_interval, ...
  // A trainer that never calls it has one update per step().
  void begin_update() {
    const auto in_use = one_thread_.enter("begin_update");
    explicit_updates_ = true;
    start_update();
  }

  // The LSTM state (h, c) of a rollout, as [envs, hidden] rows (or one
  // state): the least healthy row, by the monitor's LSTM detector, else the
  // largest, is the rollout's figure, handed to the next check.
  void lstm_state(const at::Tensor& h, const at::Tensor& c) {
    const auto in_use = one_thread_.enter("lstm_state");
    if (level() == simic::level::off) return;
    for (const lstm_health_report& row : lstm_sensor_.measure_rows(h, c)) {
      const lstm_signal l = row.signal();
      ++counts_.lstm_health;
      if (!lstm_ || (lstm_healthy(*lstm_) && (!lstm_healthy(l) || l.c_norm > lstm_->c_norm))) lstm_ = l;
    }
  }

  // The rollout's figures, handed to the next check (fields the check's own
  // signals carry win).
  void end_rollout(const rollout_figures& f) {
    const auto in_use = one_thread_.enter("end_rollout");
    rollout_ = f;
  }

  // ---- per optimizer step -------------------------------------------------
  // Enqueues the gradient read (async mode; a no-op in sync mode or when
  // gradients are not due): call it right after backward().
  void enqueue_gradients() {
    const auto in_use = one_thread_.enter("enqueue_gradients");
    // Without begin_update() the step to come starts the next update.
    const bool due = explicit_updates_ ? gradients_due_ : std::as_const(monitor_).cfg().gradients_due(update_);
    if (opts_.read == gradient_read::async && !pending_grads_ && due && !watched_.empty()) {
      pending_grads_.emplace(grad_sensor_.measure_async(watched_));
    }
  }

  // One check: `s` holds the statistics only the caller knows (PPO ratios,
  // KL, entropy, loss, progress, performance); the session adds what its
  // sensors read and what end_rollout() handed in, where `s` has none.
  // Bad input throws std::invalid_argument before anything is read or kept.
  // Obey the returned response: proceed, skip_step (do not step the
  // optimizer) or stop.
  const check_result& step(const signals& s) { return step(s, no_extras()); }
  const check_result& step(const signals& s, const step_extras& x) {
    const auto in_use = one_thread_.enter("step");
    // The session adds to a copy of `s`, made only when it has something to
    // add: a figure it holds, or a sensor read (it has parameters).
    const std::optional<lstm_signal> lstm = s.lstm ? std::nullopt : lstm_;
    const bool held = lstm || (!s.reward_rate && rollout_.reward_rate) ||
                      (!s.explained_variance && rollout_.explained_variance) || (!s.performance && epoch_performance_);
    const bool reads = !watched_.empty();
    const signals* in = &s;
    if (held || reads) {
      checked_ = held_signals(s);
      in = &checked_;
    }
    last_ = in;
    monitor_.validate(*in);  // bad input throws here: nothing read, nothing consumed
    if (!explicit_updates_) start_update();
    const simic::level before = level();
    grads_.reset();  // no figures of an earlier step stay
    host_ratio_.reset();
    if (before != simic::level::off && reads) sense(checked_);
    pending_grads_.reset();  // used, or not read this step (not due, OFF)
    // Validated above; what the sensors added is valid by construction, and
    // what an agreement makes of valid signals is valid too.
    const signals* judged = opts_.agreement ? &opts_.agreement->agree(*in) : in;
    const check_result& r = monitor_.check(*judged, already_validated);
    // accepted: what was handed over is consumed
    lstm_.reset();
    rollout_ = {};
    epoch_performance_.reset();
    performance_checked_ = performance_checked_ || s.performance.has_value();
    ++counts_.checks;
    epoch_anomalies_ += r.report.size();
    if (emitting()) emit_step(*in, x, r, lstm, before);
    diagnose(x);
    ++step_in_update_;
    return r;
  }

  // `s` and the figures the session holds for the next check where `s` has
  // none (the rollout's LSTM state and figures, the epoch's performance):
  // the next step(s) checks these and what its sensors read. A data-parallel
  // rank carries them to the others before its gradients are all-reduced
  // (distributed::gradient_all_reduce). Consumes nothing; the entropy and
  // user spans still point at the caller's.
  signals held_signals(const signals& s) const {
    signals out = s;
    if (!out.lstm) out.lstm = lstm_;
    if (!out.reward_rate) out.reward_rate = rollout_.reward_rate;
    if (!out.explained_variance) out.explained_variance = rollout_.explained_variance;
    if (!out.performance) out.performance = epoch_performance_;
    return out;
  }

  // ---- per epoch ----------------------------------------------------------
  // Ends an epoch: `performance` (higher is better) goes into the epoch
  // summary, and to the next check unless a check of this epoch already
  // carried one; the config ticks (an escalation may end).
  void end_epoch(std::optional<double> performance = std::nullopt) {
    const auto in_use = one_thread_.enter("end_epoch");
    const simic::level before = level();
    monitor_.tick();
    const simic::level after = level();
    if (emitting()) {
      if (after != before) emit(escalation_end_event{.from = before, .to = after});
      emit(epoch_summary{.performance = performance,
                         .updates = update_ + 1 - epoch_first_update_,
                         .anomalies = epoch_anomalies_,
                         .level_after = after});
    }
    if (performance && !performance_checked_) epoch_performance_ = performance;
    performance_checked_ = false;
    epoch_anomalies_ = 0;
    epoch_first_update_ = update_ + 1;
    ++epochs_;
  }

  // Flushes every event; closes the hub when the session made it. Returns
  // the hub's counts. Idempotent; the destructor calls it.
  hub_counts close() { return close(opts_.close_deadline); }
  // As close(), waiting at most `deadline` (>= 0) for the session's own hub
  // (hub::close(deadline)); a shared hub is flushed without a deadline.
  hub_counts close(std::chrono::milliseconds deadline) {
    detail::require(deadline.count() >= 0, "simic::session::close", "deadline", deadline.count(),
                    ">= 0 ms (hub::no_deadline: wait without limit)");
    if (owns_hub_)
      hub_->close(deadline);
    else
      hub_->flush();
    return hub_->counts();
  }

  // With session_options::stop_on_signals: whether SIGTERM or SIGINT came
  // (the loop should stop, close() and exit), and which (0: none).
  bool stop_requested() const noexcept { return stop_guard_.has_value() && signal_guard::requested(); }
  int stop_signal() const noexcept { return stop_guard_.has_value() ? signal_guard::signal_number() : 0; }

  // An event of the caller's (a profiler trace, phase timings), stamped
  // with the session's update and epoch.
  template <EventPayload P>
  void emit(P payload) {
    hub_->emit(update_, epochs_ + 1, std::move(payload));
  }

  // ---- what it knows --------------------------------------------------------
  Monitor& monitor() noexcept { return monitor_; }
  const Monitor& monitor() const noexcept { return monitor_; }
  simic::level level() const noexcept { return monitor_.effective_level(); }
  std::uint64_t update() const noexcept { return update_; }  // updates begun
  std::uint64_t epochs() const noexcept { return epochs_; }  // epochs ended
  std::uint64_t step_in_update() const noexcept { return step_in_update_; }  // steps of this update so far
  const session_counts& counts() const noexcept { return counts_; }
  // The signals of the latest step(), as the monitor saw them (or, when
  // step() threw, as it rejected them). Read it before the caller's signals
  // of that step go: it may be them (when the session added nothing), and
  // their entropy and user spans point into the caller's memory.
  const signals& last_signals() const noexcept { return *last_; }
  // The latest gradient read (absent before the first, or when not due).
  const std::optional<gradient_health_report>& last_gradients() const noexcept { return grads_; }
  const std::optional<double>& last_host_module_ratio() const noexcept { return host_ratio_; }
  const step_diagnostics& last_diagnostics() const noexcept { return diag_; }
  hub& events() noexcept { return *hub_; }
  const std::vector<std::pair<std::string, at::Tensor>>& watched() const noexcept { return watched_; }

 private:
  template <class Params>
  session(Monitor m, const session_options& o, const Params& params, std::shared_ptr<hub> h, bool owns)
      : opts_(o),
        monitor_(std::move(m)),
        hub_(std::move(h)),
        owns_hub_(owns),
        grad_sensor_(without_filter(o.gradients)),
        layer_sensor_(without_filter(o.layers)),
        memory_sensor_(o.memory) {
    detail::require(o.close_deadline.count() >= 0, "simic::session", "close_deadline", o.close_deadline.count(),
                    ">= 0 ms (hub::no_deadline: wait without limit)");
    collect(params);
    if (o.stop_on_signals) stop_guard_.emplace();  // last: nothing after it can throw
  }

  static Monitor make_monitor(const session_options& o) {
    using R = typename Monitor::response_policy;
    if constexpr (std::is_constructible_v<R, std::uint32_t>)
      return Monitor(config(o.config), R(o.max_consecutive_skips));
    else
      return Monitor(config(o.config));
  }
  static std::shared_ptr<hub> owned_hub(const hub_options& ho, const sink_list& sinks) {
    auto h = std::make_shared<hub>(ho);
    for (const auto& s : sinks) h->add_sink(s);
    return h;
  }
  static std::shared_ptr<hub> require_hub(std::shared_ptr<hub> h) {
    detail::require(h != nullptr, "simic::session", "hub", "nullptr", "a hub");
    return h;
  }
  // The session filters once (options.watch); its sensors see the result.
  template <class O>
  static O without_filter(O o) {
    o.filter = {};
    return o;
  }

  template <class Params>
  void collect(const Params& params) {
    watched_parameters w = watch(params, opts_.watch);
    for (std::size_t i = 0; i < w.names.size(); ++i) {
      detail::require(w.weights[i].defined(), "simic::session", "parameter " + w.names[i], "undefined",
                      "a defined tensor");
      is_host_.push_back(opts_.host && (*opts_.host)(w.names[i]));
      watched_.emplace_back(std::move(w.names[i]), w.weights[i]);
    }
    weights_ = std::move(w.weights);
  }

  void start_update() {
    ++update_;
    step_in_update_ = 0;
    const auto& cfg = std::as_const(monitor_).cfg();  // a read: no thread check (docs/guide.md, Threads)
    gradients_due_ = cfg.gradients_due(update_ - 1);
    // Memory statistics only go to events: none are read without a sink.
    if (cfg.memory_due(update_ - 1) && emitting()) {
      ++counts_.memory;
      emit(memory_event{
          .memory = memory_sensor_.measure(watched_.empty() ? at::Device(at::kCPU) : weights_[0].device())});
    }
  }

  static const step_extras& no_extras() {
    static const step_extras none{};
    return none;
  }

  bool gradients_due() const noexcept { return gradients_due_ && !watched_.empty(); }
  bool emitting() const noexcept { return hub_->has_sinks(); }

  // The sensors' part of a check: gradient health (MINIMAL and up: the
  // non-finite check reads it), the update ratio (NORMAL and up).
  void sense(signals& s) {
    if (!s.gradients && gradients_due()) {
      gradient_health_report g =
          pending_grads_ ? pending_grads_->materialize() : grad_sensor_.measure(watched_);
      ++counts_.gradient_health;
      s.gradients = g.signal();
      if (opts_.host) host_ratio_ = host_module_ratio(g);
      grads_ = std::move(g);
    }
    if (!s.update_ratio && !watched_.empty() && level() >= simic::level::normal) {
      s.update_ratio = update_sensor_.measure(std::span<const at::Tensor>(weights_));
      ++counts_.update_ratio;
    }
  }

  // From the gradient read itself: the host's and the module's squared
  // norms and sizes, split by name (no second read).
  std::optional<double> host_module_ratio(const gradient_health_report& g) {
    gradient_mass host, module;
    std::size_t j = 0;
    for (std::size_t i = 0; i < watched_.size() && j < g.names.size(); ++i) {
      if (g.names[j] != watched_[i].first) continue;  // no gradient this step
      gradient_mass& side = is_host_[i] ? host : module;
      side.squared_norm += g.param_norms[j] * g.param_norms[j];
      side.parameters += static_cast<std::uint64_t>(weights_[i].numel());
      ++side.tensors;
      ++j;
    }
    ++counts_.host_module_ratio;
    return gradient_ratio(host, module);
  }

  template <class D>
  static constexpr bool judges_lstm = requires(const D& d, const lstm_signal& l) {
    { d.healthy(l) } -> std::convertible_to<bool>;
  };
  // By the first of the monitor's detectors that judges an LSTM state; true without one.
  bool lstm_healthy(const lstm_signal& l) const {
    std::optional<bool> ok;
    monitor_.for_each_detector([&](const auto& d) {
      if constexpr (judges_lstm<std::decay_t<decltype(d)>>)
        if (!ok) ok = d.healthy(l);
    });
    return ok.value_or(true);
  }

  void emit_step(const signals& s, const step_extras& x, const check_result& r, const std::optional<lstm_signal>& lstm,
                 simic::level before) {
    if (grads_) emit(gradient_health_event{.gradients = grads_->signal(), .host_module_ratio = host_ratio_});
    if (lstm) emit(lstm_health_event{.lstm = *lstm, .healthy = lstm_healthy(*lstm)});
    emit(step_metrics(s, x.metrics));
    if (r.resp.act != action::proceed)
      emit(response_event{.act = r.resp.act,
                          .reason = r.resp.reason,
                          .consecutive_skips = monitor_.responses().consecutive_skips,
                          .total_skips = monitor_.responses().total_skips});
    for (const anomaly_clear& c : r.report.clears())
      emit(anomaly_clear_event{.kind = c.kind, .duration = c.duration, .value = c.value});
    std::string kinds;
    for (const anomaly& a : r.report) {
      anomaly_event e = anomaly_event::of(a, level());
      if (opts_.agreement) e.origin_ranks = opts_.agreement->origin_of(a.kind);
      emit(std::move(e));
      if (a.kind == anomaly_kind::performance_degradation && a.baseline) {
        const double base = *a.baseline, scale = std::abs(base);
        emit(performance_degradation_event{.current = a.value,
                                           .rolling_mean = base,
                                           .drop = (base - a.value) / scale,
                                           .threshold = (base - a.threshold) / scale});
      }
      const std::string_view k = to_string(a.kind);
      if (kinds.find(k) == std::string::npos) kinds.append(kinds.empty() ? "" : ",").append(k);
    }
    if (level() != before)
      emit(escalation_start_event{
          .from = before, .to = level(), .epochs = monitor_.cfg().options().escalation_epochs, .reason = kinds});
  }

  // The step's "update" event: the caller's metrics, completed from the signals.
  update_metrics step_metrics(const signals& s, update_metrics m) const {
    auto fill = [](std::optional<double>& field, const std::optional<double>& from) {
      if (!field) field = from;
    };
    fill(m.loss, s.loss);
    fill(m.approx_kl, s.approx_kl);
    fill(m.ratio_max, s.ratio_max);
    fill(m.ratio_min, s.ratio_min);
    fill(m.explained_variance, s.explained_variance);
    if (!m.entropy && !s.entropy.empty()) {
      double sum = 0.0;
      for (const head_entropy& h : s.entropy) sum += h.normalized;
      m.entropy = sum / static_cast<double>(s.entropy.size());
    }
    m.extra.push_back({"step", static_cast<double>(step_in_update_)});
    if (s.performance) m.extra.push_back({"performance", *s.performance});
    return m;
  }

  // The DEBUG diagnostics, each while the effective level is DEBUG and its
  // switch is on (the check that escalated included).
  void diagnose(const step_extras& x) {
    diag_.layers.reset();
    diag_.scan.reset();
    diag_.ratio.reset();
    const config& cfg = std::as_const(monitor_).cfg();
    if (!cfg.should_collect<cat::debug>()) return;
    if (!watched_.empty() && cfg.per_layer_due()) {
      diag_.layers = layer_sensor_.measure(watched_);
      ++counts_.layer_gradients;
      if (emitting()) emit(layer_gradients_event{.report = *diag_.layers});
    }
    if (!watched_.empty() && cfg.nan_inf_scan_due()) {
      diag_.scan = scanner_.scan(watched_, x.loss.defined() ? x.loss.detach() : x.loss);
      ++counts_.nan_inf_scan;
      if (emitting()) emit(nan_inf_scan_event{.report = *diag_.scan});
    }
    if (x.ratio.defined() && cfg.ratio_diagnostic_due()) {
      diag_.ratio = diagnose_ratio_explosion(x.ratio.detach(), x.old_log_prob.detach(), x.new_log_prob.detach(),
                                             x.actions, opts_.ratio);
      ++counts_.ratio_diagnostic;
      if (emitting()) emit(ratio_diagnostic_event{.report = *diag_.ratio});
    }
  }

  session_options opts_;
  Monitor monitor_;
  std::shared_ptr<hub> hub_;
  bool owns_hub_ = false;
  std::optional<signal_guard> stop_guard_;  // with stop_on_signals
  std::vector<std::pair<std::string, at::Tensor>> watched_;
  std::vector<at::Tensor> weights_;
  std::vector<bool> is_host_;
  gradient_health_sensor<Backend> grad_sensor_;
  parameter_update_sensor update_sensor_{};
  lstm_health_sensor<Backend> lstm_sensor_{};
  layer_gradient_sensor<Backend> layer_sensor_;
  nan_inf_scanner<Backend> scanner_{};
  memory_sensor memory_sensor_;
  std::optional<pending_report<gradient_health_report>> pending_grads_;
  std::optional<gradient_health_report> grads_;
  std::optional<double> host_ratio_;
  std::optional<lstm_signal> lstm_;
  rollout_figures rollout_{};
  std::optional<double> epoch_performance_;  // an epoch's figure for the next check
  bool performance_checked_ = false;
  signals checked_{};
  const signals* last_ = &checked_;
  step_diagnostics diag_{};
  detail::one_thread_guard one_thread_{"session"};
  session_counts counts_{};
  bool explicit_updates_ = false;
  bool gradients_due_ = false;
  std::uint64_t update_ = 0;
  std::uint64_t step_in_update_ = 0;
  std::uint64_t epochs_ = 0;
  std::uint64_t epoch_first_update_ = 1;
  std::uint64_t epoch_anomalies_ = 0;
};

}  // namespace v0
}  // namespace simic
