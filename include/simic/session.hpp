// simic::session<Monitor, Sensors...>: simic wired into a training loop by
// one object that owns the monitor, the sensors (sensors/sensor.hpp) and the
// path to the sinks. It names no sensor: each sensor's header says when it
// reads, what it adds to the check and which events it writes; a preset
// names a set (presets/ppo_session.hpp). docs/guide.md shows the loop.
//
// Per step: the sensors add what they hold and read to the caller's signals,
// the monitor checks them, the sensors write their events, then the check's
// (emit/check_events.hpp), then the DEBUG diagnostics run. With a deferred
// check (session_options::check) the step's call starts the reads and runs
// the diagnostics, and the next call (or flush) finishes the reads, checks
// and writes the events, returning that verdict one step late.
#pragma once

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "simic/core/detail/thread_guard.hpp"
#include "simic/core/error.hpp"
#include "simic/core/signal_guard.hpp"
#include "simic/emit/check_events.hpp"
#include "simic/emit/sink.hpp"
#include "simic/monitor.hpp"
#include "simic/sensors/parameters.hpp"
#include "simic/sensors/sensor.hpp"
#include "simic/session_options.hpp"

namespace simic {
inline namespace v0 {

// Which step a verdict judges: its check's number (checks() once it was
// made; 1 for the session's first) and its update (the events' stamp).
struct judged_step {
  std::uint64_t check = 0;
  std::uint64_t update = 0;
  friend bool operator==(const judged_step&, const judged_step&) = default;
};

// What session::step() returns: the check's result and the step it judged.
// Sync: the step of this call. Deferred: the previous step; none on the
// first call (nothing judged yet: proceed, an empty report).
struct step_result : check_result {
  std::optional<judged_step> judged;
};

namespace detail {
// A step's signals with their own copy of the caller's spans (entropy heads,
// user figures, and their names), for a check made after the caller's
// memory is gone. Moving it keeps the spans valid (a vector's move keeps
// its elements where they are); copying would not, so it is not copyable.
struct owned_signals {
  signals given;    // the caller's
  signals checked;  // with what the session and its sensors added
  owned_signals(const signals& caller, const signals& held) : given(caller), checked(held) {
    names_.reserve(caller.entropy.size() + caller.user.size());
    entropy_.reserve(caller.entropy.size());
    user_.reserve(caller.user.size());
    for (const head_entropy& h : caller.entropy) entropy_.push_back({names_.emplace_back(h.head), h.normalized});
    for (const user_signal& u : caller.user) user_.push_back({names_.emplace_back(u.name), u.value});
    given.entropy = checked.entropy = entropy_;
    given.user = checked.user = user_;
  }
  owned_signals(owned_signals&&) noexcept = default;
  owned_signals& operator=(owned_signals&&) noexcept = default;

 private:
  std::vector<std::string> names_;
  std::vector<head_entropy> entropy_;
  std::vector<user_signal> user_;
};
}  // namespace detail

// One thread at a time; debug builds throw std::logic_error when calls overlap (docs/guide.md, Threads).
template <class Monitor, Sensor... Sensors>
class session {
 public:
  using monitor_type = Monitor;
  using sink_list = std::vector<std::shared_ptr<sink>>;

  // The session makes its hub (options.hub) and adds `sinks`; close() closes
  // it. `sensor_options`: options of some of the sensors, each routed by its
  // type to the sensors it configures (the others keep their defaults).
  template <named_parameter_source Params, class... Opts>
  session(const session_options& o, const Params& params, const sink_list& sinks = {}, const Opts&... sensor_options)
      : session(make_monitor(o), o, params, owned_hub(o.hub, sinks), true, sensor_options...) {}
  // Events go to `shared` (kept open by close(), which flushes it).
  template <named_parameter_source Params, std::same_as<std::shared_ptr<hub>> Shared, class... Opts>
  session(const session_options& o, const Params& params, Shared shared, const Opts&... sensor_options)
      : session(make_monitor(o), o, params, require_hub(std::move(shared)), false, sensor_options...) {}
  // A monitor built by the caller (e.g. make_reference_monitor()): its config
  // rules; o.config, o.max_consecutive_skips and o.skip are not used.
  template <named_parameter_source Params, class... Opts>
  session(Monitor m, const session_options& o, const Params& params, const sink_list& sinks = {},
          const Opts&... sensor_options)
      : session(std::move(m), o, params, owned_hub(o.hub, sinks), true, sensor_options...) {}

  session(const session&) = delete;  // the sensors and the hub are its own
  session& operator=(const session&) = delete;
  ~session() {
    try {
      close();
    } catch (...) {  // close() throws only for a bad deadline or overlapping calls: none here
    }
  }

  // Starts update number update() + 1; the sensors' intervals count updates
  // from the first. A trainer that never calls it has one update per step().
  void begin_update() {
    const auto in_use = one_thread_.enter("begin_update");
    explicit_updates_ = true;
    start_update();
  }

  // Hands `x` (simic::lstm_state{h, c}, ...) to every sensor that takes its type.
  template <class Input>
  void feed(const Input& x) {
    const auto in_use = one_thread_.enter("feed");
    static_assert(takes<Input>(), "simic::session::feed: no sensor of this session takes this input type");
    feed_all(context(update_), x);
  }

  // The rollout's figures, handed to the next check (the check's own win).
  void end_rollout(const rollout_figures& f) {
    const auto in_use = one_thread_.enter("end_rollout");
    rollout_ = f;
  }

  // Starts the sensors' asynchronous reads of the coming step (a gradient
  // read with gradient_read::async): call it right after backward().
  void enqueue() {
    const auto in_use = one_thread_.enter("enqueue");
    const auto ctx = context(explicit_updates_ ? update_ : update_ + 1);  // without begin_update(): the next update
    each([&](auto& x) { detail::sensor_enqueue(x, ctx); });
  }

  // One check: `s` holds what only the caller knows; the sensors add what
  // they hold and read where `s` has none. `inputs`: the step's update_metrics
  // (more figures for its record) and inputs of the sensors (simic::step_loss,
  // simic::ratio_batch, ...). Bad input throws std::invalid_argument before
  // anything is read, kept or judged. Obey the response: proceed, skip_step
  // or stop. With a deferred check the response is the previous step's
  // (result.judged says which; none on the first call): docs/guide.md, "A
  // deferred check", says what it means for this step's update.
  template <class... Inputs>
  const step_result& step(const signals& s, const Inputs&... inputs) {
    const auto in_use = one_thread_.enter("step");
    static_assert(((std::is_same_v<Inputs, update_metrics> || takes<Inputs>()) && ...),
                  "simic::session::step: an input is neither update_metrics nor taken by a sensor of this session");
    static_assert((std::is_same_v<Inputs, update_metrics> + ... + 0) <= 1, "at most one update_metrics per step");
    checked_ = held_signals(s);
    monitor_.validate(checked_);  // bad input throws here: nothing read, nothing consumed
    ++steps_;
    if (deferred()) return defer_step(s, inputs...);
    if (!explicit_updates_) start_update();
    const simic::level before = level();
    const auto ctx = context(update_);
    (feed_all(ctx, inputs), ...);
    each([&](auto& x) { detail::sensor_sense(x, ctx, checked_); });
    consume_held(s);
    const check_result& r = judge(ctx, s, checked_, first_metrics(inputs...),
                                  explicit_updates_ ? std::optional(step_in_update_) : std::nullopt, before);
    each([&](auto& x) { detail::sensor_diagnose(x, ctx, r); });
    note_unread(checked_, update_, epochs_ + 1);
    ++step_in_update_;
    return result(r, judged_step{checks_, update_});
  }

  // Deferred check: makes the pending step's check now (waiting for its
  // reads only if they are still running) and writes its events, then the
  // epoch ends that came after it; returns its verdict (nothing judged when
  // no step is pending, as always with a sync check). Call it after the
  // last step, and before saving the session (save_session refuses a
  // pending check). close() does it too, without returning the verdict.
  const step_result& flush() {
    const auto in_use = one_thread_.enter("flush");
    return judge_pending();
  }
  // The step whose check is still to be made (deferred check), if any.
  std::optional<judged_step> pending() const noexcept {
    if (!pending_) return std::nullopt;
    return judged_step{checks_ + 1, pending_->update};
  }
  // Forgets the pending step without checking it (no events, no verdict):
  // after a rollback (recovery.hpp) it was taken on weights that are gone.
  // The epoch ends that came after it are made now.
  void discard_pending() {
    const auto in_use = one_thread_.enter("discard_pending");
    pending_.reset();
    finish_epochs();
  }

  // `s` and the figures the session and its sensors hold for the next check
  // where `s` has none (LSTM state, rollout figures, performance): what a
  // data-parallel rank carries to the others (distributed::gradient_all_reduce).
  // Consumes nothing; the entropy and user spans still point at the caller's.
  signals held_signals(const signals& s) const {
    signals out = s;
    std::apply([&](const auto&... x) { (detail::sensor_held(x, out), ...); }, sensors_);
    if (!out.reward_rate) out.reward_rate = rollout_.reward_rate;
    if (!out.explained_variance) out.explained_variance = rollout_.explained_variance;
    if (!out.performance) out.performance = epoch_performance_;
    return out;
  }

  // Ends an epoch: `performance` (higher is better) goes into the epoch
  // summary, and to the next check unless a check of this epoch already
  // carried one; the config ticks (an escalation may end). With a step whose
  // check is deferred, the tick and the summary come after that check.
  void end_epoch(std::optional<double> performance = std::nullopt) {
    const auto in_use = one_thread_.enter("end_epoch");
    ended_.push_back(epoch_end{performance, update_ + 1 - epoch_first_update_, update_, epochs_ + 1});
    if (performance && !performance_checked_) epoch_performance_ = performance;
    performance_checked_ = false;
    epoch_first_update_ = update_ + 1;
    ++epochs_;
    if (!pending_) finish_epochs();
  }

  // Checks the last epoch's performance if no step carried it (a run's last
  // end_epoch()), then flushes every event; closes the hub when the session
  // made it (waiting at most `deadline`). Returns the hub's counts.
  // Idempotent; the destructor calls it.
  // A deferred check's pending step is checked first (flush()).
  hub_counts close() { return close(opts_.close_deadline); }
  hub_counts close(std::chrono::milliseconds deadline) {
    detail::require(deadline.count() >= 0, "simic::session::close", "deadline", deadline.count(),
                    ">= 0 ms (hub::no_deadline: wait without limit)");
    if (pending_) {
      const auto in_use = one_thread_.enter("close");
      judge_pending();
    }
    check_last_performance();
    if (owns_hub_) (void)hub_->close(deadline); else hub_->flush();
    return hub_->counts();
  }

  // With session_options::stop_on_signals: whether SIGTERM or SIGINT came, and which (0: none).
  bool stop_requested() const noexcept { return stop_guard_.has_value() && signal_guard::requested(); }
  int stop_signal() const noexcept { return stop_guard_.has_value() ? signal_guard::signal_number() : 0; }

  // An event of the caller's (a profiler trace, phase timings), stamped with the session's update and epoch.
  template <EventPayload P>
  void emit(P payload) {
    hub_->emit(update_, epochs_ + 1, std::move(payload));
  }

  Monitor& monitor() noexcept { return monitor_; }
  const Monitor& monitor() const noexcept { return monitor_; }
  simic::level level() const noexcept { return monitor_.effective_level(); }
  std::uint64_t update() const noexcept { return update_; }                  // updates begun
  // The watched parameters, in the order the sensors see them.
  std::span<const at::Tensor> weights() const noexcept { return weights_; }
  std::uint64_t epochs() const noexcept { return epochs_; }                  // epochs ended
  std::uint64_t step_in_update() const noexcept { return step_in_update_; }  // steps of this update so far
  std::uint64_t checks() const noexcept { return checks_; }
  // step() calls this object accepted (a count of calls, not saved: for
  // whatever acts once per step, as simic::update_guard).
  std::uint64_t steps() const noexcept { return steps_; }
  // Fields the trainer fed that no detector of the monitor reads (each also
  // written once as an unread_signals event).
  signal_set unread_signals() const noexcept { return unread_; }
  // The signals of the latest check, as the monitor saw them before an
  // agreement (or, when step() threw, as it rejected them). The entropy and
  // user spans point into the caller's memory (a deferred check's: into the
  // session's copy, valid until the next check).
  const signals& last_signals() const noexcept { return checked_; }
  hub& events() noexcept { return *hub_; }
  const std::vector<named_tensor>& watched() const noexcept { return watched_; }
  // A sensor of this session, by type (its last reading, its count, ...).
  template <class S>
  S& sensor() noexcept { return std::get<S>(sensors_); }
  template <class S>
  const S& sensor() const noexcept { return std::get<S>(sensors_); }
  template <class F>
  void for_each_sensor(F&& f) const {
    std::apply([&](const auto&... s) { (f(s), ...); }, sensors_);
  }
  template <class F>
  void for_each_sensor(F&& f) {
    each(std::forward<F>(f));
  }

  // What the session holds between steps besides its monitor and sensors:
  // its counters and the figures it holds for the next check. A plain state
  // (visit() for archives); session_state.hpp saves it with the monitor's and
  // the sensors', so that a resumed run goes on as the uninterrupted one.
  struct state_type {
    std::uint64_t update = 0, epochs = 0, checks = 0, step_in_update = 0, epoch_first_update = 1,
                  epoch_anomalies = 0, explicit_updates = 0, performance_checked = 0, unread = 0;
    // Held figures: has_* is 1 when the figure is held.
    std::uint64_t has_reward_rate = 0, has_explained_variance = 0, has_epoch_performance = 0, has_progress = 0;
    double reward_rate = 0.0, explained_variance = 0.0, epoch_performance = 0.0;
    std::uint64_t progress_episode = 0, progress_total = 0;  // the last check's training_progress
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      v("update", update);
      v("epochs", epochs);
      v("checks", checks);
      v("step_in_update", step_in_update);
      v("epoch_first_update", epoch_first_update);
      v("epoch_anomalies", epoch_anomalies);
      v("explicit_updates", explicit_updates);
      v("performance_checked", performance_checked);
      v("unread", unread);
      v("has_reward_rate", has_reward_rate);
      v("reward_rate", reward_rate);
      v("has_explained_variance", has_explained_variance);
      v("explained_variance", explained_variance);
      v("has_epoch_performance", has_epoch_performance);
      v("epoch_performance", epoch_performance);
      v("has_progress", has_progress);
      v("progress_episode", progress_episode);
      v("progress_total", progress_total);
    }
  };
  state_type state() const {
    state_type st;
    st.update = update_;
    st.epochs = epochs_;
    st.checks = checks_;
    st.step_in_update = step_in_update_;
    st.epoch_first_update = epoch_first_update_;
    st.epoch_anomalies = epoch_anomalies_;
    st.explicit_updates = explicit_updates_;
    st.performance_checked = performance_checked_;
    for (unsigned f = 0; f < signal_set::field_count; ++f)
      if (unread_.contains(static_cast<signal_set::field>(f))) st.unread |= std::uint64_t{1} << f;
    held(st.has_reward_rate, st.reward_rate, rollout_.reward_rate);
    held(st.has_explained_variance, st.explained_variance, rollout_.explained_variance);
    held(st.has_epoch_performance, st.epoch_performance, epoch_performance_);
    st.has_progress = checked_.progress.has_value();
    if (checked_.progress) {
      st.progress_episode = checked_.progress->episode();
      st.progress_total = checked_.progress->total();
    }
    return st;
  }
  // Checks every field first (std::invalid_argument naming it and its valid
  // range), then assigns: all or nothing. The monitor and the sensors are
  // not touched (session_state.hpp loads all three).
  void load(const state_type& st) {
    const auto in_use = one_thread_.enter("load");
    check_state(st);
    apply_state(st);
  }
  // What load() checks first.
  static void check_state(const state_type& st) {
    const char* who = "simic::session::load";
    for (const auto& [name, v] : {std::pair{"explicit_updates", st.explicit_updates},
                                  {"performance_checked", st.performance_checked},
                                  {"has_reward_rate", st.has_reward_rate},
                                  {"has_explained_variance", st.has_explained_variance},
                                  {"has_epoch_performance", st.has_epoch_performance},
                                  {"has_progress", st.has_progress}})
      detail::require(v <= 1, who, name, v, "0 or 1");
    detail::require(st.unread < (std::uint64_t{1} << signal_set::field_count), who, "unread", st.unread,
                    "a set of signal fields (bits below field_count)");
    detail::require(st.epoch_first_update >= 1 && st.epoch_first_update <= st.update + 1, who, "epoch_first_update",
                    st.epoch_first_update, "1 .. update + 1");
    detail::require(st.step_in_update <= st.checks, who, "step_in_update", st.step_in_update, "<= checks");
    if (st.has_progress)
      detail::require(st.progress_episode >= 1 && st.progress_episode <= st.progress_total, who, "progress_episode",
                      st.progress_episode, "1 .. progress_total");
  }

 private:
  void apply_state(const state_type& st) noexcept {
    pending_.reset();  // a deferred check's step belongs to the state replaced
    ended_.clear();
    update_ = st.update;
    epochs_ = st.epochs;
    checks_ = st.checks;
    step_in_update_ = st.step_in_update;
    epoch_first_update_ = st.epoch_first_update;
    epoch_anomalies_ = st.epoch_anomalies;
    explicit_updates_ = st.explicit_updates != 0;
    performance_checked_ = st.performance_checked != 0;
    unread_ = {};
    for (unsigned f = 0; f < signal_set::field_count; ++f)
      if ((st.unread >> f) & 1u) unread_ = unread_ | signal_set{static_cast<signal_set::field>(f)};
    rollout_.reward_rate = held_value(st.has_reward_rate, st.reward_rate);
    rollout_.explained_variance = held_value(st.has_explained_variance, st.explained_variance);
    epoch_performance_ = held_value(st.has_epoch_performance, st.epoch_performance);
    checked_ = signals{};
    if (st.has_progress) checked_.progress = training_progress(st.progress_episode, st.progress_total);
  }

 public:

 private:
  template <class Params, class... Opts>
  session(Monitor m, const session_options& o, const Params& params, std::shared_ptr<hub> h, bool owns,
          const Opts&... sensor_options)
      : opts_(o), monitor_(std::move(m)), hub_(std::move(h)), owns_hub_(owns),
        sensors_(detail::make_sensor<Sensors>(sensor_options...)...) {
    static_assert((configures<Opts>() && ...), "simic::session: an argument is the options of no sensor of this session");
    detail::require(o.close_deadline.count() >= 0, "simic::session", "close_deadline", o.close_deadline.count(),
                    ">= 0 ms (hub::no_deadline: wait without limit)");
    detail::require(static_cast<unsigned>(o.check) <= 1u, "simic::session", "check", static_cast<unsigned>(o.check),
                    "sync or deferred");
    watched_parameters w = watch(params, opts_.watch);
    for (std::size_t i = 0; i < w.names.size(); ++i) {
      detail::require(w.weights[i].defined(), "simic::session", "parameter " + w.names[i], "undefined",
                      "a defined tensor");
      watched_.emplace_back(std::move(w.names[i]), w.weights[i]);
    }
    weights_ = std::move(w.weights);
    each([&](auto& s) { detail::sensor_attach(s, std::span<const named_tensor>(watched_)); });
    if (o.stop_on_signals) stop_guard_.emplace();  // last: nothing after it can throw
  }

  static Monitor make_monitor(const session_options& o) {
    using R = typename Monitor::response_policy;
    if constexpr (std::is_constructible_v<R, std::uint32_t, skip_rules>)
      return Monitor(config(o.config), R(o.max_consecutive_skips, o.skip));
    else if constexpr (std::is_constructible_v<R, std::uint32_t>)
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
  template <class Input>
  static constexpr bool takes() {
    return (detail::sensor_takes<Sensors, Monitor, Input> || ...);
  }
  template <class Opt>
  static constexpr bool configures() {
    return (std::is_same_v<Opt, typename Sensors::options_type> || ...);
  }
  template <class Input>
  void feed_all(const sensor_context<Monitor>& ctx, const Input& x) {
    each([&](auto& s) { detail::sensor_feed(s, ctx, x); });
  }
  template <class F>
  void each(F&& f) {
    std::apply([&](auto&... s) { (f(s), ...); }, sensors_);
  }
  sensor_context<Monitor> context(std::uint64_t update) noexcept {
    return context(update, epochs_ + 1, step_in_update_);
  }
  // Stamped as another step (a deferred check's pending one).
  sensor_context<Monitor> context(std::uint64_t update, std::uint64_t epoch, std::uint64_t step_in_update) noexcept {
    return {monitor_, *hub_, watched_, weights_, update, epoch, step_in_update};
  }
  bool deferred() const noexcept { return opts_.check == check_timing::deferred; }

  // A step whose check is deferred: its signals (owned), its record's
  // metrics and the stamps of its call.
  struct pending_step {
    detail::owned_signals sig;
    update_metrics metrics;
    std::uint64_t update = 0, epoch = 0, step_in_update = 0;
    bool explicit_updates = false;
  };
  // An epoch end waiting for the check of the step before it.
  struct epoch_end {
    std::optional<double> performance;
    std::uint64_t updates = 0, update = 0, epoch = 0;  // the summary's count and the stamps of its call
  };

  // What the step consumes of what was handed over before it.
  void consume_held(const signals& s) {
    rollout_ = {};
    epoch_performance_.reset();
    performance_checked_ = performance_checked_ || s.performance.has_value();
  }

  // The check of a step whose reads are done: the monitor, the sensors'
  // events, the step record and the check's events, stamped as `ctx`.
  const check_result& judge(const sensor_context<Monitor>& ctx, const signals& given, const signals& checked,
                            update_metrics metrics, std::optional<std::uint64_t> step_in_update, simic::level before) {
    // What an agreement makes of valid signals is valid too.
    const check_result& r =
        monitor_.check(opts_.agreement ? opts_.agreement->agree(checked) : checked, already_validated);
    ++checks_;
    epoch_anomalies_ += r.report.size();
    each([&](auto& x) { detail::sensor_record(x, ctx, given, checked); });
    if (emitting())
      emit_check_events(*hub_, ctx.update(), ctx.epoch(),
                        step_record(checked, std::move(metrics), step_in_update),
                        outcome(r, before, opts_.agreement.get()));
    return r;
  }
  const step_result& result(const check_result& r, std::optional<judged_step> judged) {
    static_cast<check_result&>(result_) = r;
    result_.judged = judged;
    return result_;
  }

  // A deferred check's step: the previous step is judged, then this one's
  // reads start (nothing waited for) and its diagnostics run at the level
  // that check left (the DEBUG diagnostics read this step's tensors, which
  // exist only now).
  template <class... Inputs>
  const step_result& defer_step(const signals& s, const Inputs&... inputs) {
    signals held = std::move(checked_);
    judge_pending();
    if (!explicit_updates_) start_update();
    const auto ctx = context(update_);
    (feed_all(ctx, inputs), ...);
    pending_.emplace(pending_step{detail::owned_signals(s, held), first_metrics(inputs...), update_, epochs_ + 1,
                                  step_in_update_, explicit_updates_});
    each([&](auto& x) { detail::sensor_defer(x, ctx, pending_->sig.checked); });
    consume_held(s);
    each([&](auto& x) { detail::sensor_diagnose(x, ctx, static_cast<const check_result&>(result_)); });
    ++step_in_update_;
    return result_;
  }

  // Checks the pending step, if any, then makes the epoch ends after it.
  const step_result& judge_pending() {
    if (!pending_) {
      finish_epochs();
      return result(check_result{}, std::nullopt);
    }
    judged_.emplace(std::move(*pending_));
    pending_.reset();
    pending_step& p = *judged_;
    const auto ctx = context(p.update, p.epoch, p.step_in_update);
    each([&](auto& x) { detail::sensor_collect(x, ctx, p.sig.checked); });
    checked_ = p.sig.checked;
    const simic::level before = level();
    const check_result& r = judge(ctx, p.sig.given, p.sig.checked, std::move(p.metrics),
                                  p.explicit_updates ? std::optional(p.step_in_update) : std::nullopt, before);
    note_unread(p.sig.checked, p.update, p.epoch);
    const step_result& out = result(r, judged_step{checks_, p.update});
    finish_epochs();
    return out;
  }

  void finish_epochs() {
    for (const epoch_end& e : ended_) {
      const simic::level before = level();
      monitor_.tick();
      const simic::level after = level();
      if (emitting()) {
        if (after != before) hub_->emit(e.update, e.epoch, escalation_end_event{.from = before, .to = after});
        hub_->emit(e.update, e.epoch,
                   epoch_summary{.performance = e.performance,
                                 .updates = e.updates,
                                 .anomalies = epoch_anomalies_,
                                 .level_after = after});
      }
      epoch_anomalies_ = 0;
    }
    ended_.clear();
  }
  template <class... In>
  static update_metrics first_metrics(const In&... in) {  // the step's update_metrics input, if any
    update_metrics m;
    ([&] { if constexpr (std::is_same_v<In, update_metrics>) m = in; }(), ...);
    return m;
  }

  // The figure of a run's last end_epoch(), which no step will carry, judged
  // by a check of its own (its anomalies and response as events; no step
  // record). Not in a data-parallel job: the ranks' checks are collective,
  // and a rank may close alone.
  void check_last_performance() {
    if (!epoch_performance_ || !std::isfinite(*epoch_performance_) || !checked_.progress || opts_.agreement) return;
    signals s;
    s.performance = epoch_performance_;
    s.progress = checked_.progress;
    epoch_performance_.reset();
    const auto in_use = one_thread_.enter("close");
    const simic::level before = level();
    const check_result& r = monitor_.check(s);
    ++checks_;
    if (emitting())
      emit_check_outcome(*hub_, update_, epochs_, outcome(r, before, nullptr));
  }

  // What a check did, for its events: `before` the level before it.
  check_outcome outcome(const check_result& r, simic::level before, const signal_agreement* agreement) const {
    const config_options& c = monitor_.cfg().options();
    return {r.report, r.resp, monitor_.responses(), before, level(), c.escalation_epochs, c.escalation_checks,
            agreement};
  }

  // Fields the trainer fed that the monitor does not read, each named once
  // (stamped as the step that fed them).
  void note_unread(const signals& s, std::uint64_t update, std::uint64_t epoch) {
    const signal_set fresh = signal_set::of(s).without(Monitor::reads | unread_ | signal_set{signal_set::user});
    if (fresh.empty()) return;
    unread_ = unread_ | fresh;
    if (emitting())
      hub_->emit(update, epoch,
                 unread_signals_event{.signals = fresh.describe(", "), .reads = Monitor::reads.describe(", ")});
  }

  void start_update() {
    ++update_;
    step_in_update_ = 0;
    const auto ctx = context(update_);
    each([&](auto& s) { detail::sensor_begin_update(s, ctx); });
  }
  bool emitting() const noexcept { return hub_->has_sinks(); }
  static void held(std::uint64_t& has, double& value, const std::optional<double>& x) noexcept {
    has = x.has_value();
    value = x.value_or(0.0);
  }
  static std::optional<double> held_value(std::uint64_t has, double value) noexcept {
    return has ? std::optional<double>(value) : std::nullopt;
  }

  session_options opts_;
  Monitor monitor_;
  std::shared_ptr<hub> hub_;
  bool owns_hub_ = false;
  std::optional<signal_guard> stop_guard_;  // with stop_on_signals
  std::vector<named_tensor> watched_;
  std::vector<at::Tensor> weights_;
  std::tuple<Sensors...> sensors_;
  rollout_figures rollout_{};
  std::optional<double> epoch_performance_;  // an epoch's figure for the next check
  bool performance_checked_ = false;
  signals checked_{};
  step_result result_{};
  std::optional<pending_step> pending_;  // deferred check: the step to judge next
  std::optional<pending_step> judged_;   // and the one judged last (checked_'s spans point into it)
  std::vector<epoch_end> ended_;         // epoch ends after the pending step, in order
  detail::one_thread_guard one_thread_{"session"};
  bool explicit_updates_ = false;
  std::uint64_t checks_ = 0;
  std::uint64_t steps_ = 0;
  std::uint64_t update_ = 0;
  std::uint64_t step_in_update_ = 0;
  std::uint64_t epochs_ = 0;
  std::uint64_t epoch_first_update_ = 1;
  std::uint64_t epoch_anomalies_ = 0;
  signal_set unread_{};
};

}  // namespace v0
}  // namespace simic
