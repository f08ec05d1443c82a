// A user detector, end to end: its own kind (registered by name, with a
// severity) and its own signal, without editing simic, from the monitor into
// the JSONL file with its figures.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/detect/kl_divergence.hpp"
#include "simic/emit/hub.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/monitor.hpp"
#include "support/temp_dir.hpp"

using namespace simic;

namespace {

const simic::test::remove_at_exit user_detector_cleanup{"user_detector"};

// A loss-spike detector: reads the user signal "loss_spike" (a z-score the
// trainer computes) and reports its own kind above a bound.
struct loss_spike_detector {
  using category = cat::ops_normal;
  static constexpr std::string_view name = "loss_spike_detector";  // joins the missing-signal guard
  static constexpr signal_set reads{signal_set::user};
  static inline const anomaly_kind kind = register_anomaly_kind("loss_score_high", severity::critical);
  double bound = 4.0;
  reporting how{};
  condition_latch latch{};
  void observe(const signals& s, anomaly_report& r) {
    const auto z = s.user_value("loss_spike");
    if (!z) return;
    if (latch.update(*z > bound, how, kind, *z, r))
      r.add(kind, "loss spike score " + std::to_string(*z) + " > " + std::to_string(bound), {*z, bound});
  }
};

static_assert(SignalReadingDetector<loss_spike_detector>);
}  // namespace

TEST_CASE("a user detector reports its own kind from its own signal, into the JSONL file with its figures") {
  const auto dir = simic::test::fresh_dir("user_detector", "jsonl");
  std::filesystem::create_directories(dir);
  const auto path = dir / "events.jsonl";
  monitor<loss_spike_detector, kl_divergence> m;
  {
    hub h;
    h.add_sink(std::make_shared<jsonl_sink>(path.string()));
    std::uint64_t update = 0;
    for (double z : {0.5, 4.0, 6.5, 7.0, 1.0, 1.0, 1.0}) {  // below, at, above (then held, then cleared)
      ++update;
      const user_signal us[] = {{"loss_spike", z}};
      signals s;
      s.user = us;
      const check_result& r = m.check(s);
      for (const anomaly& a : r.report) h.emit(update, 1, anomaly_event::of(a, m.effective_level()));
      for (const anomaly_clear& c : r.report.clears())
        h.emit(update, 1, anomaly_clear_event{.kind = c.kind, .duration = c.duration, .value = c.value});
      if (update == 3) {
        REQUIRE(r.report.size() == 1);
        CHECK(r.report[0].kind == loss_spike_detector::kind);
        CHECK(r.report[0].severity == severity::critical);  // the kind's own default, stamped by the monitor
        CHECK(r.escalation_started);                        // critical: escalates
      } else {
        CHECK(r.report.empty());
      }
    }
    h.close();
  }
  std::ifstream in(path);
  std::vector<nlohmann::json> anomalies, clears;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "anomaly") anomalies.push_back(j);
    if (j["event"] == "anomaly_clear") clears.push_back(j);
  }
  REQUIRE(anomalies.size() == 1);
  CHECK(anomalies[0]["anomaly"] == "loss_score_high");
  CHECK(anomalies[0]["severity"] == "critical");
  CHECK(anomalies[0]["value"] == 6.5);
  CHECK(anomalies[0]["threshold"] == 4.0);
  CHECK(anomalies[0]["update"] == 3);
  CHECK(anomalies[0]["level_after"] == "DEBUG");
  REQUIRE(clears.size() == 1);
  CHECK(clears[0]["anomaly"] == "loss_score_high");
  CHECK(clears[0]["duration"] == 2);
  CHECK(clears[0]["update"] == 7);
  // the severity table overrides the user kind like any other
  config_options o;
  o.severities.set(loss_spike_detector::kind, severity::warning);
  monitor<loss_spike_detector> w{config(o)};
  const user_signal us[] = {{"loss_spike", 9.0}};
  signals s;
  s.user = us;
  const check_result& r = w.check(s);
  REQUIRE(r.report.size() == 1);
  CHECK(r.report[0].severity == severity::warning);
  CHECK_FALSE(r.escalation_started);
}
