// bench/detection: what is common to every example trainer the detection
// benchmark runs: the faults and the matrix of cases, the injection draw, the
// cases run in forked workers (bench/common/forked_pool.hpp), the scores
// (recall, delay, false alarms, escalation, slow faults), the markdown and
// JSON reports, and the quick matrix's assertions. Each trainer
// (ppo_trainer.hpp, char_lm_trainer.hpp) supplies a `trainer`: its faults,
// its matrices, how to run one case, and its task metric for the slow-fault
// rule.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/forked_pool.hpp"
#include "simic/core/anomaly.hpp"
#include "simic/core/detail/format.hpp"

namespace detection {

using simic::anomaly_kind;
using simic::severity;

// ---- the matrix -------------------------------------------------------------

struct fault_spec {
  std::string name;                   // the trainer's --inject kind
  std::vector<anomaly_kind> expected;  // the kinds that count as detecting it
  bool slow = false;
};

struct matrix {
  std::vector<std::uint64_t> healthy_seeds;
  std::uint64_t healthy_steps;  // run length of the healthy runs
  std::vector<std::uint64_t> fault_seeds;
  std::uint64_t inject_min, inject_max;
  std::uint64_t abrupt_window, slow_window;
  std::uint64_t schedule;  // progress is measured against this many steps
  // true: a fault run ends at the end of its window (the trainer keeps its
  // schedule of `schedule` steps); false: it runs healthy_steps like the healthy runs.
  bool stop_after_window = true;
};

// The injection step of (fault, seed): drawn from [lo, hi] by a fixed hash,
// so every run of the matrix injects at the same steps.
inline std::uint64_t draw_injection(std::size_t fault, std::uint64_t seed, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + (fault + 1) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return lo + z % (hi - lo + 1);
}

struct case_spec {
  int fault = -1;  // index into the trainer's faults; -1: healthy
  std::uint64_t seed = 1;
  std::uint64_t inject = 0;  // 0: none
  std::uint64_t steps = 0;   // run length
  std::uint64_t window = 0;
  std::uint64_t schedule = 0;
};

// ---- results ------------------------------------------------------------------

constexpr std::size_t preset_count = 2;
constexpr const char* preset_names[preset_count] = {"simic", "reference"};

struct reported {
  std::uint64_t step;
  anomaly_kind kind;
  severity sev;
  double value = std::numeric_limits<double>::quiet_NaN();
};

struct case_result {
  std::vector<double> metric[preset_count];  // per preset's run: the task metric per step, index step - 1
  std::vector<reported> anomalies[preset_count];
  std::vector<std::uint8_t> escalated[preset_count];  // per step: ended at DEBUG
  std::uint64_t steps_done[preset_count] = {0, 0};
  bool stopped[preset_count] = {false, false};
  double seconds = 0.0;
  std::string error;
};

// ---- a trainer ----------------------------------------------------------------

struct trainer {
  std::string name;   // --trainer NAME, the JSON key
  std::string title;  // its markdown section
  std::string unit;   // "updates", "steps"
  std::uint64_t rate_per = 1000;  // false alarms per this many steps
  std::string metric_name;        // the JSON case's "final_<metric_name>"
  std::string slow_rule;          // "20 % fall": the recall column's "before a ..."
  std::string slow_rule_key;      // the JSON fault's "detected_before_<key>"
  std::vector<fault_spec> faults;
  // The matrices; `steps` != 0 overrides the run length where the trainer allows it.
  std::function<matrix(bool quick, std::uint64_t steps)> make_matrix;
  // Runs one case (in a worker process).
  std::function<case_result(const case_spec&)> run_case;
  // Slow-fault rule: the first step at or after `c.inject` where the task
  // metric of preset p's run shows the run gone wrong, if any.
  std::function<std::optional<std::uint64_t>(const std::vector<double>& metric, const case_spec&)> degraded_at;

  std::string label(const case_spec& c) const {
    return c.fault < 0 ? "healthy seed " + std::to_string(c.seed)
                       : faults[static_cast<std::size_t>(c.fault)].name + " seed " + std::to_string(c.seed) + " @" +
                             std::to_string(c.inject);
  }

  std::vector<case_spec> cases_of(const matrix& m) const {
    std::vector<case_spec> out;
    for (std::uint64_t s : m.healthy_seeds) out.push_back({-1, s, 0, m.healthy_steps, 0, m.schedule});
    for (std::size_t f = 0; f < faults.size(); ++f)
      for (std::uint64_t s : m.fault_seeds) {
        const std::uint64_t at = draw_injection(f, s, m.inject_min, m.inject_max);
        const std::uint64_t w = faults[f].slow ? m.slow_window : m.abrupt_window;
        out.push_back({static_cast<int>(f), s, at, m.stop_after_window ? at + w - 1 : m.healthy_steps, w, m.schedule});
      }
    return out;
  }
};

// The steps that ended at DEBUG, from the run's level changes (step, new level),
// in order; `steps` steps, starting at `initial`.
template <class Changes, class Level>
std::vector<std::uint8_t> debug_steps(const Changes& changes, std::uint64_t steps, Level initial, Level debug) {
  std::vector<std::uint8_t> out(steps, 0);
  Level now = initial;
  std::size_t i = 0;
  for (std::uint64_t s = 1; s <= steps; ++s) {
    for (; i < changes.size() && changes[i].step <= s; ++i) now = changes[i].to;
    out[s - 1] = now == debug;
  }
  return out;
}

// ---- a case's result between processes ---------------------------------------

inline nlohmann::json number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }
inline double number(const nlohmann::json& j) {
  return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>();
}

inline std::string serialize(const case_result& r) {
  nlohmann::json j;
  j["seconds"] = r.seconds;
  j["error"] = r.error;
  for (std::size_t p = 0; p < preset_count; ++p) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& x : r.anomalies[p]) a.push_back({x.step, x.kind.id(), static_cast<int>(x.sev), number(x.value)});
    j["anomalies"][p] = a;
    j["escalated"][p] = r.escalated[p];
    j["steps_done"][p] = r.steps_done[p];
    j["stopped"][p] = r.stopped[p];
    nlohmann::json metric = nlohmann::json::array();
    for (double x : r.metric[p]) metric.push_back(number(x));
    j["metric"][p] = metric;
  }
  return j.dump();
}

inline case_result deserialize(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  case_result r;
  r.seconds = j["seconds"];
  r.error = j["error"];
  for (std::size_t p = 0; p < preset_count; ++p) {
    for (const auto& a : j["anomalies"][p])
      r.anomalies[p].push_back({a[0].get<std::uint64_t>(), anomaly_kind::from_id(a[1].get<std::uint16_t>()),
                                static_cast<severity>(a[2].get<int>()), number(a[3])});
    r.escalated[p] = j["escalated"][p].get<std::vector<std::uint8_t>>();
    r.steps_done[p] = j["steps_done"][p];
    r.stopped[p] = j["stopped"][p];
    for (const auto& x : j["metric"][p]) r.metric[p].push_back(number(x));
  }
  return r;
}

// Runs every case in a forked worker of its own, up to `jobs` at once
// (LibTorch seeds and thread settings are process-wide).
inline std::vector<case_result> run_all(const trainer& t, const std::vector<case_spec>& cases, int jobs) {
  return bench::run_forked<case_result>(
      cases.size(), jobs, [&](std::size_t i) { return t.run_case(cases[i]); }, serialize, deserialize,
      [&](std::size_t i, std::size_t done, const case_result& r) {
        std::fprintf(stderr, "[%s %zu/%zu] %s: %.1f s%s%s\n", t.name.c_str(), done, cases.size(),
                     t.label(cases[i]).c_str(), r.seconds, r.error.empty() ? "" : " ERROR: ", r.error.c_str());
      });
}

// ---- scores -----------------------------------------------------------------

struct alarm_counts {
  std::uint64_t steps = 0;
  std::uint64_t warning = 0, critical = 0;
  double per(std::uint64_t n, std::uint64_t rate_per) const {
    return steps == 0 ? 0.0 : static_cast<double>(rate_per) * static_cast<double>(n) / static_cast<double>(steps);
  }
};

struct fault_score {
  std::uint64_t runs = 0, detected = 0;
  std::vector<std::uint64_t> delays;
  std::uint64_t slow_before_degraded = 0;  // detected before the task metric showed the damage
  double median_delay() const {
    if (delays.empty()) return std::nan("");
    std::vector<std::uint64_t> d = delays;
    std::sort(d.begin(), d.end());
    const std::size_t n = d.size();
    return n % 2 ? static_cast<double>(d[n / 2]) : 0.5 * static_cast<double>(d[n / 2 - 1] + d[n / 2]);
  }
  std::uint64_t max_delay() const { return delays.empty() ? 0 : *std::max_element(delays.begin(), delays.end()); }
};

// One anomaly of a case, for the lists of false alarms and misses.
struct listed {
  std::string case_label;
  reported a;
};

struct preset_score {
  alarm_counts healthy, before_injection;
  std::uint64_t healthy_escalated = 0;
  std::map<std::string, std::uint64_t> healthy_by_kind;
  std::vector<listed> healthy_list, early_list, before_list;  // early: healthy, in the first 10 % of training
  std::vector<fault_score> per_fault;
  std::vector<std::string> missed;  // fault cases not detected
};

inline preset_score score(std::size_t p, const trainer& t, const std::vector<case_spec>& cases,
                          const std::vector<case_result>& results) {
  preset_score s;
  s.per_fault.resize(t.faults.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const case_spec& c = cases[i];
    const case_result& r = results[i];
    if (c.fault < 0) {
      s.healthy.steps += r.steps_done[p];
      for (const auto& a : r.anomalies[p]) {
        (a.sev == severity::critical ? s.healthy.critical : s.healthy.warning) += 1;
        ++s.healthy_by_kind[std::string(simic::to_string(a.kind))];
        s.healthy_list.push_back({t.label(c), a});
        if (10 * a.step <= c.schedule) s.early_list.push_back({t.label(c), a});
      }
      for (auto e : r.escalated[p]) s.healthy_escalated += e;
      continue;
    }
    const fault_spec& f = t.faults[static_cast<std::size_t>(c.fault)];
    fault_score& fs = s.per_fault[static_cast<std::size_t>(c.fault)];
    ++fs.runs;
    s.before_injection.steps += c.inject - 1;
    std::optional<std::uint64_t> detected;
    for (const auto& a : r.anomalies[p]) {
      if (a.step < c.inject) {
        (a.sev == severity::critical ? s.before_injection.critical : s.before_injection.warning) += 1;
        s.before_list.push_back({t.label(c), a});
      } else if (!detected && a.step < c.inject + c.window &&
                 std::find(f.expected.begin(), f.expected.end(), a.kind) != f.expected.end()) {
        detected = a.step;
      }
    }
    if (detected) {
      ++fs.detected;
      fs.delays.push_back(*detected - c.inject);
      const auto degraded = t.degraded_at(r.metric[p], c);
      if (!degraded || *detected < *degraded) ++fs.slow_before_degraded;
    } else {
      s.missed.push_back(t.label(c));
    }
  }
  return s;
}

// ---- reports ------------------------------------------------------------------

inline std::string fmt_delay(const fault_score& f) {
  if (f.delays.empty()) return "-";
  return simic::detail::format("%.3g / %llu", f.median_delay(), static_cast<unsigned long long>(f.max_delay()));
}

inline std::string thousands(std::uint64_t n) {
  std::string s = std::to_string(n);
  if (n < 10000) return s;  // "1000", "10,000"
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

inline std::string markdown(const trainer& t, const matrix& m, const std::vector<preset_score>& ps, double seconds) {
  using ull = unsigned long long;
  const char* u = t.unit.c_str();
  std::string out;
  if (m.stop_after_window)
    out += simic::detail::format(
        "Matrix: healthy %zu seeds x %llu %s; every fault x %zu seeds, injected from an %s drawn in [%llu, "
        "%llu] to the end of its window (abrupt %llu %s, slow %llu); %.0f s.\n\n",
        m.healthy_seeds.size(), static_cast<ull>(m.healthy_steps), u, m.fault_seeds.size(),
        t.unit.substr(0, t.unit.size() - 1).c_str(), static_cast<ull>(m.inject_min), static_cast<ull>(m.inject_max),
        static_cast<ull>(m.abrupt_window), u, static_cast<ull>(m.slow_window), seconds);
  else
    out += simic::detail::format(
        "Matrix: healthy %zu seeds x %llu %s; every fault x %zu seeds x %llu %s, injected at a %s drawn in [%llu, "
        "%llu] (window: abrupt %llu %s, slow %llu); each case run once per preset; %.0f s.\n\n",
        m.healthy_seeds.size(), static_cast<ull>(m.healthy_steps), u, m.fault_seeds.size(),
        static_cast<ull>(m.healthy_steps), u, t.unit.substr(0, t.unit.size() - 1).c_str(),
        static_cast<ull>(m.inject_min), static_cast<ull>(m.inject_max), static_cast<ull>(m.abrupt_window), u,
        static_cast<ull>(m.slow_window), seconds);
  const std::string per = thousands(t.rate_per) + " " + t.unit;
  out += "| | simic | reference |\n| --- | --- | --- |\n";
  auto row = [&](const std::string& what, auto&& f) {
    out += "| " + what + " | " + f(ps[0]) + " | " + f(ps[1]) + " |\n";
  };
  row("healthy: critical / " + per, [&](const preset_score& s) {
    return simic::detail::format("%.1f (%llu)", s.healthy.per(s.healthy.critical, t.rate_per),
                                 static_cast<ull>(s.healthy.critical));
  });
  row("healthy: warnings / " + per, [&](const preset_score& s) {
    return simic::detail::format("%.1f (%llu)", s.healthy.per(s.healthy.warning, t.rate_per),
                                 static_cast<ull>(s.healthy.warning));
  });
  row("healthy: " + t.unit + " escalated", [](const preset_score& s) {
    return simic::detail::format("%.1f %%", s.healthy.steps ? 100.0 * static_cast<double>(s.healthy_escalated) /
                                                                  static_cast<double>(s.healthy.steps)
                                                            : 0.0);
  });
  row("healthy: anomalies in the first 10 %", [](const preset_score& s) {
    std::map<std::string, std::uint64_t> by;
    for (const auto& l : s.early_list) ++by[std::string(simic::to_string(l.a.kind))];
    std::string text = std::to_string(s.early_list.size());
    std::string kinds;
    for (const auto& [k, n] : by) kinds += (kinds.empty() ? "" : ", ") + k + " " + std::to_string(n);
    return kinds.empty() ? text : text + " (" + kinds + ")";
  });
  row("before injection: critical / warnings per " + thousands(t.rate_per), [&](const preset_score& s) {
    return simic::detail::format("%.1f / %.1f", s.before_injection.per(s.before_injection.critical, t.rate_per),
                                 s.before_injection.per(s.before_injection.warning, t.rate_per));
  });
  row("healthy anomalies by kind", [](const preset_score& s) {
    std::string text;
    for (const auto& [k, n] : s.healthy_by_kind) text += (text.empty() ? "" : ", ") + k + " " + std::to_string(n);
    return text.empty() ? std::string("none") : text;
  });
  out += "\n| fault | recall simic | delay simic (median / max) | recall reference | delay reference |\n";
  out += "| --- | --- | --- | --- | --- |\n";
  for (std::size_t f = 0; f < t.faults.size(); ++f) {
    const fault_score &a = ps[0].per_fault[f], &b = ps[1].per_fault[f];
    std::string name = t.faults[f].name;
    if (t.faults[f].slow) name += " (slow)";
    auto recall = [&](const fault_score& x) {
      std::string text = simic::detail::format("%llu/%llu", static_cast<ull>(x.detected), static_cast<ull>(x.runs));
      if (t.faults[f].slow)
        text += simic::detail::format(", %llu before a ", static_cast<ull>(x.slow_before_degraded)) + t.slow_rule;
      return text;
    };
    out += "| " + name + " | " + recall(a) + " | " + fmt_delay(a) + " | " + recall(b) + " | " + fmt_delay(b) + " |\n";
  }
  return out;
}

inline nlohmann::ordered_json to_json(const trainer& t, const matrix& m, const std::vector<case_spec>& cases,
                                      const std::vector<case_result>& results, const std::vector<preset_score>& ps) {
  nlohmann::ordered_json j;
  j["matrix"] = {{"healthy_seeds", m.healthy_seeds},  {"healthy_" + t.unit, m.healthy_steps},
                 {"fault_seeds", m.fault_seeds},      {"inject_range", {m.inject_min, m.inject_max}},
                 {"abrupt_window", m.abrupt_window},  {"slow_window", m.slow_window}};
  const std::string per = std::to_string(t.rate_per);
  auto list = [](const std::vector<listed>& l) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const auto& x : l)
      a.push_back({{"case", x.case_label},
                   {"step", x.a.step},
                   {"kind", std::string(simic::to_string(x.a.kind))},
                   {"severity", std::string(simic::to_string(x.a.sev))},
                   {"value", number(x.a.value)}});
    return a;
  };
  for (std::size_t p = 0; p < preset_count; ++p) {
    const preset_score& s = ps[p];
    auto& o = j["presets"][preset_names[p]];
    o["healthy"] = {{t.unit, s.healthy.steps},
                    {"critical", s.healthy.critical},
                    {"warning", s.healthy.warning},
                    {"critical_per_" + per, s.healthy.per(s.healthy.critical, t.rate_per)},
                    {"warning_per_" + per, s.healthy.per(s.healthy.warning, t.rate_per)},
                    {"escalated_" + t.unit, s.healthy_escalated},
                    {"by_kind", s.healthy_by_kind},
                    {"first_10pct", s.early_list.size()},
                    {"anomalies", list(s.healthy_list)}};
    o["before_injection"] = {{t.unit, s.before_injection.steps},
                             {"critical_per_" + per, s.before_injection.per(s.before_injection.critical, t.rate_per)},
                             {"warning_per_" + per, s.before_injection.per(s.before_injection.warning, t.rate_per)},
                             {"anomalies", list(s.before_list)}};
    for (std::size_t f = 0; f < t.faults.size(); ++f) {
      const fault_score& x = s.per_fault[f];
      nlohmann::ordered_json fj = {{"runs", x.runs},     {"detected", x.detected},
                                   {"delays", x.delays}, {"median_delay", x.delays.empty() ? -1.0 : x.median_delay()},
                                   {"max_delay", x.max_delay()}};
      if (t.faults[f].slow) fj["detected_before_" + t.slow_rule_key] = x.slow_before_degraded;
      o["faults"][t.faults[f].name] = fj;
    }
    o["missed"] = s.missed;
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const case_result& r = results[i];
    nlohmann::ordered_json cj = {{"case", t.label(cases[i])},
                                 {t.unit + "_done", r.steps_done[0]},
                                 {"stopped", r.stopped[0]},
                                 {"final_" + t.metric_name, r.metric[0].empty() ? 0.0 : r.metric[0].back()},
                                 {"anomalies_simic", r.anomalies[0].size()},
                                 {"anomalies_reference", r.anomalies[1].size()},
                                 {"seconds", r.seconds}};
    std::vector<listed> mine;  // simic's anomalies (the reference preset's are counted only: thousands)
    for (const auto& a : r.anomalies[0]) mine.push_back({cj["case"], a});
    nlohmann::ordered_json simic_list = list(mine);
    for (auto& x : simic_list) x.erase("case");
    cj["simic"] = simic_list;
    if (r.stopped[1] != r.stopped[0] || r.steps_done[1] != r.steps_done[0]) {
      cj["reference_" + t.unit + "_done"] = r.steps_done[1];
      cj["reference_stopped"] = r.stopped[1];
    }
    j["cases"].push_back(cj);
  }
  return j;
}

// The quick matrix's assertions: simic's preset catches every fault, and
// raises no critical alarm on a healthy run. Returns the number of failures.
inline int quick_failures(const trainer& t, const preset_score& simic_score) {
  int failures = 0;
  for (std::size_t f = 0; f < t.faults.size(); ++f) {
    const fault_score& x = simic_score.per_fault[f];
    if (x.detected != x.runs) {
      std::fprintf(stderr, "detection: FAILED: %s: %s detected in %llu of %llu runs\n", t.name.c_str(),
                   t.faults[f].name.c_str(), static_cast<unsigned long long>(x.detected),
                   static_cast<unsigned long long>(x.runs));
      ++failures;
    }
  }
  if (simic_score.healthy.critical != 0) {
    std::fprintf(stderr, "detection: FAILED: %s: %llu critical anomalies on healthy runs\n", t.name.c_str(),
                 static_cast<unsigned long long>(simic_score.healthy.critical));
    ++failures;
  }
  return failures;
}

}  // namespace detection
