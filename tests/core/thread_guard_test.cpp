#include <doctest/doctest.h>

#include <latch>
#include <stdexcept>
#include <string>
#include <thread>

#include "simic/core/detail/thread_guard.hpp"

using simic::detail::one_thread_guard;

namespace {
const std::string overlap =
    "simic::widget::poke: called while another thread is in spin() on the same widget; a widget is not "
    "thread-safe: use it from one thread at a time (docs/guide.md, Threads)";

// Runs `f` on another thread; returns the logic_error it threw, or "".
template <class F>
std::string on_other_thread(F f) {
  std::string what;
  std::thread t([&] {
    try {
      f();
    } catch (const std::logic_error& e) {
      what = e.what();
    }
  });
  t.join();
  return what;
}
}  // namespace

TEST_CASE("one_thread_guard: held by one thread, entered by another: logic_error naming both calls; free again after") {
  if constexpr (!simic::detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  one_thread_guard g("widget");
  {
    const auto held = g.enter("spin");
    CHECK(on_other_thread([&] { const auto h = g.enter("poke"); }) == overlap);
    CHECK_NOTHROW(static_cast<void>(g.enter("poke")));  // nested on the holding thread
    CHECK(on_other_thread([&] { const auto h = g.enter("poke"); }) == overlap);  // the nested exit kept it held
  }
  CHECK(on_other_thread([&] { const auto h = g.enter("poke"); }).empty());  // released at the scope's end
  // Released when the call throws, too.
  try {
    const auto held = g.enter("spin");
    throw std::runtime_error("the call failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(on_other_thread([&] { const auto h = g.enter("poke"); }).empty());
}

TEST_CASE("one_thread_guard: a copy, or an assignment, does not take the holder along") {
  if constexpr (!simic::detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  one_thread_guard g("widget");
  const auto held = g.enter("spin");
  one_thread_guard copy(g);
  one_thread_guard assigned("widget");
  assigned = g;
  CHECK(on_other_thread([&] { const auto h = copy.enter("poke"); }).empty());
  CHECK(on_other_thread([&] { const auto h = assigned.enter("poke"); }).empty());
  CHECK(on_other_thread([&] { const auto h = g.enter("poke"); }) == overlap);  // the original is still held
}

TEST_CASE("one_thread_guard: two threads racing into one guard: exactly the overlapping entries are refused") {
  if constexpr (!simic::detail::thread_checks) {
    MESSAGE("thread checks are compiled out (NDEBUG): nothing to test");
    return;
  }
  one_thread_guard g("widget");
  std::latch holding(1), done(1);
  std::thread holder([&] {
    const auto held = g.enter("spin");
    holding.count_down();
    done.wait();
  });
  holding.wait();
  int refused = 0;
  for (int i = 0; i < 100; ++i) {
    try {
      const auto h = g.enter("poke");
    } catch (const std::logic_error&) {
      ++refused;
    }
  }
  done.count_down();
  holder.join();
  CHECK(refused == 100);
  CHECK_NOTHROW(static_cast<void>(g.enter("poke")));
}
