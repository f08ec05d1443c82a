// A Gloo process group of forked ranks on 127.0.0.1, for the distributed
// tests and bench: a TCPStore on a free local port, rank 0 its server, and
// the ranks forked and waited for.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace simic::test {

// A port nobody listens on now (the kernel's pick; released for the store).
inline std::uint16_t free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("free_local_port: socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("free_local_port: bind");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

inline c10::intrusive_ptr<c10d::ProcessGroupGloo> loopback_gloo_group(int rank, int ranks, std::uint16_t port,
                                                                      std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = port;
  so.isServer = rank == 0;
  so.numWorkers = ranks;
  so.waitWorkers = true;
  so.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, ranks, opts);
}

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
