// The cost of the agreement per check (docs/performance.md): N forked ranks
// in a Gloo group on loopback, each timing, per check and interleaved,
//   - the check alone (monitor check on this rank's signals),
//   - the agreed check by all-gather (agreement::agree + check: one
//     collective of its own),
//   - the all-reduce of P gradient floats alone (what DDP costs anyway),
//   - the same all-reduce with the rows in its buffer, and around it the
//     agreement's own work: before, this rank's non-finite count of the
//     gradients and its row (agreement::carry); after, the rows read back
//     (receive), reduced (agree) and checked. That work minus the check is
//     the carried agreement's cost; the all-reduce's extra bytes are the
//     difference of the two all-reduces.
// Rank 0 prints median and 90th percentile of each. --ranks 1: the same
// work with no other rank to wait for (a group of one).
//   distributed_agreement [--ranks N] [--checks K] [--params P]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/loopback_group.hpp"
#include "simic/distributed/agreement.hpp"
#include "simic/distributed/gradient_all_reduce.hpp"
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

double us(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

int run(int rank, int ranks, std::uint16_t port, int checks, int params) {
  auto group = simic::test::loopback_gloo_group(rank, ranks, port, std::chrono::seconds(60));
  auto agreement = std::make_shared<simic::distributed::agreement>(group);
  const std::int64_t rows = agreement->carried_elements(torch::kFloat32);
  const at::Tensor grads_alone = torch::randn({params}), grads_with_rows = torch::randn({params + rows});
  const at::Tensor region = grads_with_rows.narrow(0, params, rows);
  simic::default_monitor by_gather, carried, alone;
  std::vector<double> t_alone, t_gather, t_reduce, t_reduce_rows, t_carried, t_pre, t_post;
  for (int k = 0; k < checks + 200; ++k) {  // the first 200: warm-up
    simic::signals s = rank_signals(rank, k);
    const auto t0 = clock_type::now();
    by_gather.check(agreement->agree(s));
    const auto t1 = clock_type::now();
    alone.check(s);
    const auto t2 = clock_type::now();
    // The gradients measured after the all-reduce stay out of the row; the
    // row carries the non-finite count before it, as gradient_all_reduce does.
    simic::signals held = s;
    held.gradients.reset();
    clock_type::time_point r0, r1, c0, c1, c2, c3;
    auto reduce_alone = [&] {
      std::vector<at::Tensor> b{grads_alone};
      r0 = clock_type::now();
      group->allreduce(b)->wait();
      r1 = clock_type::now();
    };
    auto reduce_carried = [&] {
      std::vector<at::Tensor> b{grads_with_rows};
      c0 = clock_type::now();
      held.gradients = simic::distributed::nonfinite_gradients(grads_with_rows.narrow(0, 0, params));
      agreement->carry(held, region);
      c1 = clock_type::now();
      group->allreduce(b)->wait();
      c2 = clock_type::now();
      agreement->receive(region);
      carried.check(agreement->agree(s));
      c3 = clock_type::now();
      grads_with_rows.narrow(0, 0, params).div_(ranks);  // keep the values bounded, as the mean does
    };
    if (k % 2 == 0) reduce_alone(), reduce_carried();
    else reduce_carried(), reduce_alone();
    grads_alone.div_(ranks);
    if (k >= 200) {
      t_gather.push_back(us(t0, t1));
      t_alone.push_back(us(t1, t2));
      t_reduce.push_back(us(r0, r1));
      t_reduce_rows.push_back(us(c1, c2));
      t_carried.push_back(us(c0, c1) + us(c2, c3));
      t_pre.push_back(us(c0, c1));
      t_post.push_back(us(c2, c3));
    }
  }
  if (rank == 0) {
    auto line = [](const char* what, const std::vector<double>& v) {
      std::printf("  %-44s median %9.2f us  p90 %9.2f us\n", what, percentile(v, 0.5), percentile(v, 0.9));
    };
    std::printf("%d ranks, %d checks, gradients of %d floats:\n", ranks, checks, params);
    line("check alone", t_alone);
    line("agreed check, all-gather", t_gather);
    line("gradient all-reduce alone", t_reduce);
    line("gradient all-reduce with the rows", t_reduce_rows);
    line("carried: carry + receive + agree + check", t_carried);
    line("  before the all-reduce: non-finite sum + carry", t_pre);
    line("  after it: receive + agree + check", t_post);
    std::vector<double> extra_bytes(t_reduce.size());  // paired: the two all-reduces of one check
    for (std::size_t i = 0; i < extra_bytes.size(); ++i) extra_bytes[i] = t_reduce_rows[i] - t_reduce[i];
    std::printf("  carried agreement per check, median: %.2f us (+ all-reduce with rows - alone, median of pairs: "
                "%.2f us)\n",
                percentile(t_carried, 0.5) - percentile(t_alone, 0.5), percentile(extra_bytes, 0.5));
    std::printf("  collectives per check: all-gather agreement %.0f, carried 0 (rows ride the gradients')\n",
                static_cast<double>(agreement->collectives()) / (checks + 200));
  }
  std::fflush(stdout);  // the rank leaves with _exit
  group->barrier()->wait();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int ranks = 2, checks = 5000, params = 25000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--ranks") ranks = std::atoi(argv[i + 1]);
    else if (a == "--checks") checks = std::atoi(argv[i + 1]);
    else if (a == "--params") params = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--ranks N (1..64)] [--checks K (>= 1)] [--params P (>= 1)]\n", argv[0]);
      return 2;
    }
  }
  if (ranks < 1 || ranks > 64 || checks < 1 || params < 1) {
    std::fprintf(stderr, "--ranks: 1..64, --checks: >= 1, --params: >= 1\n");
    return 2;
  }
  const auto port = simic::test::free_local_port();
  const auto codes = simic::test::fork_ranks(ranks, [&](int r) { return run(r, ranks, port, checks, params); });
  return std::all_of(codes.begin(), codes.end(), [](int c) { return c == 0; }) ? 0 : 1;
}
