#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "simic/emit/hub.hpp"
#include "simic/emit/sink_callback.hpp"
#include "simic/emit/sink_memory.hpp"

using namespace simic;

namespace {

event numbered(std::uint64_t i) { return event(i, 0, update_metrics{.loss = static_cast<double>(i)}); }

// A sink that blocks inside write() until released, after telling the test it is there.
class gate_sink final : public sink {
 public:
  void wait_until_inside() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return inside_; });
  }
  void release() {
    {
      std::lock_guard lock(m_);
      open_ = true;
    }
    cv_.notify_all();
  }
  std::vector<std::uint64_t> updates() {
    std::lock_guard lock(m_);
    return seen_;
  }
  std::string name() const override { return "gate"; }

 protected:
  void do_write(const event& e) override {
    std::unique_lock lock(m_);
    inside_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    seen_.push_back(e.update());
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool inside_ = false;
  bool open_ = false;
  std::vector<std::uint64_t> seen_;
};

template <class F>
bool eventually(F&& f) {
  // Polls a condition another thread makes true; a safety net against hangs, not a speed check.
  for (int i = 0; i < 20000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return f();
}

std::vector<std::uint64_t> updates_of(const std::vector<event>& es) {
  std::vector<std::uint64_t> out;
  for (const auto& e : es) out.push_back(e.update());
  return out;
}

}  // namespace

TEST_CASE("every sink receives every event, in order; counts add up") {
  hub h;
  auto a = std::make_shared<memory_sink>();
  auto b = std::make_shared<memory_sink>();
  h.add_sink(a);
  h.add_sink(b);
  std::vector<std::uint64_t> expected;
  for (std::uint64_t i = 0; i < 500; ++i) {
    CHECK(h.emit(numbered(i)));
    expected.push_back(i);
  }
  h.close();
  CHECK(updates_of(a->events()) == expected);
  CHECK(updates_of(b->events()) == expected);
  const hub_counts c = h.counts();
  CHECK(c.emitted == 500);
  CHECK(c.delivered == 500);
  CHECK(c.dropped == 0);
  CHECK(c.failed == 0);
  REQUIRE(a->final_counts().has_value());
  CHECK(*a->final_counts() == c);
}

TEST_CASE("flush delivers everything queued before it, without closing") {
  hub h({.capacity = 1000});
  auto m = std::make_shared<memory_sink>();
  h.add_sink(m);
  for (std::uint64_t i = 0; i < 300; ++i) h.emit(numbered(i));
  h.flush();
  CHECK(m->size() == 300);
  CHECK_FALSE(m->final_counts().has_value());
  CHECK(h.emit(numbered(300)));  // still open
  h.flush();
  CHECK(m->size() == 301);
}

TEST_CASE("emit does not wait for a blocked sink; a full queue drops the newest, counted exactly") {
  constexpr std::size_t capacity = 8;
  constexpr std::uint64_t n = 100;
  hub h({.capacity = capacity});
  auto gate = std::make_shared<gate_sink>();
  h.add_sink(gate);
  h.emit(numbered(0));
  gate->wait_until_inside();  // the worker holds event 0 and is blocked in the sink

  // N emits while the sink cannot move. If emit waited for the sink this would
  // never finish, so it runs on another thread and the test releases the gate
  // either way (no hang, and no claim about speed).
  auto emits = std::async(std::launch::async, [&] {
    std::uint64_t accepted = 0;
    for (std::uint64_t i = 1; i <= n; ++i) accepted += h.emit(numbered(i)) ? 1 : 0;
    return accepted;
  });
  const bool finished = emits.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  CHECK(finished);
  gate->release();
  const std::uint64_t accepted = emits.get();
  CHECK(accepted == capacity);
  h.close();
  const hub_counts c = h.counts();
  CHECK(c.emitted == n + 1);
  CHECK(c.dropped == n - capacity);
  CHECK(c.delivered == capacity + 1);
  // The oldest were kept: 0, then 1..capacity.
  std::vector<std::uint64_t> expected;
  for (std::uint64_t i = 0; i <= capacity; ++i) expected.push_back(i);
  CHECK(gate->updates() == expected);
}

TEST_CASE("overrun_oldest keeps the newest events and counts the overrun ones") {
  constexpr std::size_t capacity = 5;
  hub h({.capacity = capacity, .overflow = overflow_policy::overrun_oldest});
  auto gate = std::make_shared<gate_sink>();
  h.add_sink(gate);
  h.emit(numbered(0));
  gate->wait_until_inside();
  for (std::uint64_t i = 1; i <= 20; ++i) CHECK(h.emit(numbered(i)));
  CHECK(h.queued_now() == capacity);
  gate->release();
  h.flush();  // must not wait for the overrun events
  h.close();
  CHECK(gate->updates() == std::vector<std::uint64_t>{0, 16, 17, 18, 19, 20});
  const hub_counts c = h.counts();
  CHECK(c.emitted == 21);
  CHECK(c.dropped == 15);
  CHECK(c.delivered == 6);
}

TEST_CASE("block makes the emitter wait for room and loses nothing") {
  constexpr std::size_t capacity = 3;
  hub h({.capacity = capacity, .overflow = overflow_policy::block});
  auto gate = std::make_shared<gate_sink>();
  h.add_sink(gate);
  h.emit(numbered(0));
  gate->wait_until_inside();
  std::atomic<std::uint64_t> returned{0};
  std::thread emitter([&] {
    for (std::uint64_t i = 1; i <= 10; ++i) {
      h.emit(numbered(i));
      ++returned;
    }
  });
  // The emitter fills the queue and then waits inside the 4th emit.
  CHECK(eventually([&] { return h.counts().emitted == 1 + capacity + 1; }));
  CHECK(h.queued_now() == capacity);
  CHECK(returned.load() == capacity);
  gate->release();
  emitter.join();
  h.close();
  std::vector<std::uint64_t> expected;
  for (std::uint64_t i = 0; i <= 10; ++i) expected.push_back(i);
  CHECK(gate->updates() == expected);
  CHECK(h.counts().dropped == 0);
  CHECK(h.counts().delivered == 11);
}

TEST_CASE("a throwing sink is reported once per exception type, counted, and the others get every event") {
  hub h;
  std::vector<sink_error> reports;
  std::mutex rm;
  h.set_error_handler([&](const sink_error& e) {
    std::lock_guard lock(rm);
    reports.push_back(e);
  });
  auto before = std::make_shared<memory_sink>();
  std::atomic<int> calls{0};
  auto thrower = std::make_shared<callback_sink>(
      [&](const event& e) {
        ++calls;
        if (e.update() % 10 == 3) throw 42;  // not a std::exception
        throw std::runtime_error("disk on fire at " + std::to_string(e.update()));
      },
      callback_sink::finish_fn{}, "thrower");
  auto after = std::make_shared<memory_sink>();
  h.add_sink(before);
  h.add_sink(thrower);
  h.add_sink(after);
  constexpr std::uint64_t n = 100;
  for (std::uint64_t i = 0; i < n; ++i) h.emit(numbered(i));
  h.flush();
  {
    std::lock_guard lock(rm);
    // First occurrence of each type, reported at once: runtime_error (update 0), int (update 3).
    REQUIRE(reports.size() == 2);
    CHECK(reports[0].sink == "thrower");
    CHECK(reports[0].exception_type == "std::runtime_error");
    CHECK(reports[0].message == "disk on fire at 0");
    CHECK(reports[0].event == "update");
    CHECK(reports[0].occurrences == 1);
    CHECK(reports[1].exception_type == "int");
    CHECK(reports[1].message == "(not derived from std::exception)");
  }
  h.close();
  CHECK(calls.load() == static_cast<int>(n));
  CHECK(before->size() == n);
  CHECK(after->size() == n);
  const hub_counts c = h.counts();
  CHECK(c.failed == n);
  CHECK(c.delivered == n);
  const auto kinds = h.errors();
  REQUIRE(kinds.size() == 2);
  CHECK(kinds[0].occurrences == 90);  // updates not ending in 3
  CHECK(kinds[1].occurrences == 10);
  // close() reports each recurring kind once more, with its total.
  std::lock_guard lock(rm);
  REQUIRE(reports.size() == 4);
  CHECK(reports[2].exception_type == "std::runtime_error");
  CHECK(reports[2].occurrences == 90);
  CHECK(reports[3].exception_type == "int");
  CHECK(reports[3].occurrences == 10);
}

TEST_CASE("a sink failing in flush and finish is reported too") {
  struct bad_flush final : sink {
    std::string name() const override { return "bad_flush"; }
    void do_write(const event&) override {}
    void do_flush() override { throw std::logic_error("flush failed"); }
    void do_finish(const hub_counts&) override { throw std::logic_error("finish failed"); }
  };
  hub h;
  std::vector<sink_error> reports;
  h.set_error_handler([&](const sink_error& e) { reports.push_back(e); });
  h.add_sink(std::make_shared<bad_flush>());
  h.emit(numbered(0));
  h.close();
  REQUIRE(reports.size() == 2);  // first at flush, then the summary (2 in all)
  CHECK(reports[0].event == "flush");
  CHECK(reports[0].message == "flush failed");
  CHECK(reports[0].exception_type == "std::logic_error");
  CHECK(reports[1].occurrences == 2);
  CHECK(h.counts().failed == 1);  // the flush; a finish is reported, not counted (the counts it gets are final)
}

TEST_CASE("an error handler that throws falls back to stderr and the hub goes on") {
  hub h;
  h.set_error_handler([](const sink_error&) { throw std::runtime_error("handler broken"); });
  auto m = std::make_shared<memory_sink>();
  h.add_sink(std::make_shared<callback_sink>([](const event&) { throw std::runtime_error("x"); }));
  h.add_sink(m);
  for (std::uint64_t i = 0; i < 5; ++i) h.emit(numbered(i));
  h.close();
  CHECK(m->size() == 5);
  CHECK(h.counts().failed == 5);
}

TEST_CASE("the hub's context fills unset fields on its own copy") {
  hub h({.context = {.run_id = "run-1", .device = "cpu", .rank = 0}});
  auto m = std::make_shared<memory_sink>();
  h.add_sink(m);
  const event mine = event(1, 0, update_metrics{}).with_context({.run_id = "mine", .env_id = 4});
  h.emit(mine);
  h.emit(numbered(2));
  h.close();
  CHECK(mine.context().device.empty());  // the caller's event is unchanged
  const auto es = m->events();
  REQUIRE(es.size() == 2);
  CHECK(es[0].context() == event_context{.run_id = "mine", .env_id = 4, .device = "cpu", .rank = 0});
  CHECK(es[1].context() == event_context{.run_id = "run-1", .device = "cpu", .rank = 0});
}

TEST_CASE("several emitting threads: nothing lost, each thread's order kept") {
  constexpr int threads = 4;
  constexpr std::uint64_t per_thread = 2000;
  hub h({.capacity = 16, .overflow = overflow_policy::block});
  auto m = std::make_shared<memory_sink>();
  h.add_sink(m);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < per_thread; ++i) h.emit(event(i, static_cast<std::uint64_t>(t), update_metrics{}));
    });
  for (auto& t : ts) t.join();
  h.close();
  const auto es = m->events();
  CHECK(es.size() == threads * per_thread);
  std::vector<std::uint64_t> next(threads, 0);
  bool ordered = true;
  for (const auto& e : es) {
    if (e.update() != next[e.epoch()]) ordered = false;
    ++next[e.epoch()];
  }
  CHECK(ordered);
}

TEST_CASE("after close: emits are dropped and counted, close is idempotent, add_sink throws") {
  hub h;
  auto m = std::make_shared<memory_sink>();
  h.add_sink(m);
  h.emit(numbered(0));
  h.close();
  h.close();
  CHECK_FALSE(h.emit(numbered(1)));
  h.flush();  // returns at once
  const hub_counts c = h.counts();
  CHECK(c.emitted == 2);
  CHECK(c.dropped == 1);
  CHECK(c.delivered == 1);
  CHECK(m->size() == 1);
  CHECK_THROWS_AS(h.add_sink(std::make_shared<memory_sink>()), std::logic_error);
}

TEST_CASE("the destructor drains the queue") {
  auto m = std::make_shared<memory_sink>();
  {
    hub h({.capacity = 10000});
    h.add_sink(m);
    for (std::uint64_t i = 0; i < 2000; ++i) h.emit(numbered(i));
  }
  CHECK(m->size() == 2000);
  REQUIRE(m->final_counts().has_value());
  CHECK(m->final_counts()->delivered == 2000);
}

TEST_CASE("bad arguments name themselves") {
  CHECK_THROWS_WITH_AS(hub({.capacity = 0}), doctest::Contains("capacity"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(hub({.overflow = static_cast<overflow_policy>(7)}), doctest::Contains("overflow"),
                       std::invalid_argument);
  hub h;
  CHECK_THROWS_WITH_AS(h.add_sink(nullptr), doctest::Contains("sink"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(callback_sink(callback_sink::event_fn{}), doctest::Contains("on_event"),
                       std::invalid_argument);
}

TEST_CASE("the memory sink's take empties it") {
  memory_sink m;
  m.write(numbered(1));
  m.write(numbered(2));
  CHECK(updates_of(m.take()) == std::vector<std::uint64_t>{1, 2});
  CHECK(m.size() == 0);
}

TEST_CASE("two failing sinks of the same name are two kinds, each reported") {
  hub h;
  std::vector<sink_error> reports;
  h.set_error_handler([&](const sink_error& e) { reports.push_back(e); });
  h.add_sink(std::make_shared<callback_sink>([](const event&) { throw std::runtime_error("first"); }));
  h.add_sink(std::make_shared<callback_sink>([](const event&) { throw std::runtime_error("second"); }));
  h.emit(numbered(0));
  h.emit(numbered(1));
  h.close();
  const auto kinds = h.errors();
  REQUIRE(kinds.size() == 2);
  CHECK(kinds[0].message == "first");
  CHECK(kinds[1].message == "second");
  CHECK(kinds[0].occurrences == 2);
  CHECK(kinds[1].occurrences == 2);
  CHECK(h.counts().failed == 4);
  CHECK(reports.size() == 4);  // two first reports, two summaries
}

// ---- close(deadline): a slow or hung sink, and what could not be delivered

TEST_CASE("close(deadline) gives up on a hung sink: queued events are counted undelivered, the others finish") {
  auto gate = std::make_shared<gate_sink>();
  auto mem = std::make_shared<memory_sink>();
  hub_counts c;
  {
    hub h;
    h.add_sink(mem);   // first: gets event 0 before the gate hangs on it
    h.add_sink(gate);
    for (std::uint64_t i = 0; i < 5; ++i) REQUIRE(h.emit(numbered(i)));
    gate->wait_until_inside();  // event 0 is in the gate; 1..4 queued
    const auto t0 = std::chrono::steady_clock::now();
    c = h.close(std::chrono::milliseconds(200));
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(waited >= 0.19);
    CHECK(waited < 5.0);  // not the hung sink's time: it is still hung
    // The invariant, by hand: 5 emitted = 0 delivered + 0 dropped + 5 undelivered (1 in the gate, 4 queued).
    CHECK(c == hub_counts{.emitted = 5, .delivered = 0, .dropped = 0, .failed = 0, .undelivered = 5});
    CHECK(c.emitted == c.delivered + c.dropped + c.undelivered);
    CHECK(c.lost() == 5);
    CHECK_FALSE(h.emit(numbered(9)));  // closed: dropped and counted
    CHECK(h.counts().dropped == 1);
    CHECK(h.counts().emitted == 6);
    // The healthy sink got what reached it, and the final counts; the hung one got no finish.
    CHECK(updates_of(mem->events()) == std::vector<std::uint64_t>{0});
    REQUIRE(mem->final_counts().has_value());
    CHECK(*mem->final_counts() == c);
  }  // the hub is destroyed while its abandoned thread is still inside the gate
  gate->release();  // the thread returns into the hub's shared state, not into freed memory
  CHECK(eventually([&] { return gate.use_count() == 1; }));  // the thread ended and let go of its sinks
  CHECK(gate->updates() == std::vector<std::uint64_t>{0});  // nothing was written after the deadline
  CHECK(mem->size() == 1);
}

TEST_CASE("close(deadline) with a fast sink delivers everything and waits no longer than needed") {
  auto mem = std::make_shared<memory_sink>();
  hub h;
  h.add_sink(mem);
  for (std::uint64_t i = 0; i < 1000; ++i) h.emit(numbered(i));
  const auto t0 = std::chrono::steady_clock::now();
  const hub_counts c = h.close(std::chrono::milliseconds(10'000));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  CHECK(c == hub_counts{.emitted = 1000, .delivered = 1000});
  CHECK(mem->size() == 1000);
  CHECK(*mem->final_counts() == c);
  CHECK(h.close(std::chrono::milliseconds(0)) == c);  // idempotent: a second close changes nothing
}

TEST_CASE("close(0) delivers nothing more: the queue is counted undelivered, the sink still finishes") {
  auto gate = std::make_shared<gate_sink>();
  hub h;
  auto mem = std::make_shared<memory_sink>();
  h.add_sink(gate);
  h.add_sink(mem);
  for (std::uint64_t i = 0; i < 3; ++i) h.emit(numbered(i));
  gate->wait_until_inside();  // event 0 in the gate (before mem): 1 in flight + 2 queued
  const hub_counts c = h.close(std::chrono::milliseconds(0));
  CHECK(c == hub_counts{.emitted = 3, .undelivered = 3});
  CHECK(mem->size() == 0);  // event 0 never reached the second sink: the thread stops between sinks
  REQUIRE(mem->final_counts().has_value());
  CHECK(mem->final_counts()->undelivered == 3);
  gate->release();
  CHECK(eventually([&] { return gate->updates().size() == 1; }));  // the write of event 0 returned
  std::this_thread::sleep_for(std::chrono::milliseconds(50));      // room for a (wrong) next write
  CHECK(mem->size() == 0);
  CHECK(h.counts() == c);  // the abandoned thread changed no count
}

TEST_CASE("close with a negative deadline is an error naming the argument, and closes nothing") {
  auto mem = std::make_shared<memory_sink>();
  hub h;
  h.add_sink(mem);
  h.emit(numbered(1));
  CHECK_THROWS_WITH_AS(h.close(std::chrono::milliseconds(-1)), doctest::Contains("deadline = -1"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(h.close(std::chrono::milliseconds(-1)), doctest::Contains(">= 0 ms"), std::invalid_argument);
  CHECK(h.emit(numbered(2)));  // still open
  CHECK(h.close(hub::no_deadline) == hub_counts{.emitted = 2, .delivered = 2});
  CHECK(mem->size() == 2);
}

TEST_CASE("a throwing sink: failures counted per (event, sink), apart from drops, and not as written") {
  std::atomic<int> calls{0};
  auto mem = std::make_shared<memory_sink>();
  hub h;
  h.set_error_handler([](const sink_error&) {});
  h.add_sink(std::make_shared<callback_sink>([&](const event& e) {
    ++calls;
    if (e.update() % 2 == 1) throw std::runtime_error("disk full");
  }));
  h.add_sink(mem);
  for (std::uint64_t i = 0; i < 10; ++i) h.emit(numbered(i));
  const hub_counts c = h.close(std::chrono::seconds(10));
  // By hand: 10 events, the odd five fail in the first sink; the second sink writes all 10.
  CHECK(c == hub_counts{.emitted = 10, .delivered = 10, .dropped = 0, .failed = 5, .undelivered = 0});
  CHECK(c.lost() == 5);
  CHECK(calls == 10);
  CHECK(mem->size() == 10);
  REQUIRE(h.errors().size() == 1);
  CHECK(h.errors()[0].occurrences == 5);
}
