// simic::session's shutdown: close within a deadline, and the opt-in stop by
// SIGTERM/SIGINT (docs/guide.md, Shutdown).
#include "support/torch_doctest.hpp"

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <signal.h>

#include "simic/core/signal_guard.hpp"
#include "simic/emit/sink_memory.hpp"
#include "simic/presets/ppo_session.hpp"

using namespace simic;

namespace {

// Hangs in write() until released.
class stuck_sink final : public sink {
 public:
  void release() {
    {
      std::lock_guard l(m_);
      open_ = true;
    }
    cv_.notify_all();
  }
  std::string name() const override { return "stuck"; }

 protected:
  void do_write(const event&) override {
    std::unique_lock l(m_);
    cv_.wait(l, [&] { return open_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

void (*handler_of(int sig))(int) {
  struct sigaction now {};
  ::sigaction(sig, nullptr, &now);
  return now.sa_handler;
}

}  // namespace

TEST_CASE("session: close_deadline bounds close() on a hung sink; the rest is counted undelivered") {
  auto stuck = std::make_shared<stuck_sink>();
  auto mem = std::make_shared<memory_sink>();
  session_options o;
  o.close_deadline = std::chrono::milliseconds(100);
  hub_counts c;
  {
    ppo_session<> tel(o, no_parameters, {mem, stuck});
    for (int i = 0; i < 4; ++i) tel.emit(update_metrics{.loss = 1.0 * i});
    const auto t0 = std::chrono::steady_clock::now();
    c = tel.close();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    CHECK(tel.close() == c);  // idempotent
  }
  // By hand: 4 emitted; the first reached mem, then hung in `stuck`: 4 undelivered, none delivered.
  CHECK(c == hub_counts{.emitted = 4, .undelivered = 4});
  CHECK(mem->size() == 1);
  REQUIRE(mem->final_counts().has_value());
  CHECK(*mem->final_counts() == c);
  stuck->release();
}

TEST_CASE("session: bad deadlines name themselves") {
  session_options o;
  o.close_deadline = std::chrono::milliseconds(-5);
  CHECK_THROWS_WITH_AS(ppo_session<>(o, no_parameters), doctest::Contains("close_deadline = -5"), std::invalid_argument);
  ppo_session<> tel(session_options{}, no_parameters);
  CHECK_THROWS_WITH_AS(tel.close(std::chrono::milliseconds(-1)), doctest::Contains("deadline = -1"),
                       std::invalid_argument);
  CHECK(tel.close(std::chrono::milliseconds(0)) == hub_counts{});
}

TEST_CASE("session: stop_on_signals is opt-in; with it SIGTERM is a stop request, and the old action comes back") {
  signal_guard::reset();
  ::signal(SIGTERM, SIG_DFL);
  {
    ppo_session<> plain(session_options{}, no_parameters);
    CHECK((handler_of(SIGTERM) == SIG_DFL));  // nothing installed unasked
    CHECK_FALSE(plain.stop_requested());
  }
  session_options o;
  o.stop_on_signals = true;
  {
    ppo_session<> tel(o, no_parameters);
    CHECK((handler_of(SIGTERM) != SIG_DFL));
    CHECK_FALSE(tel.stop_requested());
    REQUIRE(std::raise(SIGTERM) == 0);  // without the guard this would end the test program
    CHECK(tel.stop_requested());
    CHECK(tel.stop_signal() == SIGTERM);
  }
  CHECK((handler_of(SIGTERM) == SIG_DFL));
  {
    ppo_session<> plain(session_options{}, no_parameters);
    CHECK_FALSE(plain.stop_requested());  // a caught signal is not this session's unless it asked
    CHECK(plain.stop_signal() == 0);
  }
  signal_guard::reset();
}
