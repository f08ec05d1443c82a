// The exchange over a real Gloo group of forked ranks on loopback: every
// rank gets the job signals that reduce_signals gives for all ranks' rows
// (computed by each rank from the same rank-indexed inputs), and a dead rank
// fails the others with a clear error, not a hang.
// LibTorch, c10d and Gloo first: torch_doctest.hpp then removes glog's CHECK.
#include "support/loopback_group.hpp"
#include "simic/distributed/process_group_exchange.hpp"
#include "support/torch_doctest.hpp"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace simic;
using namespace simic::distributed;

namespace {

// Rank r's signals: different on every rank, NaN gradients on rank `nan_rank`.
signals rank_signals(int r, int nan_rank) {
  signals s;
  s.ratio_max = 1.0 + 0.25 * r;
  s.ratio_min = 1.0 - 0.1 * r;
  s.approx_kl = 0.01 * (r + 1);
  s.loss = 2.0 - r;
  s.gradients = gradient_signal{.total_norm = 1.5, .health = 1, .min_param_norm = 0.1, .max_param_norm = 1,
                                .parameters = 4};
  if (r == nan_rank) {
    s.gradients->nan_count = 2;
    s.gradients->total_norm = std::nan("");
  }
  s.lstm = lstm_signal{.h_norm = 1.0 + r, .c_norm = 1.0, .elements = 16};  // the last rank the least healthy
  return s;
}

}  // namespace

TEST_CASE("2 and 4 ranks: every rank gets the job signals of every rank's rows, in one collective") {
  for (int ranks : {2, 4}) {
    INFO("ranks: " << ranks);
    const auto port = simic::test::free_local_port();
    const auto codes = simic::test::fork_ranks(ranks, [&](int rank) {
      auto group = simic::test::loopback_gloo_group(rank, ranks, port, std::chrono::seconds(20));
      process_group_exchange x(group);
      const int nan_rank = ranks - 1;
      const job_signals j = x(rank_signals(rank, nan_rank));
      // The reference: this rank packs every rank's signals itself.
      std::vector<double> rows;
      for (int r = 0; r < ranks; ++r) {
        const auto row = pack_signals(rank_signals(r, nan_rank));
        rows.insert(rows.end(), row.begin(), row.end());
      }
      const job_signals want = reduce_signals(rows, static_cast<std::size_t>(ranks), rank_signals(rank, nan_rank));
      const signals &a = j.view(), &b = want.view();
      bool ok = a.ratio_max == b.ratio_max && a.ratio_min == b.ratio_min && a.approx_kl == b.approx_kl &&
                a.loss == b.loss && std::isnan(a.gradients->total_norm) && a.gradients->nan_count == 2 &&
                a.lstm->h_norm == b.lstm->h_norm && x.collectives() == 1;
      // By hand: ratio_max 1 + 0.25 (ranks - 1); KL the mean of 0.01 .. 0.01 ranks.
      ok = ok && *a.ratio_max == 1.0 + 0.25 * (ranks - 1) &&
           std::fabs(*a.approx_kl - 0.005 * (ranks + 1)) < 1e-15 && a.lstm->h_norm == ranks &&
           j.origin_of(anomaly_kind::numerical_instability) == std::vector<std::int64_t>{nan_rank};
      group->barrier()->wait();
      return ok ? 0 : 1;
    });
    for (int r = 0; r < ranks; ++r) CHECK_MESSAGE(codes[static_cast<std::size_t>(r)] == 0, "rank " << r);
  }
}

TEST_CASE("a rank that died makes the others fail with exchange_error within the timeout, not hang") {
  const auto port = simic::test::free_local_port();
  const auto t0 = std::chrono::steady_clock::now();
  const auto codes = simic::test::fork_ranks(2, [&](int rank) {
    auto group = simic::test::loopback_gloo_group(rank, 2, port, std::chrono::seconds(3));
    process_group_exchange x(group);
    x(rank_signals(rank, -1));  // one exchange together
    if (rank == 1) ::_exit(7);  // then rank 1 dies
    try {
      x(rank_signals(rank, -1));
    } catch (const exchange_error& e) {
      const std::string what = e.what();
      return what.find("rank 0 of 2") != std::string::npos ? 0 : 2;
    }
    return 3;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(codes[0] == 0);
  CHECK(codes[1] == 7);
  CHECK(seconds < 30.0);
}

TEST_CASE("collective_group: a null group is refused by name; a backend's group is accepted on every LibTorch") {
  CHECK_FALSE(static_cast<bool>(collective_group{}));
  CHECK_THROWS_WITH_AS(process_group_exchange(collective_group{}), doctest::Contains("group is null"),
                       std::invalid_argument);
  // ProcessGroupGloo derives from ProcessGroup in 1.13 and from Backend in
  // 2.x: both convert (a group of one rank, no other process needed).
  const auto port = simic::test::free_local_port();
  const collective_group one = simic::test::loopback_gloo_group(0, 1, port, std::chrono::seconds(10));
  CHECK(static_cast<bool>(one));
  CHECK(one.rank() == 0);
  CHECK(one.ranks() == 1);
  process_group_exchange x(one);
  signals s;
  s.loss = 0.5;
  const job_signals job = x(s);
  CHECK(*job.view().loss == 0.5);
  CHECK(x.collectives() == 1);
}

namespace {
volatile sig_atomic_t sigpipes_seen = 0;
extern "C" void count_sigpipe(int) { sigpipes_seen = sigpipes_seen + 1; }

// SIGPIPE's handler now: SIG_DFL, SIG_IGN or a function.
void (*sigpipe_handler())(int) {
  struct sigaction now {};
  ::sigaction(SIGPIPE, nullptr, &now);
  return now.sa_handler;
}

// A write to a socket whose peer is closed: -1 with EPIPE when SIGPIPE does
// not end the process first.
bool write_to_closed_peer_fails_with_epipe() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return false;
  ::close(fds[1]);
  const char byte = 'x';
  const ssize_t n = ::write(fds[0], &byte, 1);
  const bool epipe = n == -1 && errno == EPIPE;
  ::close(fds[0]);
  return epipe;
}
}  // namespace

TEST_CASE("gloo_group ignores SIGPIPE at its default disposition and keeps one the program set") {
  // Each case in a forked process of its own (a group of one rank): the
  // disposition is process-wide.
  const auto port = simic::test::free_local_port();
  const auto codes = simic::test::fork_ranks(4, [&](int which) {
    if (which == 0) {  // default: ignored, so a write to a dead peer is EPIPE, not death
      ::signal(SIGPIPE, SIG_DFL);
      auto group = simic::test::loopback_gloo_group(0, 1, port, std::chrono::seconds(10));
      if (sigpipe_handler() != SIG_IGN) return 1;
      return write_to_closed_peer_fails_with_epipe() ? 0 : 2;
    }
    if (which == 1) {  // the program's handler: kept, and it still sees the signal
      ::signal(SIGPIPE, count_sigpipe);
      auto group = simic::test::loopback_gloo_group(0, 1, simic::test::free_local_port(), std::chrono::seconds(10));
      if (sigpipe_handler() != count_sigpipe) return 1;
      return write_to_closed_peer_fails_with_epipe() && sigpipes_seen == 1 ? 0 : 2;
    }
    if (which == 2) {  // SIG_IGN set by the program: stays
      ::signal(SIGPIPE, SIG_IGN);
      auto group = simic::test::loopback_gloo_group(0, 1, simic::test::free_local_port(), std::chrono::seconds(10));
      return sigpipe_handler() == SIG_IGN ? 0 : 1;
    }
    // bad options are refused before anything changes
    ::signal(SIGPIPE, SIG_DFL);
    try {
      simic::distributed::gloo_group({.port = port, .rank = 2, .ranks = 2});
      return 1;
    } catch (const std::invalid_argument& e) {
      if (std::string(e.what()).find("rank = 2 is out of range; valid: 0 .. ranks - 1 = 1") == std::string::npos) return 2;
    }
    return sigpipe_handler() == SIG_DFL ? 0 : 3;
  });
  for (int c = 0; c < 4; ++c) CHECK_MESSAGE(codes[static_cast<std::size_t>(c)] == 0, "case " << c);
}
