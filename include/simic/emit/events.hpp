// Typed, immutable telemetry events.
//
// An event is a stamp (wall time, update, epoch), an optional context (run id,
// env id, device, rank) and one payload from a closed list of plain structs.
// It has no setters: context is added by with_context(), which returns a copy,
// so a caller's event is never changed behind its back (the hub adds its
// default context to its own copy). No LibTorch here: payloads carry the plain
// host structs of simic/core (signals.hpp, diagnostics.hpp, anomaly.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "simic/core/anomaly.hpp"
#include "simic/core/response.hpp"
#include "simic/core/diagnostics.hpp"
#include "simic/core/level.hpp"
#include "simic/core/signals.hpp"

namespace simic {
inline namespace v0 {

// Where an event comes from. Empty strings and absent numbers are not written.
struct event_context {
  std::string run_id{};
  std::optional<std::int64_t> env_id{};
  std::string device{};
  std::optional<std::int64_t> rank{};

  bool empty() const noexcept { return run_id.empty() && !env_id && device.empty() && !rank; }
  // This context with its unset fields taken from `defaults`.
  event_context over(const event_context& defaults) const {
    event_context out = *this;
    if (out.run_id.empty()) out.run_id = defaults.run_id;
    if (!out.env_id) out.env_id = defaults.env_id;
    if (out.device.empty()) out.device = defaults.device;
    if (!out.rank) out.rank = defaults.rank;
    return out;
  }
  friend bool operator==(const event_context&, const event_context&) = default;
};

// A named figure for what the typed fields do not cover.
struct metric {
  std::string name{};
  double value = 0.0;
  friend bool operator==(const metric&, const metric&) = default;
};

// ---- payloads (the JSON "event" name is each struct's `name`) ----

// The figures of one PPO update. Absent fields are not written.
struct update_metrics {
  static constexpr std::string_view name = "update";
  std::optional<double> loss{};
  std::optional<double> policy_loss{};
  std::optional<double> value_loss{};
  std::optional<double> entropy{};             // mean normalised entropy, 0..1
  std::optional<double> approx_kl{};
  std::optional<double> clip_fraction{};
  std::optional<double> ratio_max{};
  std::optional<double> ratio_min{};
  std::optional<double> explained_variance{};
  std::optional<double> learning_rate{};
  std::vector<metric> extra{};                 // anything else, written under "extra"
};

struct gradient_health_event {
  static constexpr std::string_view name = "gradient_health";
  gradient_signal gradients{};
  // The host/module gradient ratio (sensors/gradient_ratio.hpp), when the
  // host's parameters are named and both sides have gradients.
  std::optional<double> host_module_ratio{};
};

struct lstm_health_event {
  static constexpr std::string_view name = "lstm_health";
  lstm_signal lstm{};
  bool healthy = true;
};

// One anomaly with its figures (core/anomaly.hpp): `value` and `threshold`
// are NaN where the anomaly is no comparison (a NaN loss has no threshold).
struct anomaly_event {
  static constexpr std::string_view name = "anomaly";
  anomaly_kind kind{};
  std::string detail{};
  level level_after = level::normal;  // the effective level after this check
  simic::severity severity = simic::severity::warning;
  double value = no_figure;
  double threshold = no_figure;
  std::optional<double> baseline{};
  // Data-parallel: the ranks whose figures caused it (empty: one process).
  std::vector<std::int64_t> origin_ranks{};

  static anomaly_event of(const anomaly& a, level level_after) {
    return {a.kind, a.detail, level_after, a.severity, a.value, a.threshold, a.baseline, {}};
  }
};

// A condition reported at its onset has ended after `duration` observations.
struct anomaly_clear_event {
  static constexpr std::string_view name = "anomaly_clear";
  anomaly_kind kind{};
  std::uint64_t duration = 0;
  double value = no_figure;  // the figure that ended it
};

struct escalation_start_event {
  static constexpr std::string_view name = "escalation_start";
  level from = level::normal;
  level to = level::debug;
  std::uint32_t epochs = 0;  // how long it lasts unless renewed
  std::string reason{};        // e.g. the anomaly kinds that caused it
};

struct escalation_end_event {
  static constexpr std::string_view name = "escalation_end";
  level from = level::debug;
  level to = level::normal;
};

struct layer_gradients_event {
  static constexpr std::string_view name = "layer_gradients";
  layer_gradient_report report{};
};

struct nan_inf_scan_event {
  static constexpr std::string_view name = "nan_inf_scan";
  nan_inf_scan_report report{};
};

struct ratio_diagnostic_event {
  static constexpr std::string_view name = "ratio_diagnostic";
  ratio_diagnostic_report report{};
};

// What the monitor told the trainer when it was not "proceed": a skipped
// optimizer step, or a stop with its cause.
struct response_event {
  static constexpr std::string_view name = "response";
  action act = action::skip_step;
  std::string reason{};
  std::uint64_t consecutive_skips = 0;
  std::uint64_t total_skips = 0;
};

struct performance_degradation_event {
  static constexpr std::string_view name = "performance_degradation";
  double current = 0.0;       // the figure just observed
  double rolling_mean = 0.0;  // mean of the previous window
  double drop = 0.0;          // (rolling_mean - current) / |rolling_mean|
  double threshold = 0.0;     // the drop that counts as degradation
};

// Memory statistics (cat::memory, every config memory_interval updates).
struct memory_event {
  static constexpr std::string_view name = "memory";
  memory_stats memory{};
};

struct epoch_summary {
  static constexpr std::string_view name = "epoch_summary";
  std::optional<double> performance{};  // accuracy, mean return (higher is better)
  std::uint64_t updates = 0;          // updates in this epoch
  std::uint64_t anomalies = 0;        // anomalies reported in this epoch
  level level_after = level::normal;  // effective level after this epoch's tick
  std::vector<metric> metrics{};        // written under "metrics"
};

struct profiler_trace_event {
  static constexpr std::string_view name = "profiler_trace";
  std::string path{};               // the Chrome-trace JSON file written
  std::uint64_t first_step = 0;   // profiler step of the first active step
  std::uint64_t steps = 0;        // active steps in the trace
  std::uint32_t cycle = 0;        // 0-based repeat index
};

// Wall-clock totals of one phase (rollout, update, telemetry, ...).
struct phase_timing {
  std::string phase{};
  std::uint64_t count = 0;  // timed scopes
  double total_s = 0.0;
  double min_s = 0.0;
  double max_s = 0.0;
  double mean_s() const noexcept { return count ? total_s / static_cast<double>(count) : 0.0; }
  friend bool operator==(const phase_timing&, const phase_timing&) = default;
};

struct phase_timings_event {
  static constexpr std::string_view name = "phase_timings";
  std::vector<phase_timing> phases{};  // in order of first use
};

namespace detail {
// An event's time as every sink writes it: seconds since the Unix epoch, to
// the microsecond.
inline double unix_seconds(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return static_cast<double>(us) / 1e6;
}
}  // namespace detail

using event_payload =
    std::variant<update_metrics, gradient_health_event, lstm_health_event, anomaly_event, anomaly_clear_event,
                 escalation_start_event,
                 escalation_end_event, layer_gradients_event, nan_inf_scan_event, ratio_diagnostic_event,
                 response_event, performance_degradation_event, memory_event, epoch_summary,
                 profiler_trace_event, phase_timings_event>;

template <class P>
concept EventPayload = requires {
  { P::name } -> std::convertible_to<std::string_view>;
} && std::is_constructible_v<event_payload, P>;

class event {
 public:
  using clock = std::chrono::system_clock;

  template <EventPayload P>
  event(std::uint64_t update, std::uint64_t epoch, P payload, clock::time_point time = clock::now())
      : time_(time), update_(update), epoch_(epoch), payload_(std::move(payload)) {}

  std::string_view name() const noexcept {
    return std::visit([](const auto& p) -> std::string_view { return std::decay_t<decltype(p)>::name; }, payload_);
  }
  clock::time_point time() const noexcept { return time_; }
  std::uint64_t update() const noexcept { return update_; }
  std::uint64_t epoch() const noexcept { return epoch_; }
  const event_context& context() const noexcept { return context_; }
  const event_payload& payload() const noexcept { return payload_; }

  template <EventPayload P>
  bool is() const noexcept { return std::holds_alternative<P>(payload_); }
  // The payload if it is a P, else nullptr.
  template <EventPayload P>
  const P* get_if() const noexcept { return std::get_if<P>(&payload_); }

  // A copy of this event carrying `ctx` (its unset fields from the current context).
  event with_context(const event_context& ctx) const& {
    event out = *this;
    out.context_ = ctx.over(context_);
    return out;
  }
  event with_context(const event_context& ctx) && {
    context_ = ctx.over(context_);
    return std::move(*this);
  }
  // A copy of this event whose unset context fields come from `defaults`
  // (what a hub does with its default context).
  event with_default_context(const event_context& defaults) const& {
    event out = *this;
    out.context_ = context_.over(defaults);
    return out;
  }
  event with_default_context(const event_context& defaults) && {
    context_ = context_.over(defaults);
    return std::move(*this);
  }

 private:
  clock::time_point time_;
  std::uint64_t update_;
  std::uint64_t epoch_;
  event_context context_;
  event_payload payload_;
};

}  // namespace v0
}  // namespace simic
