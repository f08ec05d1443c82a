// Events as JSON (nlohmann-json), the schema of docs/events.md.
//
// Every object has "event", "time" (seconds since the Unix epoch, UTC, with
// microseconds), "update", "epoch", the context fields that are set, then the
// payload's own fields. Non-finite numbers are written as the strings "nan",
// "inf" and "-inf": JSON has no such numbers, and a NaN gradient norm written
// as null would hide exactly what the telemetry exists to show.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/event.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/emit/names.hpp"
#include "simic/emit/sink.hpp"

namespace simic {
inline namespace v0 {
namespace detail {

using json_t = nlohmann::ordered_json;

inline json_t json_number(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}

// A payload's fields as members of one JSON object, in call order.
class json_writer final : public field_writer {
 public:
  explicit json_writer(json_t& root) { stack_.push_back(&root); }

  void real(std::string_view key, double v, std::string_view) override { put(key, json_number(v)); }
  void count(std::string_view key, std::uint64_t v, std::string_view) override { put(key, v); }
  void integer(std::string_view key, std::int64_t v) override { put(key, v); }
  void flag(std::string_view key, bool v, std::string_view) override { put(key, v); }
  void text(std::string_view key, std::string_view v) override { put(key, utf8_replaced(v)); }
  void integers(std::string_view key, std::span<const std::int64_t> v) override {
    put(key, json_t(std::vector<std::int64_t>(v.begin(), v.end())));
  }
  void texts(std::string_view key, std::span<const std::string> v) override {
    std::vector<std::string> valid;
    valid.reserve(v.size());
    for (const std::string& s : v) valid.push_back(utf8_replaced(s));
    put(key, json_t(std::move(valid)));
  }
  void begin_array(std::string_view key) override { stack_.push_back(&put(key, json_t::array())); }
  void begin_object(std::string_view key) override { stack_.push_back(&put(key, json_t::object())); }
  void end() override {
    if (stack_.size() > 1) stack_.pop_back();
  }

 private:
  // In an array: appended (the key is ignored); in an object: under `key`
  // made valid UTF-8 (utf8_replaced). A key the object already has (a field
  // named twice, or two names equal after the replacement) gets "#2", "#3",
  // ... rather than overwriting it: nothing described is lost.
  json_t& put(std::string_view key, json_t v) {
    json_t& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return top.back();
    }
    const std::string valid = utf8_replaced(key);
    std::string name = valid;
    for (std::uint64_t k = 2; top.contains(name); ++k) name = valid + "#" + std::to_string(k);
    json_t& slot = top[name];
    slot = std::move(v);
    return slot;
  }
  std::vector<json_t*> stack_;
};

inline void put_context(json_t& j, const event_context& c) {
  if (!c.run_id.empty()) j["run_id"] = utf8_replaced(c.run_id);
  if (c.env_id) j["env_id"] = *c.env_id;
  if (!c.device.empty()) j["device"] = utf8_replaced(c.device);
  if (c.rank) j["rank"] = *c.rank;
}

}  // namespace detail

// The JSON object of one event (keys in the order of docs/events.md).
inline nlohmann::ordered_json to_json(const event& e) {
  nlohmann::ordered_json j;
  j["event"] = utf8_replaced(e.name());
  j["time"] = detail::unix_seconds(e.time());
  j["update"] = e.update();
  j["epoch"] = e.epoch();
  detail::put_context(j, e.context());
  detail::json_writer w(j);
  e.describe(w);
  return j;
}

// One line of a JSONL file, newline included. Invalid UTF-8 in strings and
// keys was replaced when the JSON was built (utf8_replaced, emit/names.hpp:
// the replacement the TensorBoard sink shares); nlohmann's own replacement
// stays as a second guard, so no line fails.
inline std::string to_json_line(const event& e) {
  std::string s = to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s.push_back('\n');
  return s;
}

// The hub's final counts as the last line of a JSONL file ("event": "hub_stats").
// `written`, when given: the events this file got (delivered less its failures).
inline std::string hub_stats_line(const hub_counts& c, std::uint64_t update, std::uint64_t epoch,
                                  std::optional<std::uint64_t> written,
                                  std::chrono::system_clock::time_point time = std::chrono::system_clock::now()) {
  nlohmann::ordered_json j;
  j["event"] = "hub_stats";
  j["time"] = detail::unix_seconds(time);
  j["update"] = update;
  j["epoch"] = epoch;
  j["emitted"] = c.emitted;
  j["delivered"] = c.delivered;
  j["dropped"] = c.dropped;
  j["failed"] = c.failed;
  j["undelivered"] = c.undelivered;
  if (written) j["written"] = *written;
  std::string s = j.dump();
  s.push_back('\n');
  return s;
}
inline std::string hub_stats_line(const hub_counts& c, std::uint64_t update, std::uint64_t epoch,
                                  std::chrono::system_clock::time_point time = std::chrono::system_clock::now()) {
  return hub_stats_line(c, update, epoch, std::nullopt, time);
}

}  // namespace v0
}  // namespace simic
