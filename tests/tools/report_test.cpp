// simic-report's logic (tools/report/report.hpp): parsing against a
// hand-counted JSONL, the script-block escaping, bad input with its line
// number, and the decimation's extremes against a direct scan.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

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

rep::run parse_text(const std::string& text, const std::string& name = "hand.jsonl", const rep::options& o = {}) {
  std::istringstream in(text);
  return rep::parse(in, name, o);
}

std::string error_of(const std::string& text, const std::string& name = "bad.jsonl") {
  try {
    (void)parse_text(text, name);
  } catch (const rep::error& e) {
    return e.what();
  }
  return "(no error)";
}

// Options with at most n anomaly markers drawn per kind (and n rollbacks).
rep::options per_kind(std::size_t n) {
  rep::options o;
  o.max_anomalies = n;
  return o;
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

// ---- Rollbacks and snapshots (docs/events.md's rollback and snapshot events) ----

namespace {

// Three rollbacks and three snapshots, by hand: the first rollback (update 6)
// restored the snapshot of update 4 and skips data positions [640, 768);
// the second (update 9) every field but the update left out; the third
// (update 10) restored one less than the margin before the onset.
std::string rollback_run() {
  return R"({"event":"update","time":1.0,"update":1,"epoch":1,"loss":1.0}
{"event":"snapshot","time":1.1,"update":4,"epoch":4,"data_position":512,"bytes":1000,"held":1,"held_bytes":1000,"file":"snap/u4.pt"}
{"event":"update","time":2.0,"update":5,"epoch":5,"loss":2.0}
{"event":"rollback","time":2.5,"update":6,"epoch":6,"reason":"3 consecutive skipped steps","cause":"consecutive_skips","onset_update":5,"restored_update":4,"window_first":640,"window_last":768,"lr_factor":0.5,"lr_scale":0.5,"rollbacks":1,"attribution":"reproducible","snapshot_file":"snap/u4.pt","skipped_files":"shard-7"}
{"event":"snapshot","time":3.0,"update":7,"epoch":7,"data_position":896,"bytes":1200,"held":2,"held_bytes":2200}
{"event":"update","time":3.1,"update":8,"epoch":8,"loss":1.0}
{"event":"rollback","time":3.5,"update":9,"epoch":9}
{"event":"snapshot","time":4.0,"update":9,"epoch":9,"data_position":900,"bytes":1300,"held":2,"held_bytes":2500,"file_failures":1}
{"event":"rollback","time":4.5,"update":10,"epoch":10,"restored_update":9,"margin_met":false,"cause":"divergence","attribution":"replay failed","replay_error":"no batch at position 900"}
)";
}

}  // namespace

TEST_CASE("rollbacks: every field read as written, absent ones empty; snapshots counted") {
  const rep::run r = parse_text(rollback_run());
  CHECK(r.rollback_lines == 3);
  REQUIRE(r.rollbacks.size() == 3);
  const rep::rollback_mark& a = r.rollbacks[0];
  CHECK(a.update == 6);
  CHECK(a.line == 4);
  CHECK(a.reason == "3 consecutive skipped steps");
  CHECK(a.cause == "consecutive_skips");
  CHECK(a.onset_update == std::optional<std::uint64_t>(5));
  CHECK(a.restored_update == std::optional<std::uint64_t>(4));
  CHECK(a.window_first == std::optional<std::uint64_t>(640));
  CHECK(a.window_last == std::optional<std::uint64_t>(768));
  CHECK(a.lr_factor == std::optional<double>(0.5));
  CHECK(a.lr_scale == std::optional<double>(0.5));
  CHECK(a.rollbacks == std::optional<std::uint64_t>(1));
  CHECK(a.attribution == "reproducible");
  CHECK(a.snapshot_file == "snap/u4.pt");
  CHECK(a.skipped_files == "shard-7");
  CHECK_FALSE(a.margin_met.has_value());
  CHECK(rep::rollback_label(a) ==
        "rollback 1 at update 6: consecutive_skips (3 consecutive skipped steps); restored the snapshot of update 4, "
        "onset at update 5; data window [640, 768) skipped; LR factor 0.5 (LR scale now 0.5); attribution: "
        "reproducible; snapshot file snap/u4.pt; skipped files shard-7");
  const rep::rollback_mark& b = r.rollbacks[1];
  CHECK(b.update == 9);
  CHECK_FALSE(b.restored_update.has_value());
  CHECK_FALSE(b.window_first.has_value());
  CHECK_FALSE(b.lr_factor.has_value());
  CHECK(b.cause.empty());
  CHECK(rep::rollback_label(b) ==
        "rollback at update 9: cause not given; restored snapshot not given; data window not given; "
        "LR factor not given; attribution not given");
  CHECK(r.rollbacks[2].margin_met == std::optional<bool>(false));
  CHECK(rep::rollback_label(r.rollbacks[2]) ==
        "rollback at update 10: divergence; restored the snapshot of update 9 (less than the margin before the onset: "
        "the oldest held); data window not given; LR factor not given; attribution: replay failed (no batch at "
        "position 900)");
  CHECK(r.rollbacks[2].replay_error == "no batch at position 900");
  CHECK(a.replay_error.empty());
  // Snapshots: counted, the last line's holdings.
  CHECK(r.snapshots.lines == 3);
  CHECK(r.snapshots.held == std::optional<std::uint64_t>(2));
  CHECK(r.snapshots.held_bytes == std::optional<std::uint64_t>(2500));
  CHECK(r.snapshots.file == "snap/u4.pt");
  CHECK(r.snapshots.file_failures == std::optional<std::uint64_t>(1));
  CHECK(r.events.at("rollback") == 3);
  CHECK(r.events.at("snapshot") == 3);
  CHECK(r.unknown.empty());
}

TEST_CASE("rollbacks on the page: the data the script draws, the summary row and the table") {
  const rep::run r = parse_text(rollback_run());
  const auto data = rep::page_data(r, {});
  REQUIRE(data["rollbacks"].size() == 3);
  CHECK(data["rollbacks"][0]["update"] == 6);
  CHECK(data["rollbacks"][0]["restored_update"] == 4);
  CHECK(data["rollbacks"][0]["cause"] == "consecutive_skips");
  CHECK(data["rollbacks"][0]["label"] == rep::rollback_label(r.rollbacks[0]));
  CHECK(data["rollbacks"][1]["restored_update"].is_null());  // no band: only the mark
  CHECK(data["rollback_lines"] == 3);
  const std::string page = rep::render_html(r, {});
  CHECK(has(page, "<th>rollbacks</th><td>3 (update 6: consecutive_skips; update 9; update 10: divergence)</td>"));
  CHECK(has(page, "<th>snapshots</th><td>3 taken; at the end 2 held, 2500 bytes; last file snap/u4.pt; 1 snapshot files failed</td>"));
  CHECK(has(page, "<h3>Rollbacks</h3>"));
  CHECK(has(page, "<tr><td>6</td><td>1</td><td>consecutive_skips</td><td>4</td><td>5</td><td>[640, 768)</td><td>0.5</td>"
                  "<td>0.5</td><td>reproducible</td><td>3 consecutive skipped steps</td><td>snapshot snap/u4.pt; skipped shard-7</td></tr>"));
  CHECK(has(page, "<tr><td>9</td><td>?</td><td></td><td>?</td><td>?</td><td></td><td></td><td></td><td></td><td></td><td></td></tr>"));
  CHECK(has(page, "<tr><td>10</td><td>?</td><td>divergence</td><td>9 (margin not met)</td><td>?</td>"));
  // The drawing script draws them: band and mark, each with the label as its tooltip.
  CHECK(has(page, "'class': 'rollback-band'"));
  CHECK(has(page, "'class': 'rollback-mark'"));
  // A run without rollbacks says so.
  const std::string plain = rep::render_html(parse_text(small_run()), {});
  CHECK(has(plain, "<th>rollbacks</th><td>none</td>"));
  CHECK_FALSE(has(plain, "<h3>Rollbacks</h3>"));
  CHECK_FALSE(has(plain, "<th>snapshots</th>"));
}

TEST_CASE("rollbacks: a wrong-typed or inconsistent field is an error naming file, line and field") {
  const std::string good = "{\"event\":\"update\",\"update\":1,\"epoch\":1,\"loss\":1}\n";
  auto rb = [](const std::string& fields) {
    return "{\"event\":\"rollback\",\"update\":10,\"epoch\":10" + fields + "}\n";
  };
  for (const char* key : {"reason", "cause", "attribution", "replay_error", "snapshot_file", "skipped_files"}) {
    CHECK(has(error_of(good + rb(std::string(",\"") + key + "\":3")), std::string("bad.jsonl:2: field '") + key + "' is 3; valid: a string"));
    CHECK(has(error_of(good + rb(std::string(",\"") + key + "\":[\"a\"]")), std::string("field '") + key + "' is [\"a\"]; valid: a string"));
  }
  for (const char* key : {"onset_update", "restored_update", "window_first", "window_last", "rollbacks"})
    for (const char* bad : {"\"4\"", "-1", "1.5", "true", "[4]"})
      CHECK(has(error_of(good + rb(std::string(",\"") + key + "\":" + bad)),
                std::string("bad.jsonl:2: field '") + key + "' is " + bad + "; valid: an unsigned integer"));
  for (const char* key : {"lr_factor", "lr_scale"})
    CHECK(has(error_of(good + rb(std::string(",\"") + key + "\":\"half\"")),
              std::string("bad.jsonl:2: field '") + key + "' is \"half\"; valid: a number"));
  for (const char* key : {"data_position", "bytes", "held", "held_bytes"})
    CHECK(has(error_of(good + "{\"event\":\"snapshot\",\"update\":3,\"" + key + "\":\"x\"}\n"),
              std::string("bad.jsonl:2: field '") + key + "' is \"x\"; valid: an unsigned integer"));
  CHECK(has(error_of(good + "{\"event\":\"snapshot\",\"update\":3,\"file\":7}\n"), "bad.jsonl:2: field 'file' is 7; valid: a string"));
  CHECK(has(error_of(good + "{\"event\":\"snapshot\",\"update\":3,\"file_failures\":-1}\n"),
            "bad.jsonl:2: field 'file_failures' is -1; valid: an unsigned integer"));
  for (const char* bad : {"1", "\"false\"", "0"})
    CHECK(has(error_of(good + rb(std::string(",\"margin_met\":") + bad)),
              std::string("bad.jsonl:2: field 'margin_met' is ") + bad + "; valid: true or false"));
  CHECK(parse_text(rb(",\"margin_met\":true")).rollbacks.at(0).margin_met == std::optional<bool>(true));
  // The restored snapshot: at or before the rollback's update (below, at: fine; above: an error).
  CHECK(parse_text(rb(",\"restored_update\":9")).rollbacks.at(0).restored_update == std::optional<std::uint64_t>(9));
  CHECK(parse_text(rb(",\"restored_update\":10")).rollbacks.at(0).restored_update == std::optional<std::uint64_t>(10));
  CHECK(has(error_of(good + rb(",\"restored_update\":11")),
            "bad.jsonl:2: field 'restored_update' is 11, after the rollback's own update 10"));
  // The window [first, last): empty is fine, reversed is an error.
  CHECK(parse_text(rb(",\"window_first\":5,\"window_last\":6")).rollbacks.size() == 1);
  CHECK(parse_text(rb(",\"window_first\":5,\"window_last\":5")).rollbacks.size() == 1);
  CHECK(has(error_of(good + rb(",\"window_first\":5,\"window_last\":4")),
            "bad.jsonl:2: the skipped window [5, 4) ends before it begins"));
  // null is as absent.
  CHECK_FALSE(parse_text(rb(",\"restored_update\":null,\"cause\":null")).rollbacks.at(0).restored_update.has_value());
}

TEST_CASE("rollbacks: at most max_anomalies kept and drawn, every line counted") {
  std::string text;
  for (int i = 1; i <= 30; ++i)
    text += "{\"event\":\"rollback\",\"update\":" + std::to_string(i) + ",\"restored_update\":" + std::to_string(i - 1) +
            ",\"cause\":\"divergence\"}\n";
  for (const std::size_t bound : {29u, 30u, 31u}) {  // below, at and above the number of lines
    const rep::run r = parse_text(text, "r.jsonl", per_kind(bound));
    CHECK(r.rollback_lines == 30);
    CHECK(r.rollbacks.size() == std::min<std::size_t>(bound, 30));
    CHECK(r.rollbacks.front().update == 1);  // the first is always kept
    CHECK(std::is_sorted(r.rollbacks.begin(), r.rollbacks.end(),
                         [](const auto& a, const auto& b) { return a.line < b.line; }));
    const std::string page = rep::render_html(r, per_kind(bound));
    CHECK(has(page, "<th>rollbacks</th><td>30 (update 1: divergence; update "));
    CHECK(has(page, "30 drawn, 0 not drawn") == false);
    CHECK(has(page, "; 29 drawn, 1 not drawn: at most 29") == (bound == 29));
  }
}

// ---- Hostile input: nesting, long values, numbers out of range ----

TEST_CASE("deep nesting: a line deeper than max_depth is an error naming file and line, before any recursion") {
  const std::string good = "{\"event\":\"update\",\"update\":1,\"epoch\":1,\"loss\":1}\n";
  const std::size_t n = 100000;  // a 200 KB line: dump() of it overflowed the stack (SIGSEGV)
  const std::string deep = std::string(n, '[') + std::string(n, ']');
  for (const std::string& line :
       {"{\"event\":\"update\",\"update\":2,\"loss\":" + deep + "}",
        "{\"event\":\"update\",\"update\":2,\"run_id\":" + deep + "}",
        "{\"event\":\"anomaly\",\"update\":2,\"anomaly\":\"kl_spike\",\"detail\":" + deep + "}",
        "{\"event\":\"mine\",\"update\":2,\"x\":" + deep + "}", deep, "{\"a\":" + std::string(n, '{')}) {
    const std::string e = error_of(good + line + "\n" + good);
    CHECK(has(e, "bad.jsonl:2: nested deeper than 64 levels"));
    CHECK(has(e, "valid: at most 64 levels of objects and arrays"));
    CHECK(e.size() < 300);
  }
  // The bound: the event object is level 1; 63 and 64 levels are read, 65 are not.
  auto nested = [](std::size_t levels) {
    return "{\"event\":\"mine\",\"update\":1,\"x\":" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}\n";
  };
  CHECK(rep::max_depth == 64);
  CHECK(parse_text(nested(63)).unknown.at("mine") == 1);
  CHECK(parse_text(nested(64)).unknown.at("mine") == 1);
  CHECK(has(error_of(nested(65)), "bad.jsonl:1: nested deeper than 64 levels (at byte 95)"));
  // Brackets inside strings, escaped quotes among them, are text, not nesting.
  const rep::run r = parse_text("{\"event\":\"anomaly\",\"update\":1,\"anomaly\":\"kl_spike\",\"detail\":\"\\\"" +
                                std::string(1000, '[') + "\\\\\"}\n");
  REQUIRE(r.anomalies.size() == 1);
  CHECK(r.anomalies[0].detail == "\"" + std::string(499, '[') + "... (1002 bytes in all)");
}

TEST_CASE("a bad value is quoted cut to max_echo bytes, with its full length") {
  const std::string good = "{\"event\":\"update\",\"update\":1,\"epoch\":1,\"loss\":1}\n";
  const std::string big(20'000'000, 'x');  // a 20 MB value: the message was 20 MB
  std::string e = error_of(good + "{\"event\":\"update\",\"update\":2,\"loss\":\"" + big + "\"}\n");
  CHECK(rep::max_echo == 60);  // so that the longest message stays within max_message (200)
  CHECK(has(e, "bad.jsonl:2: field 'loss' is \"" + std::string(59, 'x') + "... (20000002 bytes in all); valid: a number"));
  CHECK(e.size() - std::string("bad.jsonl:2: ").size() <= rep::max_message);
  // Below, at and above the bound: a quoted value of 59 and 60 bytes whole, 61 cut.
  for (const std::size_t len : {57u, 58u, 59u}) {
    e = error_of("{\"event\":\"update\",\"update\":2,\"loss\":\"" + std::string(len, 'y') + "\"}\n");
    const std::string quoted = "\"" + std::string(len, 'y') + "\"";
    if (quoted.size() <= rep::max_echo)
      CHECK(has(e, "is " + quoted + "; valid"));
    else
      CHECK(has(e, "is \"" + std::string(59, 'y') + "... (61 bytes in all); valid"));
  }
  // An array of integers with one bad element, 1 MB long.
  std::string ranks = "[";
  for (int i = 0; i < 200000; ++i) ranks += "1,";
  ranks += "\"x\"]";
  e = error_of("{\"event\":\"anomaly\",\"update\":2,\"anomaly\":\"kl_spike\",\"origin_ranks\":" + ranks + "}\n");
  CHECK(has(e, "bad.jsonl:1: field 'origin_ranks' is [1,1,"));
  CHECK(has(e, "(400005 bytes in all); valid: an array of integers"));
  CHECK(e.size() - std::string("bad.jsonl:1: ").size() <= rep::max_message);
  // A cut never splits a UTF-8 character: 59 bytes ('"' and 58 of 'a') then "é" (2 bytes) cut before it.
  e = error_of("{\"event\":\"update\",\"update\":2,\"loss\":\"" + std::string(58, 'a') + "\xC3\xA9" + "bbb\"}\n");
  CHECK(has(e, "is \"" + std::string(58, 'a') + "... (65 bytes in all)"));
}

TEST_CASE("a number beyond a double's range: an error naming file and line") {
  const std::string good = "{\"event\":\"update\",\"update\":1,\"epoch\":1,\"loss\":1}\n";
  for (const char* big : {"1e400", "-1e400", "1.8e308"}) {
    const std::string e = error_of(good + "{\"event\":\"update\",\"update\":2,\"loss\":" + big + "}\n");
    CHECK(has(e, std::string("bad.jsonl:2: a number out of range: ") + big + "; valid:"));
    CHECK_FALSE(has(e, "json.exception"));
  }
  // In an unknown event, in the update field: the same.
  CHECK(has(error_of("{\"event\":\"mine\",\"update\":1,\"x\":1e999}\n"), "bad.jsonl:1: a number out of range: 1e999"));
  CHECK(has(error_of(good + good + "{\"event\":\"update\",\"update\":1e400}\n"), "bad.jsonl:3: a number out of range"));
  // At the bound and below it: read. A tiny number is 0, no error.
  CHECK(parse_text("{\"event\":\"update\",\"update\":1,\"loss\":1.7976931348623157e308}\n").figure("loss").points.at(0).y ==
        1.7976931348623157e308);
  CHECK(parse_text("{\"event\":\"update\",\"update\":1,\"loss\":1e308}\n").figure("loss").points.at(0).y == 1e308);
  CHECK(parse_text("{\"event\":\"update\",\"update\":1,\"loss\":1e-400}\n").figure("loss").points.at(0).y == 0.0);
  // A number of 5,000 digits is quoted cut.
  const std::string e = error_of("{\"event\":\"update\",\"update\":1,\"loss\":1" + std::string(5000, '0') + "}\n");
  CHECK(has(e, "bad.jsonl:1: a number out of range: 1" + std::string(59, '0') + "... (5001 bytes in all)"));
  CHECK(e.size() - std::string("bad.jsonl:1: ").size() <= rep::max_message);
}

// ---- Size: anomalies counted exactly, drawn up to a bound per kind ----

TEST_CASE("anomalies: exact counts per kind and severity, at most max_anomalies drawn per kind") {
  // Kinds with 10 (below the bound of 50), 50 (at), 51 (above) and 9,000 lines;
  // severities counted by this generator as it writes them.
  struct expect {
    std::uint64_t warning = 0, critical = 0, other = 0;
    std::size_t first_line = 0;
  };
  std::map<std::string, expect> want;
  const std::vector<std::pair<std::string, int>> plan{{"loss_spike", 10}, {"kl_spike", 50}, {"constructor", 51}, {"ratio_explosion", 9000}};
  std::vector<std::string> lines;
  for (const auto& [kind, n] : plan)
    for (int i = 0; i < n; ++i) lines.push_back(kind);
  std::uint32_t state = 7;
  for (std::size_t i = lines.size() - 1; i > 0; --i) {  // interleave the kinds (a fixed shuffle)
    state = state * 1664525u + 1013904223u;
    std::swap(lines[i], lines[state % (i + 1)]);
  }
  std::string text;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const char* sev = i % 7 == 0 ? "critical" : i % 11 == 0 ? "odd" : "warning";
    expect& e = want[lines[i]];
    ++(i % 7 == 0 ? e.critical : i % 11 == 0 ? e.other : e.warning);
    if (!e.first_line) e.first_line = i + 1;
    text += "{\"event\":\"anomaly\",\"update\":" + std::to_string(1 + i / 10) + ",\"anomaly\":\"" + lines[i] +
            "\",\"severity\":\"" + sev + "\",\"value\":1.5,\"detail\":\"line " + std::to_string(i + 1) + "\"}\n";
  }
  const rep::run r = parse_text(text, "many.jsonl", per_kind(50));
  CHECK(r.anomaly_lines == lines.size());
  REQUIRE(r.kinds.size() == 4);
  std::size_t drawn = 0;
  for (const rep::kind_count& k : r.kinds) {
    INFO(k.kind);
    const expect& e = want.at(k.kind);
    CHECK(k.warning == e.warning);
    CHECK(k.critical == e.critical);
    CHECK(k.other == e.other);
    const auto n = static_cast<std::size_t>(e.warning + e.critical + e.other);
    CHECK(k.drawn == std::min<std::size_t>(n, 50));
    drawn += k.drawn;
    // The kind's drawn markers: real lines of that kind, each once, its first among them.
    std::vector<std::size_t> at;
    for (const auto& a : r.anomalies)
      if (a.kind == k.kind) {
        CHECK(a.detail == "line " + std::to_string(a.line));
        at.push_back(a.line);
      }
    CHECK(at.size() == k.drawn);
    CHECK(std::adjacent_find(at.begin(), at.end()) == at.end());
    CHECK(std::is_sorted(at.begin(), at.end()));
    CHECK(at.front() == e.first_line);
  }
  CHECK(r.anomalies.size() == drawn);
  CHECK(drawn == 10 + 50 + 50 + 50);
  CHECK(r.other_kinds.total() == 0);
  // The sample of the 9,000 is spread over the file: each tenth of it holds some.
  std::vector<int> tenths(10);
  for (const auto& a : r.anomalies)
    if (a.kind == "ratio_explosion") ++tenths[(a.line - 1) * 10 / lines.size()];
  for (int t : tenths) CHECK(t >= 1);
  // The page: exact counts in the table, the drawn number, the note.
  const std::string page = rep::render_html(r, per_kind(50));
  CHECK(has(page, "<th>anomalies</th><td>9111 (160 drawn, 8951 not drawn: at most 50 markers per kind, 1000 in all)</td>"));
  const expect& re = want.at("ratio_explosion");
  CHECK(has(page, "ratio_explosion</td><td>ratio</td><td>" + std::to_string(re.warning) + "</td><td>" +
                      std::to_string(re.critical) + "</td><td>" + std::to_string(re.other) + "</td><td>9000</td><td>50</td>"
                      "<td>1 (1)</td><td>1</td></tr>"));  // no clears: one onset; on every update: one band
  CHECK(has(page, "160 of 9111 anomaly lines drawn (8951 not drawn): at most 50 markers per kind"));
  const auto data = rep::page_data(r, per_kind(50));
  CHECK(data["anomalies"].size() == 160);
  CHECK(data["anomaly_lines"] == 9111);
  CHECK(data["anomalies_by_chart"]["ratio"] == 9000);
  CHECK(data["anomalies_by_chart"]["performance"] == 51);  // "constructor", a user kind
  // The same file with the bound above every kind's count: all drawn, no note.
  const rep::run all = parse_text(text, "many.jsonl", per_kind(9000));
  CHECK(all.anomalies.size() == 9111);
  CHECK_FALSE(has(rep::render_html(all, {}), "anomaly lines drawn"));
  CHECK(has(error_of(text, "x.jsonl"), "(no error)"));
  CHECK_THROWS_WITH_AS(parse_text(text, "x", per_kind(0)), doctest::Contains("max_anomalies = 0; valid: 1 or more"),
                       rep::error);
}

TEST_CASE("a large file: bounded page, exact counts, the drawn number equal to the bound (default options)") {
  // 100,000 anomaly lines of 3 kinds (about 17 MB): the page held every one (16 MB).
  std::string text;
  text.reserve(100000 * 180);
  std::map<std::string, std::uint64_t> want;
  const char* kinds[] = {"kl_spike", "loss_spike", "gradient_exploding"};
  for (int i = 0; i < 100000; ++i) {
    const char* k = kinds[i % 3];
    ++want[k];
    text += "{\"event\":\"anomaly\",\"time\":100.0,\"update\":" + std::to_string(1 + i / 100) +
            ",\"epoch\":1,\"anomaly\":\"" + k +
            "\",\"severity\":\"warning\",\"value\":0.25,\"threshold\":0.2,\"detail\":\"approx KL 0.25 > 0.2\",\"level_after\":\"DEBUG\"}\n";
  }
  const rep::run r = parse_text(text, "large.jsonl");
  const rep::options o;
  CHECK(o.max_anomalies == 200);
  CHECK(r.anomaly_lines == 100000);
  REQUIRE(r.kinds.size() == 3);
  for (const auto& k : r.kinds) {
    CHECK(k.total() == want.at(k.kind));
    CHECK(k.drawn == o.max_anomalies);
  }
  CHECK(r.anomalies.size() == 3 * o.max_anomalies);
  const std::string page = rep::render_html(r, o);
  CHECK(page.size() < 400'000);
  CHECK(has(page, "<th>anomalies</th><td>100000 (600 drawn, 99400 not drawn: at most 200 markers per kind, 4000 in all)</td>"));
  // One onset (no clears) and one band (a line on every update 1 to 1000).
  CHECK(has(page, "kl_spike</td><td>kl</td><td>33334</td><td>0</td><td>33334</td><td>200</td><td>1 (1)</td><td>1</td></tr>"));
}

TEST_CASE("markers in all: at most 20 x max_anomalies, shared evenly, each kind its first") {
  // 5 kinds of 2 lines and 25 of 60, bound 5 per kind: 10 + 125 = 135 kept
  // per kind, more than 20 x 5 = 100 in all.
  std::string text;
  std::map<std::string, std::size_t> lines, first;
  std::size_t n = 0;
  for (int round = 0; round < 60; ++round)
    for (int k = 0; k < 30; ++k) {
      if (k < 5 && round >= 2) continue;
      const std::string kind = "user_" + std::to_string(k);
      ++n, ++lines[kind];
      if (!first.count(kind)) first[kind] = n;
      text += "{\"event\":\"anomaly\",\"update\":" + std::to_string(1 + round) + ",\"anomaly\":\"" + kind +
              "\",\"severity\":\"warning\"}\n";
    }
  for (const std::size_t bound : {4u, 5u}) {  // 4: 10 + 100 = 110 kept, over 80 in all; 5: 135 over 100
    const rep::run r = parse_text(text, "b.jsonl", per_kind(bound));
    CHECK(r.max_markers() == std::max<std::size_t>(20 * bound, 65));
    CHECK(r.anomaly_lines == n);
    CHECK(r.anomalies.size() == r.max_markers());  // the budget, exactly
    std::size_t drawn = 0;
    for (const auto& k : r.kinds) {
      INFO(k.kind);
      CHECK(k.total() == lines.at(k.kind));
      drawn += k.drawn;
      if (lines.at(k.kind) == 2) CHECK(k.drawn == 2);  // under the share: all of it
      else CHECK(k.drawn >= (r.max_markers() - 10) / 25);
      CHECK(k.drawn <= bound);
      const bool has_first = std::any_of(r.anomalies.begin(), r.anomalies.end(),
                                         [&](const auto& a) { return a.line == first.at(k.kind); });
      CHECK(has_first);
    }
    CHECK(drawn == r.anomalies.size());
    CHECK(has(rep::render_html(r, per_kind(bound)), "not drawn: at most " + std::to_string(bound) + " markers per kind, " +
                                                        std::to_string(r.max_markers()) + " in all)"));
  }
  // Bound 3: 10 + 75 = 85 kept, over the floor of the budget (65, one per tracked kind and "(other kinds)").
  const rep::run floor = parse_text(text, "b.jsonl", per_kind(3));
  CHECK(floor.max_markers() == 65);
  CHECK(floor.anomalies.size() == 65);
  // A budget over every sample leaves them whole: bound 100 keeps all 1510 lines (budget 2000).
  const rep::run whole = parse_text(text, "b.jsonl", per_kind(100));
  CHECK(whole.anomalies.size() == n);
}

TEST_CASE("kinds past max_kinds: counted together and drawn in grey; unknown names past the bound counted") {
  std::string text;
  for (int k = 0; k < 70; ++k)
    for (int i = 0; i < 2; ++i)
      text += "{\"event\":\"anomaly\",\"update\":1,\"anomaly\":\"user_" + std::to_string(k) + "\",\"severity\":\"critical\"}\n";
  for (int k = 0; k < 105; ++k)
    text += "{\"event\":\"mine_" + std::to_string(k) + "\",\"update\":1}\n";
  text += "{\"event\":\"mine_0\",\"update\":1}\n{\"event\":\"mine_104\",\"update\":1}\n";
  const rep::run r = parse_text(text, "k.jsonl", per_kind(10));  // 128 + 10 markers, under 200 in all
  CHECK(r.anomaly_lines == 140);
  REQUIRE(r.kinds.size() == rep::max_kinds);  // 64
  CHECK(r.kinds.front().kind == "user_0");
  CHECK(r.kinds.back().kind == "user_63");
  CHECK(r.other_kinds.total() == 12);  // 6 kinds x 2
  CHECK(r.other_kinds.critical == 12);
  CHECK(r.other_kinds.drawn == 10);
  CHECK(r.anomalies.size() == 64 * 2 + 10);
  const std::string page = rep::render_html(r, per_kind(10));
  // The group's first line its only onset; all at update 1: one band.
  CHECK(has(page, "<tr><td>(other kinds)</td><td>each its own</td><td>0</td><td>12</td><td>12</td><td>10</td><td>1 (1)</td><td>1</td></tr>"));
  CHECK(has(page, "Kinds past the first 64 are counted together"));
  // Unknown names: the first 100 apiece, the rest in one count.
  CHECK(r.unknown.size() == rep::max_unknown_names);
  CHECK(r.unknown.at("mine_0") == 2);
  CHECK(r.unknown_other == 6);  // mine_100 .. mine_104, and mine_104 again
  CHECK(has(page, "<tr><td>unknown names past the first 100 (ignored)</td><td>6</td></tr>"));
}

TEST_CASE("long texts are cut to max_text bytes saying their length; origin_ranks kept to max_ranks") {
  auto detail_of = [](std::size_t len) {
    const rep::run r = parse_text("{\"event\":\"anomaly\",\"update\":1,\"anomaly\":\"kl_spike\",\"detail\":\"" +
                                  std::string(len, 'd') + "\"}\n");
    return std::pair{r.anomalies.at(0).detail, r.texts_cut};
  };
  CHECK(detail_of(499) == std::pair{std::string(499, 'd'), std::size_t{0}});
  CHECK(detail_of(500) == std::pair{std::string(500, 'd'), std::size_t{0}});
  CHECK(detail_of(501) == std::pair{std::string(500, 'd') + "... (501 bytes in all)", std::size_t{1}});
  CHECK(detail_of(20'000'000).first == std::string(500, 'd') + "... (20000000 bytes in all)");
  // A reason, a run_id and a kind are cut the same way; the summary counts the cuts.
  const rep::run r = parse_text("{\"event\":\"rollback\",\"update\":3,\"run_id\":\"" + std::string(600, 'r') +
                                "\",\"reason\":\"" + std::string(700, 'x') + "\"}\n");
  CHECK(r.rollbacks.at(0).reason == std::string(500, 'x') + "... (700 bytes in all)");
  CHECK(r.run_id == std::string(500, 'r') + "... (600 bytes in all)");
  CHECK(r.texts_cut == 2);
  CHECK(has(rep::render_html(r, {}), "<th>cut texts</th><td>2 text fields longer than 500 bytes (names: 100): cut, each saying its full length</td>"));
  // Names are cut to max_name bytes (100): an event's, a kind, a severity, a cause. Below, at, above.
  CHECK(rep::max_name == 100);
  const rep::run u = parse_text("{\"event\":\"" + std::string(101, 'e') + "\",\"update\":3}\n");
  CHECK(u.unknown.count(std::string(100, 'e') + "... (101 bytes in all)") == 1);
  CHECK(u.texts_cut == 1);
  for (const std::size_t len : {99u, 100u, 101u}) {
    const std::string name(len, 'k');
    const rep::run k = parse_text("{\"event\":\"anomaly\",\"update\":1,\"anomaly\":\"" + name + "\",\"severity\":\"" + name +
                                  "\",\"level_after\":\"" + name + "\"}\n{\"event\":\"rollback\",\"update\":1,\"cause\":\"" +
                                  name + "\",\"attribution\":\"" + name + "\"}\n");
    const std::string want = len <= 100 ? name : std::string(100, 'k') + "... (101 bytes in all)";
    CHECK(k.anomalies.at(0).kind == want);
    CHECK(k.kinds.at(0).kind == want);
    CHECK(k.anomalies.at(0).severity == want);
    CHECK(k.anomalies.at(0).level_after == want);
    CHECK(k.rollbacks.at(0).cause == want);
    CHECK(k.rollbacks.at(0).attribution == want);
    CHECK(k.texts_cut == (len > 100 ? 5u : 0u));
  }
  // origin_ranks: below, at and above the bound of 32.
  for (const int n : {31, 32, 33, 1000}) {
    std::string ranks = "[";
    for (int i = 0; i < n; ++i) ranks += (i ? "," : "") + std::to_string(i);
    const rep::run a = parse_text("{\"event\":\"anomaly\",\"update\":1,\"anomaly\":\"kl_spike\",\"origin_ranks\":" + ranks + "]}\n");
    CHECK(a.anomalies.at(0).rank_count == static_cast<std::size_t>(n));
    CHECK(a.anomalies.at(0).origin_ranks.size() == std::min<std::size_t>(n, rep::max_ranks));
    CHECK(a.anomalies.at(0).origin_ranks.back() == std::min(n, 32) - 1);
  }
}

// ---- Onsets kept exactly, dense runs as bands, skipped steps bounded ----

namespace {

// The bands of a kind, by their definition (docs/report.md), without the
// cap: lines in file order, a line within `gap` updates of the current
// band's range joins it. {first update, last update, lines}.
struct ref_band {
  std::uint64_t first, last, count;
  bool operator==(const ref_band&) const = default;
};
std::vector<ref_band> ref_bands(const std::vector<std::uint64_t>& updates, std::uint64_t gap) {
  std::vector<ref_band> out;
  for (const std::uint64_t u : updates) {
    if (!out.empty()) {
      ref_band& b = out.back();
      const bool near = !(u > b.last && u - b.last > gap) && !(b.first > u && b.first - u > gap);
      if (near) {
        b.first = std::min(b.first, u), b.last = std::max(b.last, u), ++b.count;
        continue;
      }
    }
    out.push_back({u, u, 1});
  }
  return out;
}
// The gap the report settles on: the configured one, doubled (0 -> 1)
// until at most `cap` bands are left.
std::uint64_t ref_gap(const std::vector<std::uint64_t>& updates, std::uint64_t gap, std::size_t cap) {
  while (ref_bands(updates, gap).size() > cap) gap = gap == 0 ? 1 : gap * 2;
  return gap;
}
std::vector<ref_band> bands_of(const rep::banding& b) {
  std::vector<ref_band> out;
  for (const rep::band& x : b.bands) out.push_back({x.first, x.last, x.count});
  return out;
}

std::string anomaly_line(std::uint64_t update, const std::string& kind, std::size_t tag) {
  return "{\"event\":\"anomaly\",\"update\":" + std::to_string(update) + ",\"anomaly\":\"" + kind +
         "\",\"severity\":\"warning\",\"detail\":\"line " + std::to_string(tag) + "\"}\n";
}
std::string clear_line(std::uint64_t update, const std::string& kind) {
  return "{\"event\":\"anomaly_clear\",\"update\":" + std::to_string(update) + ",\"anomaly\":\"" + kind +
         "\",\"duration\":3,\"value\":0.1}\n";
}

}  // namespace

TEST_CASE("onsets: the kind's first line and each first after its anomaly_clear, all drawn at their update") {
  // Kind a: `onsets` conditions, each an onset and 40 repeats then a clear;
  // kind b's clears (and a clear of a kind not seen yet) do not open a.
  // Bound 50 per kind: below, at and above it.
  for (const std::size_t onsets : {10u, 49u, 50u, 51u, 300u}) {
    INFO("onsets " << onsets);
    std::string text = clear_line(1, "a");  // before any line of a: ignored
    std::size_t line = 1;
    std::vector<std::size_t> onset_lines;
    std::uint64_t u = 1;
    for (std::size_t c = 0; c < onsets; ++c) {
      for (int i = 0; i <= 40; ++i, ++u) {
        ++line;
        if (i == 0) onset_lines.push_back(line);
        text += anomaly_line(u, "a", line);
        if (i == 20) text += clear_line(u, "b"), ++line;
      }
      text += clear_line(u, "a"), ++line;
      u += 5;
    }
    const rep::run r = parse_text(text, "o.jsonl", per_kind(50));
    REQUIRE(r.kinds.size() == 1);
    const rep::kind_count& k = r.kinds[0];
    CHECK(k.onsets == onsets);
    CHECK(k.total() == onsets * 41);
    CHECK(k.drawn == 50);
    CHECK(k.onsets_drawn == std::min<std::size_t>(onsets, 50));
    std::vector<std::size_t> drawn_onsets;
    for (const auto& a : r.anomalies) {
      CHECK(a.detail == "line " + std::to_string(a.line));  // a real line
      const bool is_onset = std::binary_search(onset_lines.begin(), onset_lines.end(), a.line);
      CHECK(a.onset == is_onset);
      if (is_onset) drawn_onsets.push_back(a.line);
    }
    if (onsets <= 50) {
      CHECK(drawn_onsets == onset_lines);  // every onset, at its own line and update
    } else {
      CHECK(drawn_onsets.size() == 50);  // past the bound: the first and an even sample, no repeats
      CHECK(drawn_onsets.front() == onset_lines.front());
      CHECK(r.anomalies.size() == 50);
    }
    // Bands: each condition's 41 lines on consecutive updates, 5 apart from the next.
    std::vector<std::uint64_t> ups;
    for (std::uint64_t x = 1, c = 0; c < onsets; ++c, x += 5)
      for (int i = 0; i <= 40; ++i) ups.push_back(x++);
    const std::uint64_t gap = ref_gap(ups, 1, rep::max_bands);
    CHECK(k.bands.gap == gap);
    CHECK(bands_of(k.bands) == ref_bands(ups, gap));
    std::uint64_t band_onsets = 0;
    for (const rep::band& b : k.bands.bands) band_onsets += b.onsets;
    CHECK(band_onsets == onsets);
  }
}

TEST_CASE("onsets within the budget in all: a kind's share goes to its onsets first") {
  // 30 kinds of 10 onsets (each followed by 5 repeats and a clear); bound 4
  // per kind, 80 in all (at least 65): 300 onsets compete for 80 markers.
  std::string text;
  std::size_t line = 0;
  std::map<std::string, std::vector<std::size_t>> onset_lines;
  for (int c = 0; c < 10; ++c)
    for (int k = 0; k < 30; ++k) {
      const std::string kind = "user_" + std::to_string(k);
      for (int i = 0; i < 6; ++i) {
        ++line;
        if (i == 0) onset_lines[kind].push_back(line);
        text += anomaly_line(1 + c, kind, line);
      }
      text += clear_line(1 + c, kind), ++line;
    }
  const rep::run r = parse_text(text, "b.jsonl", per_kind(4));
  CHECK(r.max_markers() == 80);
  CHECK(r.anomalies.size() == 80);
  for (const rep::kind_count& k : r.kinds) {
    INFO(k.kind);
    CHECK(k.onsets == 10);
    CHECK(k.drawn >= 2);
    CHECK(k.drawn <= 3);
    CHECK(k.onsets_drawn == k.drawn);  // no repeat drawn while an onset is left out
    bool first = false;
    for (const auto& a : r.anomalies)
      if (a.kind == k.kind) {
        CHECK(a.onset);
        first = first || a.line == onset_lines[k.kind].front();
      }
    CHECK(first);
  }
}

TEST_CASE("bands: lines at most band_gap updates apart are one band; the gap doubles past max_bands") {
  // At the gap, one band; one past it, two. Gap 0: the same update only.
  auto kind_bands = [](const std::vector<std::uint64_t>& ups, std::uint64_t gap) {
    std::string text;
    for (std::size_t i = 0; i < ups.size(); ++i) text += anomaly_line(ups[i], "kl_spike", i + 1);
    rep::options o;
    o.band_gap = gap;
    const rep::run r = parse_text(text, "g.jsonl", o);
    return bands_of(r.kinds.at(0).bands);
  };
  CHECK(kind_bands({10, 11}, 1) == std::vector<ref_band>{{10, 11, 2}});
  CHECK(kind_bands({10, 12}, 1) == std::vector<ref_band>{{10, 10, 1}, {12, 12, 1}});
  CHECK(kind_bands({10, 13, 16}, 3) == std::vector<ref_band>{{10, 16, 3}});
  CHECK(kind_bands({10, 13, 17}, 3) == std::vector<ref_band>{{10, 13, 2}, {17, 17, 1}});
  CHECK(kind_bands({10, 10, 11}, 0) == std::vector<ref_band>{{10, 10, 2}, {11, 11, 1}});
  // An update going back (a trainer renumbering after a rollback) within the gap of the range joins it.
  CHECK(kind_bands({10, 20, 19, 30}, 1) == std::vector<ref_band>{{10, 10, 1}, {19, 20, 2}, {30, 30, 1}});
  // Near 2^64: no overflow.
  CHECK(kind_bands({UINT64_MAX - 1, UINT64_MAX}, rep::max_band_gap).size() == 1);

  // The cap: 499, 500 and 501 separate runs (3 updates apart) at gap 1:
  // 501 doubles the gap to 2 (still 501 runs), then 4 (one band).
  for (const std::size_t runs : {499u, 500u, 501u}) {
    std::vector<std::uint64_t> ups;
    for (std::size_t i = 0; i < runs; ++i) ups.push_back(1 + 3 * i);
    const auto got = kind_bands(ups, 1);
    CHECK(got == ref_bands(ups, ref_gap(ups, 1, rep::max_bands)));
    CHECK(got.size() == (runs <= 500 ? runs : 1));
  }
  // Irregular gaps, 20,000 lines: the bands a pass at the final gap makes.
  std::vector<std::uint64_t> ups;
  std::uint32_t state = 11;
  std::uint64_t u = 1;
  for (int i = 0; i < 20000; ++i) {
    state = state * 1664525u + 1013904223u;
    u += (state >> 24) % 7 == 0 ? (state >> 8) % 40 : (state >> 8) % 3;
    ups.push_back(u);
  }
  std::string text;
  for (std::size_t i = 0; i < ups.size(); ++i) text += anomaly_line(ups[i], "kl_spike", i + 1);
  const rep::run r = parse_text(text, "g.jsonl");
  const rep::kind_count& k = r.kinds.at(0);
  const std::uint64_t gap = ref_gap(ups, 1, rep::max_bands);
  CHECK(gap > 1);
  CHECK(k.bands.gap == gap);
  CHECK(bands_of(k.bands) == ref_bands(ups, gap));
  CHECK(k.bands.bands.size() <= rep::max_bands);
  CHECK(k.bands.lines() == 20000);
  // Each band's lines are consecutive in the file and its drawn number is
  // that of the markers among them.
  std::size_t next_line = 1, drawn = 0;
  for (const rep::band& b : k.bands.bands) {
    CHECK(b.first_line == next_line);
    next_line = b.last_line + 1;
    std::size_t in = 0;
    for (const auto& a : r.anomalies) in += a.line >= b.first_line && a.line <= b.last_line;
    CHECK(b.drawn == in);
    drawn += b.drawn;
  }
  CHECK(next_line == 20001);
  CHECK(drawn == k.drawn);
  // On the page: the bands as [first, last, lines, onsets, drawn], the gap.
  const auto data = rep::page_data(r, {});
  CHECK(data["kinds"][0]["band_gap"] == gap);
  CHECK(data["kinds"][0]["bands"].size() == k.bands.bands.size());
  CHECK(data["kinds"][0]["bands"][0] == nlohmann::json::array({k.bands.bands[0].first, k.bands.bands[0].last,
                                                               k.bands.bands[0].count, 1, k.bands.bands[0].drawn}));
  // band_gap's range.
  rep::options o;
  o.band_gap = rep::max_band_gap;
  CHECK_NOTHROW(parse_text(text, "g.jsonl", o));
  o.band_gap = rep::max_band_gap + 1;
  CHECK_THROWS_WITH_AS(parse_text(text, "g.jsonl", o), doctest::Contains("band_gap = 1000000001; valid: 0 to 1000000000"),
                       rep::error);
}

TEST_CASE("skipped steps: counted exactly, drawn up to max_anomalies, every one in a band") {
  // 5,000 steps (one update each, 2 steps per update); a step is skipped by
  // a flagged update line and its response (one skip), by a response only,
  // or by a flag only; the last is the stop.
  std::string text;
  std::vector<std::uint64_t> skipped_updates;
  std::size_t line = 0;
  std::uint32_t state = 5;
  for (std::uint64_t u = 1; u <= 2500; ++u)
    for (int k = 0; k < 2; ++k) {
      state = state * 1664525u + 1013904223u;
      const int how = (state >> 16) % 8;  // 0: flag and response, 1: response, 2: flag, else none
      text += "{\"event\":\"update\",\"update\":" + std::to_string(u) + ",\"loss\":1" +
              (how == 0 || how == 2 ? ",\"extra\":{\"skipped_step\":1}" : "") + "}\n";
      ++line;
      if (how == 0 || how == 1) text += "{\"event\":\"response\",\"update\":" + std::to_string(u) +
                                        ",\"action\":\"skip_step\",\"reason\":\"r" + std::to_string(++line) + "\"}\n";
      if (how <= 2) skipped_updates.push_back(u);
    }
  text += "{\"event\":\"update\",\"update\":2501,\"loss\":1,\"extra\":{\"skipped_step\":1}}\n"
          "{\"event\":\"response\",\"update\":2501,\"action\":\"stop\",\"reason\":\"enough\"}\n";
  const rep::run r = parse_text(text, "s.jsonl", per_kind(40));
  CHECK(r.skip_steps == skipped_updates.size());  // the stop's step is the stop, not a skip
  CHECK(r.skips.size() == 40);
  CHECK(r.stop.has_value());
  CHECK(r.stop->update == 2501);
  const std::uint64_t gap = ref_gap(skipped_updates, 1, rep::max_bands);
  CHECK(r.skip_bands.gap == gap);
  CHECK(bands_of(r.skip_bands) == ref_bands(skipped_updates, gap));
  // The drawn ones: real skipped steps, in file order, at their step's x.
  for (const rep::step_mark& m : r.skips) {
    CHECK(std::binary_search(skipped_updates.begin(), skipped_updates.end(), m.update));
    CHECK((m.x == doctest::Approx(m.update - 0.5) || m.x == doctest::Approx(static_cast<double>(m.update))));
  }
  CHECK(std::is_sorted(r.skips.begin(), r.skips.end(), [](auto& a, auto& b) { return a.line < b.line; }));
  const std::string page = rep::render_html(r, per_kind(40));
  CHECK(has(page, "<th>skipped optimizer steps</th><td>" + std::to_string(skipped_updates.size())));
  CHECK(has(page, "40 drawn as lines, at most 40; all in " + std::to_string(r.skip_bands.bands.size()) + " bands"));
  const auto data = rep::page_data(r, per_kind(40));
  CHECK(data["skip_steps"] == skipped_updates.size());
  CHECK(data["skips"].size() == 40);
  // Below the bound: every skip drawn, as before.
  const rep::run all = parse_text(text, "s.jsonl", per_kind(10000));
  CHECK(all.skips.size() == skipped_updates.size());
  // A response for a step already counted (it does not follow its update
  // line) counts again, with the step pending at the next update line
  // (pending steps count in step order: here 1, 1, 5, then 9): the bands
  // follow the order the steps were counted in, and their drawn numbers add
  // up (found by the fuzzer: by line order a skip fell into two bands).
  const rep::run late = parse_text(
      "{\"event\":\"update\",\"update\":1,\"extra\":{\"skipped_step\":1}}\n"
      "{\"event\":\"update\",\"update\":5,\"extra\":{\"skipped_step\":1}}\n"
      "{\"event\":\"response\",\"update\":1,\"action\":\"skip_step\"}\n"
      "{\"event\":\"update\",\"update\":9,\"extra\":{\"skipped_step\":1}}\n",
      "s.jsonl", per_kind(2));
  CHECK(late.skip_steps == 4);
  CHECK(bands_of(late.skip_bands) == ref_bands({1, 1, 5, 9}, 1));
  std::size_t drawn = 0;
  for (const rep::band& b : late.skip_bands.bands) drawn += b.drawn;
  CHECK(drawn == late.skips.size());
  CHECK(late.skips.size() == 2);
}

TEST_CASE("distinct updates as ranges: the same count as a set") {
  rep::update_set s;
  std::set<std::uint64_t> want;
  std::uint32_t state = 3;
  for (int i = 0; i < 20000; ++i) {
    state = state * 1664525u + 1013904223u;
    const std::uint64_t u = i < 10000 ? (state >> 8) % 3000 : i;  // random, then consecutive
    s.insert(u), want.insert(u);
  }
  s.insert(UINT64_MAX), want.insert(UINT64_MAX);
  s.insert(UINT64_MAX - 1), want.insert(UINT64_MAX - 1);
  CHECK(s.size() == want.size());
  CHECK(s.min() == *want.begin());
  CHECK(s.max() == *want.rbegin());
  CHECK(s.ranges() < 1500);
}

TEST_CASE("hostile lines: each an error naming file and line, its message at most max_message bytes") {
  const std::string good = "{\"event\":\"update\",\"update\":1,\"loss\":1}\n";
  auto message_of = [&](const std::string& bad_line) {
    const std::string e = error_of(good + bad_line + "\n" + good);
    REQUIRE(e.rfind("bad.jsonl:2: ", 0) == 0);
    const std::string m = e.substr(std::string("bad.jsonl:2: ").size());
    CHECK(m.size() <= rep::max_message);
    CHECK(m.find('\n') == std::string::npos);
    return m;
  };
  const std::string long_key(5000, 'k');
  for (const std::string& line : std::vector<std::string>{
        std::string("{\"event\":\"update\",\"update\":2,\"loss\":NaN}"), std::string("[1,2]"),
        std::string("{\"event\":\"update\",\"update\":2,\"loss\":\"\xff\xfe\"}"),
        "{\"event\":\"update\",\"update\":2,\"lo" + std::string(1, '\0') + "ss\":1}",
        "{\"event\":\"rollback\",\"update\":2,\"window_first\":18446744073709551615,\"window_last\":0}",
        "{\"event\":\"rollback\",\"update\":2,\"restored_update\":18446744073709551615}",
        "{\"event\":\"update\",\"update\":2,\"extra\":{\"skipped_step\":\"" + std::string(1000, 'z') + "\"}}",
        "{\"event\":\"anomaly\",\"update\":2,\"anomaly\":\"k\",\"origin_ranks\":[\"" + long_key + "\"]}",
        "{\"event\":\"update\",\"update\":2,\"loss\":-1e400}", std::string(1000, '\x01')})
    (void)message_of(line);
  CHECK(message_of("{\"event\":\"update\",\"update\":2,\"extra\":{\"skipped_step\":\"x\"}}") ==
        "field 'extra.skipped_step' is \"x\"; valid: a number, \"nan\", \"inf\" or \"-inf\"");
  // Values in one line: at max_values read, one more is an error.
  auto wide = [](std::uint64_t values) {  // {"event":"mine","update":1,"x":[0,...]}: values = 4 + (n - 1)
    std::string l = "{\"event\":\"mine\",\"update\":1,\"x\":[0";
    for (std::uint64_t i = 4; i < values; ++i) l += ",0";
    return l + "]}";
  };
  CHECK(parse_text(wide(rep::max_values) + "\n").unknown.at("mine") == 1);
  CHECK(has(message_of(wide(rep::max_values + 1)), "more than 1000000 values (at byte "));
  // A line of max_line bytes is read; one byte more is an error, before it is held whole.
  std::string at(rep::max_line, ' ');
  const std::string ev = "{\"event\":\"mine\",\"update\":1}";
  at.replace(0, ev.size(), ev);
  CHECK(parse_text(at + "\n").unknown.at("mine") == 1);
  CHECK(message_of(at + " ") == "a line longer than 67108864 bytes; valid: at most 67108864 bytes a line (one event)");
  at.clear();
  at.shrink_to_fit();
  // No line number where none applies; the name's control characters as '?'.
  CHECK(error_of("", "a\nb.jsonl") == "a?b.jsonl: empty file; valid: one JSON event per line (docs/events.md)");
  CHECK(error_of("\n\n", "x.jsonl") == "x.jsonl: no event in 2 lines");
  // A directory is not read as an empty file.
  const auto dir = std::filesystem::temp_directory_path();
  CHECK_THROWS_WITH_AS(rep::read_file(dir.string()), (dir.string() + ": a directory; valid: an events file (JSONL)").c_str(),
                       rep::error);
  // bounded(): at most max_message bytes, cut on a UTF-8 boundary.
  std::string m(198, 'a');
  m += "\xC3\xA9\xC3\xA9";
  CHECK(rep::detail::bounded(m) == std::string(197, 'a') + "...");
  CHECK(rep::detail::bounded(std::string(200, 'b')) == std::string(200, 'b'));
  CHECK(rep::detail::bounded(std::string(201, 'b')) == std::string(197, 'b') + "...");
}
