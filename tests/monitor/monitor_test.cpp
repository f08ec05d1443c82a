#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <latch>
#include <limits>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "simic/monitor.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/presets/reference.hpp"
#include "simic/presets/supervised.hpp"
#include "support/holding_detector.hpp"

// Counts every allocation made in this program, to prove check() allocates
// nothing when there is nothing to report.
namespace {
std::atomic<std::size_t> g_allocations{0};
}
void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace simic;

namespace {
// A user's own detector: flags a loss above a bound. Models Detector, keeps a count as state.
struct loss_ceiling {
  using category = cat::ops_normal;
  struct state_type {
    std::uint64_t seen = 0;
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class V>
    void visit(V&& v) {
      v("seen", seen);
    }
  };
  double bound = 10.0;
  std::uint64_t seen = 0;
  void observe(const signals& s, anomaly_report& r) {
    if (!s.loss) return;
    ++seen;
    if (*s.loss > bound) r.add(anomaly_kind::numerical_instability, "loss above ceiling");
  }
  state_type state() const { return {seen}; }
  void load(const state_type& st) { seen = st.seen; }
};

struct debug_only_probe {
  using category = cat::debug;
  int runs = 0;
  void observe(const signals&, anomaly_report&) { ++runs; }
};

const std::array<head_entropy, 2> healthy_heads{{{"move", 0.8}, {"fire", 0.7}}};

signals healthy(std::uint64_t update, std::uint64_t total = 1000) {
  signals s;
  s.ratio_max = 1.2;
  s.ratio_min = 0.8;
  s.approx_kl = 0.01;
  s.explained_variance = 0.5;
  s.loss = 0.3;
  s.update_ratio = 2e-3 * (1.0 + 0.01 * std::cos(static_cast<double>(update)));
  s.entropy = healthy_heads;
  gradient_signal g;
  g.total_norm = 0.5 + 0.01 * std::sin(static_cast<double>(update));
  g.health = 1.0;
  g.min_param_norm = 1e-3;
  g.max_param_norm = 0.3;
  g.parameters = 12;
  s.gradients = g;
  lstm_signal l;
  l.h_norm = 3.0;
  l.c_norm = 5.0;
  l.elements = 64;
  s.lstm = l;
  s.performance = 150.0 + 0.1 * static_cast<double>(update % 7);
  s.progress = training_progress(update + 1, total);
  return s;
}
}  // namespace

TEST_CASE("both presets hold a detector for every signal and are quiet on healthy updates") {
  default_monitor m;
  reference_monitor ref = make_reference_monitor();
  static_assert(default_monitor::size == 11 && reference_monitor::size == 9);
  for (std::uint64_t u = 0; u < 50; ++u) {  // past early training (the first 10 %: shift models do not see it)
    const auto& r = m.check(healthy(u + 100));
    CHECK(r.report.empty());
    CHECK(r.resp.act == action::proceed);
    CHECK(ref.check(healthy(u + 100)).report.empty());
  }
  CHECK(m.checks() == 50);
  CHECK(m.get<gradient_shift>().log_norm().steps() == 50);  // the shift model is fed by check
  CHECK(m.get<update_shift>().log_ratio().steps() == 50);
  CHECK(m.get<performance_drop>().filled() == 23);
  CHECK(ref.get<reference::gradient_drift>().norm_ema().steps() == 50);
  CHECK(ref.get<reference::performance_degradation>().filled() == 10);
  CHECK(ref.cfg().options().escalate_on == severity::warning);
  CHECK(m.cfg().options().escalate_on == severity::critical);
}

namespace {
template <class Monitor>
void check_every_detector_reports(Monitor m, std::uint64_t healthy_checks, int faulty_checks) {
  for (std::uint64_t u = 0; u < healthy_checks; ++u) m.check(healthy(u + 100));  // past early training
  signals s = healthy(500);  // 50 % of training
  const std::array<head_entropy, 1> collapsed{{{"move", 0.01}}};
  s.ratio_max = 9.0;
  s.approx_kl = 0.7;
  s.explained_variance = -5.0;
  s.entropy = collapsed;
  s.loss = std::numeric_limits<double>::quiet_NaN();
  s.gradients->max_param_norm = 50.0;
  s.gradients->total_norm = 60.0;
  s.lstm->h_norm = 1e3;
  s.performance = 1.0;
  s.update_ratio = 0.2;  // 100x: the reference preset has no update detector
  anomaly_report r;
  for (int i = 0; i < faulty_checks; ++i) r.merge(m.check(s).report);
  for (auto k : {anomaly_kind::ratio_explosion, anomaly_kind::kl_extreme, anomaly_kind::value_collapse,
                 anomaly_kind::entropy_collapse, anomaly_kind::numerical_instability, anomaly_kind::gradient_exploding,
                 anomaly_kind::gradient_norm_drift, anomaly_kind::lstm_unhealthy,
                 anomaly_kind::performance_degradation})
    CHECK_MESSAGE(r.has(k), to_string(k));
  CHECK(r.has(anomaly_kind::update_ratio_drift) == std::is_same_v<Monitor, default_monitor>);
}
}  // namespace

TEST_CASE("one check runs every detector: one fault per detector, all reported (both presets)") {
  SUBCASE("reference preset, after one healthy check") { check_every_detector_reports(make_reference_monitor(), 1, 1); }
  // simic's models need their warm-up (24 gradient norms, half a performance
  // baseline), and the performance median of 5 moves on the third bad figure
  SUBCASE("simic defaults, after 40 healthy checks") { check_every_detector_reports(default_monitor{}, 40, 3); }
}

TEST_CASE("severity: a warning is reported and does not escalate; a critical anomaly does (configurable)") {
  signals s = healthy(1);
  s.approx_kl = 0.2;  // kl_spike: a warning
  default_monitor m;
  m.check(healthy(0));
  const auto& r = m.check(s);
  REQUIRE(r.report.has(anomaly_kind::kl_spike));
  CHECK(r.report[0].severity == severity::warning);
  CHECK(r.report[0].value == 0.2);
  CHECK(r.report[0].threshold == defaults::kl_spike);
  CHECK_FALSE(r.escalation_started);
  CHECK(m.effective_level() == level::normal);
  SUBCASE("escalate_on = warning") {
    config_options o;
    o.escalate_on = severity::warning;
    default_monitor w{config(o)};
    w.check(healthy(0));
    CHECK(w.check(s).escalation_started);
  }
  SUBCASE("kl_spike made critical in the severity table") {
    config_options o;
    o.severities.set(anomaly_kind::kl_spike, severity::critical);
    default_monitor c{config(o)};
    c.check(healthy(0));
    const auto& rc = c.check(s);
    CHECK(rc.report[0].severity == severity::critical);
    CHECK(rc.escalation_started);
  }
  SUBCASE("kl_extreme made a warning: no escalation") {
    config_options o;
    o.severities.set(anomaly_kind::kl_extreme, severity::warning);
    default_monitor c{config(o)};
    c.check(healthy(0));
    s.approx_kl = 0.9;
    const auto& rc = c.check(s);
    CHECK(rc.report.has(anomaly_kind::kl_extreme));
    CHECK_FALSE(rc.escalation_started);
  }
  SUBCASE("the reference preset escalates on any anomaly") {
    reference_monitor ref = make_reference_monitor();
    ref.check(healthy(0));
    CHECK(ref.check(s).escalation_started);
  }
}

TEST_CASE("a critical anomaly escalates to DEBUG, which counts down by tick and expires") {
  default_monitor m;
  m.check(healthy(0));
  signals s = healthy(1);
  s.approx_kl = 0.7;
  const auto& r = m.check(s);
  CHECK(r.report.has(anomaly_kind::kl_extreme));
  CHECK(r.escalation_started);
  CHECK(m.effective_level() == level::debug);
  CHECK_FALSE(m.check(s).escalation_started);  // already escalated
  for (int i = 0; i < 4; ++i) CHECK_FALSE(m.tick());
  CHECK(m.effective_level() == level::debug);
  CHECK(m.tick());
  CHECK(m.effective_level() == level::normal);
}

TEST_CASE("levels gate detectors by category at run time") {
  config_options o;
  o.configured = level::minimal;
  monitor<kl_divergence, numerical_stability, debug_only_probe> m{config(o)};
  signals s;
  s.approx_kl = 0.9;  // ops_normal: sits out at MINIMAL
  s.loss = std::numeric_limits<double>::infinity();  // critical: runs
  const auto& r = m.check(s);
  CHECK_FALSE(r.report.has(anomaly_kind::kl_extreme));
  CHECK(r.report.has(anomaly_kind::numerical_instability));
  CHECK(m.get<debug_only_probe>().runs == 0);
  // the anomaly escalated to DEBUG: everything runs now
  CHECK(m.check(s).report.has(anomaly_kind::kl_extreme));
  CHECK(m.get<debug_only_probe>().runs == 1);
}

TEST_CASE("only<> and without<> drop detectors at compile time") {
  using critical_only = default_monitor::only<cat::critical>;
  static_assert(std::is_same_v<critical_only, monitor<numerical_stability, lstm_rms_bounds>>);
  static_assert(
      std::is_same_v<reference_monitor::only<cat::critical>, monitor<numerical_stability, reference::lstm_bounds>>);
  using no_ops = default_monitor::without<cat::ops_normal>;
  static_assert(std::is_same_v<no_ops, critical_only>);
  using both = default_monitor::only<cat::critical, cat::ops_normal>;
  static_assert(std::is_same_v<both, default_monitor>);
  static_assert(default_monitor::only<cat::debug>::size == 0);
  // a filtered monitor still works, and an empty one too
  critical_only m;
  signals s = healthy(3);
  s.approx_kl = 5.0;
  CHECK(m.check(s).report.empty());
  default_monitor::only<cat::debug> none;
  CHECK(none.check(s).report.empty());
}

TEST_CASE("without_detectors<> drops detectors by type; the feed-forward PPO preset is the PPO one less its LSTM detector") {
  static_assert(std::is_same_v<ppo_feedforward_monitor,
                               monitor<numerical_stability, ratio_bounds, value_trend, entropy_floor, kl_divergence,
                                       gradient_shift, update_shift, relative_gradient_bounds, performance_drop,
                                       loss_shift>>);
  static_assert(ppo_feedforward_monitor::size + 1 == ppo_monitor::size);
  static_assert(std::is_same_v<ppo_monitor::without_detectors<>, ppo_monitor>);
  static_assert(std::is_same_v<ppo_monitor::without_detectors<kl_divergence, numerical_stability>::only<cat::critical>,
                               monitor<lstm_rms_bounds>>);
  static_assert(std::is_same_v<ppo_monitor::without_detectors<reference::lstm_bounds>, ppo_monitor>);  // not in it
  // A healthy MLP trainer's signals, no LSTM state: the PPO preset's guard
  // reports its LSTM detector at N checks; the feed-forward preset never does.
  config_options o;
  o.missing_signal_checks = 5;
  ppo_monitor ppo{config(o)};
  ppo_feedforward_monitor mlp{config(o)};
  for (std::uint64_t u = 1; u <= 40; ++u) {
    INFO("check " << u);
    signals s = healthy(u);
    s.lstm.reset();
    CHECK(ppo.check(s).report.has(anomaly_kind::signal_missing) == (u == 5));
    CHECK(mlp.check(s).report.empty());
  }
  static_assert(ppo_feedforward_monitor::reads == ppo_monitor::reads.without({signal_set::lstm}));
}

TEST_CASE("a user-defined detector plugs in and is inspectable") {
  static_assert(Detector<loss_ceiling> && StatefulDetector<loss_ceiling>);
  static_assert(!Detector<int>);
  monitor<loss_ceiling, kl_divergence> m{config{}, loss_ceiling{5.0}, kl_divergence({.spike = 0.2, .extreme = 0.4})};
  signals s;
  s.loss = 6.0;
  s.approx_kl = 0.3;
  const auto& r = m.check(s);
  REQUIRE(r.report.size() == 2);
  CHECK(r.report[0].detail == "loss above ceiling");
  CHECK(r.report[1].kind == anomaly_kind::kl_spike);
  CHECK(m.get<loss_ceiling>().seen == 1);
  CHECK(m.get<0>().bound == 5.0);
  int n = 0;
  m.for_each_detector([&](const auto&) { ++n; });
  CHECK(n == 2);
}

TEST_CASE("non-finite gradients: skip, then stop after 5 in a row; a finite update resets") {
  default_monitor m;
  signals bad = healthy(10);
  bad.gradients->nan_count = 4;
  bad.gradients->total_norm = std::numeric_limits<double>::quiet_NaN();
  for (int i = 1; i <= 4; ++i) {
    const auto& r = m.check(bad);
    CHECK(r.resp.act == action::skip_step);
    CHECK(r.report.has(anomaly_kind::numerical_instability));
    CHECK(m.responses().consecutive_skips == static_cast<std::uint64_t>(i));
  }
  CHECK(m.check(healthy(11)).resp.act == action::proceed);
  CHECK(m.responses().consecutive_skips == 0);
  CHECK(m.responses().total_skips == 4);
  for (int i = 1; i <= 4; ++i) CHECK(m.check(bad).resp.act == action::skip_step);
  const auto& r = m.check(bad);
  CHECK(r.resp.act == action::stop);
  CHECK(r.resp.reason.find("5 consecutive updates skipped") != std::string::npos);
  CHECK(r.resp.reason.find("non-finite gradients (4 NaN") != std::string::npos);
  CHECK(m.responses().total_skips == 9);
}

TEST_CASE("a custom response policy replaces the default") {
  struct stop_on_any_anomaly {
    void decide(const signals&, const anomaly_report& r, response_state&, response& out) const {
      if (!r.empty()) {
        out.act = action::stop;
        out.reason = "anomaly";
      }
    }
  };
  basic_monitor<stop_on_any_anomaly, kl_divergence> m;
  signals s;
  s.approx_kl = 0.01;
  CHECK(m.check(s).resp.act == action::proceed);
  s.approx_kl = 1.0;
  CHECK(m.check(s).resp.act == action::stop);
}

TEST_CASE("bad input throws before any detector runs, and changes no state") {
  default_monitor m;
  m.check(healthy(0));
  const auto before = m.state();
  signals s = healthy(1);
  s.progress.reset();  // explained variance and performance need progress
  CHECK_THROWS_WITH_AS(m.check(s), doctest::Contains("progress is required"), std::invalid_argument);
  CHECK(m.state() == before);
}

TEST_CASE("save mid-run, load into a fresh monitor: identical outputs afterwards") {
  default_monitor a;
  for (std::uint64_t u = 0; u < 40; ++u) {
    signals s = healthy(u);
    if (u == 20) s.approx_kl = 0.3;  // escalate mid-run
    if (u == 30) {
      s.gradients->nan_count = 1;
    }
    a.check(s);
    if (u % 10 == 9) a.tick();
  }
  default_monitor b;
  b.load(a.state());
  CHECK(b.state() == a.state());
  CHECK(b.effective_level() == a.effective_level());
  for (std::uint64_t u = 40; u < 120; ++u) {
    signals s = healthy(u);
    s.gradients->total_norm *= 1.0 + 0.02 * static_cast<double>(u - 40);  // drifting
    if (u == 100) s.performance = 10.0;
    const auto ra = a.check(s);
    const auto rb = b.check(s);
    CHECK(ra.report == rb.report);
    CHECK(ra.resp.act == rb.resp.act);
    CHECK(ra.escalation_started == rb.escalation_started);
    if (u % 10 == 9) CHECK(a.tick() == b.tick());
  }
  CHECK(a.state() == b.state());
}

TEST_CASE("a bad state is refused whole") {
  default_monitor m;
  for (std::uint64_t u = 0; u < 5; ++u) m.check(healthy(u));
  const auto keep = m.state();
  auto bad = keep;
  std::get<6>(bad.detectors).norm.log_value.mean_raw = std::numeric_limits<double>::quiet_NaN();  // gradient_shift
  bad.escalation_left = 1;
  CHECK_THROWS_AS(m.load(bad), std::invalid_argument);
  CHECK(m.state() == keep);
  bad = keep;
  bad.escalation_left = 99;
  CHECK_THROWS_WITH_AS(m.load(bad), doctest::Contains("left"), std::invalid_argument);
  CHECK(m.state() == keep);
}

TEST_CASE("missing-signal guard: a detector fed none of its signals is reported once, at N checks, and clears") {
  config_options o;
  o.missing_signal_checks = 5;
  monitor<reference::lstm_bounds, kl_divergence> m{config(o)};
  signals kl_only;
  kl_only.approx_kl = 0.01;
  for (int i = 1; i <= 4; ++i) {
    INFO("check " << i);
    CHECK(m.check(kl_only).report.empty());  // below N
  }
  CHECK(m.checks_without_signal<0>() == 4);
  CHECK(m.checks_without_signal<1>() == 0);
  const anomaly_report r = m.check(kl_only).report;  // at N
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::signal_missing);
  CHECK(r[0].severity == severity::warning);
  CHECK(r[0].detail == "detector lstm_bounds has received no lstm in 5 checks (bound 5): is its sensor wired?");
  CHECK(r[0].value == 5.0);
  CHECK(r[0].threshold == 5.0);
  CHECK(m.effective_level() == level::normal);  // a warning: no escalation
  for (int i = 0; i < 20; ++i) CHECK(m.check(kl_only).report.empty());  // above N: once only
  // the state is kept and restored with the rest
  monitor<reference::lstm_bounds, kl_divergence> copy{config(o)};
  copy.load(m.state());
  CHECK(copy.checks_without_signal<0>() == 25);
  // the signal arrives: the condition clears with its duration in checks
  signals both = kl_only;
  both.lstm = lstm_signal{.h_norm = 1.0, .c_norm = 1.0};
  const check_result& back = m.check(both);
  CHECK(back.report.empty());
  REQUIRE(back.report.clears().size() == 1);
  CHECK(back.report.clears()[0].kind == anomaly_kind::signal_missing);
  CHECK(back.report.clears()[0].duration == 25);
  CHECK(m.checks_without_signal<0>() == 0);
  // it can go missing again, and is reported again
  for (int i = 0; i < 4; ++i) CHECK(m.check(kl_only).report.empty());
  CHECK(m.check(kl_only).report.has(anomaly_kind::signal_missing));
  // a detector reading several signals is fed by any one of them
  monitor<performance_drop> p{config(o)};
  signals rate;
  rate.reward_rate = 1.0;
  rate.progress = training_progress(1, 100);
  for (int i = 0; i < 10; ++i) CHECK(p.check(rate).report.empty());
  signals none;
  for (int i = 0; i < 5; ++i) CHECK(p.check(none).report.empty());  // 5 checks, no epoch: its figure may yet come
  p.tick();
  CHECK(p.check(none).report.empty());  // 1 epoch: below 2
  p.tick();
  const anomaly_report rp = p.check(none).report;  // 7 checks and 2 epochs
  REQUIRE(rp.size() == 1);
  CHECK(rp[0].detail ==
        "detector performance_drop has received no performance or reward_rate in 7 checks (bound 5) and 2 epochs: "
        "is its sensor wired?");
  CHECK(rp[0].value == 7.0);
  CHECK(rp[0].threshold == 5.0);
  CHECK(p.check(none).report.empty());  // once
  p.tick();
  CHECK(p.check(none).report.empty());
  CHECK(p.check(rate).report.clears().size() == 1);
  // an epoch longer than missing_signal_checks (a supervised trainer's): no alarm between its figures
  monitor<performance_drop> q{config(o)};
  signals perf;
  perf.performance = 1.0;
  perf.progress = training_progress(1, 100);
  for (int epoch = 0; epoch < 5; ++epoch) {
    CHECK(q.check(perf).report.empty());
    for (int i = 0; i < 20; ++i) CHECK(q.check(none).report.empty());  // 20 checks > 5
    q.tick();
  }
}

TEST_CASE("missing-signal guard: off at 0; user detectors without `reads` are not watched; defaults fed in full stay quiet") {
  config_options off;
  off.missing_signal_checks = 0;
  monitor<reference::lstm_bounds> m{config(off)};
  for (int i = 0; i < 2000; ++i) CHECK(m.check(signals{}).report.empty());
  CHECK(m.checks_without_signal<0>() == 0);
  // only checks where the detector's category is collected count: kl_divergence
  // (ops_normal) sits out at MINIMAL, and a trainer at MINIMAL computes no KL
  config_options minimal;
  minimal.configured = level::minimal;
  minimal.missing_signal_checks = 3;
  monitor<kl_divergence, reference::lstm_bounds> q{config(minimal)};
  signals lstm_only;
  lstm_only.lstm = lstm_signal{.h_norm = 1.0, .c_norm = 1.0};
  for (int i = 0; i < 10; ++i) CHECK(q.check(lstm_only).report.empty());
  CHECK(q.checks_without_signal<0>() == 0);
  q.cfg().set_level(level::normal);
  for (int i = 0; i < 2; ++i) CHECK(q.check(lstm_only).report.empty());
  CHECK(q.check(lstm_only).report.has(anomaly_kind::signal_missing));  // the third collected check
  config_options off_level;
  off_level.configured = level::off;
  off_level.missing_signal_checks = 1;
  monitor<reference::lstm_bounds> o{config(off_level)};
  for (int i = 0; i < 5; ++i) CHECK(o.check(signals{}).report.empty());  // telemetry off: nothing
  static_assert(!SignalReadingDetector<debug_only_probe>);
  static_assert(SignalReadingDetector<update_shift> && SignalReadingDetector<reference::gradient_drift>);
  CHECK(config_options{}.missing_signal_checks == 1000);
  // the default: 1000 checks
  monitor<debug_only_probe, reference::lstm_bounds> n{config(config_options{.configured = level::debug})};
  for (int i = 0; i < 999; ++i) CHECK(n.check(signals{}).report.empty());
  const anomaly_report r = n.check(signals{}).report;
  REQUIRE(r.size() == 1);
  CHECK(r[0].detail.find("lstm_bounds") != std::string::npos);
  CHECK(n.get<debug_only_probe>().runs == 1000);
  // every detector of simic's defaults and of the reference preset reads a signal the full healthy set carries
  default_monitor d;
  reference_monitor ref = make_reference_monitor();
  for (std::uint64_t u = 0; u < 1200; ++u) {
    CHECK_FALSE(d.check(healthy(u % 1000)).report.has(anomaly_kind::signal_missing));
    CHECK_FALSE(ref.check(healthy(u % 1000)).report.has(anomaly_kind::signal_missing));
  }
}

TEST_CASE("state visit names every field once") {
  default_monitor m;
  auto st = m.state();
  std::vector<std::string> names;
  st.visit([&](const char* n, auto&) { names.emplace_back(n); });
  CHECK(std::find(names.begin(), names.end(), "detector.6.norm.log_value.mean_raw") != names.end());
  CHECK(std::find(names.begin(), names.end(), "detector.6.norm.fast.mean_raw") != names.end());
  CHECK(std::find(names.begin(), names.end(), "detector.7.ratio.up") != names.end());
  CHECK(std::find(names.begin(), names.end(), "detector.9.figures") != names.end());
  CHECK(std::find(names.begin(), names.end(), "detector.9.reward_figures") != names.end());
  CHECK(std::find(names.begin(), names.end(), "detector.9.condition.active") != names.end());
  CHECK(std::find(names.begin(), names.end(), "detector.9.checks_without_signal") != names.end());
  CHECK(std::find(names.begin(), names.end(), "detector.5.extreme.active") != names.end());
  CHECK(std::find(names.begin(), names.end(), "response.consecutive_skips") != names.end());
  CHECK(std::find(names.begin(), names.end(), "config.escalation_left") != names.end());
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
}

TEST_CASE("check allocates nothing when there is no anomaly") {
  default_monitor m;
  const signals s0 = healthy(0);
  m.check(s0);  // warm
  const signals s1 = healthy(1);
  const std::size_t before = g_allocations.load();
  for (std::uint64_t u = 1; u < 100; ++u) {
    const auto& r = m.check(s1);
    if (!r.report.empty()) break;
  }
  CHECK(g_allocations.load() == before);
  // and a report does allocate (the counter works)
  signals bad = s1;
  bad.approx_kl = 0.3;
  m.check(bad);
  CHECK(g_allocations.load() > before);
}

// ---- threads ---------------------------------------------------------------

namespace {
using simic::test::holding_detector;
using holding_monitor = monitor<holding_detector, loss_ceiling>;

std::string overlap_message(const char* call, const char* other) {
  return simic::test::overlap_message("monitor", call, other);
}
}  // namespace

TEST_CASE("threads: every non-const call into a monitor held by another thread's check throws; the monitor stays usable") {
  if constexpr (!detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  holding_monitor m;
  signals s;
  s.loss = 20.0;  // loss_ceiling reports it
  const holding_monitor::state_type st = m.state();
  std::latch entered(1), release(1);
  m.get<holding_detector>().entered = &entered;
  m.get<holding_detector>().release = &release;
  std::size_t first_report = 0;
  std::thread first([&] { first_report = m.check(s).report.size(); });
  entered.wait();  // `first` is inside check() now, and stays there
  CHECK_THROWS_WITH_AS(m.check(s), overlap_message("check", "check").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(m.check(s, already_validated), overlap_message("check", "check").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(m.tick(), overlap_message("tick", "check").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(m.load(st), overlap_message("load", "check").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(static_cast<void>(m.cfg()), overlap_message("cfg", "check").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(static_cast<void>(m.get<loss_ceiling>()), overlap_message("get", "check").c_str(),
                       std::logic_error);
  CHECK_THROWS_WITH_AS(static_cast<void>(m.get<1>()), overlap_message("get", "check").c_str(), std::logic_error);
  CHECK_THROWS_WITH_AS(m.for_each_detector([](auto&) {}), overlap_message("for_each_detector", "check").c_str(),
                       std::logic_error);
  release.count_down();
  first.join();
  // Only `first`'s check ran, whole: one report, one check, one loss seen.
  CHECK(first_report == 1);
  CHECK(m.checks() == 1);
  CHECK(m.get<loss_ceiling>().seen == 1);
  // Released: this thread may use it now, and it goes on as one thread would.
  CHECK(m.check(s).report.size() == 1);
  CHECK(m.checks() == 2);
  CHECK(m.get<loss_ceiling>().seen == 2);
  CHECK_NOTHROW(m.tick());
}

TEST_CASE("threads: a call that throws releases the monitor; a call nested on the holding thread is no overlap") {
  if constexpr (!detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  default_monitor m;
  signals bad = healthy(1);
  bad.progress.reset();
  CHECK_THROWS_AS(m.check(bad), std::invalid_argument);  // held, then released by the throw
  bool other_checked = false;
  std::thread other([&] { other_checked = m.check(healthy(2)).report.empty(); });
  other.join();  // a logic_error would have ended the program (std::terminate)
  CHECK(other_checked);
  CHECK(m.checks() == 1);
  // A detector visitor of the holding thread calling back into the monitor.
  int visited = 0;
  CHECK_NOTHROW(m.for_each_detector([&](auto&) {
    ++visited;
    static_cast<void>(m.cfg());
  }));
  CHECK(visited == static_cast<int>(default_monitor::size));
}

TEST_CASE("threads: a copy or a move of a held monitor starts free") {
  if constexpr (!detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  holding_monitor m;
  signals s;
  s.loss = 1.0;
  m.check(s);
  std::size_t copy_checks = 0, moved_checks = 0;
  bool copy_threw = false, moved_threw = false;
  m.for_each_detector([&](auto& d) {  // this thread holds m meanwhile
    if constexpr (std::is_same_v<std::decay_t<decltype(d)>, loss_ceiling>) {
      holding_monitor copy = m;
      holding_monitor source = m;
      holding_monitor moved = std::move(source);
      std::thread t([&] {
        try {
          copy.check(s);
          copy_checks = copy.checks();
        } catch (const std::logic_error&) {
          copy_threw = true;
        }
        try {
          moved.check(s);
          moved_checks = moved.checks();
        } catch (const std::logic_error&) {
          moved_threw = true;
        }
      });
      t.join();
    }
  });
  CHECK_FALSE(copy_threw);
  CHECK_FALSE(moved_threw);
  CHECK(copy_checks == 2);  // the copy carried the one check made before it
  CHECK(moved_checks == 2);
  CHECK(m.checks() == 1);   // the original is untouched by its copies
}

TEST_CASE("threads: two threads hammering check() on one monitor get std::logic_error, and no check is lost or torn") {
  if constexpr (!detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  default_monitor m;
  std::atomic<bool> overlapped{false};
  std::atomic<std::uint64_t> completed{0};
  std::latch start(2);
  auto hammer = [&](std::uint64_t offset) {
    start.arrive_and_wait();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (std::uint64_t u = offset; !overlapped.load() && std::chrono::steady_clock::now() < until; u += 2) {
      try {
        m.check(healthy(u % 1000));
        completed.fetch_add(1);
      } catch (const std::logic_error&) {
        overlapped.store(true);
      }
    }
  };
  std::thread a(hammer, 0), b(hammer, 1);
  a.join();
  b.join();
  CHECK(overlapped.load());
  CHECK(m.checks() == completed.load());  // every check that returned counted once; the refused ones never ran
}

TEST_CASE("threads: two monitors in two threads never collide and match a one-thread run") {
  default_monitor reference, left, right;
  constexpr std::uint64_t n = 5000;
  auto feed = [](default_monitor& m, std::uint64_t count) {
    for (std::uint64_t u = 0; u < count; ++u) {
      signals s = healthy(u, count);
      if (u % 997 == 500) s.approx_kl = 0.3;  // anomalies too: reports allocate and escalate
      m.check(s);
      if (u % 100 == 99) m.tick();
    }
  };
  feed(reference, n);
  std::latch start(2);
  bool left_threw = false, right_threw = false;
  auto run = [&](default_monitor& m, bool& threw) {
    start.arrive_and_wait();
    try {
      feed(m, n);
    } catch (const std::logic_error&) {
      threw = true;
    }
  };
  std::thread a(run, std::ref(left), std::ref(left_threw)), b(run, std::ref(right), std::ref(right_threw));
  a.join();
  b.join();
  CHECK_FALSE(left_threw);
  CHECK_FALSE(right_threw);
  CHECK(left.state() == reference.state());
  CHECK(right.state() == reference.state());
  CHECK(left.checks() == n);
}

TEST_CASE("escalation counted in checks: one bad batch is escalation_checks checks at DEBUG, not epochs") {
  config_options o;
  o.escalation_checks = 3;
  default_monitor m{config(o)};
  for (std::uint64_t u = 0; u < 5; ++u) m.check(healthy(u + 100));
  signals bad = healthy(105);
  bad.loss = std::numeric_limits<double>::quiet_NaN();  // numerical_instability: critical
  const auto& r = m.check(bad);
  CHECK(r.escalation_started);
  CHECK_FALSE(r.escalation_ended);  // the escalating check is not counted
  CHECK(m.effective_level() == level::debug);
  for (std::uint64_t u = 106; u < 108; ++u) {
    CHECK_FALSE(m.check(healthy(u)).escalation_ended);  // checks 1 and 2 of 3
    CHECK(m.effective_level() == level::debug);
  }
  CHECK(m.check(healthy(108)).escalation_ended);  // the 3rd is the last at DEBUG
  CHECK(m.effective_level() == level::normal);
  CHECK(m.state().escalation_checks_left == 0);
  // a renewal while escalated restarts the count; the state round-trips
  m.check(bad);
  m.check(healthy(110));
  m.check(bad);
  CHECK(m.state().escalation_checks_left == 3);
  default_monitor copy{config(o)};
  copy.load(m.state());
  CHECK(copy.state() == m.state());
  CHECK(copy.effective_level() == level::debug);
}

namespace {
// Every figure of an anomaly is in its text, as %.6g writes it.
void check_figures_in_text(const anomaly& a) {
  INFO(to_string(a.kind) << ": " << a.detail);
  if (std::isfinite(a.value)) CHECK(a.detail.find(simic::detail::format("%.6g", a.value)) != std::string::npos);
  if (std::isfinite(a.threshold))
    CHECK(a.detail.find(simic::detail::format("%.6g", a.threshold)) != std::string::npos);
  if (a.baseline && std::isfinite(*a.baseline))
    CHECK(a.detail.find(simic::detail::format("%.6g", *a.baseline)) != std::string::npos);
}

template <class Monitor>
std::set<std::string> faulted_kinds(Monitor m) {
  std::set<std::string> kinds;
  auto take = [&](const check_result& r) {
    for (const anomaly& a : r.report) {
      kinds.insert(std::string(to_string(a.kind)));
      check_figures_in_text(a);
    }
  };
  for (std::uint64_t u = 0; u < 300; ++u) {  // a loss that falls as training learns
    signals s = healthy(u + 100);
    s.loss = 0.3 + 2.0 * std::exp(-static_cast<double>(u) / 30.0);
    take(m.check(s));
  }
  // every signal far off, for long enough that the slow rules judge too
  for (std::uint64_t u = 400; u < 460; ++u) {
    signals s = healthy(u);
    const std::array<head_entropy, 1> low{{{"move", 0.05}}};
    s.ratio_max = 9.0;
    s.ratio_min = 0.01;
    s.approx_kl = u % 2 ? 0.7 : 0.2;
    s.explained_variance = -5.0;
    s.entropy = low;
    s.gradients->max_param_norm = 1e4;
    s.gradients->min_param_norm = 0.0;
    s.gradients->total_norm = 60.0 * static_cast<double>(u - 399);
    s.gradients->health = 0.2;
    s.lstm->h_norm = 1e3;
    s.performance = 150.0 - static_cast<double>(u - 399) * 5.0;
    s.update_ratio = 0.2 * static_cast<double>(u - 399);
    s.loss = 3.0 + 0.3 * static_cast<double>(u - 399);  // back above its start, and rising
    take(m.check(s));
  }
  return kinds;
}
}  // namespace

TEST_CASE("every anomaly's value, threshold and baseline are figures its text states (every preset)") {
  const auto ppo = faulted_kinds(default_monitor{});
  const auto ref = faulted_kinds(make_reference_monitor());
  const auto sup = faulted_kinds(supervised_monitor{});
  for (const char* k : {"learning_stall", "gradient_exploding", "update_ratio_drift"})
    CHECK_MESSAGE(sup.count(k) == 1, std::string(k));
  CHECK(sup.count("loss_spike") + sup.count("loss_extreme") + sup.count("loss_divergence") >= 1);
  // the sweep reached the detectors it is meant to: the figures of each were checked
  for (const char* k : {"ratio_explosion", "ratio_collapse", "kl_extreme", "kl_spike", "value_collapse",
                        "entropy_collapse", "gradient_exploding", "gradient_vanishing", "gradient_norm_drift",
                        "gradient_health_drift", "lstm_unhealthy", "update_ratio_drift", "performance_degradation"})
    CHECK_MESSAGE(ppo.count(k) == 1, std::string(k));
  CHECK(ref.count("gradient_exploding") == 1);
  CHECK(ref.count("performance_degradation") == 1);
}
