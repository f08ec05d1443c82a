// What a sensor is to simic::session<Monitor, Sensors...>: the session
// composes sensors the way a monitor composes detectors, and its own code
// names none of them. A sensor is one header holding its options, when it is
// due (a category: the least level it reads at; an interval in its options),
// what it measures, and its event payload with the payload's describe()
// (emit/field_writer.hpp), which is how JSONL, TensorBoard and the report
// write it. docs/guide.md, "Writing a sensor", walks through one.
//
// A Sensor has a `name`, a `category` (cat::critical, ops_normal, memory or
// debug), an `options_type` it is constructed from, and any of these hooks,
// each called with a sensor_context (below) in this order:
//
//   void attach(std::span<const named_tensor> watched)   once, when the
//       session is made: the parameters it watches (names and weights)
//   begin_update(ctx)          at begin_update()
//   enqueue(ctx)               at enqueue() (start an asynchronous read)
//   void held(signals& s) const   figures it holds for the next check, where
//       `s` has none (also for a data-parallel rank's carry); reads nothing
//   sense(ctx, signals& s)     before the check: read, and add its figures
//       where `s` has none
//   record(ctx, given, checked)  after the check: events of the step's
//       figures, before the session's step record; `given` the caller's
//       signals, `checked` those the check judged (or record(ctx, given))
//   diagnose(ctx, result)      after the step record and the check's events
//   void feed(const Input&)    a trainer's input: session::feed(x) and
//       step(s, x...) hand each input to every sensor that takes its type
//
// In a session whose check is deferred (session_options::check, docs/guide.md
// "A deferred check") the step's call runs feed, sense (of a sensor without
// the pair below) and diagnose, and the next call (or flush) runs the check
// and record, so record must use only what the step's call left for it. A
// sensor whose read would wait for a device there splits sense in two:
//
//   defer(ctx, const signals& s)   at the step's call: start the reads of the
//       figures `s` lacks (nothing waited for; reduce/host_copy.hpp)
//   collect(ctx, signals& s)       at the check: add the figures it started
//
// and `std::uint64_t measurements() const`, what it has measured (counted).
// A sensor that holds state from one step to the next which its later
// figures depend on (parameter_update_sensor's copy of the weights) saves
// it for a resumed run or a rollback (session_state.hpp):
//
//   template <class Out> void save(Out& archive, const std::string& prefix) const
//       or save(archive, prefix, std::span<const at::Tensor> weights): the
//       session's watched parameters, so that state equal to them can be
//       written as them (an archive stores a storage once)
//   template <class In> std::function<void()> stage(In& archive, const std::string& prefix)
//       reads and validates (throwing simic::archive_error) without changing
//       anything, and returns what applies it (which cannot fail)
#pragma once

#include <ATen/ATen.h>

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "simic/core/config.hpp"
#include "simic/core/level.hpp"
#include "simic/core/signals.hpp"
#include "simic/emit/event.hpp"
#include "simic/emit/hub.hpp"
#include "simic/monitor.hpp"

namespace simic {
inline namespace v0 {

// A watched parameter: its name and its weight (the gradient is .grad()).
using named_tensor = std::pair<std::string, at::Tensor>;

// What the session tells a sensor at each hook.
template <class Monitor>
class sensor_context {
 public:
  sensor_context(const Monitor& m, hub& h, std::span<const named_tensor> watched, std::span<const at::Tensor> weights,
                 std::uint64_t update, std::uint64_t epoch, std::uint64_t step_in_update) noexcept
      : monitor_(m), hub_(h), watched_(watched), weights_(weights), update_(update), epoch_(epoch),
        step_(step_in_update) {}

  const Monitor& monitor() const noexcept { return monitor_; }
  const config& cfg() const noexcept { return monitor_.cfg(); }
  // The effective level now (DEBUG during an escalation).
  simic::level level() const noexcept { return monitor_.effective_level(); }
  // Whether a sensor of category C reads now.
  template <Category C>
  bool collects() const noexcept {
    return cfg().template should_collect<C>();
  }
  std::span<const named_tensor> watched() const noexcept { return watched_; }
  std::span<const at::Tensor> weights() const noexcept { return weights_; }
  std::uint64_t update() const noexcept { return update_; }  // updates begun (1 in the first)
  std::uint64_t epoch() const noexcept { return epoch_; }    // 1 in the first
  std::uint64_t step_in_update() const noexcept { return step_; }
  // Whether events go anywhere: a sensor whose figures only go to events
  // need not read without a sink.
  bool emitting() const noexcept { return hub_.has_sinks(); }
  template <EventPayload P>
  void emit(P payload) const {
    hub_.emit(update_, epoch_, std::move(payload));
  }

 private:
  const Monitor& monitor_;
  hub& hub_;
  std::span<const named_tensor> watched_;
  std::span<const at::Tensor> weights_;
  std::uint64_t update_, epoch_, step_;
};

template <class S>
concept Sensor = requires(const S& s) {
  { S::name } -> std::convertible_to<std::string_view>;
  typename S::category;
  requires Category<typename S::category>;
  typename S::options_type;
  { s.measurements() } -> std::convertible_to<std::uint64_t>;
} && std::constructible_from<S, const typename S::options_type&>;

// Whether update number `update` (1 in the first) is due at an interval of
// `every` updates: 1, 1 + every, 1 + 2 every, ...
constexpr bool due_every(std::uint64_t update, std::uint32_t every) noexcept {
  return every != 0 && update >= 1 && (update - 1) % every == 0;
}

namespace detail {
// The hooks a sensor may have; each call does nothing for a sensor without it.
template <class S>
void sensor_attach(S& s, std::span<const named_tensor> watched) {
  if constexpr (requires { s.attach(watched); }) s.attach(watched);
}
template <class S, class M>
void sensor_begin_update(S& s, const sensor_context<M>& ctx) {
  if constexpr (requires { s.begin_update(ctx); }) s.begin_update(ctx);
}
template <class S, class M>
void sensor_enqueue(S& s, const sensor_context<M>& ctx) {
  if constexpr (requires { s.enqueue(ctx); }) s.enqueue(ctx);
}
template <class S>
void sensor_held(const S& s, signals& out) {
  if constexpr (requires { s.held(out); }) s.held(out);
}
template <class S, class M>
void sensor_sense(S& s, const sensor_context<M>& ctx, signals& out) {
  if constexpr (requires { s.sense(ctx, out); }) s.sense(ctx, out);
}
template <class S, class M>
void sensor_record(S& s, const sensor_context<M>& ctx, const signals& given, const signals& checked) {
  if constexpr (requires { s.record(ctx, given, checked); })
    s.record(ctx, given, checked);
  else if constexpr (requires { s.record(ctx, given); })
    s.record(ctx, given);
}
// Whether a sensor splits its read for a deferred check (defer + collect).
template <class S, class M>
constexpr bool sensor_defers = requires(S& s, const sensor_context<M>& ctx, const signals& c, signals& m) {
  s.defer(ctx, c);
  s.collect(ctx, m);
};
// A deferred check's step call: the split read's first half, else the whole read.
template <class S, class M>
void sensor_defer(S& s, const sensor_context<M>& ctx, signals& out) {
  if constexpr (sensor_defers<S, M>)
    s.defer(ctx, std::as_const(out));
  else
    sensor_sense(s, ctx, out);
}
template <class S, class M>
void sensor_collect(S& s, const sensor_context<M>& ctx, signals& out) {
  if constexpr (sensor_defers<S, M>) s.collect(ctx, out);
}
template <class S, class M>
void sensor_diagnose(S& s, const sensor_context<M>& ctx, const check_result& r) {
  if constexpr (requires { s.diagnose(ctx, r); }) s.diagnose(ctx, r);
}
template <class S, class M, class In>
constexpr bool sensor_takes = requires(S& s, const sensor_context<M>& ctx, const In& x) { s.feed(ctx, x); };
template <class S, class M, class In>
void sensor_feed(S& s, const sensor_context<M>& ctx, const In& x) {
  if constexpr (sensor_takes<S, M, In>) s.feed(ctx, x);
}
template <class S, class Out>
void sensor_save(const S& s, Out& ar, const std::string& prefix, std::span<const at::Tensor> weights) {
  if constexpr (requires { s.save(ar, prefix, weights); })
    s.save(ar, prefix, weights);
  else if constexpr (requires { s.save(ar, prefix); })
    s.save(ar, prefix);
}
template <class S, class In>
std::function<void()> sensor_stage(S& s, In& ar, const std::string& prefix) {
  if constexpr (requires { s.stage(ar, prefix); })
    return s.stage(ar, prefix);
  else
    return {};
}
// The options among `opts` that are an S's (the last given wins), else S's defaults.
template <class S, class... Opts>
S make_sensor(const Opts&... opts) {
  typename S::options_type o{};
  ((void)[&] {
    if constexpr (std::is_same_v<Opts, typename S::options_type>) o = opts;
  }(), ...);
  return S(o);
}
}  // namespace detail

}  // namespace v0
}  // namespace simic
