// In-memory sink: keeps a copy of every event, for tests and for trainers
// that inspect their own telemetry. Unbounded: meant for short runs.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "simic/emit/sink.hpp"

namespace simic {
inline namespace v0 {

class memory_sink final : public sink {
 public:
  std::string name() const override { return "memory"; }

  // A copy of the events received so far, in order.
  std::vector<event> events() const {
    std::lock_guard lock(data_mutex_);
    return events_;
  }
  std::size_t size() const {
    std::lock_guard lock(data_mutex_);
    return events_.size();
  }
  // Moves the events out, leaving the sink empty.
  std::vector<event> take() {
    std::lock_guard lock(data_mutex_);
    return std::exchange(events_, {});
  }
  // The hub's final counts, once it closed.
  std::optional<hub_counts> final_counts() const {
    std::lock_guard lock(data_mutex_);
    return final_;
  }

 protected:
  void do_write(const event& e) override {
    std::lock_guard lock(data_mutex_);
    events_.push_back(e);
  }
  void do_finish(const hub_counts& c) override {
    std::lock_guard lock(data_mutex_);
    final_ = c;
  }

 private:
  mutable std::mutex data_mutex_;  // the base's lock guards the hooks; this one the readers too
  std::vector<event> events_;
  std::optional<hub_counts> final_;
};

}  // namespace v0
}  // namespace simic
