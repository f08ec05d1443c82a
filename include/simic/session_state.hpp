// A whole simic::session saved and loaded through LibTorch archives: the
// monitor's state, the session's counters and held figures, and the state
// of every sensor that keeps one (sensors/sensor.hpp: save/stage), beside
// the model and optimizer in the trainer's own checkpoint. A run stopped at
// a step boundary and resumed from such a checkpoint produces the same
// events as the uninterrupted run, but for simic::process_measured_fields
// (emit/event.hpp).
//
// Loading is all or nothing: every part is read and checked (formats,
// checksums, ranges) before any is applied; a failure throws
// simic::archive_error and leaves the session as it was.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "simic/archive/torch_archive.hpp"
#include "simic/session.hpp"

namespace simic {
inline namespace v0 {

// What a load restores. A rollback (recovery.hpp) restores the judgement:
// the monitor and the sensors; the session's counters go on, so that event
// numbering never goes back.
enum class session_parts : unsigned char { all, judgement };

namespace detail {
// The session's judgement and counters as they stand, a deferred check's
// pending step aside: what a rollback's snapshot restores (recovery.hpp
// drops that step when it rolls back).
template <class Monitor, Sensor... Sensors>
void save_session_state(torch::serialize::OutputArchive& ar, const session<Monitor, Sensors...>& s,
                        const std::string& prefix) {
  save_state(ar, s.monitor().state(), prefix + ".monitor");
  save_state(ar, s.state(), prefix + ".counters");
  s.for_each_sensor([&](const auto& x) {
    detail::sensor_save(x, ar, prefix + ".sensor." + std::string(std::decay_t<decltype(x)>::name), s.weights());
  });
}
}  // namespace detail

// Refuses (std::logic_error) a session whose deferred check has a step
// pending: its verdict and events would be lost. flush() it first.
template <class Monitor, Sensor... Sensors>
void save_session(torch::serialize::OutputArchive& ar, const session<Monitor, Sensors...>& s,
                  const std::string& prefix = "simic.session") {
  if (const auto p = s.pending())
    throw std::logic_error("simic::save_session: the session's deferred check of update " + std::to_string(p->update) +
                           " is pending; call flush() first, or its verdict and events are lost");
  detail::save_session_state(ar, s, prefix);
}

// Reads and checks `parts` of a saved session without changing it; returns
// what applies them (which cannot fail).
template <class Monitor, Sensor... Sensors>
std::function<void()> stage_session(torch::serialize::InputArchive& ar, session<Monitor, Sensors...>& s,
                                    session_parts parts = session_parts::all,
                                    const std::string& prefix = "simic.session") {
  using S = session<Monitor, Sensors...>;
  typename Monitor::state_type monitor = s.monitor().state();
  load_state(ar, monitor, prefix + ".monitor");
  typename S::state_type counters = s.state();
  if (parts == session_parts::all) {
    load_state(ar, counters, prefix + ".counters");
    try {
      S::check_state(counters);
    } catch (const std::invalid_argument& e) {
      throw archive_error(std::string("simic::stage_session: ") + e.what());
    }
  }
  std::vector<std::function<void()>> sensors;
  s.for_each_sensor([&](auto& x) {
    if (auto commit = detail::sensor_stage(x, ar, prefix + ".sensor." + std::string(std::decay_t<decltype(x)>::name)))
      sensors.push_back(std::move(commit));
  });
  return [&s, parts, monitor = std::move(monitor), counters, sensors = std::move(sensors)] {
    s.monitor().load(monitor);
    if (parts == session_parts::all) s.load(counters);
    for (const auto& commit : sensors) commit();
  };
}

template <class Monitor, Sensor... Sensors>
void load_session(torch::serialize::InputArchive& ar, session<Monitor, Sensors...>& s,
                  const std::string& prefix = "simic.session") {
  stage_session(ar, s, session_parts::all, prefix)();
}

}  // namespace v0
}  // namespace simic
