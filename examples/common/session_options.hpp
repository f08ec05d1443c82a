// The simic session options an example trainer runs with, and the reference
// preset's monitor under them (--detectors/--preset reference).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "simic/core/level.hpp"
#include "simic/presets/reference.hpp"
#include "simic/session_options.hpp"

namespace examples_common {

// The level and escalation asked for, `max_skips` consecutive skipped steps
// before stopping, and a hub that blocks rather than drops when its queue is
// full: a trainer's events are few and the JSONL sink is fast; losing one
// would be worse than waiting. Run id "TRAINER-seedN", device cpu.
inline simic::session_options trainer_session_options(std::string_view trainer, std::uint64_t seed, simic::level level,
                                                      std::uint32_t escalation_epochs, std::uint32_t max_skips) {
  simic::session_options s;
  s.config.configured = level;
  s.config.escalation_epochs = escalation_epochs;
  s.max_consecutive_skips = max_skips;
  s.hub = {.capacity = 8192,
           .overflow = simic::overflow_policy::block,
           .context = {.run_id = std::string(trainer) + "-seed" + std::to_string(seed), .device = "cpu"}};
  return s;
}

// The reference preset (its thresholds, escalation on any anomaly) with the
// session's level, escalation and skip limit.
inline simic::reference_monitor reference_monitor_for(const simic::session_options& s) {
  return simic::make_reference_monitor(simic::reference_config_options(s.config), s.max_consecutive_skips);
}

}  // namespace examples_common
