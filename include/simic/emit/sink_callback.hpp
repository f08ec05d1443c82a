// Callback sink: calls a function for every event, on the hub's thread.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>

#include "simic/emit/sink.hpp"

namespace simic {
inline namespace v0 {

class callback_sink final : public sink {
 public:
  using event_fn = std::function<void(const event&)>;
  using finish_fn = std::function<void(const hub_counts&)>;

  explicit callback_sink(event_fn on_event, finish_fn on_finish = {}, std::string name = "callback")
      : on_event_(std::move(on_event)), on_finish_(std::move(on_finish)), name_(std::move(name)) {
    if (!on_event_) throw std::invalid_argument("simic::callback_sink: on_event is empty; valid: a callable");
  }
  std::string name() const override { return name_; }

 protected:
  void do_write(const event& e) override { on_event_(e); }
  void do_finish(const hub_counts& c) override {
    if (on_finish_) on_finish_(c);
  }

 private:
  event_fn on_event_;
  finish_fn on_finish_;
  std::string name_;
};

}  // namespace v0
}  // namespace simic
