// A monitor fed a synthetic training history: healthy, then drifting, then
// exploding. Prints what it detects, what it tells the trainer to do, and how
// the telemetry level escalates to DEBUG and comes back. No LibTorch needed.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "simic/simic.hpp"

int main() {
  using namespace simic;
  default_monitor m;  // every shipped detector, simic's defaults
  // simic's models warm up on the first 24 checks, so the history starts with 30 healthy ones
  constexpr std::uint64_t updates = 74, updates_per_epoch = 2;
  constexpr std::uint64_t drift_at = 30, recover_at = 38, explode_at = 54, nan_at = 64;
  const head_entropy heads[] = {{"move", 0.8}, {"fire", 0.6}};
  std::map<std::string, int> seen;

  std::printf("%-7s %-9s %-10s %-8s %-10s %s\n", "update", "phase", "grad norm", "level", "response", "anomalies");
  for (std::uint64_t u = 0; u < updates; ++u) {
    const char* phase = u < drift_at     ? "healthy"
                        : u < recover_at ? "drifting"
                        : u < explode_at ? "recovered"
                                         : "exploding";
    signals s;
    s.progress = training_progress(u + 1, updates);
    s.entropy = heads;
    s.ratio_min = 0.85;
    s.ratio_max = 1.15;
    s.approx_kl = 0.012;
    s.explained_variance = 0.6;
    s.loss = 0.4;
    gradient_signal g;
    g.total_norm = 0.8 + 0.02 * std::sin(static_cast<double>(u));  // healthy: steady
    g.min_param_norm = 1e-3;
    g.max_param_norm = 0.5;
    g.parameters = 24;
    if (u >= drift_at && u < recover_at) g.total_norm *= 1.0 + 0.2 * static_cast<double>(u - drift_at + 1);  // drifting
    if (u >= explode_at) {  // exploding
      g.total_norm *= 10.0;
      g.max_param_norm = 40.0 * static_cast<double>(u - explode_at + 1);
      g.exploding = 3;
      s.approx_kl = 0.3;
      s.ratio_max = 7.5;
    }
    if (u >= nan_at) {  // and finally NaN
      g.nan_count = 12;
      g.total_norm = std::nan("");
    }
    g.health = gradient_health(g.vanishing, g.exploding, g.parameters);
    s.gradients = g;
    s.performance = u < explode_at ? 150.0 + static_cast<double>(u) : 60.0;

    const check_result& r = m.check(s);
    std::string kinds;
    for (const anomaly& a : r.report) {
      kinds += (kinds.empty() ? "" : ", ") + std::string(to_string(a.kind));
      ++seen[std::string(to_string(a.kind))];
    }
    std::printf("%-7llu %-9s %-10.4g %-8s %-10s %s\n", static_cast<unsigned long long>(u), phase, g.total_norm,
                std::string(to_string(m.effective_level())).c_str(), std::string(to_string(r.resp.act)).c_str(),
                kinds.empty() ? "-" : kinds.c_str());
    if (r.escalation_started) std::printf("        -> escalated to DEBUG for %u epochs\n", m.cfg().escalation_epochs_left());
    if (r.resp.act == action::stop) {
      std::printf("        -> stop: %s\n", r.resp.reason.c_str());
      break;
    }
    if ((u + 1) % updates_per_epoch == 0 && m.tick()) std::printf("        -> escalation expired, back to NORMAL\n");
  }
  std::printf("\nanomalies seen:\n");
  for (const auto& [kind, n] : seen) std::printf("  %-24s %d\n", kind.c_str(), n);
  std::printf("optimizer steps skipped: %llu\n", static_cast<unsigned long long>(m.responses().total_skips));
  return 0;
}
