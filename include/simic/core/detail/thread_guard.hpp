// One thread at a time: the debug-build check that catches two threads in one
// monitor (or session) at once. Such an object is not thread-safe, like a std
// container: its non-const calls must not overlap, nor a non-const call and a
// const one (docs/guide.md, Threads). Each non-const call marks the object as
// in use by its thread until it returns; a call from another thread meanwhile
// throws std::logic_error naming both calls, before it touches anything, so
// the object stays as the first call leaves it. A call nested on the thread
// that holds the object (a detector or a sink calling back) is not an overlap.
//
// On unless NDEBUG is defined; -DSIMIC_THREAD_CHECKS=1 (or 0) forces it on
// (or off). Off, a check compiles to nothing. The members stay either way, so
// that translation units built with and without NDEBUG agree on the layout of
// the objects holding one.
#pragma once

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include "simic/core/error.hpp"

#ifndef SIMIC_THREAD_CHECKS
#ifdef NDEBUG
#define SIMIC_THREAD_CHECKS 0
#else
#define SIMIC_THREAD_CHECKS 1
#endif
#endif

namespace simic {
inline namespace v0 {
namespace detail {

inline constexpr bool thread_checks = SIMIC_THREAD_CHECKS != 0;

class one_thread_guard {
 public:
  // Holds the object for one call; releases it when it goes out of scope,
  // also when the call throws.
  class scope {
   public:
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() {
      if (held_ != nullptr) held_->release();
    }

   private:
    friend class one_thread_guard;
    explicit scope(one_thread_guard* held) noexcept : held_(held) {}
    one_thread_guard* held_;  // null: nothing to release (checks off, or a nested call)
  };

  // `object` names the holder in messages ("monitor", "session"): a literal.
  explicit one_thread_guard(const char* object) noexcept : object_(object) {}
  // A copy (or a move) is another object: no thread is in it yet.
  one_thread_guard(const one_thread_guard& o) noexcept : object_(o.object_) {}
  one_thread_guard& operator=(const one_thread_guard&) noexcept { return *this; }

  // Holds the object for `call` (a literal: the member's name) on this
  // thread; throws std::logic_error when another thread holds it.
  [[nodiscard]] scope enter(const char* call) noexcept(!thread_checks) {
    if constexpr (thread_checks) {
      const std::thread::id me = std::this_thread::get_id();
      std::thread::id holder{};
      if (holder_.compare_exchange_strong(holder, me, std::memory_order_acquire, std::memory_order_relaxed)) {
        call_.store(call, std::memory_order_relaxed);
        return scope(this);
      }
      if (holder != me) overlap(call);
    }
    return scope(nullptr);
  }

 private:
  void release() noexcept { holder_.store(std::thread::id{}, std::memory_order_release); }

  [[noreturn]] SIMIC_COLD void overlap(const char* call) const {
    const char* other = call_.load(std::memory_order_relaxed);
    const std::string object(object_);
    throw std::logic_error("simic::" + object + "::" + call + ": called while another thread is in " +
                           (other != nullptr ? std::string(other) + "()" : std::string("a call")) + " on the same " +
                           object + "; a " + object +
                           " is not thread-safe: use it from one thread at a time (docs/guide.md, Threads)");
  }

  const char* object_;
  std::atomic<std::thread::id> holder_{};  // default id: no thread
  std::atomic<const char*> call_{nullptr};  // the holder's call, for the message
};

}  // namespace detail
}  // namespace v0
}  // namespace simic
