// The session's own event payloads: the step's record, anomalies and their
// clears, escalation, responses, the performance drop and the epoch summary
// (docs/events.md). Each names its fields once, in describe(); the sensors'
// payloads are in their sensors' headers, the profiler's in profile/.
// No LibTorch here: payloads carry the plain host structs of simic/core.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "simic/core/anomaly.hpp"
#include "simic/core/level.hpp"
#include "simic/core/response.hpp"
#include "simic/core/signals.hpp"
#include "simic/emit/event.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/emit/names.hpp"

namespace simic {
inline namespace v0 {

// A named figure for what the typed fields do not cover.
struct metric {
  std::string name{};
  double value = 0.0;
  friend bool operator==(const metric&, const metric&) = default;
};

namespace detail {
inline void write_optional(field_writer& w, std::string_view key, const std::optional<double>& v,
                           std::string_view group = {}) {
  if (v) w.real(key, *v, group);
}
// Metrics as an object under `key`, each also the TensorBoard scalar
// <group>/<name>; under the names of unique_metric_names (emit/names.hpp):
// a repeated name gets "#2", "#3", ..., so no metric is lost and JSONL and
// TensorBoard name each alike.
inline void write_metrics(field_writer& w, std::string_view key, const std::vector<metric>& ms, std::string_view group) {
  std::vector<std::string_view> raw;
  raw.reserve(ms.size());
  for (const metric& m : ms) raw.push_back(m.name);
  const std::vector<std::string> names = unique_metric_names(raw);
  w.begin_object(key);
  for (std::size_t i = 0; i < ms.size(); ++i) w.real(names[i], ms[i].value, group);
  w.end();
}
// One field of a structured signal, by its descriptor (core/signals.hpp).
template <class S>
void write_member(field_writer& w, const signal_member<S>& m, const S& s, std::string_view group) {
  const std::string_view g = m.tensorboard ? group : std::string_view{};
  switch (m.kind) {
    case value_kind::real: w.real(m.name, m.get(s), g); break;
    case value_kind::count: w.count(m.name, static_cast<std::uint64_t>(m.get(s)), g); break;
    case value_kind::flag: w.flag(m.name, m.get(s) != 0.0, g); break;
  }
}
// Every field of a structured signal its event carries, in descriptor order.
template <class S, std::size_t N>
void write_members(field_writer& w, const signal_member<S> (&members)[N], const S& s, std::string_view group) {
  for (const signal_member<S>& m : members)
    if (m.in_event) write_member(w, m, s, group);
}
// The effective level as TensorBoard's telemetry/level scalar (OFF 0 ... DEBUG 3).
inline void write_level_scalar(field_writer& w, level l) {
  if (w.scalars()) w.scalar("telemetry/level", static_cast<double>(static_cast<unsigned>(l)));
}
}  // namespace detail

// The figures of one optimizer step (the step record). Absent fields are not
// written; the session fills the signal fields from the check's signals
// where the caller gave none.
struct update_metrics {
  static constexpr std::string_view name = "update";
  std::optional<double> loss{};
  std::optional<double> policy_loss{};
  std::optional<double> value_loss{};
  std::optional<double> entropy{};  // mean normalised entropy, 0..1
  std::optional<double> approx_kl{};
  std::optional<double> clip_fraction{};
  std::optional<double> ratio_max{};
  std::optional<double> ratio_min{};
  std::optional<double> explained_variance{};
  std::optional<double> learning_rate{};
  std::optional<double> update_ratio{};  // ||delta theta|| / ||theta|| of the previous step
  std::vector<metric> extra{};  // anything else, written under "extra"

  void describe(field_writer& w) const {
    using detail::write_optional;
    using f = signal_set;
    constexpr std::string_view g = "update";
    write_optional(w, f::name(f::loss), loss, g);
    write_optional(w, "policy_loss", policy_loss, g);
    write_optional(w, "value_loss", value_loss, g);
    write_optional(w, f::name(f::entropy), entropy, g);
    write_optional(w, f::name(f::approx_kl), approx_kl, g);
    write_optional(w, "clip_fraction", clip_fraction, g);
    write_optional(w, f::name(f::ratio_max), ratio_max, g);
    write_optional(w, f::name(f::ratio_min), ratio_min, g);
    write_optional(w, f::name(f::explained_variance), explained_variance, g);
    write_optional(w, "learning_rate", learning_rate, g);
    write_optional(w, f::name(f::update_ratio), update_ratio, g);
    if (!extra.empty()) detail::write_metrics(w, "extra", extra, g);
  }
};

// The step record's fields that the check's signals fill (scalar_signals
// with step_record set), by field.
inline std::optional<double>* step_record_field(update_metrics& m, signal_set::field f) noexcept {
  switch (f) {
    case signal_set::loss: return &m.loss;
    case signal_set::approx_kl: return &m.approx_kl;
    case signal_set::ratio_max: return &m.ratio_max;
    case signal_set::ratio_min: return &m.ratio_min;
    case signal_set::explained_variance: return &m.explained_variance;
    case signal_set::update_ratio: return &m.update_ratio;
    default: return nullptr;
  }
}

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
  void describe(field_writer& w) const {
    const std::string_view k = to_string(kind);
    w.text("anomaly", k);
    if (w.scalars()) {  // counts so far: each kind's curve is a staircase of its anomalies
      w.tally(std::string("anomalies/").append(k));
      w.tally("anomalies/total");
    }
    detail::write_level_scalar(w, level_after);
    w.text("severity", to_string(severity));
    w.real("value", value);
    if (!std::isnan(threshold)) w.real("threshold", threshold);
    detail::write_optional(w, "baseline", baseline);
    w.text("detail", detail);
    w.text("level_after", to_string(level_after));
    if (!origin_ranks.empty()) w.integers("origin_ranks", origin_ranks);
  }
};

// A condition reported at its onset has ended after `duration` observations.
struct anomaly_clear_event {
  static constexpr std::string_view name = "anomaly_clear";
  anomaly_kind kind{};
  std::uint64_t duration = 0;
  double value = no_figure;  // the figure that ended it
  void describe(field_writer& w) const {
    w.text("anomaly", to_string(kind));
    w.count("duration", duration);
    w.real("value", value);
  }
};

struct escalation_start_event {
  static constexpr std::string_view name = "escalation_start";
  level from = level::normal;
  level to = level::debug;
  std::uint32_t epochs = 0;  // how long it lasts unless renewed: epochs,
  std::uint32_t checks = 0;  // or checks, whichever ends first (0: no check limit)
  std::string reason{};      // e.g. the anomaly kinds that caused it
  void describe(field_writer& w) const {
    w.text("from", to_string(from));
    w.text("to", to_string(to));
    w.count("epochs", epochs);
    w.count("checks", checks);
    w.text("reason", reason);
    detail::write_level_scalar(w, to);
  }
};

struct escalation_end_event {
  static constexpr std::string_view name = "escalation_end";
  level from = level::debug;
  level to = level::normal;
  void describe(field_writer& w) const {
    w.text("from", to_string(from));
    w.text("to", to_string(to));
    detail::write_level_scalar(w, to);
  }
};

// Signals the trainer fed that no detector of the session's monitor reads
// (a PPO figure to the supervised preset, say): written once per new field,
// so a preset that does not fit the trainer is seen (docs/guide.md, Presets).
struct unread_signals_event {
  static constexpr std::string_view name = "unread_signals";
  std::string signals{};  // "approx_kl, ratio_max"
  std::string reads{};    // what the monitor reads
  void describe(field_writer& w) const {
    w.text("signals", signals);
    w.text("reads", reads);
  }
};

// What the monitor told the trainer when it was not "proceed": a skipped
// optimizer step, or a stop with its cause.
struct response_event {
  static constexpr std::string_view name = "response";
  action act = action::skip_step;
  std::string reason{};
  std::uint64_t consecutive_skips = 0;
  std::uint64_t total_skips = 0;
  void describe(field_writer& w) const {
    w.text("action", to_string(act));
    w.text("reason", reason);
    w.count("consecutive_skips", consecutive_skips);
    w.count("total_skips", total_skips);
    if (w.scalars()) {
      w.scalar("response/total_skips", static_cast<double>(total_skips));
      w.scalar("response/consecutive_skips", static_cast<double>(consecutive_skips));
      if (act == action::stop) w.scalar("response/stop", 1.0);
    }
  }
};

struct performance_degradation_event {
  static constexpr std::string_view name = "performance_degradation";
  double current = 0.0;       // the figure just observed
  double rolling_mean = 0.0;  // mean of the previous window
  double drop = 0.0;          // (rolling_mean - current) / |rolling_mean|
  double threshold = 0.0;     // the drop that counts as degradation
  void describe(field_writer& w) const {
    constexpr std::string_view g = "performance";
    w.real("current", current, g);
    w.real("rolling_mean", rolling_mean, g);
    w.real("drop", drop, g);
    w.real("threshold", threshold, g);
  }
};

struct epoch_summary {
  static constexpr std::string_view name = "epoch_summary";
  std::optional<double> performance{};  // accuracy, mean return (higher is better)
  std::uint64_t updates = 0;            // updates in this epoch
  std::uint64_t anomalies = 0;          // anomalies reported in this epoch
  level level_after = level::normal;    // effective level after this epoch's tick
  std::vector<metric> metrics{};        // written under "metrics"
  void describe(field_writer& w) const {
    constexpr std::string_view g = "epoch";
    detail::write_optional(w, signal_set::name(signal_set::performance), performance, g);
    w.count("updates", updates, g);
    w.count("anomalies", anomalies, g);
    w.text("level_after", to_string(level_after));
    detail::write_level_scalar(w, level_after);
    detail::write_metrics(w, "metrics", metrics, g);
  }
};

}  // namespace v0
}  // namespace simic
