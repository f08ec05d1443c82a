// bench/detection: scores simic's detectors on the example trainer
// (examples/ppo_lstm), run in-process over a matrix of healthy runs and
// injected faults, for two detector configurations side by side: simic's
// defaults (the trainer's simic::ppo_host_monitor) and the reference preset
// (simic::make_reference_monitor()).
//
// Each case trains once, with the trainer's own monitor (simic's defaults)
// obeying its responses, and records every check's signals. Both
// configurations are then scored on the same signals: each gets a fresh
// monitor, fed every check in order and ticked at every epoch end, exactly as
// the trainer does (the replay of simic's defaults must give the trainer's own
// anomalies, which is checked). Cases run in forked worker processes (LibTorch
// seeds and thread settings are process-wide).
//
// Scores, per configuration:
//   recall           a fault counts as detected when an anomaly of one of its
//                    expected kinds is reported in [injection, injection + window)
//   delay            updates from the injection to that anomaly (median, max)
//   false alarms     anomalies per 1000 updates, by severity: on healthy runs,
//                    and on fault runs before the injection
//   escalated        share of healthy updates that ended at DEBUG
//   slow faults      detected before the trainer's mean return fell 20 % below
//                    its value at the injection
//
//   detection [--quick] [--jobs N] [--json FILE] [--markdown FILE]
//
// --quick runs a small matrix and exits non-zero unless every fault was
// detected by simic's defaults and its healthy runs had no critical anomaly.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.hpp"
#include "ppo.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/presets/reference.hpp"

namespace {

using simic::anomaly_kind;
using simic::severity;

// ---- the matrix -------------------------------------------------------------

struct fault_spec {
  const char* name;  // the trainer's --inject kind
  std::vector<anomaly_kind> expected;
  bool slow;
};

// Every fault the trainer can inject, with the kinds that count as detecting it.
const std::vector<fault_spec>& faults() {
  static const std::vector<fault_spec> f{
      {"nan-grad", {anomaly_kind::numerical_instability}, false},
      {"grad-explode", {anomaly_kind::gradient_exploding, anomaly_kind::gradient_norm_drift}, false},
      {"grad-vanish", {anomaly_kind::gradient_vanishing, anomaly_kind::gradient_norm_drift}, false},
      {"grad-drift", {anomaly_kind::gradient_norm_drift}, false},
      {"lr-spike",
       {anomaly_kind::update_ratio_drift, anomaly_kind::kl_spike, anomaly_kind::kl_extreme,
        anomaly_kind::ratio_explosion, anomaly_kind::ratio_collapse},
       false},
      {"entropy-collapse", {anomaly_kind::entropy_collapse, anomaly_kind::entropy_low}, false},
      {"value-collapse", {anomaly_kind::value_collapse}, false},
      {"lstm-explode", {anomaly_kind::lstm_unhealthy}, false},
      {"reward-drop", {anomaly_kind::performance_degradation}, false},
      {"core-vanish", {anomaly_kind::host_ratio_drift}, false},
      // slow: whatever shows the run going wrong
      {"lr-ramp",
       {anomaly_kind::update_ratio_drift, anomaly_kind::kl_spike, anomaly_kind::kl_extreme, anomaly_kind::ratio_explosion, anomaly_kind::ratio_collapse,
        anomaly_kind::gradient_norm_drift, anomaly_kind::performance_degradation, anomaly_kind::value_collapse,
        anomaly_kind::entropy_collapse, anomaly_kind::entropy_low},
       true},
      {"reward-decay", {anomaly_kind::performance_degradation, anomaly_kind::value_collapse}, true},
  };
  return f;
}

struct matrix {
  std::vector<std::uint64_t> healthy_seeds;
  std::uint64_t healthy_updates;
  std::vector<std::uint64_t> fault_seeds;
  std::uint64_t inject_min, inject_max;
  std::uint64_t abrupt_window, slow_window;
  std::uint64_t schedule;  // progress is measured against this many updates
};

matrix full_matrix() { return {{1, 2, 3, 4, 5}, 200, {1, 2, 3}, 30, 150, 10, 60, 200}; }
matrix quick_matrix() { return {{1}, 100, {1}, 30, 40, 4, 50, 200}; }

// The injection update of (fault, seed): drawn from [lo, hi] by a fixed hash,
// so every run of the matrix injects at the same updates.
std::uint64_t draw_injection(std::size_t fault, std::uint64_t seed, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + (fault + 1) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return lo + z % (hi - lo + 1);
}

struct case_spec {
  int fault = -1;  // index into faults(); -1: healthy
  std::uint64_t seed = 1;
  std::uint64_t inject = 0;  // 0: none
  std::uint64_t updates = 0;
  std::uint64_t window = 0;
  std::uint64_t schedule = 200;
  std::string label() const {
    return fault < 0 ? "healthy seed " + std::to_string(seed)
                     : std::string(faults()[static_cast<std::size_t>(fault)].name) + " seed " + std::to_string(seed) +
                           " @" + std::to_string(inject);
  }
};

std::vector<case_spec> cases_of(const matrix& m) {
  std::vector<case_spec> out;
  for (std::uint64_t s : m.healthy_seeds) out.push_back({-1, s, 0, m.healthy_updates, 0, m.schedule});
  for (std::size_t f = 0; f < faults().size(); ++f)
    for (std::uint64_t s : m.fault_seeds) {
      const std::uint64_t at = draw_injection(f, s, m.inject_min, m.inject_max);
      const std::uint64_t w = faults()[f].slow ? m.slow_window : m.abrupt_window;
      out.push_back({static_cast<int>(f), s, at, at + w - 1, w, m.schedule});
    }
  return out;
}

// ---- one case, in a worker process -------------------------------------------

constexpr std::size_t preset_count = 2;
constexpr const char* preset_names[preset_count] = {"simic", "reference"};

struct reported {
  std::uint64_t update;
  anomaly_kind kind;
  severity sev;
};

struct case_result {
  std::vector<double> mean_return;  // per update, index update - 1
  std::vector<reported> anomalies[preset_count];
  std::vector<std::uint8_t> escalated[preset_count];  // per update: ended at DEBUG
  std::uint64_t updates_done = 0;
  bool stopped = false;
  double seconds = 0.0;
  std::string error;
};

template <class Monitor>
void replay(Monitor m, const ppo_lstm::run_summary& s, std::vector<reported>& out, std::vector<std::uint8_t>& esc) {
  esc.assign(s.updates_done, 0);
  for (std::size_t i = 0; i < s.signals.size(); ++i) {
    const simic::signals sig = s.signals[i].view();
    const std::uint64_t u = sig.progress->episode();
    for (const simic::anomaly& a : m.check(sig).report) out.push_back({u, a.kind, a.severity});
    const bool update_ends = i + 1 == s.signals.size() || s.signals[i + 1].base.progress->episode() != u;
    if (update_ends) {
      esc.at(u - 1) = m.effective_level() == simic::level::debug;
      m.tick();  // one update per epoch, as the trainer runs here
    }
  }
}

case_result run_case(const case_spec& c) {
  ppo_lstm::run_options o;
  o.updates = c.updates;
  o.planned_updates = std::max(c.schedule, c.updates);
  o.seed = c.seed;
  o.progress_lines = false;
  o.record_signals = true;
  if (c.fault >= 0)
    o.injections.push_back(
        ppo_lstm::parse_injection(std::string(faults()[static_cast<std::size_t>(c.fault)].name) + "@" +
                                  std::to_string(c.inject) + "-"));
  const ppo_lstm::run_summary s = ppo_lstm::run(o);
  case_result r;
  r.updates_done = s.updates_done;
  r.stopped = s.stopped;
  r.seconds = s.seconds;
  for (const auto& u : s.updates) r.mean_return.push_back(u.mean_return);
  simic::config_options co;
  co.escalation_epochs = o.escalation_epochs;
  replay(ppo_lstm::monitor_type(simic::config(co), simic::skip_nonfinite_then_stop(o.effective_max_skips())), s,
         r.anomalies[0], r.escalated[0]);
  replay(simic::make_reference_monitor(simic::reference_config_options(co), o.effective_max_skips()), s,
         r.anomalies[1], r.escalated[1]);
  // The replay of simic's defaults must reproduce what the trainer's monitor said.
  bool same = s.anomalies.size() == r.anomalies[0].size();
  for (std::size_t i = 0; same && i < s.anomalies.size(); ++i)
    same = s.anomalies[i].update == r.anomalies[0][i].update && s.anomalies[i].kind == r.anomalies[0][i].kind;
  if (!same)
    r.error = "the replay of simic's defaults differs from the trainer's own monitor (" +
              std::to_string(s.anomalies.size()) + " vs " + std::to_string(r.anomalies[0].size()) + " anomalies)";
  return r;
}

std::string serialize(const case_result& r) {
  nlohmann::json j;
  j["mean_return"] = r.mean_return;
  j["updates_done"] = r.updates_done;
  j["stopped"] = r.stopped;
  j["seconds"] = r.seconds;
  j["error"] = r.error;
  for (std::size_t p = 0; p < preset_count; ++p) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& x : r.anomalies[p]) a.push_back({x.update, x.kind.id(), static_cast<int>(x.sev)});
    j["anomalies"][p] = a;
    j["escalated"][p] = r.escalated[p];
  }
  return j.dump();
}

case_result deserialize(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  case_result r;
  r.mean_return = j["mean_return"].get<std::vector<double>>();
  r.updates_done = j["updates_done"];
  r.stopped = j["stopped"];
  r.seconds = j["seconds"];
  r.error = j["error"];
  for (std::size_t p = 0; p < preset_count; ++p) {
    for (const auto& a : j["anomalies"][p])
      r.anomalies[p].push_back({a[0].get<std::uint64_t>(), anomaly_kind::from_id(a[1].get<std::uint16_t>()),
                                static_cast<severity>(a[2].get<int>())});
    r.escalated[p] = j["escalated"][p].get<std::vector<std::uint8_t>>();
  }
  return r;
}

// Runs every case in up to `jobs` forked workers; each writes its result to a pipe.
std::vector<case_result> run_all(const std::vector<case_spec>& cases, int jobs) {
  struct worker {
    pid_t pid;
    int fd;
    std::size_t index;
    std::string out;
  };
  std::vector<case_result> results(cases.size());
  std::vector<worker> running;
  std::size_t next = 0, done = 0;
  while (done < cases.size()) {
    while (next < cases.size() && static_cast<int>(running.size()) < jobs) {
      int fds[2];
      if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
      if (pid == 0) {
        close(fds[0]);
        std::string text;
        try {
          text = serialize(run_case(cases[next]));
        } catch (const std::exception& e) {
          case_result r;
          r.error = e.what();
          text = serialize(r);
        }
        std::size_t off = 0;
        while (off < text.size()) {
          const ssize_t n = write(fds[1], text.data() + off, text.size() - off);
          if (n <= 0) _exit(3);
          off += static_cast<std::size_t>(n);
        }
        close(fds[1]);
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], next, {}});
      ++next;
    }
    // Drain the first worker to finish writing (each result is read whole).
    worker w = running.front();
    running.erase(running.begin());
    char buf[65536];
    for (ssize_t n; (n = read(w.fd, buf, sizeof buf)) > 0;) w.out.append(buf, static_cast<std::size_t>(n));
    close(w.fd);
    int status = 0;
    waitpid(w.pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || w.out.empty()) {
      results[w.index].error = "worker failed (status " + std::to_string(status) + ")";
    } else {
      results[w.index] = deserialize(w.out);
    }
    ++done;
    std::fprintf(stderr, "[%zu/%zu] %s: %.1f s%s%s\n", done, cases.size(), cases[w.index].label().c_str(),
                 results[w.index].seconds, results[w.index].error.empty() ? "" : " ERROR: ",
                 results[w.index].error.c_str());
  }
  return results;
}

// ---- scores -----------------------------------------------------------------

struct alarm_counts {
  std::uint64_t updates = 0;
  std::uint64_t warning = 0, critical = 0;
  double per_1000(std::uint64_t n) const { return updates == 0 ? 0.0 : 1000.0 * static_cast<double>(n) / static_cast<double>(updates); }
};

struct fault_score {
  std::uint64_t runs = 0, detected = 0;
  std::vector<std::uint64_t> delays;
  std::uint64_t slow_before_fall = 0;  // slow faults: detected before the return fell 20 %
  double median_delay() const {
    if (delays.empty()) return std::nan("");
    std::vector<std::uint64_t> d = delays;
    std::sort(d.begin(), d.end());
    const std::size_t n = d.size();
    return n % 2 ? static_cast<double>(d[n / 2]) : 0.5 * static_cast<double>(d[n / 2 - 1] + d[n / 2]);
  }
  std::uint64_t max_delay() const { return delays.empty() ? 0 : *std::max_element(delays.begin(), delays.end()); }
};

struct preset_score {
  alarm_counts healthy, before_injection;
  std::uint64_t healthy_escalated = 0;
  std::map<std::string, std::uint64_t> healthy_by_kind;
  std::vector<fault_score> per_fault = std::vector<fault_score>(faults().size());
};

// The first update at or after `from` whose mean return is at most 80 % of the one before `from`.
std::optional<std::uint64_t> fell_20_percent(const case_result& r, std::uint64_t from) {
  if (from < 2 || r.mean_return.size() < from - 1) return std::nullopt;
  const double ref = r.mean_return[from - 2];
  for (std::uint64_t u = from; u <= r.mean_return.size(); ++u)
    if (r.mean_return[u - 1] <= 0.8 * ref) return u;
  return std::nullopt;
}

preset_score score(std::size_t p, const std::vector<case_spec>& cases, const std::vector<case_result>& results) {
  preset_score s;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const case_spec& c = cases[i];
    const case_result& r = results[i];
    if (c.fault < 0) {
      s.healthy.updates += r.updates_done;
      for (const auto& a : r.anomalies[p]) {
        (a.sev == severity::critical ? s.healthy.critical : s.healthy.warning) += 1;
        ++s.healthy_by_kind[std::string(simic::to_string(a.kind))];
      }
      for (auto e : r.escalated[p]) s.healthy_escalated += e;
      continue;
    }
    const fault_spec& f = faults()[static_cast<std::size_t>(c.fault)];
    fault_score& fs = s.per_fault[static_cast<std::size_t>(c.fault)];
    ++fs.runs;
    s.before_injection.updates += c.inject - 1;
    std::optional<std::uint64_t> detected;
    for (const auto& a : r.anomalies[p]) {
      if (a.update < c.inject) {
        (a.sev == severity::critical ? s.before_injection.critical : s.before_injection.warning) += 1;
      } else if (!detected && a.update < c.inject + c.window &&
                 std::find(f.expected.begin(), f.expected.end(), a.kind) != f.expected.end()) {
        detected = a.update;
      }
    }
    if (detected) {
      ++fs.detected;
      fs.delays.push_back(*detected - c.inject);
      const auto fell = fell_20_percent(r, c.inject);
      if (!fell || *detected < *fell) ++fs.slow_before_fall;
    }
  }
  return s;
}

std::string fmt_delay(const fault_score& f) {
  if (f.delays.empty()) return "-";
  return simic::detail::format("%.3g / %llu", f.median_delay(), static_cast<unsigned long long>(f.max_delay()));
}

std::string markdown(const matrix& m, const std::vector<preset_score>& ps, double seconds) {
  std::string out;
  out += simic::detail::format(
      "Matrix: healthy %zu seeds x %llu updates; every fault x %zu seeds, injected from an update drawn in [%llu, "
      "%llu] to the end of its window (abrupt %llu updates, slow %llu); %.0f s.\n\n",
      m.healthy_seeds.size(), static_cast<unsigned long long>(m.healthy_updates), m.fault_seeds.size(),
      static_cast<unsigned long long>(m.inject_min), static_cast<unsigned long long>(m.inject_max),
      static_cast<unsigned long long>(m.abrupt_window), static_cast<unsigned long long>(m.slow_window), seconds);
  out += "| | simic | reference |\n| --- | --- | --- |\n";
  auto row = [&](const char* what, auto&& f) {
    out += std::string("| ") + what + " | " + f(ps[0]) + " | " + f(ps[1]) + " |\n";
  };
  row("healthy: critical / 1000 updates", [](const preset_score& s) {
    return simic::detail::format("%.1f (%llu)", s.healthy.per_1000(s.healthy.critical),
                                 static_cast<unsigned long long>(s.healthy.critical));
  });
  row("healthy: warnings / 1000 updates", [](const preset_score& s) {
    return simic::detail::format("%.1f (%llu)", s.healthy.per_1000(s.healthy.warning),
                                 static_cast<unsigned long long>(s.healthy.warning));
  });
  row("healthy: updates escalated", [](const preset_score& s) {
    return simic::detail::format("%.1f %%", s.healthy.updates ? 100.0 * static_cast<double>(s.healthy_escalated) /
                                                                    static_cast<double>(s.healthy.updates)
                                                              : 0.0);
  });
  row("before injection: critical / warnings per 1000", [](const preset_score& s) {
    return simic::detail::format("%.1f / %.1f", s.before_injection.per_1000(s.before_injection.critical),
                                 s.before_injection.per_1000(s.before_injection.warning));
  });
  row("healthy anomalies by kind", [](const preset_score& s) {
    std::string t;
    for (const auto& [k, n] : s.healthy_by_kind) t += (t.empty() ? "" : ", ") + k + " " + std::to_string(n);
    return t.empty() ? std::string("none") : t;
  });
  out += "\n| fault | recall simic | delay simic (median / max) | recall reference | delay reference |\n";
  out += "| --- | --- | --- | --- | --- |\n";
  for (std::size_t f = 0; f < faults().size(); ++f) {
    const fault_score &a = ps[0].per_fault[f], &b = ps[1].per_fault[f];
    std::string name = faults()[f].name;
    if (faults()[f].slow) name += " (slow)";
    auto recall = [&](const fault_score& x) {
      std::string t = simic::detail::format("%llu/%llu", static_cast<unsigned long long>(x.detected),
                                            static_cast<unsigned long long>(x.runs));
      if (faults()[f].slow)
        t += simic::detail::format(", %llu before a 20 %% fall", static_cast<unsigned long long>(x.slow_before_fall));
      return t;
    };
    out += "| " + name + " | " + recall(a) + " | " + fmt_delay(a) + " | " + recall(b) + " | " + fmt_delay(b) + " |\n";
  }
  return out;
}

nlohmann::json to_json(const matrix& m, const std::vector<case_spec>& cases, const std::vector<case_result>& results,
                       const std::vector<preset_score>& ps) {
  nlohmann::ordered_json j;
  j["matrix"] = {{"healthy_seeds", m.healthy_seeds},  {"healthy_updates", m.healthy_updates},
                 {"fault_seeds", m.fault_seeds},      {"inject_range", {m.inject_min, m.inject_max}},
                 {"abrupt_window", m.abrupt_window},  {"slow_window", m.slow_window}};
  for (std::size_t p = 0; p < preset_count; ++p) {
    const preset_score& s = ps[p];
    auto& o = j["presets"][preset_names[p]];
    o["healthy"] = {{"updates", s.healthy.updates},
                    {"critical", s.healthy.critical},
                    {"warning", s.healthy.warning},
                    {"critical_per_1000", s.healthy.per_1000(s.healthy.critical)},
                    {"warning_per_1000", s.healthy.per_1000(s.healthy.warning)},
                    {"escalated_updates", s.healthy_escalated},
                    {"by_kind", s.healthy_by_kind}};
    o["before_injection"] = {{"updates", s.before_injection.updates},
                             {"critical_per_1000", s.before_injection.per_1000(s.before_injection.critical)},
                             {"warning_per_1000", s.before_injection.per_1000(s.before_injection.warning)}};
    for (std::size_t f = 0; f < faults().size(); ++f) {
      const fault_score& x = s.per_fault[f];
      nlohmann::ordered_json fj = {{"runs", x.runs},     {"detected", x.detected},
                                   {"delays", x.delays}, {"median_delay", x.delays.empty() ? -1.0 : x.median_delay()},
                                   {"max_delay", x.max_delay()}};
      if (faults()[f].slow) fj["detected_before_20pct_fall"] = x.slow_before_fall;
      o["faults"][faults()[f].name] = fj;
    }
  }
  for (std::size_t i = 0; i < cases.size(); ++i)
    j["cases"].push_back({{"case", cases[i].label()},
                          {"updates_done", results[i].updates_done},
                          {"stopped", results[i].stopped},
                          {"final_mean_return", results[i].mean_return.empty() ? 0.0 : results[i].mean_return.back()},
                          {"anomalies_simic", results[i].anomalies[0].size()},
                          {"anomalies_reference", results[i].anomalies[1].size()},
                          {"seconds", results[i].seconds}});
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int jobs = 2;
  std::string json_path, markdown_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "detection: %s: missing value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      quick = true;
    } else if (a == "--jobs") {
      const std::string v = value();
      jobs = std::atoi(v.c_str());
      if (jobs < 1 || jobs > 64) {
        std::fprintf(stderr, "detection: --jobs: '%s' is not an integer in [1, 64]\n", v.c_str());
        return 2;
      }
    } else if (a == "--json") {
      json_path = value();
    } else if (a == "--markdown") {
      markdown_path = value();
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--jobs N] [--json FILE] [--markdown FILE]\n", argv[0]);
      return 2;
    }
  }
  const matrix m = quick ? quick_matrix() : full_matrix();
  const std::vector<case_spec> cases = cases_of(m);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<case_result> results = run_all(cases, jobs);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int failures = 0;
  for (std::size_t i = 0; i < cases.size(); ++i)
    if (!results[i].error.empty()) {
      std::fprintf(stderr, "detection: %s: %s\n", cases[i].label().c_str(), results[i].error.c_str());
      ++failures;
    }
  std::vector<preset_score> ps;
  for (std::size_t p = 0; p < preset_count; ++p) ps.push_back(score(p, cases, results));
  const std::string md = markdown(m, ps, seconds);
  std::fputs(md.c_str(), stdout);
  if (!markdown_path.empty()) std::ofstream(markdown_path) << md;
  if (!json_path.empty()) std::ofstream(json_path) << to_json(m, cases, results, ps).dump(2) << "\n";
  if (quick) {
    // The suite's assertions: simic's defaults catch every fault, and raise no
    // critical alarm on a healthy run.
    for (std::size_t f = 0; f < faults().size(); ++f) {
      const fault_score& x = ps[0].per_fault[f];
      if (x.detected != x.runs) {
        std::fprintf(stderr, "detection: FAILED: %s detected in %llu of %llu runs\n", faults()[f].name,
                     static_cast<unsigned long long>(x.detected), static_cast<unsigned long long>(x.runs));
        ++failures;
      }
    }
    if (ps[0].healthy.critical != 0) {
      std::fprintf(stderr, "detection: FAILED: %llu critical anomalies on healthy runs\n",
                   static_cast<unsigned long long>(ps[0].healthy.critical));
      ++failures;
    }
  }
  if (failures == 0)
    std::printf("detection: every check passed\n");
  else
    std::printf("detection: %d checks failed\n", failures);
  return failures == 0 ? 0 : 1;
}
