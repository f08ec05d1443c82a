// The reference preset's check against the same checks written by hand as one
// if-chain, in one run; simic's defaults (noise-grounded models, onset and
// clear) beside them. Also: a detector of a filtered-out category (dropped at
// compile time) and one gated off at run time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <cmath>
#include <type_traits>

#include "simic/monitor.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/presets/reference.hpp"
#ifdef SIMIC_BENCH_SESSION  // built with LibTorch (bench/meson.build): the session beside the bare check
#include "simic/emit/sink_callback.hpp"
#include "simic/presets/ppo_session.hpp"
#endif

using namespace simic;

namespace {

const std::array<head_entropy, 2> heads{{{"move", 0.8}, {"fire", 0.7}}};

// A full set of healthy signals for update u (varies so nothing is hoisted).
signals full_signals(std::uint64_t u) {
  signals s;
  s.ratio_max = 1.2 + 1e-3 * static_cast<double>(u % 5);
  s.ratio_min = 0.8;
  s.approx_kl = 0.01;
  s.explained_variance = 0.5;
  s.loss = 0.3;
  s.update_ratio = 2e-3 * (1.0 + 1e-3 * static_cast<double>(u % 11));
  s.entropy = heads;
  gradient_signal g;
  g.total_norm = 0.5 + 1e-3 * static_cast<double>(u % 7);
  g.health = 1.0;
  g.min_param_norm = 1e-3;
  g.max_param_norm = 0.3;
  g.parameters = 24;
  s.gradients = g;
  lstm_signal l;
  l.h_norm = 3.0;
  l.c_norm = 5.0;
  l.elements = 64;
  s.lstm = l;
  s.performance = 150.0 + 0.1 * static_cast<double>(u % 3);
  s.reward_rate = 1.0 + 1e-3 * static_cast<double>(u % 3);
  s.progress = training_progress(500 + (u % 100), 1000);
  return s;
}

// The same checks by hand: one function, one if after another.
struct hand_written {
  ema<> norm_ema, health_ema;
  std::array<double, 10> window{};
  std::size_t head = 0, filled = 0;
  std::uint64_t consecutive = 0;
  anomaly_report report;

  void check(const signals& s) {
    report.clear();
    auto nonfinite = [&](const std::optional<double>& v, const char* what) {
      if (v && !std::isfinite(*v)) report.add(anomaly_kind::numerical_instability, what);
    };
    nonfinite(s.loss, "loss");
    nonfinite(s.ratio_max, "ratio_max");
    nonfinite(s.ratio_min, "ratio_min");
    nonfinite(s.approx_kl, "approx_kl");
    nonfinite(s.explained_variance, "explained_variance");
    nonfinite(s.performance, "performance");
    for (const auto& h : s.entropy)
      if (!std::isfinite(h.normalized)) report.add(anomaly_kind::numerical_instability, "entropy");
    if (s.gradients && !s.gradients->finite()) report.add(anomaly_kind::numerical_instability, "gradients");
    if (s.lstm) {
      const auto& l = *s.lstm;
      if (l.has_nan || l.has_inf || !(l.h_norm > 1e-6 && l.h_norm < 100.0) || !(l.c_norm > 1e-6 && l.c_norm < 100.0))
        report.add(anomaly_kind::lstm_unhealthy, "lstm");
    }
    if (s.ratio_max && *s.ratio_max > 5.0) report.add(anomaly_kind::ratio_explosion, "ratio");
    if (s.ratio_min && *s.ratio_min < 0.1) report.add(anomaly_kind::ratio_collapse, "ratio");
    if (s.explained_variance && s.progress) {
      const double f = s.progress->fraction();
      const double floor = f < 0.1 ? -0.5 : f < 0.25 ? -0.2 : f < 0.75 ? 0.0 : 0.1;
      if (*s.explained_variance < floor) report.add(anomaly_kind::value_collapse, "ev");
    }
    for (const auto& h : s.entropy) {
      if (h.normalized < 0.1)
        report.add(anomaly_kind::entropy_collapse, "entropy");
      else if (h.normalized < 0.3)
        report.add(anomaly_kind::entropy_low, "entropy");
    }
    if (s.approx_kl) {
      if (*s.approx_kl > 0.5)
        report.add(anomaly_kind::kl_extreme, "kl");
      else if (*s.approx_kl > 0.1)
        report.add(anomaly_kind::kl_spike, "kl");
    }
    if (s.gradients) {
      const auto n = norm_ema.update(s.gradients->total_norm);
      if (!n.accepted)
        report.add(anomaly_kind::numerical_instability, "norm");
      else if (n.drift > 0.5)
        report.add(anomaly_kind::gradient_norm_drift, "drift");
      const auto h = health_ema.update(s.gradients->health);
      if (!h.accepted)
        report.add(anomaly_kind::numerical_instability, "health");
      else if (h.drift > 0.5)
        report.add(anomaly_kind::gradient_health_drift, "drift");
      if (s.gradients->parameters > 0) {
        if (s.gradients->min_param_norm < 1e-7) report.add(anomaly_kind::gradient_vanishing, "vanish");
        if (s.gradients->max_param_norm > 10.0) report.add(anomaly_kind::gradient_exploding, "explode");
      }
    }
    if (s.performance && s.progress && std::isfinite(*s.performance)) {
      const double x = *s.performance;
      if (filled > 0 && s.progress->fraction() >= 0.1) {
        const std::size_t start = (head + window.size() - filled) % window.size();
        const std::size_t first = std::min(filled, window.size() - start);
        double sum = 0.0;
        for (std::size_t i = 0; i < first; ++i) sum += window[start + i];
        for (std::size_t i = 0; i < filled - first; ++i) sum += window[i];
        const double mean = sum / static_cast<double>(filled);
        if (mean - x > 0.0 && (mean - x) / std::abs(mean) >= 0.1)
          report.add(anomaly_kind::performance_degradation, "perf");
      }
      window[head] = x;
      if (++head == window.size()) head = 0;
      if (filled < window.size()) ++filled;
    }
    consecutive = (s.gradients && !s.gradients->finite()) ? consecutive + 1 : 0;
  }
};

// A costly detector of the debug category: dropped at compile time by without<cat::debug>.
struct heavy_debug_detector {
  using category = cat::debug;
  double acc = 0.0;
  void observe(const signals& s, anomaly_report&) {
    for (int i = 0; i < 1000; ++i) acc += std::sqrt(static_cast<double>(i) + s.loss.value_or(0.0));
  }
};

using with_debug =
    monitor<numerical_stability, reference::lstm_bounds, ratio_bounds, reference::value_function, entropy_floor,
            kl_divergence, reference::gradient_drift, gradient_bounds, reference::performance_degradation,
            heavy_debug_detector>;
using filtered = with_debug::without<cat::debug>;
static_assert(std::is_same_v<filtered, reference_monitor>, "a filtered-out detector leaves the very same type");

constexpr std::size_t kSignals = 64;
std::array<signals, kSignals> make_inputs() {
  std::array<signals, kSignals> in{};
  for (std::size_t i = 0; i < kSignals; ++i) in[i] = full_signals(i);
  return in;
}

void BM_hand_written_if_chain(benchmark::State& state) {
  const auto in = make_inputs();
  hand_written h;
  std::size_t i = 0;
  for (auto _ : state) {
    h.check(in[i++ % kSignals]);
    benchmark::DoNotOptimize(h.report.empty());
  }
}

// Times `check(signals)` (a monitor's check, a session's step) over the inputs.
template <class Check>
void run_checks(benchmark::State& state, Check&& check) {
  const auto in = make_inputs();
  std::size_t i = 0;
  for (auto _ : state) {
    const check_result& r = check(in[i++ % kSignals]);
    benchmark::DoNotOptimize(r.report.empty());
  }
}
template <class M>
void run_monitor(benchmark::State& state, M& m) {
  run_checks(state, [&](const signals& s) -> const check_result& { return m.check(s); });
}

void BM_reference_monitor_check(benchmark::State& state) {
  reference_monitor m = make_reference_monitor();
  run_monitor(state, m);
}
void BM_reference_monitor_check_guard_off(benchmark::State& state) {
  config_options o = reference_config_options();
  o.missing_signal_checks = 0;  // the missing-signal guard off: its cost is the difference
  reference_monitor m = make_reference_monitor(o);
  run_monitor(state, m);
}
void BM_default_monitor_check(benchmark::State& state) {
  default_monitor m;
  run_monitor(state, m);
}
void BM_filtered_out_debug_detector(benchmark::State& state) {
  filtered m = make_reference_monitor();  // with_debug::without<cat::debug>
  run_monitor(state, m);
}
void BM_debug_detector_gated_at_normal(benchmark::State& state) {
  const reporting each = reporting::every_check();
  with_debug m(config(reference_config_options()), numerical_stability{}, reference::lstm_bounds{},
               ratio_bounds({.explosion = 5.0, .collapse = 0.1, .how = each}), reference::value_function{},
               entropy_floor({.collapse = 0.1, .low = 0.3, .how = each}),
               kl_divergence({.spike = 0.1, .extreme = 0.5, .how = each}), reference::gradient_drift{},
               gradient_bounds({.vanishing = 1e-7, .exploding = 10.0, .how = each}),
               reference::performance_degradation{},
               heavy_debug_detector{});  // the heavy detector is held but sits out at NORMAL (a run-time branch)
  run_monitor(state, m);
}

#ifdef SIMIC_BENCH_SESSION
// The session's own cost per check: no parameters (no sensor reads), no
// sinks (no events), the same signals as BM_default_monitor_check.
void BM_session_step_no_sensors(benchmark::State& state) {
  ppo_session<> tel({}, no_parameters);
  run_checks(state, [&](const signals& s) -> const check_result& { return tel.step(s); });
}
// The session's own work alone: a monitor without detectors, bare and in a session.
void BM_empty_monitor_check(benchmark::State& state) {
  monitor<> m;
  run_monitor(state, m);
}
void BM_session_step_empty_monitor(benchmark::State& state) {
  session<monitor<>> tel(monitor<>(), {}, no_parameters);
  run_checks(state, [&](const signals& s) -> const check_result& { return tel.step(s); });
}
// The same with a sink that counts: the events of each step are built and queued.
void BM_session_step_with_events(benchmark::State& state) {
  std::atomic<std::uint64_t> seen{0};
  ppo_session<> tel({}, no_parameters,
                    {std::make_shared<callback_sink>([&](const event&) { seen.fetch_add(1, std::memory_order_relaxed); })});
  run_checks(state, [&](const signals& s) -> const check_result& { return tel.step(s); });
  tel.close();
  state.counters["events_per_step"] = static_cast<double>(seen.load()) / static_cast<double>(state.iterations());
}
#endif

}  // namespace

BENCHMARK(BM_hand_written_if_chain);
BENCHMARK(BM_reference_monitor_check);
BENCHMARK(BM_reference_monitor_check_guard_off);
BENCHMARK(BM_default_monitor_check);
BENCHMARK(BM_filtered_out_debug_detector);
BENCHMARK(BM_debug_detector_gated_at_normal);
#ifdef SIMIC_BENCH_SESSION
BENCHMARK(BM_session_step_no_sensors);
BENCHMARK(BM_empty_monitor_check);
BENCHMARK(BM_session_step_empty_monitor);
BENCHMARK(BM_session_step_with_events);
#endif
BENCHMARK_MAIN();
