// Events as JSON (nlohmann-json), the schema of docs/events.md.
//
// Every object has "event", "time" (seconds since the Unix epoch, UTC, with
// microseconds), "update", "epoch", the context fields that are set, then the
// payload's own fields. Non-finite numbers are written as the strings "nan",
// "inf" and "-inf": JSON has no such numbers, and a NaN gradient norm written
// as null would hide exactly what the telemetry exists to show.
#pragma once

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/events.hpp"
#include "simic/emit/sink.hpp"

namespace simic {
inline namespace v0 {
namespace detail {

using json_t = nlohmann::ordered_json;

inline json_t json_number(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}

inline void put_optional(json_t& j, const char* key, const std::optional<double>& x) {
  if (x) j[key] = json_number(*x);
}

inline json_t json_metrics(const std::vector<metric>& ms) {
  json_t j = json_t::object();
  for (const auto& m : ms) j[m.name] = json_number(m.value);
  return j;
}

inline void put_payload(json_t& j, const update_metrics& p) {
  put_optional(j, "loss", p.loss);
  put_optional(j, "policy_loss", p.policy_loss);
  put_optional(j, "value_loss", p.value_loss);
  put_optional(j, "entropy", p.entropy);
  put_optional(j, "approx_kl", p.approx_kl);
  put_optional(j, "clip_fraction", p.clip_fraction);
  put_optional(j, "ratio_max", p.ratio_max);
  put_optional(j, "ratio_min", p.ratio_min);
  put_optional(j, "explained_variance", p.explained_variance);
  put_optional(j, "learning_rate", p.learning_rate);
  if (!p.extra.empty()) j["extra"] = json_metrics(p.extra);
}

inline void put_payload(json_t& j, const gradient_health_event& p) {
  const auto& g = p.gradients;
  j["total_norm"] = json_number(g.total_norm);
  j["health"] = json_number(g.health);
  j["min_param_norm"] = json_number(g.min_param_norm);
  j["max_param_norm"] = json_number(g.max_param_norm);
  j["parameters"] = g.parameters;
  j["vanishing"] = g.vanishing;
  j["exploding"] = g.exploding;
  j["nan_count"] = g.nan_count;
  j["inf_count"] = g.inf_count;
  put_optional(j, "host_module_ratio", p.host_module_ratio);
}

inline void put_payload(json_t& j, const lstm_health_event& p) {
  j["h_norm"] = json_number(p.lstm.h_norm);
  j["c_norm"] = json_number(p.lstm.c_norm);
  j["h_max_abs"] = json_number(p.lstm.h_max_abs);
  j["c_max_abs"] = json_number(p.lstm.c_max_abs);
  j["has_nan"] = p.lstm.has_nan;
  j["has_inf"] = p.lstm.has_inf;
  j["healthy"] = p.healthy;
}

inline void put_payload(json_t& j, const anomaly_event& p) {
  j["anomaly"] = std::string(to_string(p.kind));
  j["severity"] = std::string(to_string(p.severity));
  j["value"] = json_number(p.value);
  if (!std::isnan(p.threshold)) j["threshold"] = json_number(p.threshold);
  put_optional(j, "baseline", p.baseline);
  j["detail"] = p.detail;
  j["level_after"] = std::string(to_string(p.level_after));
  if (!p.origin_ranks.empty()) j["origin_ranks"] = p.origin_ranks;
}

inline void put_payload(json_t& j, const anomaly_clear_event& p) {
  j["anomaly"] = std::string(to_string(p.kind));
  j["duration"] = p.duration;
  j["value"] = json_number(p.value);
}

inline void put_payload(json_t& j, const escalation_start_event& p) {
  j["from"] = std::string(to_string(p.from));
  j["to"] = std::string(to_string(p.to));
  j["epochs"] = p.epochs;
  j["reason"] = p.reason;
}

inline void put_payload(json_t& j, const response_event& p) {
  j["action"] = std::string(to_string(p.act));
  j["reason"] = p.reason;
  j["consecutive_skips"] = p.consecutive_skips;
  j["total_skips"] = p.total_skips;
}

inline void put_payload(json_t& j, const escalation_end_event& p) {
  j["from"] = std::string(to_string(p.from));
  j["to"] = std::string(to_string(p.to));
}

inline void put_payload(json_t& j, const layer_gradients_event& p) {
  json_t layers = json_t::array();
  for (const auto& l : p.report.layers) {
    layers.push_back({{"name", l.name},
                      {"numel", l.numel},
                      {"norm", json_number(l.norm)},
                      {"mean", json_number(l.mean)},
                      {"std", json_number(l.std)},
                      {"min", json_number(l.min)},
                      {"max", json_number(l.max)},
                      {"zero_fraction", json_number(l.zero_fraction)},
                      {"small_fraction", json_number(l.small_fraction)},
                      {"large_fraction", json_number(l.large_fraction)},
                      {"nan_count", l.nan_count},
                      {"inf_count", l.inf_count},
                      {"health", json_number(l.health)},
                      {"dead", l.dead},
                      {"exploding", l.exploding}});
  }
  j["layers"] = std::move(layers);
  j["dead_layers"] = p.report.dead_layers;
  j["exploding_layers"] = p.report.exploding_layers;
  j["skipped_without_grad"] = p.report.skipped_without_grad;
}

inline void put_payload(json_t& j, const nan_inf_scan_event& p) {
  json_t offenders = json_t::array();
  for (const auto& o : p.report.offenders)
    offenders.push_back({{"name", o.name},
                         {"weight_nan", o.weight_nan},
                         {"weight_inf", o.weight_inf},
                         {"grad_nan", o.grad_nan},
                         {"grad_inf", o.grad_inf}});
  j["offenders"] = std::move(offenders);
  j["max_abs_weight"] = json_number(p.report.max_abs_weight);
  j["max_abs_grad"] = json_number(p.report.max_abs_grad);
  if (p.report.loss_finite) j["loss_finite"] = *p.report.loss_finite;
  j["parameters_scanned"] = p.report.parameters_scanned;
  j["clean"] = p.report.clean();
}

inline void put_payload(json_t& j, const ratio_diagnostic_event& p) {
  json_t outliers = json_t::array();
  for (const auto& o : p.report.outliers)
    outliers.push_back({{"index", o.index}, {"ratio", json_number(o.ratio)}, {"action", o.action}});
  j["outliers"] = std::move(outliers);
  j["mean_abs_logprob_diff"] = json_number(p.report.mean_abs_logprob_diff);
  j["max_abs_logprob_diff"] = json_number(p.report.max_abs_logprob_diff);
  j["batch_size"] = p.report.batch_size;
  j["upper"] = json_number(p.report.upper);
  j["lower"] = json_number(p.report.lower);
}

inline void put_payload(json_t& j, const performance_degradation_event& p) {
  j["current"] = json_number(p.current);
  j["rolling_mean"] = json_number(p.rolling_mean);
  j["drop"] = json_number(p.drop);
  j["threshold"] = json_number(p.threshold);
}

inline void put_payload(json_t& j, const memory_event& p) {
  if (p.memory.rss_bytes) j["rss_bytes"] = *p.memory.rss_bytes;
  if (const auto& d = p.memory.device) {
    j["device_index"] = d->device;
    j["allocated_bytes"] = d->allocated;
    j["reserved_bytes"] = d->reserved;
    j["peak_allocated_bytes"] = d->peak_allocated;
  }
}

inline void put_payload(json_t& j, const epoch_summary& p) {
  put_optional(j, "performance", p.performance);
  j["updates"] = p.updates;
  j["anomalies"] = p.anomalies;
  j["level_after"] = std::string(to_string(p.level_after));
  j["metrics"] = json_metrics(p.metrics);
}

inline void put_payload(json_t& j, const profiler_trace_event& p) {
  j["path"] = p.path;
  j["first_step"] = p.first_step;
  j["steps"] = p.steps;
  j["cycle"] = p.cycle;
}

inline void put_payload(json_t& j, const phase_timings_event& p) {
  json_t phases = json_t::object();
  for (const auto& ph : p.phases)
    phases[ph.phase] = {{"count", ph.count},
                        {"total_s", json_number(ph.total_s)},
                        {"mean_s", json_number(ph.mean_s())},
                        {"min_s", json_number(ph.min_s)},
                        {"max_s", json_number(ph.max_s)}};
  j["phases"] = std::move(phases);
}

inline void put_context(json_t& j, const event_context& c) {
  if (!c.run_id.empty()) j["run_id"] = c.run_id;
  if (c.env_id) j["env_id"] = *c.env_id;
  if (!c.device.empty()) j["device"] = c.device;
  if (c.rank) j["rank"] = *c.rank;
}

}  // namespace detail

// The JSON object of one event (keys in the order of docs/events.md).
inline nlohmann::ordered_json to_json(const event& e) {
  nlohmann::ordered_json j;
  j["event"] = std::string(e.name());
  j["time"] = detail::unix_seconds(e.time());
  j["update"] = e.update();
  j["epoch"] = e.epoch();
  detail::put_context(j, e.context());
  std::visit([&](const auto& p) { detail::put_payload(j, p); }, e.payload());
  return j;
}

// One line of a JSONL file, newline included. Invalid UTF-8 in strings is
// replaced (U+FFFD) rather than failing the line.
inline std::string to_json_line(const event& e) {
  std::string s = to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s.push_back('\n');
  return s;
}

// The hub's final counts as the last line of a JSONL file ("event": "hub_stats").
// `written`, when given: the events this file got (delivered less its failures).
inline std::string hub_stats_line(const hub_counts& c, std::uint64_t update, std::uint64_t epoch,
                                  std::optional<std::uint64_t> written,
                                  std::chrono::system_clock::time_point time = std::chrono::system_clock::now()) {
  nlohmann::ordered_json j;
  j["event"] = "hub_stats";
  j["time"] = detail::unix_seconds(time);
  j["update"] = update;
  j["epoch"] = epoch;
  j["emitted"] = c.emitted;
  j["delivered"] = c.delivered;
  j["dropped"] = c.dropped;
  j["failed"] = c.failed;
  j["undelivered"] = c.undelivered;
  if (written) j["written"] = *written;
  std::string s = j.dump();
  s.push_back('\n');
  return s;
}
inline std::string hub_stats_line(const hub_counts& c, std::uint64_t update, std::uint64_t epoch,
                                  std::chrono::system_clock::time_point time = std::chrono::system_clock::now()) {
  return hub_stats_line(c, update, epoch, std::nullopt, time);
}

}  // namespace v0
}  // namespace simic
