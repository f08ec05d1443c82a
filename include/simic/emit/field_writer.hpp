// The one interface through which an event payload says what it holds: a
// payload's describe(field_writer&) names each of its fields once, with its
// JSON key and, where it has one, its TensorBoard group, and every writer
// (emit/json.hpp, emit/sink_tensorboard.hpp, a user's own) implements this
// interface. A payload of the user's plugs in the same way: a struct with a
// `name` and a describe() (docs/events.md, "Events of your own").
//
// The JSON writer writes every field under its key, in call order; the
// TensorBoard writer (scalars() true) writes the number fields that name a
// group as "<group>/<key>", plus what scalar() and tally() give. Nothing here
// allocates: keys and groups are views the payload owns for the call.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace simic {
inline namespace v0 {

class field_writer {
 public:
  virtual ~field_writer() = default;

  // Number fields. `group` non-empty: also the TensorBoard scalar "<group>/<key>".
  virtual void real(std::string_view key, double v, std::string_view group = {}) = 0;  // NaN / Inf kept
  virtual void count(std::string_view key, std::uint64_t v, std::string_view group = {}) = 0;
  virtual void integer(std::string_view key, std::int64_t v) = 0;
  virtual void flag(std::string_view key, bool v, std::string_view group = {}) = 0;
  virtual void text(std::string_view key, std::string_view v) = 0;
  virtual void integers(std::string_view key, std::span<const std::int64_t> v) = 0;
  virtual void texts(std::string_view key, std::span<const std::string> v) = 0;

  // Structure: an array under `key`, an object under `key` (empty key: an
  // element of the enclosing array), closed by end().
  virtual void begin_array(std::string_view key) = 0;
  virtual void begin_object(std::string_view key = {}) = 0;
  virtual void end() = 0;

  // TensorBoard only. Whether this writer takes scalars: a payload builds a
  // tag (a layer's name in it, say) only when it does.
  virtual bool scalars() const noexcept { return false; }
  // A scalar under a built tag.
  virtual void scalar(std::string_view tag, double v) {
    (void)tag;
    (void)v;
  }
  // The running count of `tag`'s calls so far in this writer's file (a
  // staircase per anomaly kind).
  virtual void tally(std::string_view tag) { (void)tag; }
};

}  // namespace v0
}  // namespace simic
