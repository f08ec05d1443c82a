// The cost of the agreement per check (docs/performance.md): N forked ranks
// in a Gloo group on loopback, each timing `checks` agreed checks
// (agreement::agree + monitor check: one all-gather) beside the check alone
// on the same signals. Rank 0 prints median and 90th percentile per check.
//   distributed_agreement [--ranks N] [--checks K]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/loopback_group.hpp"
#include "simic/distributed/agreement.hpp"
#include "simic/simic.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

simic::signals rank_signals(int rank, int k) {
  simic::signals s;
  s.ratio_max = 1.1 + 0.01 * rank;
  s.ratio_min = 0.9;
  s.approx_kl = 0.01 + 1e-4 * (k % 7);
  s.loss = 0.5;
  s.gradients = simic::gradient_signal{.total_norm = 1.0 + 0.01 * (k % 5), .health = 1, .min_param_norm = 0.1,
                                       .max_param_norm = 0.9, .parameters = 10};
  s.lstm = simic::lstm_signal{.h_norm = 1, .c_norm = 2, .elements = 64};
  return s;
}

int run(int rank, int ranks, std::uint16_t port, int checks) {
  auto group = simic::test::loopback_gloo_group(rank, ranks, port, std::chrono::seconds(60));
  simic::distributed::agreement agree(group);
  simic::default_monitor agreed, alone;
  std::vector<double> with_agreement, check_alone;
  for (int k = 0; k < checks + 200; ++k) {  // the first 200: warm-up
    const simic::signals s = rank_signals(rank, k);
    const auto t0 = clock_type::now();
    agreed.check(agree.agree(s));
    const auto t1 = clock_type::now();
    alone.check(s);
    const auto t2 = clock_type::now();
    if (k >= 200) {
      with_agreement.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      check_alone.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
    }
  }
  if (rank == 0)
    std::printf("%d ranks, %d checks: agreed check median %.1f us (p90 %.1f), check alone median %.2f us "
                "(p90 %.2f); collectives %llu\n",
                ranks, checks, percentile(with_agreement, 0.5), percentile(with_agreement, 0.9),
                percentile(check_alone, 0.5), percentile(check_alone, 0.9),
                static_cast<unsigned long long>(agree.collectives()));
  std::fflush(stdout);  // the rank leaves with _exit
  group->barrier()->wait();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int ranks = 2, checks = 5000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--ranks") ranks = std::atoi(argv[i + 1]);
    else if (a == "--checks") checks = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--ranks N (2..64)] [--checks K (>= 1)]\n", argv[0]);
      return 2;
    }
  }
  if (ranks < 2 || ranks > 64 || checks < 1) {
    std::fprintf(stderr, "--ranks: 2..64, --checks: >= 1\n");
    return 2;
  }
  const auto port = simic::test::free_local_port();
  const auto codes = simic::test::fork_ranks(ranks, [&](int r) { return run(r, ranks, port, checks); });
  return std::all_of(codes.begin(), codes.end(), [](int c) { return c == 0; }) ? 0 : 1;
}
