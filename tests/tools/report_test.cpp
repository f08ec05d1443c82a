// simic-report's logic (tools/report/report.hpp): parsing against a
// hand-counted JSONL, the script-block escaping, bad input with its line
// number, and the decimation's extremes against a direct scan.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "report.hpp"

namespace rep = simic::report;

namespace {

const std::string xss = "</script><img src=x onerror=alert(1)>";

// A small run, written by hand: 2 updates of 2 optimizer steps, 4 anomalies
// (kl_spike warning x2, ratio_explosion critical x1, the user kind loss_spike
// warning x1), one escalation (updates 1 to 2), a skipped step (update 2,
// its first step), the stop (update 2, second step), an unknown event x2.
std::string small_run() {
  return R"({"event":"gradient_health","time":100.0,"update":1,"epoch":1,"run_id":"hand-1","total_norm":0.5,"health":1.0}
{"event":"update","time":100.1,"update":1,"epoch":1,"run_id":"hand-1","loss":1.0,"approx_kl":0.01,"ratio_max":1.1,"ratio_min":0.9}
{"event":"gradient_health","time":100.2,"update":1,"epoch":1,"total_norm":"nan","health":0.5}
{"event":"update","time":100.3,"update":1,"epoch":1,"loss":0.9,"approx_kl":0.25,"ratio_max":4.5,"ratio_min":0.8}
{"event":"anomaly","time":100.3,"update":1,"epoch":1,"anomaly":"kl_spike","severity":"warning","value":0.25,"threshold":0.2,"detail":"approx KL 0.25 > 0.2","level_after":"DEBUG"}
{"event":"anomaly","time":100.3,"update":1,"epoch":1,"anomaly":"ratio_explosion","severity":"critical","value":4.5,"threshold":4.0,"detail":")" + xss + R"(","level_after":"DEBUG","origin_ranks":[1,3]}
{"event":"escalation_start","time":100.3,"update":1,"epoch":1,"from":"NORMAL","to":"DEBUG","epochs":5,"reason":"ratio_explosion"}
{"event":"my_event","time":100.4,"update":1,"epoch":1,"x":1}
{"event":"lstm_health","time":100.4,"update":1,"epoch":1,"h_norm":1.5,"c_norm":2.5,"h_max_abs":0.5,"c_max_abs":0.7,"healthy":true}
{"event":"epoch_summary","time":100.5,"update":1,"epoch":1,"performance":20.0,"updates":1,"anomalies":2,"level_after":"DEBUG"}
{"event":"layer_gradients","time":100.5,"update":1,"epoch":1,"layers":[]}
{"event":"update","time":101.0,"update":2,"epoch":2,"loss":0.8,"approx_kl":0.3,"ratio_max":1.2,"ratio_min":0.85,"extra":{"step":0.0,"skipped_step":1.0}}
{"event":"response","time":101.0,"update":2,"epoch":2,"action":"skip_step","reason":"non-finite gradients","consecutive_skips":1,"total_skips":1}
{"event":"anomaly","time":101.0,"update":2,"epoch":2,"anomaly":"kl_spike","severity":"warning","value":0.3,"threshold":0.2,"detail":"line\u2028separator","level_after":"DEBUG"}
{"event":"anomaly","time":101.1,"update":2,"epoch":2,"anomaly":"loss_spike","severity":"warning","value":"inf","detail":"user kind"}
{"event":"update","time":101.2,"update":2,"epoch":2,"loss":0.7,"approx_kl":0.02,"ratio_max":1.05,"ratio_min":0.95}
{"event":"response","time":101.2,"update":2,"epoch":2,"action":"stop","reason":"stopping: 2 consecutive updates skipped","consecutive_skips":2,"total_skips":2}
{"event":"escalation_end","time":101.3,"update":2,"epoch":2,"from":"DEBUG","to":"NORMAL"}
{"event":"my_event","time":101.4,"update":2,"epoch":2}
{"event":"epoch_summary","time":101.5,"update":2,"epoch":2,"performance":35.0,"updates":2,"anomalies":2,"level_after":"NORMAL"}
{"event":"hub_stats","time":101.6,"update":2,"epoch":2,"emitted":19,"delivered":19,"dropped":0,"failed":0,"undelivered":0,"written":19}
)";
}

rep::run parse_text(const std::string& text, const std::string& name = "hand.jsonl") {
  std::istringstream in(text);
  return rep::parse(in, name);
}

std::string error_of(const std::string& text, const std::string& name = "bad.jsonl") {
  try {
    (void)parse_text(text, name);
  } catch (const rep::error& e) {
    return e.what();
  }
  return "(no error)";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::size_t count_of(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (auto p = s.find(part); p != std::string::npos; p = s.find(part, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a hand-written run: counts by kind and severity, events, updates") {
  const rep::run r = parse_text(small_run());
  CHECK(r.lines == 21);
  CHECK(r.run_id == "hand-1");
  CHECK(r.updates.size() == 2);
  REQUIRE(r.anomalies.size() == 4);
  std::map<std::string, int> kinds, severities;
  for (const auto& a : r.anomalies) ++kinds[a.kind], ++severities[a.severity];
  CHECK(kinds == std::map<std::string, int>{{"kl_spike", 2}, {"ratio_explosion", 1}, {"loss_spike", 1}});
  CHECK(severities == std::map<std::string, int>{{"warning", 3}, {"critical", 1}});
  CHECK(r.events.at("update") == 4);
  CHECK(r.events.at("layer_gradients") == 1);  // known, not drawn, counted
  CHECK(r.unknown == std::map<std::string, std::size_t>{{"my_event", 2}});
  CHECK(r.anomalies[3].value.has_value());
  CHECK(std::isinf(*r.anomalies[3].value));
  CHECK_FALSE(r.anomalies[3].threshold.has_value());
  CHECK(r.first_time == 100.0);
  CHECK(r.last_time == 101.6);
  // data-parallel: the ranks an anomaly came from, where the line names them
  CHECK(r.anomalies[1].origin_ranks == std::vector<std::int64_t>{1, 3});
  CHECK(r.anomalies[0].origin_ranks.empty());
}

TEST_CASE("each anomaly goes to the chart of its signal, the rest to performance") {
  CHECK(rep::chart_for("kl_spike") == "kl");
  CHECK(rep::chart_for("kl_extreme") == "kl");
  CHECK(rep::chart_for("ratio_collapse") == "ratio");
  CHECK(rep::chart_for("gradient_exploding") == "gradient");
  CHECK(rep::chart_for("numerical_instability") == "gradient");
  CHECK(rep::chart_for("gradient_health_drift") == "health");
  CHECK(rep::chart_for("lstm_unhealthy") == "lstm");
  CHECK(rep::chart_for("entropy_low") == "policy");
  CHECK(rep::chart_for("value_collapse") == "policy");
  CHECK(rep::chart_for("performance_degradation") == "performance");
  CHECK(rep::chart_for("update_ratio_drift") == "update");
  CHECK(rep::chart_for("loss_spike") == "loss");
  CHECK(rep::chart_for("loss_divergence") == "loss");
  CHECK(rep::chart_for("learning_stall") == "loss");
  CHECK(rep::chart_for("throughput_low") == "performance");  // a user kind
}

TEST_CASE("steps are placed inside their update; bounds come from the thresholds") {
  const rep::run r = parse_text(small_run());
  // Update 1 has 2 steps: x = 0.5 and 1.0; update 2 the same at 1.5 and 2.0.
  REQUIRE(r.figure("approx_kl").points.size() == 4);
  CHECK(r.figure("approx_kl").points[0].x == doctest::Approx(0.5));
  CHECK(r.figure("approx_kl").points[1].x == doctest::Approx(1.0));
  CHECK(r.figure("approx_kl").points[2].x == doctest::Approx(1.5));
  CHECK(r.figure("approx_kl").points[3].y == doctest::Approx(0.02));
  REQUIRE(r.figure("total_norm").points.size() == 2);
  CHECK(r.figure("total_norm").nonfinite == 1);
  CHECK(std::isnan(r.figure("total_norm").points[1].y));
  REQUIRE(r.figure("performance").points.size() == 2);
  CHECK(r.figure("performance").points[1].x == 2.0);
  CHECK(r.figure("performance").points[1].y == 35.0);
  CHECK(r.figure("h_norm").points.size() == 1);
  CHECK(r.ratio_upper == 4.0);                                      // from the anomaly
  CHECK(r.ratio_lower == simic::defaults::ratio_collapse);          // none in the file
  CHECK(r.kl_spike == 0.2);
  CHECK(r.kl_extreme == simic::defaults::kl_extreme);
}

TEST_CASE("escalations, skips and the stop") {
  const rep::run r = parse_text(small_run());
  REQUIRE(r.escalations.size() == 1);
  CHECK(r.escalations[0].from == 1);
  CHECK(r.escalations[0].to == 2);
  CHECK_FALSE(r.escalations[0].open);
  CHECK(r.escalations[0].reason == "ratio_explosion");
  // The flagged update line and the response describe one skipped step.
  CHECK(r.skip_flags == 1);
  CHECK(r.skip_responses == 1);
  REQUIRE(r.skips.size() == 1);
  CHECK(r.skips[0].update == 2);
  CHECK(r.skips[0].x == doctest::Approx(1.5));
  CHECK(r.skips[0].reason == "non-finite gradients");
  REQUIRE(r.stop.has_value());
  CHECK(r.stop->update == 2);
  CHECK(r.stop->x == doctest::Approx(2.0));
  CHECK(has(r.stop->reason, "2 consecutive updates skipped"));
  CHECK(r.hub.present);
  CHECK(r.hub.counts.at("written") == 19);

  // An escalation the file never ends lasts to the last update.
  const rep::run open = parse_text(
      "{\"event\":\"escalation_start\",\"update\":3,\"epoch\":3,\"from\":\"NORMAL\",\"to\":\"DEBUG\"}\n"
      "{\"event\":\"epoch_summary\",\"update\":9,\"epoch\":9,\"performance\":1}\n");
  REQUIRE(open.escalations.size() == 1);
  CHECK(open.escalations[0].from == 3);
  CHECK(open.escalations[0].to == 9);
  CHECK(open.escalations[0].open);
  CHECK_FALSE(open.hub.present);
}

TEST_CASE("the script block: < > & U+2028 U+2029 escaped, the JSON unchanged") {
  const std::string raw = nlohmann::json{{"d", xss + " & \xE2\x80\xA8 \xE2\x80\xA9 <!--"}}.dump();
  const std::string esc = rep::escape_script_json(raw);
  CHECK_FALSE(has(esc, "<"));
  CHECK_FALSE(has(esc, ">"));
  CHECK_FALSE(has(esc, "&"));
  CHECK_FALSE(has(esc, "\xE2\x80\xA8"));
  CHECK_FALSE(has(esc, "\xE2\x80\xA9"));
  CHECK(nlohmann::json::parse(esc) == nlohmann::json::parse(raw));
  CHECK(rep::html_escape("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST_CASE("the page: a hostile detail stays inside the data block") {
  const rep::run r = parse_text(small_run());
  const std::string page = rep::render_html(r, {.title = "<b>t</b>"});
  CHECK(count_of(page, "<script") == 2);    // the data block and the drawing script
  CHECK(count_of(page, "</script>") == 2);
  CHECK_FALSE(has(page, "<img"));
  CHECK_FALSE(has(page, "\xE2\x80\xA8"));
  CHECK(has(page, "<title>&lt;b&gt;t&lt;/b&gt;</title>"));
  CHECK(count_of(page, "http") == 1);        // the SVG namespace, a name and no fetch
  CHECK(has(page, "'http://www.w3.org/2000/svg'"));
  // The block parses back to the details as written.
  const std::string open = "<script type=\"application/json\" id=\"simic-data\">";
  const auto a = page.find(open) + open.size(), b = page.find("</script>", a);
  const auto data = nlohmann::json::parse(page.substr(a, b - a));
  REQUIRE(data["anomalies"].size() == 4);
  CHECK(data["anomalies"][1]["detail"] == xss);
  CHECK(data["anomalies"][1]["origin_ranks"] == nlohmann::json::array({1, 3}));
  CHECK(data["anomalies"][0]["origin_ranks"] == nlohmann::json::array());
  CHECK(data["anomalies"][2]["detail"] == "line\xE2\x80\xA8separator");
  CHECK(data["anomalies"][3]["value"] == "inf");
  CHECK(data["anomalies"][0]["chart"] == "kl");
  // The summary table (HTML, escaped) has the counts.
  CHECK(has(page, "<th>skipped optimizer steps</th><td>1 "));
  CHECK(has(page, "my_event (unknown, ignored)</td><td>2</td>"));
}

TEST_CASE("bad input: one line naming the file and the line") {
  const std::string good = "{\"event\":\"update\",\"update\":1,\"epoch\":1,\"loss\":1}\n";
  std::string e = error_of(good + good + "{\"event\":\"update\",\"upd\n" + good);
  CHECK(has(e, "bad.jsonl:3: not valid JSON"));
  CHECK_FALSE(has(e, "\n"));
  CHECK(has(error_of(good + "[1,2]\n"), "bad.jsonl:2: not a JSON object"));
  CHECK(has(error_of(good + "{\"update\":1}\n"), "bad.jsonl:2: no string field 'event'"));
  CHECK(has(error_of("{\"event\":\"update\",\"update\":-1}\n"), "bad.jsonl:1: field 'update'"));
  CHECK(has(error_of("{\"event\":\"update\",\"epoch\":1}\n"), "bad.jsonl:1: field 'update'"));
  e = error_of(good + "{\"event\":\"update\",\"update\":2,\"approx_kl\":\"high\"}\n");
  CHECK(has(e, "bad.jsonl:2: field 'approx_kl' is \"high\""));
  CHECK(has(e, "valid: a number"));
  CHECK(has(error_of("{\"event\":\"anomaly\",\"update\":2,\"severity\":\"warning\"}\n"), "bad.jsonl:1: anomaly without"));
  for (const char* bad : {"\"1\"", "[1,\"x\"]", "[0.5]"})
    CHECK(has(error_of(std::string("{\"event\":\"anomaly\",\"update\":2,\"anomaly\":\"kl_spike\",\"origin_ranks\":") + bad +
                       "}\n"),
              "bad.jsonl:1: field 'origin_ranks' is " + std::string(bad) + "; valid: an array of integers"));
  CHECK(has(error_of(""), "bad.jsonl: empty file"));
  CHECK(has(error_of("\n  \n"), "bad.jsonl: no event in 2 lines"));
  // An unknown event is no error; its fields are not read.
  CHECK(parse_text("{\"event\":\"mine\",\"update\":1,\"loss\":\"x\"}\n").unknown.at("mine") == 1);
}

TEST_CASE("a partial last line (no newline) is ignored; one with its newline is an error") {
  const std::string good = "{\"event\":\"update\",\"update\":1,\"epoch\":1,\"loss\":1}\n";
  const rep::run r = parse_text(good + "{\"event\":\"upd");
  CHECK(r.partial_last_line);
  CHECK(r.lines == 1);
  CHECK(has(error_of(good + "{\"event\":\"upd\n"), "bad.jsonl:2:"));
  // A complete last line without newline is kept.
  const rep::run r2 = parse_text(good + "{\"event\":\"update\",\"update\":2,\"epoch\":2,\"loss\":1}");
  CHECK_FALSE(r2.partial_last_line);
  CHECK(r2.figure("loss").points.size() == 2);
}

TEST_CASE("files: a missing input and an unwritable output name their path") {
  const auto dir = std::filesystem::temp_directory_path() / "simic_report_test";
  std::filesystem::create_directories(dir);
  const std::string in = (dir / "run.jsonl").string();
  std::ofstream(in) << small_run();
  CHECK_THROWS_WITH_AS(rep::read_file((dir / "none.jsonl").string()),
                       doctest::Contains("none.jsonl: cannot open for reading"), rep::error);
  CHECK_THROWS_WITH_AS(rep::write_report(in, (dir / "no" / "such" / "r.html").string(), {}),
                       doctest::Contains("r.html: cannot open for writing"), rep::error);
  const std::string out = (dir / "r.html").string();
  rep::write_report(in, out, {});
  CHECK(std::filesystem::file_size(out) > 10000);
  CHECK_THROWS_WITH_AS(rep::write_report(in, out, {.title = "", .max_points = 3}), doctest::Contains("max_points = 3; valid: 4 or more"),
                       rep::error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("decimation keeps every run's extremes, the spike and the dip among them") {
  std::vector<rep::point> pts;
  std::uint32_t state = 12345;
  for (int i = 0; i < 10000; ++i) {
    state = state * 1664525u + 1013904223u;  // a fixed LCG: the same noise every run
    pts.push_back({i * 0.01, (state >> 8) / 16777216.0});
  }
  pts[4321].y = 100.0;
  pts[777].y = -50.0;
  const auto out = rep::downsample(pts, 200);
  CHECK(out.size() <= 200);
  CHECK(out.size() >= 100);
  CHECK(std::is_sorted(out.begin(), out.end(), [](const rep::point& a, const rep::point& b) { return a.x < b.x; }));
  auto found = [&](double x, double y) {
    return std::any_of(out.begin(), out.end(), [&](const rep::point& p) { return p.x == x && p.y == y; });
  };
  CHECK(found(pts[4321].x, 100.0));
  CHECK(found(pts[777].x, -50.0));
  // Each of the 100 runs of 100 points keeps its own min and max: compare
  // with a direct scan of each run.
  for (int b = 0; b < 100; ++b) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = b * 100; i < (b + 1) * 100; ++i)
      lo = std::min(lo, pts[i].y), hi = std::max(hi, pts[i].y);
    bool has_lo = false, has_hi = false;
    for (const auto& p : out)
      if (p.x >= b && p.x < b + 1) has_lo |= p.y == lo, has_hi |= p.y == hi;
    CHECK(has_lo);
    CHECK(has_hi);
  }
  // A non-finite point is kept on top of the bound, in x order.
  auto with_nan = pts;
  with_nan[5000].y = std::nan("");
  const auto out2 = rep::downsample(with_nan, 200);
  CHECK(std::count_if(out2.begin(), out2.end(), [](const rep::point& p) { return std::isnan(p.y); }) == 1);
  CHECK(out2.size() <= 201);
  CHECK(std::is_sorted(out2.begin(), out2.end(), [](const rep::point& a, const rep::point& b) { return a.x < b.x; }));
  // Below the bound, nothing changes.
  const std::vector<rep::point> few{{0, 1}, {1, 5}, {2, -1}};
  const auto same = rep::downsample(few, 4);
  CHECK(same.size() == 3);
  CHECK(same[1].y == 5);
  CHECK_THROWS_AS((void)rep::downsample(few, 3), std::invalid_argument);
}

TEST_CASE("page data: series decimated to max_points, non-finite values as strings") {
  std::string text;
  for (int u = 1; u <= 300; ++u)
    for (int k = 0; k < 8; ++k)
      text += "{\"event\":\"update\",\"update\":" + std::to_string(u) + ",\"epoch\":1,\"approx_kl\":" +
              (u == 150 && k == 3 ? std::string("\"nan\"") : std::to_string(0.001 * ((u * 8 + k) % 17))) + "}\n";
  const rep::run r = parse_text(text);
  CHECK(r.figure("approx_kl").points.size() == 2400);
  const auto data = rep::page_data(r, {.title = "", .max_points = 500});
  const auto& charts = data["charts"];
  const auto kl_at = std::find_if(charts.begin(), charts.end(), [](const auto& c) { return c["id"] == "kl"; });
  REQUIRE(kl_at != charts.end());
  const auto& kl = *kl_at;
  // The charts in page order, each signal on the chart its descriptor names (core/signals.hpp).
  std::vector<std::string> ids;
  for (const auto& c : charts) ids.push_back(c["id"]);
  CHECK(ids ==
        std::vector<std::string>{"performance", "loss", "gradient", "update", "health", "kl", "ratio", "policy", "lstm"});
  REQUIRE(kl["series"].size() == 1);
  CHECK(kl["series"][0]["name"] == "approx_kl");
  const auto& pts = kl["series"][0]["points"];
  CHECK(pts.size() <= 501);
  CHECK(std::count_if(pts.begin(), pts.end(), [](const auto& p) { return p[1] == "nan"; }) == 1);
  CHECK(data["x_range"][0] == 0.0);
  CHECK(data["x_range"][1] == 300.0);
}
