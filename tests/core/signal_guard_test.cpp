#include <doctest/doctest.h>

#include <csignal>
#include <stdexcept>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simic/core/signal_guard.hpp"

using simic::signal_guard;

namespace {

void (*current_handler(int sig))(int) {
  struct sigaction now {};
  ::sigaction(sig, nullptr, &now);
  return now.sa_handler;
}

void marker_handler(int) {}

}  // namespace

TEST_CASE("signal_guard: a signal sets the flag instead of ending the process; the old action comes back") {
  signal_guard::reset();
  struct sigaction mine {};
  mine.sa_handler = marker_handler;
  ::sigaction(SIGUSR1, &mine, nullptr);
  ::signal(SIGTERM, SIG_DFL);
  {
    signal_guard g({SIGTERM, SIGUSR1});
    CHECK_FALSE(signal_guard::requested());
    CHECK(signal_guard::signal_number() == 0);
    REQUIRE(std::raise(SIGTERM) == 0);  // would end the test program without the guard
    CHECK(signal_guard::requested());
    CHECK(signal_guard::signal_number() == SIGTERM);
    CHECK((current_handler(SIGUSR1) != marker_handler));
  }
  CHECK((current_handler(SIGUSR1) == marker_handler));  // restored
  CHECK((current_handler(SIGTERM) == SIG_DFL));
  CHECK(signal_guard::signal_number() == SIGTERM);  // the request outlives the guard until reset
  signal_guard::reset();
  CHECK_FALSE(signal_guard::requested());
  ::signal(SIGUSR1, SIG_DFL);
}

TEST_CASE("signal_guard: a second signal while one is pending ends the process the default way") {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    signal_guard::reset();
    signal_guard g;
    std::raise(SIGINT);                       // caught: flag set
    if (signal_guard::signal_number() != SIGINT) ::_exit(10);
    std::raise(SIGTERM);                      // the second: default action, the child dies
    ::_exit(11);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
}

TEST_CASE("signal_guard: bad signals are errors naming the argument; nothing is installed") {
  ::signal(SIGTERM, SIG_DFL);
  CHECK_THROWS_WITH_AS(signal_guard({SIGTERM, SIGKILL}), doctest::Contains("signal = 9"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(signal_guard({0}), doctest::Contains("SIGTERM, SIGINT"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(signal_guard({}), doctest::Contains("signals"), std::invalid_argument);
  CHECK((current_handler(SIGTERM) == SIG_DFL));
  CHECK(simic::signal_name(SIGTERM) == "SIGTERM");
  CHECK(simic::signal_name(SIGINT) == "SIGINT");
  CHECK(simic::signal_name(64) == "signal 64");
}
