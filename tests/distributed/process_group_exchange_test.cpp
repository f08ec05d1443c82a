// The exchange over a real Gloo group of forked ranks on loopback: every
// rank gets the job signals that reduce_signals gives for all ranks' rows
// (computed by each rank from the same rank-indexed inputs), and a dead rank
// fails the others with a clear error, not a hang.
// LibTorch, c10d and Gloo first: torch_doctest.hpp then removes glog's CHECK.
#include "support/loopback_group.hpp"
#include "simic/distributed/process_group_exchange.hpp"
#include "support/torch_doctest.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

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
