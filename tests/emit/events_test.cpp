#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <string_view>
#include <type_traits>

#include "simic/emit/events.hpp"

using namespace simic;

TEST_CASE("an event keeps its stamp and payload and names itself after the payload") {
  const auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456));
  const event e(7, 2, anomaly_event{.kind = anomaly_kind::kl_spike, .detail = "kl 0.2", .level_after = level::debug},
                t);
  CHECK(e.name() == "anomaly");
  CHECK(e.update() == 7);
  CHECK(e.epoch() == 2);
  CHECK(e.time() == t);
  CHECK(e.context().empty());
  REQUIRE(e.is<anomaly_event>());
  CHECK_FALSE(e.is<update_metrics>());
  CHECK(e.get_if<update_metrics>() == nullptr);
  const auto* a = e.get_if<anomaly_event>();
  REQUIRE(a != nullptr);
  CHECK(a->kind == anomaly_kind::kl_spike);
  CHECK(a->detail == "kl 0.2");
  CHECK(a->level_after == level::debug);
}

TEST_CASE("every payload of the session has its documented event name") {
  CHECK(event(0, 0, update_metrics{}).name() == "update");
  CHECK(event(0, 0, anomaly_event{}).name() == "anomaly");
  CHECK(event(0, 0, anomaly_clear_event{}).name() == "anomaly_clear");
  CHECK(event(0, 0, escalation_start_event{}).name() == "escalation_start");
  CHECK(event(0, 0, escalation_end_event{}).name() == "escalation_end");
  CHECK(event(0, 0, response_event{}).name() == "response");
  CHECK(event(0, 0, performance_degradation_event{}).name() == "performance_degradation");
  CHECK(event(0, 0, epoch_summary{}).name() == "epoch_summary");
}

TEST_CASE("the time defaults to now") {
  const auto before = std::chrono::system_clock::now();
  const event e(0, 0, update_metrics{});
  const auto after = std::chrono::system_clock::now();
  CHECK(e.time() >= before);
  CHECK(e.time() <= after);
}

TEST_CASE("events have no setters: context is added by copying") {
  static_assert(!std::is_assignable_v<decltype(std::declval<const event&>().context())&, event_context>);
  const event original(1, 0, update_metrics{.loss = 2.0});
  const event with = original.with_context({.run_id = "r", .env_id = 3});
  CHECK(original.context().empty());
  CHECK(with.context().run_id == "r");
  CHECK(with.context().env_id == 3);
  CHECK_FALSE(with.context().rank.has_value());
  CHECK(with.update() == 1);
  CHECK(with.time() == original.time());
  REQUIRE(with.get_if<update_metrics>() != nullptr);
  CHECK(with.get_if<update_metrics>()->loss == 2.0);

  SUBCASE("with_context: the new context's set fields win, unset ones are kept") {
    const event again = with.with_context({.run_id = "s", .device = "cpu"});
    CHECK(again.context().run_id == "s");
    CHECK(again.context().device == "cpu");
    CHECK(again.context().env_id == 3);
    CHECK(with.context().run_id == "r");  // the source is unchanged
  }
  SUBCASE("with_default_context: the event's own fields win, unset ones are filled") {
    const event filled = with.with_default_context({.run_id = "default", .device = "cuda:1", .rank = 0});
    CHECK(filled.context().run_id == "r");
    CHECK(filled.context().device == "cuda:1");
    CHECK(filled.context().rank == 0);
    CHECK(filled.context().env_id == 3);
    CHECK(with.context().device.empty());
  }
  SUBCASE("the rvalue forms move") {
    event tmp = original;
    const event moved = std::move(tmp).with_context({.rank = 5});
    CHECK(moved.context().rank == 5);
    CHECK(original.context().empty());
  }
}

namespace {
// A minimal payload of the user's.
struct probe_event {
  static constexpr std::string_view name = "probe";
  int value = 0;
  void describe(field_writer& w) const { w.integer("value", value); }
};
struct not_a_payload {
  int value = 0;
};
}  // namespace

TEST_CASE("the payload list is open: any copyable struct with a name and describe() is one") {
  static_assert(EventPayload<probe_event>);
  static_assert(EventPayload<update_metrics>);
  static_assert(!EventPayload<not_a_payload>);
  static_assert(!EventPayload<int>);
  const event e(1, 1, probe_event{.value = 7});
  CHECK(e.name() == "probe");
  REQUIRE(e.is<probe_event>());
  CHECK_FALSE(e.is<update_metrics>());
  CHECK(e.get_if<probe_event>()->value == 7);
  // Copies share the payload (events are immutable).
  const event copy = e.with_context({.run_id = "r"});
  CHECK(copy.get_if<probe_event>() == e.get_if<probe_event>());
}
