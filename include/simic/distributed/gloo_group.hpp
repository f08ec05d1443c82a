// A Gloo process group over a TCPStore: what a C++ data-parallel job's ranks
// set up before anything else (torchrun does it for Python). Rank 0 serves
// the store; every rank connects to host:port. LibTorch's Gloo classes are
// declared only with USE_C10D_GLOO defined (Debian's LibTorch is built with
// Gloo; Gloo's headers come with libgloo-dev).
#pragma once

#ifndef USE_C10D_GLOO
#error "simic/distributed/gloo_group.hpp: compile with -DUSE_C10D_GLOO (LibTorch built with Gloo)"
#endif

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "simic/core/error.hpp"

namespace simic {
inline namespace v0 {
namespace distributed {

// A port on 127.0.0.1 nobody listens on now (the kernel's pick, released for
// the store to take; a launcher hands it to every rank).
inline std::uint16_t free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("simic::distributed::free_local_port: socket() failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("simic::distributed::free_local_port: bind() on 127.0.0.1 failed");
  return ntohs(a.sin_port);
}

// Gloo writes to its peers' sockets. Once a peer has died, such a write
// raises SIGPIPE, whose default action ends the process (Python ignores
// SIGPIPE, a C++ program does not): a dead rank would kill its peers by
// signal instead of failing their collective with an error
// (exchange_error). This ignores SIGPIPE for the whole process if it is at
// its default disposition, so a write to a dead peer fails with EPIPE; a
// handler the program installed, or SIG_IGN, is left as it is. Returns
// whether it changed the disposition. gloo_group() calls it; call it before
// making a Gloo group of your own. (Process-wide: a program that wants
// SIGPIPE's default back after the job may restore it.)
inline bool ignore_sigpipe_if_default() noexcept {
  struct sigaction now {};
  if (::sigaction(SIGPIPE, nullptr, &now) != 0) return false;
  if ((now.sa_flags & SA_SIGINFO) != 0 || now.sa_handler != SIG_DFL) return false;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigemptyset(&ignore.sa_mask);
  return ::sigaction(SIGPIPE, &ignore, nullptr) == 0;
}

struct gloo_group_options {
  std::string host = "127.0.0.1";  // the store's host (rank 0's), and the interface Gloo uses
  std::uint16_t port = 0;          // the store's port (> 0)
  int rank = 0;                    // 0 .. ranks - 1
  int ranks = 1;                   // >= 1
  // How long the store waits for every rank, and each collective for the
  // others: a rank that died or hangs is an error after at most this.
  std::chrono::milliseconds timeout{30000};
};

// Blocks until every rank has joined (or the timeout passed). Ignores
// SIGPIPE if it is at its default disposition (ignore_sigpipe_if_default),
// after the options were checked.
inline c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo_group(const gloo_group_options& o) {
  constexpr std::string_view where = "simic::distributed::gloo_group";
  simic::detail::require(o.ranks >= 1, where, "ranks", o.ranks, ">= 1");
  simic::detail::require(o.rank >= 0 && o.rank < o.ranks, where, "rank", o.rank,
                         "0 .. ranks - 1 = " + std::to_string(o.ranks - 1));
  simic::detail::require(o.port > 0, where, "port", o.port, "1 .. 65535");
  simic::detail::require(o.timeout.count() > 0, where, "timeout", o.timeout.count(), "> 0 ms");
  ignore_sigpipe_if_default();
  c10d::TCPStoreOptions so;
  so.port = o.port;
  so.isServer = o.rank == 0;
  so.numWorkers = o.ranks;
  so.waitWorkers = true;
  so.timeout = o.timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(o.host, so);
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.host));
  opts->timeout = o.timeout;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.ranks, opts);
}

}  // namespace distributed
}  // namespace v0
}  // namespace simic
