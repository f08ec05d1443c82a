// Telemetry configuration and auto-escalation.
//
// A config holds the level the user asked for and the escalation state:
// after an anomaly of `escalate_on` severity (critical by default),
// telemetry runs at DEBUG for `escalation_epochs` epochs (counted by tick())
// or `escalation_checks` checks (counted by count_check()), whichever ends
// first, and then returns to the configured level by itself. When each sensor reads
// is the sensor's own option (sensors/sensor.hpp); the config says at which
// level each category collects.
#pragma once

#include <cstdint>

#include "simic/core/anomaly.hpp"
#include "simic/core/error.hpp"
#include "simic/core/level.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

struct config_options {
  level configured = level::normal;
  bool auto_escalate = true;
  std::uint32_t escalation_epochs = defaults::escalation_epochs;  // epochs at DEBUG after an anomaly (0: none)
  std::uint32_t escalation_checks = defaults::escalation_checks;  // and at most this many checks (0: no limit)
  severity escalate_on = severity::critical;  // the least severity that escalates
  severity_table severities{};                // per-kind severity, stamped on every anomaly
  // The missing-signal guard: a detector that has received none of the
  // signals it reads in this many checks is reported once (signal_missing,
  // a warning). 0: off.
  std::uint32_t missing_signal_checks = 1000;
};

class config {
 public:
  config() = default;
  explicit config(const config_options& o) : opts_(validated(o)) {}

  const config_options& options() const noexcept { return opts_; }
  level configured_level() const noexcept { return opts_.configured; }
  void set_level(level l) {
    detail::require(static_cast<unsigned>(l) <= 3u, "simic::config::set_level", "level", static_cast<unsigned>(l),
                    "OFF, MINIMAL, NORMAL or DEBUG");
    opts_.configured = l;
  }
  severity severity_of(anomaly_kind k) const noexcept { return opts_.severities.of(k); }
  // Whether an anomaly of this severity escalates.
  bool escalates(severity s) const noexcept { return s >= opts_.escalate_on; }

  // DEBUG while an escalation lasts, else the configured level. OFF stays OFF:
  // a user who turned telemetry off is not overridden.
  level effective_level() const noexcept {
    if (opts_.configured == level::off) return level::off;
    return escalation_left_ > 0 ? level::debug : opts_.configured;
  }
  bool escalated() const noexcept { return effective_level() != opts_.configured; }
  std::uint32_t escalation_epochs_left() const noexcept { return escalation_left_; }
  std::uint32_t escalation_checks_left() const noexcept { return checks_left_; }

  template <Category C>
  bool should_collect() const noexcept {
    return effective_level() >= C::min_level && effective_level() != level::off;
  }
  // Throws std::invalid_argument for a category_id outside the four.
  bool should_collect(category_id c) const {
    return effective_level() >= min_level(c) && effective_level() != level::off;
  }

  // Called on an anomaly: (re)starts the escalation window. Returns true when
  // this call moved the effective level up (an escalation started).
  bool escalate() noexcept {
    if (!opts_.auto_escalate || opts_.escalation_epochs == 0 || opts_.configured == level::off) return false;
    const bool was = escalated();
    escalation_left_ = opts_.escalation_epochs;
    checks_left_ = opts_.escalation_checks;
    return !was && escalated();
  }

  // Called once per check that did not (re)start an escalation. Returns true
  // when this check ended one (its last check at DEBUG).
  bool count_check() noexcept {
    if (escalation_left_ == 0 || checks_left_ == 0) return false;  // none, or no check limit
    const bool was = escalated();
    if (--checks_left_ == 0) escalation_left_ = 0;
    return was && !escalated();
  }

  // Called once per epoch. Returns true when this tick ended an escalation.
  bool tick() noexcept {
    if (escalation_left_ == 0) return false;
    const bool was = escalated();
    if (--escalation_left_ == 0) checks_left_ = 0;
    return was && !escalated();
  }

  // Escalation state for save/load (the options are the user's, not state):
  // epochs and checks left. Both or neither.
  std::uint32_t escalation_state() const noexcept { return escalation_left_; }
  void load_escalation_state(std::uint32_t left, std::uint32_t checks_left = 0) {
    constexpr auto where = "simic::config::load_escalation_state";
    detail::require(left <= opts_.escalation_epochs, where, "left", left, "0..escalation_epochs");
    detail::require(checks_left <= opts_.escalation_checks && (checks_left == 0 || left > 0), where, "checks_left",
                    checks_left, "0..escalation_checks, and 0 when no epoch is left");
    escalation_left_ = left;
    checks_left_ = checks_left;
  }

 private:
  static config_options validated(const config_options& o) {
    constexpr auto where = "simic::config";
    detail::require(static_cast<unsigned>(o.configured) <= 3u, where, "configured",
                    static_cast<unsigned>(o.configured), "OFF, MINIMAL, NORMAL or DEBUG");
    detail::require(static_cast<unsigned>(o.escalate_on) <= 1u, where, "escalate_on",
                    static_cast<unsigned>(o.escalate_on), "warning or critical");
    return o;
  }

  config_options opts_{};
  std::uint32_t escalation_left_ = 0;
  std::uint32_t checks_left_ = 0;
};

}  // namespace v0
}  // namespace simic
