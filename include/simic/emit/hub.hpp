// The hub: events go into a bounded queue; one background thread hands them
// to every sink. emit() never waits on a sink: with the default policy a full
// queue drops the newest event and counts it. A sink that throws is reported
// to an error handler (once per sink and exception type, later ones counted)
// and the other sinks go on. flush(), close() and the destructor drain
// everything queued; close(deadline) gives up on a slow or hung sink after
// the deadline and counts what it could not deliver (docs/events.md).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#if defined(__GNUG__)
#include <cxxabi.h>
#include <cstdlib>
#endif

#include "simic/core/error.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/sink.hpp"

namespace simic {
inline namespace v0 {

// What emit() does when the queue is full.
enum class overflow_policy : unsigned char {
  discard_newest,  // drop the event being emitted, count it (default; never waits)
  block,           // wait for room (the caller waits on the slowest sink)
  overrun_oldest,  // drop the oldest queued event, count it, queue the new one
};

struct hub_options {
  std::size_t capacity = 8192;  // queued events, >= 1
  overflow_policy overflow = overflow_policy::discard_newest;
  event_context context{};      // fills the unset context fields of every event
};

// One kind of sink failure: a sink and an exception type.
struct sink_error {
  std::string sink;            // sink::name()
  std::string exception_type;  // demangled, e.g. "std::runtime_error"
  std::string message;         // what() of the first occurrence
  std::string event;           // the event name (or "flush"/"finish") of the first occurrence
  std::uint64_t occurrences = 0;
};

using error_handler = std::function<void(const sink_error&)>;

namespace detail {

inline std::string demangle(const char* name) {
#if defined(__GNUG__)
  int status = 0;
  char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status == 0 && out) {
    std::string s(out);
    std::free(out);
    return s;
  }
#endif
  return name;
}

// Type name and message of the exception being handled; call inside a catch.
inline std::pair<std::string, std::string> current_exception_info() {
  std::string type = "unknown exception";
#if defined(__GNUG__)
  if (const std::type_info* t = abi::__cxa_current_exception_type()) type = demangle(t->name());
#endif
  std::string message;
  try {
    throw;
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "(not derived from std::exception)";
  }
  return {type, message};
}

inline void print_sink_error(const sink_error& e) {
  if (e.occurrences <= 1)
    std::fprintf(stderr, "simic: sink '%s' threw %s on '%s': %s (further %s from this sink are counted, not printed)\n",
                 e.sink.c_str(), e.exception_type.c_str(), e.event.c_str(), e.message.c_str(),
                 e.exception_type.c_str());
  else
    std::fprintf(stderr, "simic: sink '%s' threw %s %llu times in all; first: %s\n", e.sink.c_str(),
                 e.exception_type.c_str(), static_cast<unsigned long long>(e.occurrences), e.message.c_str());
}

}  // namespace detail

class hub {
 public:
  // close() without a deadline: wait until every queued event reached the sinks.
  static constexpr std::chrono::milliseconds no_deadline = std::chrono::milliseconds::max();

  explicit hub(hub_options opts = {}) : state_(std::make_shared<state>(std::move(opts))) {
    const hub_options& o = state_->opts;
    detail::require(o.capacity >= 1, "simic::hub", "capacity", o.capacity, ">= 1");
    detail::require(static_cast<unsigned>(o.overflow) <= 2u, "simic::hub", "overflow",
                    static_cast<unsigned>(o.overflow), "discard_newest, block or overrun_oldest");
    // The thread holds the state, not the hub: abandoned by close() inside a
    // hung sink, it may outlive the hub.
    worker_ = std::thread([st = state_] { st->run(); });
  }
  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;
  ~hub() { close(); }

  // Adds a sink; events emitted from now on reach it. Throws after close().
  void add_sink(std::shared_ptr<sink> s) {
    detail::require(s != nullptr, "simic::hub::add_sink", "sink", "nullptr", "a sink");
    state& st = *state_;
    std::lock_guard lock(st.sinks_mutex);
    if (st.closed) throw std::logic_error("simic::hub::add_sink: the hub is closed");
    auto next = std::make_shared<sink_list>(*st.sinks);
    next->push_back(std::move(s));
    st.sinks = std::move(next);
    st.has_sinks.store(true, std::memory_order_relaxed);
  }

  // Whether any sink was added: a producer may skip building events nobody
  // reads (simic::session does).
  bool has_sinks() const noexcept { return state_->has_sinks.load(std::memory_order_relaxed); }

  // Queues the event (the hub's own copy). Not from inside a sink: a sink
  // must not call emit() or flush() of the hub that feeds it. Returns false when it was dropped
  // (queue full under discard_newest, or the hub is closed); drops are counted.
  bool emit(const event& e) { return state_->push(event(e)); }
  bool emit(event&& e) { return state_->push(std::move(e)); }
  template <EventPayload P>
  bool emit(std::uint64_t update, std::uint64_t epoch, P payload) {
    return state_->push(event(update, epoch, std::move(payload)));
  }

  // Waits until every event queued before this call has reached the sinks,
  // then flushes each sink. Without a deadline: a hung sink hangs it.
  void flush() {
    state& st = *state_;
    {
      std::unique_lock lock(st.mutex);
      const std::uint64_t target = st.queued;
      st.drained.wait(lock, [&] { return st.processed >= target || st.stopped || st.abandoned; });
    }
    const auto list = st.sink_snapshot();
    for (const auto& s : *list) st.guarded(*s, "flush", [&] { s->flush(); });
  }

  // Drains the queue, flushes the sinks, hands them the final counts and stops
  // the thread; waits without limit (a hung sink hangs it: see close(deadline)).
  // Repeated calls do nothing. Later emits are dropped and counted.
  void close() noexcept { close_within(no_deadline); }

  // As close(), but waits at most `deadline` (>= 0; 0: deliver nothing more)
  // for the queue to drain. Events still queued then, and the one a sink is
  // writing, are counted `undelivered`; the thread is abandoned (it ends when
  // the sink returns, touching nothing of the hub's counts) and the sink it
  // is in gets neither flush nor finish. Every other sink is flushed and
  // finished. Returns the final counts. Throws std::invalid_argument for a
  // negative deadline (before doing anything).
  hub_counts close(std::chrono::milliseconds deadline) {
    detail::require(deadline.count() >= 0, "simic::hub::close", "deadline", deadline.count(),
                    ">= 0 ms (0: deliver nothing more; hub::no_deadline: wait without limit)");
    close_within(deadline);
    return counts();
  }

  hub_counts counts() const { return state_->counts_now(); }

  // Every kind of sink failure seen so far, with its count.
  std::vector<sink_error> errors() const {
    std::lock_guard lock(state_->errors_mutex);
    return state_->errors;
  }

  // Called on the first failure of each (sink, exception type), and at
  // close() once more for each that recurred. The default prints to stderr.
  // Called on the hub's thread, or the closing one.
  void set_error_handler(error_handler h) {
    std::lock_guard lock(state_->errors_mutex);
    state_->handler = h ? std::move(h) : error_handler(detail::print_sink_error);
  }

  const hub_options& options() const noexcept { return state_->opts; }
  std::size_t queued_now() const {
    std::lock_guard lock(state_->mutex);
    return state_->queue.size();
  }

 private:
  using sink_list = std::vector<std::shared_ptr<sink>>;

  // Everything the worker thread touches: shared, so that it stays alive as
  // long as an abandoned thread needs it.
  struct state {
    explicit state(hub_options o) : opts(std::move(o)), sinks(std::make_shared<const sink_list>()) {}

    hub_options opts;

    mutable std::mutex mutex;  // queue, counts, and the thread's position
    std::condition_variable not_empty;
    std::condition_variable not_full;
    std::condition_variable drained;  // also: stopped
    std::deque<event> queue;
    hub_counts counts{};
    std::uint64_t queued = 0;        // events ever queued
    std::uint64_t processed = 0;     // of those, delivered, overrun or undelivered
    bool closing = false;
    bool stopped = false;            // the thread left its loop
    bool abandoned = false;          // close()'s deadline passed: deliver nothing more, count nothing
    bool in_flight = false;          // the thread holds an event taken off the queue
    const sink* writing = nullptr;   // the sink the thread is in (null: none)

    std::atomic<bool> has_sinks{false};
    mutable std::mutex sinks_mutex;
    std::shared_ptr<const sink_list> sinks;
    bool closed = false;

    mutable std::mutex errors_mutex;
    std::vector<sink_error> errors;
    std::vector<const sink*> error_sinks;  // the sink of each entry of errors
    std::uint64_t failed = 0;
    error_handler handler = detail::print_sink_error;

    std::shared_ptr<const sink_list> sink_snapshot() const {
      std::lock_guard lock(sinks_mutex);
      return sinks;
    }

    hub_counts counts_now() const {
      std::lock_guard lock(mutex);
      hub_counts c = counts;
      std::lock_guard elock(errors_mutex);
      c.failed = failed;
      return c;
    }

    bool push(event&& e) {
      std::unique_lock lock(mutex);
      ++counts.emitted;
      if (closing) {
        ++counts.dropped;
        return false;
      }
      if (queue.size() >= opts.capacity) {
        switch (opts.overflow) {
          case overflow_policy::discard_newest:
            ++counts.dropped;
            return false;
          case overflow_policy::overrun_oldest:
            queue.pop_front();
            ++counts.dropped;
            ++processed;  // the dropped one will never be delivered; flush() must not wait for it
            break;
          case overflow_policy::block:
            not_full.wait(lock, [&] { return queue.size() < opts.capacity || closing; });
            if (closing) {
              ++counts.dropped;
              return false;
            }
            break;
        }
      }
      if (!opts.context.empty()) e = std::move(e).with_default_context(opts.context);
      queue.push_back(std::move(e));
      ++queued;
      lock.unlock();
      not_empty.notify_one();
      return true;
    }

    void run() {
      std::unique_lock lock(mutex);
      for (;;) {
        not_empty.wait(lock, [&] { return !queue.empty() || closing; });
        if (abandoned || queue.empty()) break;  // closing, and everything delivered (or given up)
        event e = std::move(queue.front());
        queue.pop_front();
        in_flight = true;
        const auto list = sink_snapshot();  // lock order: mutex, then sinks_mutex
        not_full.notify_one();
        for (const auto& s : *list) {
          // Checked under the lock before each sink: once close() gave up, no
          // sink gets another write (it may be finishing them).
          if (abandoned) break;
          writing = s.get();
          lock.unlock();
          guarded(*s, e.name(), [&] { s->write(e); });
          lock.lock();
          writing = nullptr;
        }
        if (abandoned) break;  // close() counted this one undelivered
        in_flight = false;
        ++counts.delivered;
        ++processed;
        drained.notify_all();
      }
      stopped = true;
      drained.notify_all();
    }

    // A failure is reported (handler, errors()) and, when `counted`, added
    // to `failed`: every write and flush; not a finish, which comes after the
    // final counts were handed to the sinks finished before it.
    template <class F>
    void guarded(const sink& s, std::string_view what, F&& f, bool counted = true) noexcept {
      try {
        f();
      } catch (...) {
        record_failure(s, what, counted);
      }
    }

    // Inside a catch block.
    void record_failure(const sink& s, std::string_view what, bool counted) noexcept {
      try {
        auto [type, message] = detail::current_exception_info();
        std::string sink_name = s.name();
        sink_error first;
        bool report = false;
        {
          std::lock_guard lock(errors_mutex);
          if (counted) ++failed;
          // A kind is (this sink object, exception type): two sinks of one name stay apart.
          sink_error* found = nullptr;
          for (std::size_t i = 0; i < errors.size(); ++i)
            if (error_sinks[i] == &s && errors[i].exception_type == type) found = &errors[i];
          if (found) {
            ++found->occurrences;
          } else {
            error_sinks.push_back(&s);
            errors.push_back({std::move(sink_name), std::move(type), std::move(message), std::string(what), 1});
            first = errors.back();
            report = true;
          }
        }
        if (report) call_handler(first);
      } catch (...) {
        std::fputs("simic: could not record a sink failure (out of memory?)\n", stderr);
      }
    }

    void call_handler(const sink_error& e) noexcept {
      error_handler h;
      {
        std::lock_guard lock(errors_mutex);
        h = handler;
      }
      try {
        h(e);
      } catch (...) {
        // The handler itself failed: fall back to stderr so the report is not lost.
        detail::print_sink_error(e);
      }
    }
  };

  void close_within(std::chrono::milliseconds deadline) noexcept {
    state& st = *state_;
    std::lock_guard close_lock(close_mutex_);
    {
      std::lock_guard lock(st.sinks_mutex);
      if (st.closed) return;
      st.closed = true;
    }
    const sink* hung = nullptr;
    {
      std::unique_lock lock(st.mutex);
      st.closing = true;
      st.not_empty.notify_all();
      st.not_full.notify_all();
      const auto done = [&] { return st.stopped; };
      if (deadline == no_deadline)
        st.drained.wait(lock, done);
      else if (!st.drained.wait_for(lock, deadline, done)) {
        // Given up: what is queued, and the event a sink is writing, will not be delivered.
        st.abandoned = true;
        const std::uint64_t left = st.queue.size() + (st.in_flight ? 1 : 0);
        st.counts.undelivered += left;
        st.processed += left;
        st.queue.clear();
        hung = st.writing;
        st.drained.notify_all();
      }
    }
    if (st.abandoned) {
      if (worker_.joinable()) worker_.detach();
    } else if (worker_.joinable()) {
      worker_.join();
    }
    const auto list = st.sink_snapshot();
    for (const auto& s : *list)
      if (s.get() != hung) st.guarded(*s, "flush", [&] { s->flush(); });
    // The counts are final here: nothing after this changes them, so every
    // sink's finish gets the counts close() returns. A finish that throws is
    // reported, not counted (the sinks finished before it already wrote the
    // counts).
    const hub_counts final_counts = st.counts_now();
    for (const auto& s : *list)
      if (s.get() != hung) st.guarded(*s, "finish", [&] { s->finish(final_counts); }, false);
    // Every kind that recurred is reported once more with its total.
    std::vector<sink_error> recurring;
    {
      std::lock_guard lock(st.errors_mutex);
      for (const auto& e : st.errors)
        if (e.occurrences > 1) recurring.push_back(e);
    }
    for (const auto& e : recurring) st.call_handler(e);
  }

  std::shared_ptr<state> state_;
  std::mutex close_mutex_;
  std::thread worker_;  // last: starts after everything above exists
};

}  // namespace v0
}  // namespace simic
