#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/json.hpp"

using namespace simic;
using nlohmann::json;

namespace {
json parse_line(const event& e) {
  const std::string line = to_json_line(e);
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // exactly one line
  return json::parse(line);
}
const auto t0 = std::chrono::system_clock::time_point(std::chrono::microseconds(1'764'201'600'250'000));
}  // namespace

TEST_CASE("common fields come first, in the documented order") {
  const event e = event(12, 3, update_metrics{.loss = 0.5}, t0).with_context({.run_id = "run", .rank = 1});
  const auto oj = to_json(e);
  std::vector<std::string> keys;
  for (auto it = oj.begin(); it != oj.end(); ++it) keys.push_back(it.key());
  const std::vector<std::string> expected{"event", "time", "update", "epoch", "run_id", "rank", "loss"};
  CHECK(keys == expected);
  const json j = parse_line(e);
  CHECK(j["event"] == "update");
  // 1764201600.25 s since the epoch, exactly representable.
  CHECK(j["time"].get<double>() == 1764201600.25);
  CHECK(j["update"] == 12);
  CHECK(j["epoch"] == 3);
  CHECK(j["run_id"] == "run");
  CHECK(j["rank"] == 1);
  CHECK_FALSE(j.contains("env_id"));
  CHECK_FALSE(j.contains("device"));
}

TEST_CASE("update metrics: only the set fields, extras under extra") {
  const json j = parse_line(event(1, 0,
                                  update_metrics{.policy_loss = -0.02,
                                                 .value_loss = 0.7,
                                                 .approx_kl = 0.011,
                                                 .learning_rate = 3e-4,
                                                 .extra = {{"grad_norm", 0.9}, {"fps", 1234.0}}},
                                  t0));
  CHECK(j["policy_loss"].get<double>() == -0.02);
  CHECK(j["value_loss"].get<double>() == 0.7);
  CHECK(j["approx_kl"].get<double>() == 0.011);
  CHECK(j["learning_rate"].get<double>() == 3e-4);
  CHECK(j["extra"]["grad_norm"].get<double>() == 0.9);
  CHECK(j["extra"]["fps"].get<double>() == 1234.0);
  for (const char* absent : {"loss", "entropy", "clip_fraction", "ratio_max", "ratio_min", "explained_variance"})
    CHECK_FALSE(j.contains(absent));
  // 4 common + 4 metrics + extra
  CHECK(j.size() == 9);
  CHECK_FALSE(parse_line(event(1, 0, update_metrics{}, t0)).contains("extra"));
}

TEST_CASE("non-finite numbers are written as strings, so the line stays JSON and keeps the NaN") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  gradient_signal g{.total_norm = nan, .health = 0.0, .min_param_norm = 0.0, .max_param_norm = inf,
                    .parameters = 4, .vanishing = 1, .exploding = 2, .nan_count = 10, .inf_count = 1};
  const json j = parse_line(event(5, 0, gradient_health_event{.gradients = g}, t0));
  CHECK(j["event"] == "gradient_health");
  CHECK(j["total_norm"] == "nan");
  CHECK(j["max_param_norm"] == "inf");
  CHECK(j["min_param_norm"].get<double>() == 0.0);
  CHECK(j["health"].get<double>() == 0.0);
  CHECK(j["parameters"] == 4);
  CHECK(j["vanishing"] == 1);
  CHECK(j["exploding"] == 2);
  CHECK(j["nan_count"] == 10);
  CHECK(j["inf_count"] == 1);
  CHECK(parse_line(event(0, 0, update_metrics{.loss = -inf}, t0))["loss"] == "-inf");
  CHECK_FALSE(j.contains("host_module_ratio"));  // absent unless the host is named
  CHECK(parse_line(event(5, 0, gradient_health_event{.gradients = g, .host_module_ratio = 0.25}, t0))
            ["host_module_ratio"] == 0.25);
}

TEST_CASE("memory lines: rss_bytes, and the device's figures only when known") {
  json j = parse_line(event(3, 1, memory_event{.memory = {.rss_bytes = 123456789}}, t0));
  CHECK(j["event"] == "memory");
  CHECK(j["rss_bytes"] == 123456789);
  for (const char* absent : {"device_index", "allocated_bytes", "reserved_bytes", "peak_allocated_bytes"})
    CHECK_FALSE(j.contains(absent));
  const device_memory d{.device = 1, .allocated = 10, .reserved = 30, .peak_allocated = 20};
  j = parse_line(event(3, 1, memory_event{.memory = {.device = d}}, t0).with_context({.device = "cuda:1"}));
  CHECK_FALSE(j.contains("rss_bytes"));
  CHECK(j["device"] == "cuda:1");  // the context's device string is kept
  CHECK(j["device_index"] == 1);
  CHECK(j["allocated_bytes"] == 10);
  CHECK(j["reserved_bytes"] == 30);
  CHECK(j["peak_allocated_bytes"] == 20);
}

TEST_CASE("anomaly lines have anomaly, severity, value, threshold, baseline, detail and level_after") {
  anomaly a{anomaly_kind::performance_degradation, "median 240 below 500", 240.0, 250.0, 500.0};
  a.severity = severity::critical;
  json j = parse_line(event(9, 1, anomaly_event::of(a, level::debug), t0));
  CHECK(j["anomaly"] == "performance_degradation");
  CHECK(j["severity"] == "critical");
  CHECK(j["value"] == 240.0);
  CHECK(j["threshold"] == 250.0);
  CHECK(j["baseline"] == 500.0);
  CHECK(j["detail"] == "median 240 below 500");
  CHECK(j["level_after"] == "DEBUG");
  CHECK_FALSE(j.contains("origin_ranks"));  // one process: no ranks
  anomaly_event from_ranks = anomaly_event::of(a, level::debug);
  from_ranks.origin_ranks = {1, 3};
  CHECK(parse_line(event(9, 1, from_ranks, t0))["origin_ranks"] == json::array({1, 3}));
  // no comparison: a NaN value is written as "nan", threshold and baseline left out
  const anomaly nan_loss{anomaly_kind::numerical_instability, "loss is nan", std::nan("")};
  j = parse_line(event(9, 1, anomaly_event::of(nan_loss, level::normal), t0));
  CHECK(j["value"] == "nan");
  CHECK_FALSE(j.contains("threshold"));
  CHECK_FALSE(j.contains("baseline"));
  CHECK(j["severity"] == "critical");
  // a clear
  j = parse_line(event(12, 1, anomaly_clear_event{.kind = anomaly_kind::kl_spike, .duration = 7, .value = 0.02}, t0));
  CHECK(j["event"] == "anomaly_clear");
  CHECK(j["anomaly"] == "kl_spike");
  CHECK(j["duration"] == 7);
  CHECK(j["value"] == 0.02);
  // a user kind is written by its name
  const anomaly_kind mine = register_anomaly_kind("json_test_kind", severity::warning);
  j = parse_line(event(1, 1, anomaly_event{.kind = mine, .detail = "d"}, t0));
  CHECK(j["anomaly"] == "json_test_kind");
  CHECK(j["severity"] == "warning");
  for (unsigned k = 0; k < anomaly_kind_names.size(); ++k) {
    const auto kind = anomaly_kind::from_id(static_cast<std::uint16_t>(k));
    const json j = parse_line(
        event(9, 1, anomaly_event{.kind = kind, .detail = "why \"quoted\"\n", .level_after = level::debug}, t0));
    CHECK(j["event"] == "anomaly");
    CHECK(j["anomaly"] == std::string(anomaly_kind_names[k]));
    CHECK(j["detail"] == "why \"quoted\"\n");
    CHECK(j["level_after"] == "DEBUG");
  }
}

TEST_CASE("LSTM, escalation and performance payloads") {
  json j = parse_line(event(0, 0,
                            lstm_health_event{.lstm = {.h_norm = 1.5, .c_norm = 120.0, .h_max_abs = 0.9,
                                                       .c_max_abs = 7.0, .has_nan = false, .has_inf = true},
                                              .healthy = false},
                            t0));
  CHECK(j["h_norm"].get<double>() == 1.5);
  CHECK(j["c_norm"].get<double>() == 120.0);
  CHECK(j["h_max_abs"].get<double>() == 0.9);
  CHECK(j["c_max_abs"].get<double>() == 7.0);
  CHECK(j["has_nan"] == false);
  CHECK(j["has_inf"] == true);
  CHECK(j["healthy"] == false);

  j = parse_line(event(0, 4,
                       escalation_start_event{.from = level::normal, .to = level::debug, .epochs = 5,
                                              .reason = "kl_spike"},
                       t0));
  CHECK(j["from"] == "NORMAL");
  CHECK(j["to"] == "DEBUG");
  CHECK(j["epochs"] == 5);
  CHECK(j["reason"] == "kl_spike");
  j = parse_line(event(0, 9, escalation_end_event{.from = level::debug, .to = level::minimal}, t0));
  CHECK(j["from"] == "DEBUG");
  CHECK(j["to"] == "MINIMAL");

  j = parse_line(event(7, 1,
                       response_event{.act = action::stop, .reason = "stopping: 5 consecutive updates skipped",
                                      .consecutive_skips = 5, .total_skips = 9},
                       t0));
  CHECK(j["event"] == "response");
  CHECK(j["action"] == "stop");
  CHECK(j["reason"] == "stopping: 5 consecutive updates skipped");
  CHECK(j["consecutive_skips"] == 5);
  CHECK(j["total_skips"] == 9);
  j = parse_line(event(7, 1, response_event{.act = action::skip_step, .reason = "r"}, t0));
  CHECK(j["action"] == "skip_step");

  j = parse_line(event(0, 2,
                       performance_degradation_event{.current = 0.6, .rolling_mean = 0.8, .drop = 0.25,
                                                     .threshold = 0.1},
                       t0));
  CHECK(j["current"].get<double>() == 0.6);
  CHECK(j["rolling_mean"].get<double>() == 0.8);
  CHECK(j["drop"].get<double>() == 0.25);
  CHECK(j["threshold"].get<double>() == 0.1);
}

TEST_CASE("DEBUG diagnostics are written in full") {
  layer_gradient_report lr;
  lr.layers.push_back({.name = "lstm.weight_ih_l0", .numel = 512, .norm = 2.0, .mean = 0.01, .std = 0.1,
                       .min = -0.5, .max = 0.4, .zero_fraction = 0.95, .small_fraction = 0.96,
                       .large_fraction = 0.0, .nan_count = 0, .inf_count = 0, .health = 0.2, .dead = true,
                       .exploding = false});
  lr.layers.push_back({.name = "head.bias", .numel = 3, .norm = 40.0, .large_fraction = 1.0, .exploding = true});
  lr.dead_layers = {"lstm.weight_ih_l0"};
  lr.exploding_layers = {"head.bias"};
  lr.skipped_without_grad = 2;
  json j = parse_line(event(3, 0, layer_gradients_event{.report = lr}, t0));
  REQUIRE(j["layers"].size() == 2);
  CHECK(j["layers"][0]["name"] == "lstm.weight_ih_l0");
  CHECK(j["layers"][0]["numel"] == 512);
  CHECK(j["layers"][0]["zero_fraction"].get<double>() == 0.95);
  CHECK(j["layers"][0]["dead"] == true);
  CHECK(j["layers"][1]["norm"].get<double>() == 40.0);
  CHECK(j["layers"][1]["exploding"] == true);
  CHECK(j["layers"][0].size() == 15);
  CHECK(j["dead_layers"] == json::array({"lstm.weight_ih_l0"}));
  CHECK(j["exploding_layers"] == json::array({"head.bias"}));
  CHECK(j["skipped_without_grad"] == 2);

  nan_inf_scan_report scan;
  scan.offenders.push_back({.name = "fc.weight", .weight_nan = false, .weight_inf = false, .grad_nan = true,
                            .grad_inf = false});
  scan.max_abs_weight = 3.0;
  scan.max_abs_grad = std::numeric_limits<double>::quiet_NaN();
  scan.parameters_scanned = 8;
  j = parse_line(event(3, 0, nan_inf_scan_event{.report = scan}, t0));
  REQUIRE(j["offenders"].size() == 1);
  CHECK(j["offenders"][0]["name"] == "fc.weight");
  CHECK(j["offenders"][0]["grad_nan"] == true);
  CHECK(j["offenders"][0]["weight_nan"] == false);
  CHECK(j["max_abs_weight"].get<double>() == 3.0);
  CHECK(j["max_abs_grad"] == "nan");
  CHECK(j["parameters_scanned"] == 8);
  CHECK(j["clean"] == false);
  CHECK_FALSE(j.contains("loss_finite"));  // no loss was scanned
  scan = {};
  scan.loss_finite = false;
  j = parse_line(event(3, 0, nan_inf_scan_event{.report = scan}, t0));
  CHECK(j["loss_finite"] == false);
  CHECK(j["clean"] == false);
  scan.loss_finite = true;
  CHECK(parse_line(event(3, 0, nan_inf_scan_event{.report = scan}, t0))["clean"] == true);

  ratio_diagnostic_report rd;
  rd.outliers = {{.index = 17, .ratio = 7.5, .action = 2}, {.index = 40, .ratio = 0.05, .action = 0}};
  rd.mean_abs_logprob_diff = 0.3;
  rd.max_abs_logprob_diff = 2.0;
  rd.batch_size = 64;
  rd.upper = 5.0;
  rd.lower = 0.1;
  j = parse_line(event(3, 0, ratio_diagnostic_event{.report = rd}, t0));
  REQUIRE(j["outliers"].size() == 2);
  CHECK(j["outliers"][0]["index"] == 17);
  CHECK(j["outliers"][0]["ratio"].get<double>() == 7.5);
  CHECK(j["outliers"][0]["action"] == 2);
  CHECK(j["outliers"][1]["ratio"].get<double>() == 0.05);
  CHECK(j["batch_size"] == 64);
  CHECK(j["upper"].get<double>() == 5.0);
  CHECK(j["lower"].get<double>() == 0.1);
  CHECK(j["mean_abs_logprob_diff"].get<double>() == 0.3);
  CHECK(j["max_abs_logprob_diff"].get<double>() == 2.0);
}

TEST_CASE("epoch summary, profiler trace and phase timings") {
  json j = parse_line(event(100, 4,
                            epoch_summary{.performance = 0.75, .updates = 25, .anomalies = 3,
                                          .level_after = level::debug, .metrics = {{"mean_return", 12.5}}},
                            t0));
  CHECK(j["performance"].get<double>() == 0.75);
  CHECK(j["updates"] == 25);
  CHECK(j["anomalies"] == 3);
  CHECK(j["level_after"] == "DEBUG");
  CHECK(j["metrics"]["mean_return"].get<double>() == 12.5);
  CHECK_FALSE(parse_line(event(0, 0, epoch_summary{}, t0)).contains("performance"));
  CHECK(parse_line(event(0, 0, epoch_summary{}, t0))["metrics"] == json::object());

  j = parse_line(event(7, 0, profiler_trace_event{.path = "/tmp/t.json", .first_step = 3, .steps = 2, .cycle = 1}, t0));
  CHECK(j["path"] == "/tmp/t.json");
  CHECK(j["first_step"] == 3);
  CHECK(j["steps"] == 2);
  CHECK(j["cycle"] == 1);

  j = parse_line(event(7, 0,
                       phase_timings_event{.phases = {{.phase = "rollout", .count = 2, .total_s = 3.0, .min_s = 1.0,
                                                       .max_s = 2.0},
                                                      {.phase = "update", .count = 1, .total_s = 0.5, .min_s = 0.5,
                                                       .max_s = 0.5}}},
                       t0));
  CHECK(j["phases"]["rollout"]["count"] == 2);
  CHECK(j["phases"]["rollout"]["total_s"].get<double>() == 3.0);
  CHECK(j["phases"]["rollout"]["mean_s"].get<double>() == 1.5);
  CHECK(j["phases"]["rollout"]["min_s"].get<double>() == 1.0);
  CHECK(j["phases"]["rollout"]["max_s"].get<double>() == 2.0);
  CHECK(j["phases"]["update"]["mean_s"].get<double>() == 0.5);
}

TEST_CASE("invalid UTF-8 is replaced, not a failed line") {
  const json j = parse_line(event(0, 0, anomaly_event{.detail = std::string("bad \xff byte")}, t0));
  CHECK(j["detail"] == "bad \xEF\xBF\xBD byte");
}

TEST_CASE("hub_stats line") {
  const json j = json::parse(hub_stats_line({.emitted = 10, .delivered = 7, .dropped = 3, .failed = 1}, 42, 5, t0));
  CHECK(j["event"] == "hub_stats");
  CHECK(j["time"].get<double>() == 1764201600.25);
  CHECK(j["update"] == 42);
  CHECK(j["epoch"] == 5);
  CHECK(j["emitted"] == 10);
  CHECK(j["delivered"] == 7);
  CHECK(j["dropped"] == 3);
  CHECK(j["failed"] == 1);
  CHECK(j["undelivered"] == 0);
  CHECK_FALSE(j.contains("written"));
  const json k = json::parse(
      hub_stats_line({.emitted = 10, .delivered = 6, .dropped = 1, .failed = 2, .undelivered = 3}, 42, 5, 4, t0));
  CHECK(k["undelivered"] == 3);
  CHECK(k["written"] == 4);
  CHECK(k.size() == j.size() + 1);
}
