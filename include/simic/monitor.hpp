// monitor<Detectors...>: the compile-time composition of detector policies.
//
// The monitor holds its detectors in a tuple and runs every one of them on
// each check (those of categories above the effective level sit out until
// the level rises), so a detector in the type list cannot sit idle. It then
// asks its response policy what the trainer should do, and escalates the
// config to DEBUG on an anomaly of at least config_options::escalate_on
// (by default critical ones only; core/config.hpp). `only<Cats...>` /
// `without<Cats...>` drop detectors by category at compile time: a dropped
// detector costs nothing.
//
// This header is the mechanism only and includes no detector. The presets are
// simic/presets/ppo.hpp (ppo_monitor, alias default_monitor: simic's
// defaults) and simic/presets/reference.hpp (the reference preset).
//
// A monitor is not thread-safe: use it from one thread at a time. Debug
// builds (NDEBUG not defined) check that: a non-const call while another
// thread is in one throws std::logic_error (core/detail/thread_guard.hpp).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "simic/core/anomaly.hpp"
#include "simic/core/config.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/level.hpp"
#include "simic/core/response.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/detail/state.hpp"
#include "simic/core/detail/thread_guard.hpp"

namespace simic {
inline namespace v0 {

// A detector: a category tag and observe(signals, report). Optional: a const
// validate(signals) that throws on bad input before any detector runs, and
// state()/load(state) with a nested state_type for save and resume.
template <class D>
concept Detector = requires(D& d, const signals& s, anomaly_report& r) {
  typename D::category;
  requires Category<typename D::category>;
  d.observe(s, r);
};

template <class D>
concept ValidatingDetector = Detector<D> && requires(const D& d, const signals& s) { d.validate(s); };

// A detector that names itself and the signals it reads: the monitor's
// missing-signal guard watches it (every shipped detector does).
template <class D>
concept SignalReadingDetector = Detector<D> && requires {
  { D::name } -> std::convertible_to<std::string_view>;
  { D::reads } -> std::convertible_to<signal_set>;
};

template <class D>
concept StatefulDetector = Detector<D> && requires(const D& cd, D& d, const typename D::state_type& st) {
  { cd.state() } -> std::convertible_to<typename D::state_type>;
  d.load(st);
};

// The state of a detector that keeps none.
struct no_state {
  friend bool operator==(const no_state&, const no_state&) = default;
  template <class V>
  void visit(V&&) {}
};

namespace detail {
template <class D>
struct state_of {
  using type = no_state;
};
template <StatefulDetector D>
struct state_of<D> {
  using type = typename D::state_type;
};

template <class D>
constexpr bool assert_detector() {
  static_assert(Detector<D>,
                "simic::monitor: a type in the detector list is not a simic::Detector. A detector needs "
                "`using category = simic::cat::<tag>;` and a member `observe(const simic::signals&, "
                "simic::anomaly_report&)`. The offending type is named in the instantiation note below.");
  return true;
}

template <class D>
constexpr bool collected_above_off() {
  if constexpr (Detector<D>)
    return D::category::min_level > level::off;
  else
    return true;  // reported by assert_detector
}

template <class D, class... Cats>
constexpr bool in_categories() {
  if constexpr (Detector<D>)
    return (std::is_same_v<typename D::category, Cats> || ...);
  else
    return true;  // keep it, so that the static_assert names it
}

// A detector whose signals come once per epoch (performance): the guard
// also waits for `missing_signal_epochs` epochs without one, as an epoch may
// be longer than missing_signal_checks checks.
template <class D>
constexpr bool per_epoch_signals() {
  if constexpr (requires { { D::per_epoch } -> std::convertible_to<bool>; })
    return D::per_epoch;
  else
    return false;
}

// What a detector needs fed: its `needs` where it says (numerical_stability
// checks any figure that is there and needs none), else what it reads.
template <class D>
constexpr signal_set needs_of() {
  if constexpr (requires { { D::needs } -> std::convertible_to<signal_set>; })
    return D::needs;
  else if constexpr (SignalReadingDetector<D>)
    return D::reads;
  else
    return {};
}

template <class D, class... Xs>
inline constexpr bool is_one_of = (std::is_same_v<D, Xs> || ...);

template <class R, class Tuple>
struct monitor_of;
template <class R, class... Ds>
struct monitor_of<R, std::tuple<Ds...>>;
}  // namespace detail

// Tag: the signals handed to check() already passed the monitor's validate().
struct already_validated_t {
  explicit already_validated_t() = default;
};
inline constexpr already_validated_t already_validated{};

struct check_result {
  anomaly_report report;
  response resp;
  bool escalation_started = false;  // this check moved the effective level up to DEBUG
  bool escalation_ended = false;    // this check was the escalation's last (config_options::escalation_checks)
};

template <class Response, class... Ds>
class basic_monitor {
  // The static_assert inside assert_detector names the offending type; this
  // outer one only instantiates it, so the user reads one error.
  static_assert((detail::assert_detector<Ds>() && ...));
  static_assert(ResponsePolicy<Response>,
                "simic::basic_monitor: the response policy needs a member "
                "`decide(const signals&, const anomaly_report&, response_state&, response&)`");

 public:
  using detectors_tuple = std::tuple<Ds...>;
  using response_policy = Response;
  static constexpr std::size_t size = sizeof...(Ds);
  // The signals its detectors judge (those that say: SignalReadingDetector;
  // a detector's `needs` where it has one): what a trainer with this monitor
  // should feed. simic::session names any other field a trainer feeds.
  static constexpr signal_set reads = (detail::needs_of<Ds>() | ... | signal_set{});

  // Keep the detectors whose category is one of Cats / none of Cats.
  template <class... Cats>
  using only = typename detail::monitor_of<
      Response, decltype(std::tuple_cat(
                    std::declval<std::conditional_t<detail::in_categories<Ds, Cats...>(), std::tuple<Ds>,
                                                    std::tuple<>>>()...))>::type;
  template <class... Cats>
  using without = typename detail::monitor_of<
      Response, decltype(std::tuple_cat(
                    std::declval<std::conditional_t<!detail::in_categories<Ds, Cats...>(), std::tuple<Ds>,
                                                    std::tuple<>>>()...))>::type;

  // Keep every detector but Xs (a preset less the detectors whose signal a
  // trainer never has).
  template <class... Xs>
  using without_detectors = typename detail::monitor_of<
      Response, decltype(std::tuple_cat(
                    std::declval<std::conditional_t<detail::is_one_of<Ds, Xs...>, std::tuple<>,
                                                    std::tuple<Ds>>>()...))>::type;

  struct state_type {
    std::tuple<typename detail::state_of<Ds>::type...> detectors;
    response_state response;
    std::uint32_t escalation_left = 0;
    std::uint32_t escalation_checks_left = 0;
    std::uint64_t checks = 0;
    std::array<std::uint64_t, sizeof...(Ds)> checks_without_signal{};  // per detector, for the guard
    std::array<std::uint64_t, sizeof...(Ds)> epochs_without_signal{};  // per detector of per-epoch signals
    std::array<std::uint64_t, sizeof...(Ds)> signal_missing_reported{};  // 1: reported, not yet cleared
    friend bool operator==(const state_type&, const state_type&) = default;

    // Visits every field as (name, field&), for archives.
    template <class V>
    void visit(V&& v) {
      visit_detectors(v, std::index_sequence_for<Ds...>{});
      detail::visit_nested(v, "response.", response);
      v("config.escalation_left", escalation_left);
      v("config.escalation_checks_left", escalation_checks_left);
      v("monitor.checks", checks);
    }

   private:
    template <class V, std::size_t... I>
    void visit_detectors(V& v, std::index_sequence<I...>) {
      (detail::visit_nested(v, "detector." + std::to_string(I) + ".", std::get<I>(detectors)), ...);
      (v(("detector." + std::to_string(I) + ".checks_without_signal").c_str(), checks_without_signal[I]), ...);
      (v(("detector." + std::to_string(I) + ".epochs_without_signal").c_str(), epochs_without_signal[I]), ...);
      (v(("detector." + std::to_string(I) + ".signal_missing_reported").c_str(), signal_missing_reported[I]), ...);
    }
  };

  basic_monitor() = default;
  explicit basic_monitor(const config& cfg) : cfg_(cfg) {}
  basic_monitor(const config& cfg, Ds... ds)
    requires(sizeof...(Ds) > 0)
      : cfg_(cfg), detectors_(std::move(ds)...) {}
  basic_monitor(const config& cfg, Response r, Ds... ds) : cfg_(cfg), response_(std::move(r)), detectors_(std::move(ds)...) {}
  // Default detectors with a configured response policy.
  basic_monitor(const config& cfg, Response r)
    requires(sizeof...(Ds) > 0)
      : cfg_(cfg), response_(std::move(r)) {}

  // Runs every detector on `s`. Input is validated by every detector first, so
  // bad input throws std::invalid_argument before any state changes. With no
  // anomaly (and no skip), this allocates nothing.
  const check_result& check(const signals& s) {
    const auto in_use = one_thread_.enter("check");
    validate(s);
    return run_check(s);
  }
  // The same for signals that passed validate() unchanged (simic::session
  // validates before its sensors read, then checks): no second validation.
  const check_result& check(const signals& s, already_validated_t) {
    const auto in_use = one_thread_.enter("check");
    return run_check(s);
  }

  // What check() does first: every detector's validation of `s` (throws
  // std::invalid_argument naming the field and its valid range), no state change.
  void validate(const signals& s) const {
    std::apply([&](const auto&... d) { (validate_one(d, s), ...); }, detectors_);
  }

  // Once per epoch. Returns true when this tick ended an escalation.
  // Every non-const call holds the monitor while it runs (throwing
  // std::logic_error in a debug build when another thread holds it), so it
  // is noexcept only where the check is compiled out.
  bool tick() noexcept(!detail::thread_checks) {
    const auto in_use = one_thread_.enter("tick");
    for (std::size_t i = 0; i < sizeof...(Ds); ++i) ++epochs_without_[i];
    return cfg_.tick();
  }

  const check_result& last() const noexcept { return result_; }
  // The config to change (set_level): checked for overlap as it is handed
  // out, not while it is used.
  config& cfg() noexcept(!detail::thread_checks) {
    const auto in_use = one_thread_.enter("cfg");
    return cfg_;
  }
  const config& cfg() const noexcept { return cfg_; }
  level effective_level() const noexcept { return cfg_.effective_level(); }
  const response_state& responses() const noexcept { return rstate_; }
  const Response& response_rules() const noexcept { return response_; }
  std::uint64_t checks() const noexcept { return checks_; }

  template <class D>
  D& get() noexcept(!detail::thread_checks) {
    const auto in_use = one_thread_.enter("get");
    return std::get<D>(detectors_);
  }
  template <class D>
  const D& get() const noexcept { return std::get<D>(detectors_); }
  template <std::size_t I>
  auto& get() noexcept(!detail::thread_checks) {
    const auto in_use = one_thread_.enter("get");
    return std::get<I>(detectors_);
  }
  template <std::size_t I>
  const auto& get() const noexcept { return std::get<I>(detectors_); }

  template <class F>
  void for_each_detector(F&& f) {
    const auto in_use = one_thread_.enter("for_each_detector");
    std::apply([&](auto&... d) { (f(d), ...); }, detectors_);
  }
  template <class F>
  void for_each_detector(F&& f) const {
    std::apply([&](const auto&... d) { (f(d), ...); }, detectors_);
  }

  state_type state() const {
    state_type st;
    st.detectors = std::apply([](const auto&... d) { return std::make_tuple(state_of_one(d)...); }, detectors_);
    st.response = rstate_;
    st.escalation_left = cfg_.escalation_state();
    st.escalation_checks_left = cfg_.escalation_checks_left();
    st.checks = checks_;
    st.checks_without_signal = without_signal_;
    st.epochs_without_signal = epochs_without_;
    st.signal_missing_reported = missing_reported_;
    return st;
  }

  // Loads all or nothing: every part is validated on copies before any is kept.
  void load(const state_type& st) {
    const auto in_use = one_thread_.enter("load");
    detectors_tuple d = detectors_;
    load_detectors(d, st, std::index_sequence_for<Ds...>{});
    config c = cfg_;
    c.load_escalation_state(st.escalation_left, st.escalation_checks_left);
    detectors_ = std::move(d);
    cfg_ = c;
    rstate_ = st.response;
    checks_ = st.checks;
    without_signal_ = st.checks_without_signal;
    epochs_without_ = st.epochs_without_signal;
    missing_reported_ = st.signal_missing_reported;
  }

  // Checks since the I-th detector last received one of the signals it reads.
  template <std::size_t I>
  std::uint64_t checks_without_signal() const noexcept { return without_signal_[I]; }

 private:
  // check() once held and validated.
  const check_result& run_check(const signals& s) {
    result_.report.clear();
    result_.resp.act = action::proceed;
    result_.resp.reason.clear();
    result_.escalation_started = false;
    result_.escalation_ended = false;
    const level effective = cfg_.effective_level();
    std::apply([&](auto&... d) { (observe_one(d, s, effective), ...); }, detectors_);
    if (cfg_.options().missing_signal_checks != 0) guard(signal_set::of(s), effective, std::index_sequence_for<Ds...>{});
    if (result_.report.empty() && !result_.report.holds().empty()) result_.report.stamp(cfg_.options().severities);
    const bool renewed = !result_.report.empty() && stamp_and_escalate();
    if (!renewed) result_.escalation_ended = cfg_.count_check();
    response_.decide(s, result_.report, rstate_, result_.resp);
    ++checks_;
    return result_;
  }

  // Severities come from the config, so that one table rules every detector.
  // Returns whether this check (re)started the escalation window.
  SIMIC_COLD bool stamp_and_escalate() {
    result_.report.stamp(cfg_.options().severities);
    if (!result_.report.has(cfg_.options().escalate_on)) return false;
    result_.escalation_started = cfg_.escalate();
    return cfg_.escalated();
  }
  template <class D>
  static void validate_one(const D& d, const signals& s) {
    if constexpr (ValidatingDetector<D>) d.validate(s);
  }
  // Every category's min_level is above OFF, so `effective >= min_level` also
  // keeps everything off at OFF.
  static_assert((detail::collected_above_off<Ds>() && ...),
                "simic::monitor: a detector category must have a min_level above OFF");
  template <class D>
  void observe_one(D& d, const signals& s, level effective) {
    if constexpr (Detector<D>)
      if (effective >= D::category::min_level) d.observe(s, result_.report);
  }
  // The missing-signal guard: a detector that has received none of its
  // signals in `missing_signal_checks` checks is reported once; when one
  // arrives again, the condition clears with its duration in checks. Only
  // checks at which the detector's category is collected count: a trainer
  // at MINIMAL (or OFF) need not compute what it does not collect.
  template <std::size_t... I>
  void guard(signal_set present, level effective, std::index_sequence<I...>) {
    (guard_one<I>(present, effective), ...);
  }
  template <std::size_t I>
  void guard_one(signal_set present, level effective) {
    using D = std::tuple_element_t<I, detectors_tuple>;
    if constexpr (SignalReadingDetector<D>) {
      if (effective < D::category::min_level) return;
      std::uint64_t& quiet = without_signal_[I];
      std::uint64_t& epochs = epochs_without_[I];
      const std::uint64_t bound = cfg_.options().missing_signal_checks;
      constexpr bool per_epoch = detail::per_epoch_signals<D>();
      std::uint64_t& reported = missing_reported_[I];
      if (present.intersects(D::reads)) {
        if (reported) result_.report.add_clear(anomaly_kind::signal_missing, quiet, 0.0);
        quiet = 0;
        epochs = 0;
        reported = 0;
      } else if (++quiet >= bound && (!per_epoch || epochs >= missing_signal_epochs) && !reported) {
        reported = 1;
        report_missing(D::name, D::reads, quiet, per_epoch ? epochs : 0);
      }
    }
  }
  SIMIC_COLD void report_missing(std::string_view name, signal_set reads, std::uint64_t checks,
                                 std::uint64_t epochs) {
    const std::uint64_t bound = cfg_.options().missing_signal_checks;
    result_.report.add(anomaly_kind::signal_missing,
                       detail::format("detector %.*s has received no %s in %llu checks (bound %llu)%s: is its "
                                      "sensor wired?",
                                      static_cast<int>(name.size()), name.data(), reads.describe().c_str(),
                                      static_cast<unsigned long long>(checks), static_cast<unsigned long long>(bound),
                                      epochs ? detail::format(" and %llu epochs",
                                                              static_cast<unsigned long long>(epochs)).c_str()
                                             : ""),
                       {static_cast<double>(checks), static_cast<double>(bound)});
  }
  // Epochs a detector of per-epoch signals goes without one before the guard reports it.
  static constexpr std::uint64_t missing_signal_epochs = 2;

  template <class D>
  static typename detail::state_of<D>::type state_of_one(const D& d) {
    if constexpr (StatefulDetector<D>)
      return d.state();
    else
      return {};
  }
  template <std::size_t... I>
  static void load_detectors(detectors_tuple& d, const state_type& st, std::index_sequence<I...>) {
    (load_one(std::get<I>(d), std::get<I>(st.detectors)), ...);
  }
  template <class D, class S>
  static void load_one(D& d, const S& s) {
    if constexpr (StatefulDetector<D>) d.load(s);
  }

  config cfg_{};
  Response response_{};
  detectors_tuple detectors_{};
  response_state rstate_{};
  std::uint64_t checks_ = 0;
  std::array<std::uint64_t, sizeof...(Ds)> without_signal_{};
  std::array<std::uint64_t, sizeof...(Ds)> epochs_without_{};
  std::array<std::uint64_t, sizeof...(Ds)> missing_reported_{};
  check_result result_{};
  detail::one_thread_guard one_thread_{"monitor"};  // a copy starts free
};

namespace detail {
template <class R, class... Ds>
struct monitor_of<R, std::tuple<Ds...>> {
  using type = basic_monitor<R, Ds...>;
};
}  // namespace detail

template <class... Ds>
using monitor = basic_monitor<skip_then_stop, Ds...>;

}  // namespace v0
}  // namespace simic
