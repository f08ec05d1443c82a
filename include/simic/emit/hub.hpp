// The hub: events go into a bounded queue; one background thread hands them
// to every sink. emit() never waits on a sink: with the default policy a full
// queue drops the newest event and counts it. A sink that throws is reported
// to an error handler (once per sink and exception type, later ones counted)
// and the other sinks go on. flush(), close() and the destructor drain
// everything queued.
#pragma once

#include <atomic>
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
  explicit hub(hub_options opts = {}) : opts_(std::move(opts)), sinks_(std::make_shared<const sink_list>()) {
    detail::require(opts_.capacity >= 1, "simic::hub", "capacity", opts_.capacity, ">= 1");
    detail::require(static_cast<unsigned>(opts_.overflow) <= 2u, "simic::hub", "overflow",
                    static_cast<unsigned>(opts_.overflow), "discard_newest, block or overrun_oldest");
    worker_ = std::thread([this] { run(); });
  }
  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;
  ~hub() { close(); }

  // Adds a sink; events emitted from now on reach it. Throws after close().
  void add_sink(std::shared_ptr<sink> s) {
    detail::require(s != nullptr, "simic::hub::add_sink", "sink", "nullptr", "a sink");
    std::lock_guard lock(sinks_mutex_);
    if (closed_)
      throw std::logic_error("simic::hub::add_sink: the hub is closed");
    auto next = std::make_shared<sink_list>(*sinks_);
    next->push_back(std::move(s));
    sinks_ = std::move(next);
    has_sinks_.store(true, std::memory_order_relaxed);
  }

  // Whether any sink was added: a producer may skip building events nobody
  // reads (simic::session does).
  bool has_sinks() const noexcept { return has_sinks_.load(std::memory_order_relaxed); }

  // Queues the event (the hub's own copy). Not from inside a sink: a sink
  // must not call emit() or flush() of the hub that feeds it. Returns false when it was dropped
  // (queue full under discard_newest, or the hub is closed); drops are counted.
  bool emit(const event& e) { return push(event(e)); }
  bool emit(event&& e) { return push(std::move(e)); }
  template <EventPayload P>
  bool emit(std::uint64_t update, std::uint64_t epoch, P payload) {
    return push(event(update, epoch, std::move(payload)));
  }

  // Waits until every event queued before this call has reached the sinks,
  // then flushes each sink.
  void flush() {
    {
      std::unique_lock lock(mutex_);
      const std::uint64_t target = queued_;
      drained_.wait(lock, [&] { return processed_ >= target || stopped_; });
    }
    const auto list = sinks();
    for (const auto& s : *list) guarded(*s, "flush", [&] { s->flush(); });
  }

  // Drains the queue, flushes the sinks, hands them the final counts and stops
  // the thread; repeated calls do nothing. Later emits are dropped and counted.
  void close() noexcept {
    std::lock_guard close_lock(close_mutex_);
    {
      std::lock_guard lock(sinks_mutex_);
      if (closed_) return;
      closed_ = true;
    }
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    if (worker_.joinable()) worker_.join();
    const auto list = sinks();
    for (const auto& s : *list) guarded(*s, "flush", [&] { s->flush(); });
    const hub_counts final_counts = counts();
    for (const auto& s : *list) guarded(*s, "finish", [&] { s->finish(final_counts); });
    // Every kind that recurred is reported once more with its total.
    std::vector<sink_error> recurring;
    {
      std::lock_guard lock(errors_mutex_);
      for (const auto& e : errors_)
        if (e.occurrences > 1) recurring.push_back(e);
    }
    for (const auto& e : recurring) call_handler(e);
  }

  hub_counts counts() const {
    std::lock_guard lock(mutex_);
    hub_counts c = counts_;
    std::lock_guard elock(errors_mutex_);
    c.failed = failed_;
    return c;
  }

  // Every kind of sink failure seen so far, with its count.
  std::vector<sink_error> errors() const {
    std::lock_guard lock(errors_mutex_);
    return errors_;
  }

  // Called on the first failure of each (sink, exception type), and at
  // close() once more for each that recurred. The default prints to stderr.
  void set_error_handler(error_handler h) {
    std::lock_guard lock(errors_mutex_);
    handler_ = h ? std::move(h) : error_handler(detail::print_sink_error);
  }

  const hub_options& options() const noexcept { return opts_; }
  std::size_t queued_now() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  using sink_list = std::vector<std::shared_ptr<sink>>;

  std::shared_ptr<const sink_list> sinks() const {
    std::lock_guard lock(sinks_mutex_);
    return sinks_;
  }

  bool push(event&& e) {
    std::unique_lock lock(mutex_);
    ++counts_.emitted;
    if (closing_) {
      ++counts_.dropped;
      return false;
    }
    if (queue_.size() >= opts_.capacity) {
      switch (opts_.overflow) {
        case overflow_policy::discard_newest:
          ++counts_.dropped;
          return false;
        case overflow_policy::overrun_oldest:
          queue_.pop_front();
          ++counts_.dropped;
          ++processed_;  // the dropped one will never be delivered; flush() must not wait for it
          break;
        case overflow_policy::block:
          not_full_.wait(lock, [&] { return queue_.size() < opts_.capacity || closing_; });
          if (closing_) {
            ++counts_.dropped;
            return false;
          }
          break;
      }
    }
    if (!opts_.context.empty()) e = std::move(e).with_default_context(opts_.context);
    queue_.push_back(std::move(e));
    ++queued_;
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      not_empty_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) break;  // closing, and everything delivered
      event e = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      not_full_.notify_one();
      const auto list = sinks();
      for (const auto& s : *list) guarded(*s, e.name(), [&] { s->write(e); });
      lock.lock();
      ++counts_.delivered;
      ++processed_;
      drained_.notify_all();
    }
    stopped_ = true;
    drained_.notify_all();
  }

  template <class F>
  void guarded(const sink& s, std::string_view what, F&& f) noexcept {
    try {
      f();
    } catch (...) {
      record_failure(s, what);
    }
  }

  // Inside a catch block.
  void record_failure(const sink& s, std::string_view what) noexcept {
    try {
      auto [type, message] = detail::current_exception_info();
      std::string sink_name = s.name();
      sink_error first;
      bool report = false;
      {
        std::lock_guard lock(errors_mutex_);
        ++failed_;
        // A kind is (this sink object, exception type): two sinks of one name stay apart.
        sink_error* found = nullptr;
        for (std::size_t i = 0; i < errors_.size(); ++i)
          if (error_sinks_[i] == &s && errors_[i].exception_type == type) found = &errors_[i];
        if (found) {
          ++found->occurrences;
        } else {
          error_sinks_.push_back(&s);
          errors_.push_back({std::move(sink_name), std::move(type), std::move(message), std::string(what), 1});
          first = errors_.back();
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
      std::lock_guard lock(errors_mutex_);
      h = handler_;
    }
    try {
      h(e);
    } catch (...) {
      // The handler itself failed: fall back to stderr so the report is not lost.
      detail::print_sink_error(e);
    }
  }

  hub_options opts_;

  mutable std::mutex mutex_;  // queue and counts
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::condition_variable drained_;
  std::deque<event> queue_;
  hub_counts counts_{};
  std::uint64_t queued_ = 0;     // events ever queued
  std::uint64_t processed_ = 0;  // of those, delivered or overrun
  bool closing_ = false;
  bool stopped_ = false;

  std::atomic<bool> has_sinks_{false};
  mutable std::mutex sinks_mutex_;
  std::shared_ptr<const sink_list> sinks_;
  bool closed_ = false;
  std::mutex close_mutex_;

  mutable std::mutex errors_mutex_;
  std::vector<sink_error> errors_;
  std::vector<const sink*> error_sinks_;  // the sink of each entry of errors_
  std::uint64_t failed_ = 0;
  error_handler handler_ = detail::print_sink_error;

  std::thread worker_;  // last: starts after everything above exists
};

}  // namespace v0
}  // namespace simic
