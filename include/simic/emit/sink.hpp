// The sink interface. As in spdlog's base_sink, the public write/flush/finish
// are final: they take the sink's lock and call the protected hooks, so a sink
// author writes no locking and a sink may be shared by a hub and direct calls.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "simic/emit/events.hpp"

namespace simic {
inline namespace v0 {

// What a hub did with the events handed to it. After close():
// emitted == delivered + dropped + undelivered. `failed` counts apart, per
// (event, sink): a delivered event whose sink threw was not written by that
// sink (it was by the others); also flush calls that threw. A finish that
// throws is reported (hub::errors(), the error handler) but not counted: the
// counts a sink's finish gets are final, the ones close() returns.
struct hub_counts {
  std::uint64_t emitted = 0;      // emit() calls
  std::uint64_t delivered = 0;    // events taken off the queue and handed to every sink
  std::uint64_t dropped = 0;      // not queued: queue full, or emitted after close()
  std::uint64_t failed = 0;       // (event, sink) deliveries whose sink threw, and flushes that threw
  std::uint64_t undelivered = 0;  // queued, but not delivered when close()'s deadline passed
  // Events some sink did not get: dropped, undelivered or failed.
  std::uint64_t lost() const noexcept { return dropped + undelivered + failed; }
  friend bool operator==(const hub_counts&, const hub_counts&) = default;
};

class sink {
 public:
  virtual ~sink() = default;
  sink() = default;
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;

  // Hands one event to the sink. Exceptions of the hook propagate (the hub
  // catches and reports them).
  void write(const event& e) {
    std::lock_guard lock(mutex_);
    do_write(e);
  }
  // Pushes what the sink buffers to where it goes.
  void flush() {
    std::lock_guard lock(mutex_);
    do_flush();
  }
  // The hub's last word, after it drained its queue: its final counts. The
  // JSONL sink writes them as the file's last line.
  void finish(const hub_counts& counts) {
    std::lock_guard lock(mutex_);
    do_finish(counts);
  }
  // For error reports, e.g. "jsonl:/runs/a/events.jsonl".
  virtual std::string name() const { return "sink"; }

 protected:
  virtual void do_write(const event& e) = 0;
  virtual void do_flush() {}
  virtual void do_finish(const hub_counts&) {}

 private:
  std::mutex mutex_;
};

}  // namespace v0
}  // namespace simic
