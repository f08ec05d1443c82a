// Where an example trainer's events go: the JSONL file (--events) and the
// TensorBoard event file (--tensorboard), each opened before the run starts
// so that an unusable path is a usage error (std::invalid_argument), a count
// of the events by name, and how long closing them may take.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

#include "simic/emit/sink_callback.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "summary.hpp"

namespace examples_common {

// How long close() waits for the sinks at the end of a run (also after a
// signal): a hung file system costs at most this, and what it held back is
// counted undelivered.
inline constexpr std::chrono::milliseconds close_deadline{3000};

// The JSONL file at `path` ("" : none, null); the file's old content goes only
// when the first event is written (jsonl_sink). Else "--events: cannot write
// 'PATH': WHY".
inline std::shared_ptr<simic::jsonl_sink> open_events(const std::string& path) {
  if (path.empty()) return nullptr;
  try {
    return std::make_shared<simic::jsonl_sink>(path);
  } catch (const std::system_error& e) {
    throw std::invalid_argument("--events: cannot write '" + path + "': " + e.code().message());
  }
}

// A new TensorBoard event file in `dir` ("" : none, null). Else
// "--tensorboard: cannot write in 'DIR': WHY".
inline std::shared_ptr<simic::tensorboard_sink> open_tensorboard(const std::string& dir) {
  if (dir.empty()) return nullptr;
  try {
    return std::make_shared<simic::tensorboard_sink>(dir);
  } catch (const std::system_error& e) {
    throw std::invalid_argument("--tensorboard: cannot write in '" + dir + "': " + e.code().message());
  }
}

// Counts every event by name into `counts` (on the hub's thread: read it
// after close()).
inline std::shared_ptr<simic::sink> counting_sink(std::shared_ptr<std::map<std::string, std::uint64_t>> counts) {
  return std::make_shared<simic::callback_sink>(
      [counts](const simic::event& e) { ++(*counts)[std::string(e.name())]; }, simic::callback_sink::finish_fn{},
      "event_counts");
}

// Closes the run's session (waiting at most close_deadline) and notes what
// came of its events in the summary: the hub's counts and the --events
// file's lines (note_events), the events by name (`counts`, counting_sink),
// the checks, and each sensor that measured.
template <class Summary, class Session>
void note_close(Summary& sum, Session& session, const std::shared_ptr<simic::jsonl_sink>& events,
                const std::map<std::string, std::uint64_t>& counts) {
  note_events(sum, session.close(close_deadline), events);
  sum.event_counts = counts;
  sum.checks = session.checks();
  session.for_each_sensor([&](const auto& s) {
    if (s.measurements() > 0) sum.sensor_events[std::string(s.name)] = s.measurements();
  });
}

}  // namespace examples_common
