// bench/detection: scores simic's detectors on every example trainer, run
// in-process over a matrix of healthy runs and injected faults, for two
// detector configurations side by side: simic's preset for the trainer and
// the reference preset (simic::make_reference_monitor()).
//
// matrix.hpp holds what is common (the matrix, the cases' forked workers,
// the scores, the reports); each trainer its faults, matrices and cases:
//   ppo      examples/ppo_lstm (ppo_trainer.hpp): one run per case, its
//            recorded signals replayed through both presets; unit: the update
//   char_lm  examples/char_lm (char_lm_trainer.hpp): one run per case and
//            preset; unit: the optimizer step
//
// Scores, per configuration:
//   recall           a fault counts as detected when an anomaly of one of its
//                    expected kinds is reported in [injection, injection + window)
//   delay            steps from the injection to that anomaly (median, max)
//   false alarms     anomalies per 1000 updates (PPO) or 10,000 steps (LM), by
//                    severity: on healthy runs, and on fault runs before the injection
//   first 10 %       healthy anomalies in the first 10 % of training
//   escalated        share of healthy steps that ended at DEBUG
//   slow faults      detected before the task metric showed the damage (PPO:
//                    the mean return fell 20 %; LM: the training loss rose 20 %)
//
//   detection [--trainer ppo|char_lm|all] [--quick] [--steps N] [--jobs N]
//             [--json FILE] [--markdown FILE]
//
// --quick runs a small matrix and exits non-zero unless every fault was
// detected by simic's preset and its healthy runs had no critical anomaly.
// --steps sets the run length of the language model's matrix (PPO's matrix
// is fixed). With --trainer all (the default), the markdown has one section
// per trainer and the JSON one object per trainer, keyed by its name.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "char_lm_trainer.hpp"
#include "matrix.hpp"
#include "ppo_trainer.hpp"

int main(int argc, char** argv) {
  using namespace detection;
  bool quick = false;
  int jobs = 2;
  std::uint64_t steps = 0;
  std::string which = "all", json_path, markdown_path;
  const std::string usage = std::string("usage: ") + argv[0] +
                            " [--trainer ppo|char_lm|all] [--quick] [--steps N] [--jobs N] [--json FILE]"
                            " [--markdown FILE]\n";
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
    } else if (a == "--steps") {
      const std::string v = value();
      const long long n = std::atoll(v.c_str());
      if (n < 20 || n > 1000000) {
        std::fprintf(stderr, "detection: --steps: '%s' is not an integer in [20, 1000000]\n", v.c_str());
        return 2;
      }
      steps = static_cast<std::uint64_t>(n);
    } else if (a == "--trainer") {
      which = value();
      if (which != "ppo" && which != "char_lm" && which != "all") {
        std::fprintf(stderr, "detection: --trainer: '%s' is not one of ppo, char_lm, all\n", which.c_str());
        return 2;
      }
    } else if (a == "--json") {
      json_path = value();
    } else if (a == "--markdown") {
      markdown_path = value();
    } else {
      std::fputs(usage.c_str(), stderr);
      return 2;
    }
  }
  std::vector<trainer> trainers;
  if (which == "ppo" || which == "all") trainers.push_back(ppo_trainer());
  if (which == "char_lm" || which == "all") trainers.push_back(char_lm_trainer());
  const bool sections = trainers.size() > 1;

  int failures = 0;
  std::string md;
  nlohmann::ordered_json json;
  for (const trainer& t : trainers) {
    const matrix m = t.make_matrix(quick, steps);
    const std::vector<case_spec> cases = t.cases_of(m);
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<case_result> results = run_all(t, cases, jobs);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (std::size_t i = 0; i < cases.size(); ++i)
      if (!results[i].error.empty()) {
        std::fprintf(stderr, "detection: %s: %s: %s\n", t.name.c_str(), t.label(cases[i]).c_str(),
                     results[i].error.c_str());
        ++failures;
      }
    std::vector<preset_score> ps;
    for (std::size_t p = 0; p < preset_count; ++p) ps.push_back(score(p, t, cases, results));
    std::string section = markdown(t, m, ps, seconds);
    if (sections) section = "### " + t.title + "\n\n" + section + "\n";
    std::fputs(section.c_str(), stdout);
    std::fflush(stdout);
    md += section;
    if (sections)
      json[t.name] = to_json(t, m, cases, results, ps);
    else
      json = to_json(t, m, cases, results, ps);
    if (quick) failures += quick_failures(t, ps[0]);
  }
  if (!markdown_path.empty()) std::ofstream(markdown_path) << md;
  if (!json_path.empty()) std::ofstream(json_path) << json.dump(2) << "\n";
  if (failures == 0)
    std::printf("detection: every check passed\n");
  else
    std::printf("detection: %d checks failed\n", failures);
  return failures == 0 ? 0 : 1;
}
