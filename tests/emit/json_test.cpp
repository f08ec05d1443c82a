#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/events.hpp"
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

TEST_CASE("non-finite numbers are written as strings, so the line stays JSON and keeps the NaN") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const json j = parse_line(event(5, 0, update_metrics{.loss = nan, .approx_kl = inf, .ratio_min = 0.0}, t0));
  CHECK(j["loss"] == "nan");
  CHECK(j["approx_kl"] == "inf");
  CHECK(j["ratio_min"].get<double>() == 0.0);
  CHECK(parse_line(event(0, 0, update_metrics{.loss = -inf}, t0))["loss"] == "-inf");
}

TEST_CASE("escalation, response and performance payloads") {
  json j;
  j = parse_line(event(0, 4,
                       escalation_start_event{.from = level::normal, .to = level::debug, .epochs = 5,
                                              .checks = 100, .reason = "kl_spike"},
                       t0));
  CHECK(j["from"] == "NORMAL");
  CHECK(j["to"] == "DEBUG");
  CHECK(j["epochs"] == 5);
  CHECK(j["checks"] == 100);
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

TEST_CASE("epoch summary") {
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

}

// A payload of the user's: a struct with a name and a describe(); the same
// writers take it, with no change to simic.
struct throughput_event {
  static constexpr std::string_view name = "throughput";
  double samples_per_s = 0.0;
  std::uint64_t workers = 0;
  std::vector<std::string> hosts{};
  void describe(field_writer& w) const {
    w.real("samples_per_s", samples_per_s, "throughput");
    w.count("workers", workers);
    w.texts("hosts", hosts);
    w.begin_array("per_worker");
    for (std::uint64_t i = 0; i < workers; ++i) {
      w.begin_object();
      w.integer("id", static_cast<std::int64_t>(i));
      w.end();
    }
    w.end();
  }
};

TEST_CASE("a payload of the user's is written like simic's own: keys in describe() order, nested arrays") {
  const event e(4, 2, throughput_event{.samples_per_s = 1.5e4, .workers = 2, .hosts = {"a", "b"}}, t0);
  CHECK(e.name() == "throughput");
  REQUIRE(e.get_if<throughput_event>() != nullptr);
  CHECK(e.get_if<update_metrics>() == nullptr);
  const auto oj = to_json(e);
  std::vector<std::string> keys;
  for (auto it = oj.begin(); it != oj.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{"event", "time", "update", "epoch", "samples_per_s", "workers", "hosts",
                                         "per_worker"});
  const json j = parse_line(e);
  CHECK(j["samples_per_s"].get<double>() == 15000.0);
  CHECK(j["workers"] == 2);
  CHECK(j["hosts"] == json::array({"a", "b"}));
  CHECK(j["per_worker"] == json::parse(R"([{"id":0},{"id":1}])"));
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
