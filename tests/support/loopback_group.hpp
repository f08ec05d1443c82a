// A Gloo process group of forked ranks on 127.0.0.1, for the distributed
// tests: a TCPStore on a free local port, rank 0 its server.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

}  // namespace simic::test
