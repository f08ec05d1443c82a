// How an event is written by simic's two file writers, for the tests of the
// payloads that sensors and the profiler define: its JSON object (parsed back
// from the JSONL line) and its TensorBoard scalars.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/event.hpp"
#include "simic/emit/json.hpp"
#include "simic/emit/sink_tensorboard.hpp"

// For doctest's (and glog's, under LibTorch) printing of failed comparisons.
namespace simic {
inline namespace v0 {
inline std::ostream& operator<<(std::ostream& o, const tensorboard_scalar& s) { return o << s.tag << '=' << s.value; }
}  // namespace v0
}  // namespace simic

namespace simic::test {

// Every event as its JSON text without the fields that measure the process
// rather than the training (simic::process_measured_fields): two runs that
// should write the same events compare equal in these.
inline std::vector<std::string> timeless(const std::vector<simic::event>& es) {
  std::vector<std::string> out;
  for (const auto& e : es) {
    auto j = simic::to_json(e);
    for (const std::string_view f : simic::process_measured_fields) j.erase(std::string(f));
    out.push_back(j.dump());
  }
  return out;
}

inline nlohmann::json json_of(const simic::event& e) {
  const std::string line = simic::to_json_line(e);
  return nlohmann::json::parse(line);
}

inline std::vector<simic::tensorboard_scalar> scalars_of(const simic::event& e) {
  simic::tensorboard_tally t;
  return simic::tensorboard_scalars(e, t);
}

inline std::vector<std::string> tags_of(const std::vector<simic::tensorboard_scalar>& s) {
  std::vector<std::string> out;
  for (const auto& x : s) out.push_back(x.tag);
  return out;
}

}  // namespace simic::test
