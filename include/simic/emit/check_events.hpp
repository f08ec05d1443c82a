// The events of one check, written by simic::session after its sensors'
// own: the step's record (update), the response when it is not "proceed",
// the clears and the anomalies (with a performance drop's own event beside
// its anomaly), and the start of an escalation. One place, so that their
// order is the schema's (docs/events.md).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "simic/core/anomaly.hpp"
#include "simic/core/level.hpp"
#include "simic/core/response.hpp"
#include "simic/core/signal_agreement.hpp"
#include "simic/core/signals.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/hub.hpp"

namespace simic {
inline namespace v0 {

// The step's record: the caller's metrics, completed from the checked signals.
// `step_in_update`: the step's place in its update, for a trainer with several
// steps per update (session::begin_update); none for one step per update.
inline update_metrics step_record(const signals& s, update_metrics m, std::optional<std::uint64_t> step_in_update) {
  for (const scalar_signal& f : scalar_signals)
    if (std::optional<double>* field = f.step_record ? step_record_field(m, f.field) : nullptr; field && !*field)
      *field = s.*f.member;
  if (!m.entropy && !s.entropy.empty()) {
    double sum = 0.0;
    for (const head_entropy& h : s.entropy) sum += h.normalized;
    m.entropy = sum / static_cast<double>(s.entropy.size());
  }
  if (step_in_update) m.extra.push_back({"step", static_cast<double>(*step_in_update)});
  if (s.performance) m.extra.push_back({"performance", *s.performance});
  return m;
}

// What one check did, for its events.
struct check_outcome {
  const anomaly_report& report;
  const response& resp;
  const response_state& responses;  // the skip counts after this check
  level before;                     // the effective level before the check
  level after;                      // and after it
  std::uint32_t escalation_epochs;
  std::uint32_t escalation_checks;
  const signal_agreement* agreement;  // data-parallel: names the anomalies' ranks; null: one process
};

// The check's events after its step record: its response, clears, anomalies
// and a change of level (alone for a check with no step: session::close()'s).
inline void emit_check_outcome(hub& h, std::uint64_t update, std::uint64_t epoch, const check_outcome& c) {
  if (c.resp.act != action::proceed)
    h.emit(update, epoch,
           response_event{.act = c.resp.act,
                          .reason = c.resp.reason,
                          .consecutive_skips = c.responses.consecutive_skips,
                          .total_skips = c.responses.total_skips});
  for (const anomaly_clear& x : c.report.clears())
    h.emit(update, epoch, anomaly_clear_event{.kind = x.kind, .duration = x.duration, .value = x.value});
  std::string kinds;
  for (const anomaly& a : c.report) {
    anomaly_event e = anomaly_event::of(a, c.after);
    if (c.agreement) e.origin_ranks = c.agreement->origin_of(a.kind);
    h.emit(update, epoch, std::move(e));
    if (a.kind == anomaly_kind::performance_degradation && a.baseline) {
      const double base = *a.baseline, scale = std::abs(base);
      h.emit(update, epoch,
             performance_degradation_event{.current = a.value,
                                           .rolling_mean = base,
                                           .drop = (base - a.value) / scale,
                                           .threshold = (base - a.threshold) / scale});
    }
    const std::string_view k = to_string(a.kind);
    if (kinds.find(k) == std::string::npos) kinds.append(kinds.empty() ? "" : ",").append(k);
  }
  if (c.after > c.before)
    h.emit(update, epoch,
           escalation_start_event{.from = c.before, .to = c.after, .epochs = c.escalation_epochs,
                                                 .checks = c.escalation_checks, .reason = kinds});
  else if (c.after < c.before)  // the escalation's last check (config_options::escalation_checks)
    h.emit(update, epoch, escalation_end_event{.from = c.before, .to = c.after});
}

inline void emit_check_events(hub& h, std::uint64_t update, std::uint64_t epoch, update_metrics record,
                              const check_outcome& c) {
  h.emit(update, epoch, std::move(record));
  emit_check_outcome(h, update, epoch, c);
}

}  // namespace v0
}  // namespace simic
