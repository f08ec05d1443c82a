// A Gloo process group of forked ranks on 127.0.0.1, for the distributed
// tests and bench (simic/distributed/gloo_group.hpp), and the ranks forked
// and waited for.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "simic/distributed/gloo_group.hpp"

namespace simic::test {

inline c10::intrusive_ptr<c10d::ProcessGroupGloo> loopback_gloo_group(int rank, int ranks, std::uint16_t port,
                                                                      std::chrono::milliseconds timeout) {
  return simic::distributed::gloo_group({.port = port, .rank = rank, .ranks = ranks, .timeout = timeout});
}
using simic::distributed::free_local_port;

// Runs `body(rank)` in `ranks` forked processes (a job's ranks); their exit
// codes in rank order: the body's return value, 50 if it threw (its message
// on stderr), 100 + N if signal N ended it.
template <class Body>
std::vector<int> fork_ranks(int ranks, Body body) {
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    const pid_t p = ::fork();
    if (p == 0) {
      int code = 50;
      try {
        code = body(r);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
      ::_exit(code);
    }
    pids.push_back(p);
  }
  std::vector<int> codes;
  for (pid_t p : pids) {
    int status = 0;
    ::waitpid(p, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status));
  }
  return codes;
}

}  // namespace simic::test
