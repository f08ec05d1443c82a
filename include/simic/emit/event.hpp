// A telemetry event: a stamp (wall time, update, epoch), an optional context
// (run id, env id, device, rank) and one payload of any type that names
// itself and describes its fields (EventPayload). The list of payloads is
// open: the session's own are in emit/events.hpp, each sensor's is in its
// sensor's header, the profiler's in profile/, and a user's plugs in the
// same way. Every writer reads a payload only through describe()
// (emit/field_writer.hpp), so a payload's fields are written down once.
//
// Immutable: no setters; context is added by with_context(), which returns a
// copy, so a caller's event is never changed behind its back (the hub adds
// its default context to its own copy). Copies share the payload. No
// LibTorch here.
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "simic/emit/field_writer.hpp"

namespace simic {
inline namespace v0 {

// The event fields that measure the process rather than the training: the
// time stamp, the resident memory, and the sizes of serialized snapshots
// (LibTorch keys an optimizer's saved state by tensor addresses, whose digits
// vary between processes). A resumed run's events (session_state.hpp) equal
// the uninterrupted run's but for these.
inline constexpr std::array<std::string_view, 5> process_measured_fields{"time", "rss_bytes", "bytes", "held_bytes",
                                                                          "snapshot_bytes"};

// Where an event comes from. Empty strings and absent numbers are not written.
struct event_context {
  std::string run_id{};
  std::optional<std::int64_t> env_id{};
  std::string device{};
  std::optional<std::int64_t> rank{};

  bool empty() const noexcept { return run_id.empty() && !env_id && device.empty() && !rank; }
  // This context with its unset fields taken from `defaults`.
  event_context over(const event_context& defaults) const {
    event_context out = *this;
    if (out.run_id.empty()) out.run_id = defaults.run_id;
    if (!out.env_id) out.env_id = defaults.env_id;
    if (out.device.empty()) out.device = defaults.device;
    if (!out.rank) out.rank = defaults.rank;
    return out;
  }
  friend bool operator==(const event_context&, const event_context&) = default;
};

// A payload: a copyable struct with a static `name` (the JSON "event") and
// describe(field_writer&) const, which names each field once.
template <class P>
concept EventPayload = std::copy_constructible<P> && requires(const P& p, field_writer& w) {
  { P::name } -> std::convertible_to<std::string_view>;
  p.describe(w);
};

class event {
 public:
  using clock = std::chrono::system_clock;

  template <EventPayload P>
  event(std::uint64_t update, std::uint64_t epoch, P payload, clock::time_point time = clock::now())
      : time_(time),
        update_(update),
        epoch_(epoch),
        payload_(std::make_shared<const P>(std::move(payload))),
        type_(&type_of<P>) {}

  std::string_view name() const noexcept { return type_->name; }
  clock::time_point time() const noexcept { return time_; }
  std::uint64_t update() const noexcept { return update_; }
  std::uint64_t epoch() const noexcept { return epoch_; }
  const event_context& context() const noexcept { return context_; }
  // The payload's fields, to `w`.
  void describe(field_writer& w) const { type_->describe(payload_.get(), w); }

  template <EventPayload P>
  bool is() const noexcept { return type_ == &type_of<P>; }
  // The payload if it is a P, else nullptr.
  template <EventPayload P>
  const P* get_if() const noexcept { return is<P>() ? static_cast<const P*>(payload_.get()) : nullptr; }

  // A copy of this event carrying `ctx` (its unset fields from the current context).
  event with_context(const event_context& ctx) const& {
    event out = *this;
    out.context_ = ctx.over(context_);
    return out;
  }
  event with_context(const event_context& ctx) && {
    context_ = ctx.over(context_);
    return std::move(*this);
  }
  // A copy of this event whose unset context fields come from `defaults`
  // (what a hub does with its default context).
  event with_default_context(const event_context& defaults) const& {
    event out = *this;
    out.context_ = context_.over(defaults);
    return out;
  }
  event with_default_context(const event_context& defaults) && {
    context_ = context_.over(defaults);
    return std::move(*this);
  }

 private:
  // What an event knows of its payload's type; one per type, its address the type's identity.
  struct payload_type {
    std::string_view name;
    void (*describe)(const void*, field_writer&);
  };
  template <class P>
  static constexpr payload_type type_of{P::name, [](const void* p, field_writer& w) { static_cast<const P*>(p)->describe(w); }};

  clock::time_point time_;
  std::uint64_t update_;
  std::uint64_t epoch_;
  event_context context_;
  std::shared_ptr<const void> payload_;
  const payload_type* type_;
};

namespace detail {
// An event's time as every sink writes it: seconds since the Unix epoch, to
// the microsecond.
inline double unix_seconds(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return static_cast<double>(us) / 1e6;
}
}  // namespace detail

}  // namespace v0
}  // namespace simic
