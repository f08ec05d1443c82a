// Sessions of forked Gloo ranks on loopback, each with its own data and
// DDP-averaged gradients, checking through simic::distributed::agreement,
// its rows exchanged by an all-gather of their own or carried by the
// gradient all-reduce (gradient_all_reduce): one rank's NaN gradient makes
// every rank skip the same steps and stop on the same step with the same
// cause; one rank's LSTM explosion escalates every rank at the same update;
// anomaly events name the rank they came from; one collective per check
// (none of the agreement's own when carried).
#include "support/loopback_group.hpp"
#include "simic/distributed/agreement.hpp"
#include "simic/distributed/gradient_all_reduce.hpp"
#include "simic/emit/sink_memory.hpp"
#include "simic/presets/ppo_session.hpp"
#include "support/torch_doctest.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

using namespace simic;

namespace {

const simic::test::remove_at_exit cleanup{"distributed"};

// One rank's run; its log: "<step>:<action>:<level>" per check, then each
// anomaly event as "anomaly <kind> origin <ranks>".
// How the rows travel: an all-gather per check, or in the gradient all-reduce.
enum class rows_by { all_gather, gradient_all_reduce };

std::string run_rank(rows_by how, int rank, int ranks, std::uint16_t port, int nan_rank, int nan_from, int lstm_rank,
                     int lstm_at) {
  auto group = simic::test::loopback_gloo_group(rank, ranks, port, std::chrono::seconds(30));
  auto agreement = std::make_shared<distributed::agreement>(group);
  distributed::gradient_all_reduce all_reduce(group, agreement);
  torch::manual_seed(1);  // the same initial weights on every rank, as DDP broadcasts them
  torch::nn::Linear net(4, 2);
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (const auto& p : net->named_parameters()) params.emplace_back(p.key(), p.value());
  auto sink = std::make_shared<memory_sink>();
  session_options o;
  o.max_consecutive_skips = 3;
  ppo_session<> tel(distributed::rank_options(o, agreement), params, {sink});
  torch::optim::SGD opt(net->parameters(), 0.01);
  std::ostringstream log;
  for (int step = 1; step <= 14; ++step) {
    tel.begin_update();
    const double scale = rank == lstm_rank && step == lstm_at ? 1e4 : 0.5;  // rms 1e4: far past the bound
    tel.feed(lstm_state{torch::full({2, 8}, scale), torch::full({2, 8}, scale)});
    torch::manual_seed(100 * rank + step);  // each rank its own data
    const at::Tensor loss = net->forward(torch::randn({8, 4})).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    const bool nan_now = rank == nan_rank && step >= nan_from;
    signals s;
    s.loss = loss.item<double>();
    if (how == rows_by::all_gather) {
      for (const auto& p : net->parameters()) {  // what DDP does: the mean gradient on every rank
        std::vector<at::Tensor> g{p.grad()};
        group->allreduce(g)->wait();
        p.grad().div_(ranks);
      }
      if (nan_now) net->weight.grad()[0][0] = std::nan("");  // rank-local, after the all-reduce
    } else {
      if (nan_now) net->weight.grad()[0][0] = std::nan("");  // rank-local, before the all-reduce: the sum is NaN
      const signals held = tel.held_signals(s);
      all_reduce(net->parameters(), &held);
    }
    const check_result& r = tel.step(s);
    log << step << ":" << to_string(r.resp.act) << ":" << to_string(tel.level());
    if (r.resp.act == action::stop) log << ":" << r.resp.reason;
    log << "\n";
    if (r.resp.act == action::stop) break;
    if (r.resp.act == action::proceed) opt.step();
    tel.end_epoch();
  }
  tel.close();
  for (const auto& e : sink->events()) {
    if (e.context().rank != rank) log << "event without its rank\n";
    if (const auto* a = e.get_if<anomaly_event>()) {
      log << "anomaly " << to_string(a->kind) << " origin";
      for (auto r : a->origin_ranks) log << " " << r;
      log << "\n";
    }
  }
  log << "collectives " << agreement->collectives() + all_reduce.collectives() << " agreement "
      << agreement->collectives() << "\n";
  return log.str();
}

// Every rank's log, run in forked processes.
std::vector<std::string> run_job(rows_by how, int ranks, int nan_rank, int nan_from, int lstm_rank, int lstm_at) {
  const auto port = simic::test::free_local_port();
  const auto dir = simic::test::fresh_dir("distributed", "job" + std::to_string(ranks));
  std::filesystem::create_directories(dir);
  const auto codes = simic::test::fork_ranks(ranks, [&](int r) {
    std::ofstream(dir / std::to_string(r)) << run_rank(how, r, ranks, port, nan_rank, nan_from, lstm_rank, lstm_at);
    return 0;
  });
  for (int code : codes) CHECK(code == 0);
  std::vector<std::string> logs;
  for (int r = 0; r < ranks; ++r) logs.push_back(simic::test::read_file(dir / std::to_string(r)));
  return logs;
}

bool has_line(const std::string& log, const std::string& line) {
  return ("\n" + log).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("2 and 4 ranks: one rank's NaN gradient: every rank skips the same steps and stops on the same step") {
  for (const rows_by how : {rows_by::all_gather, rows_by::gradient_all_reduce})
    for (int ranks : {2, 4}) {
      const bool carried = how == rows_by::gradient_all_reduce;
      INFO("ranks " << ranks << (carried ? ", carried by the gradient all-reduce" : ", all-gather"));
      const int nan_rank = ranks - 1;
      const auto logs = run_job(how, ranks, nan_rank, 6, -1, 0);
      for (int r = 1; r < ranks; ++r) CHECK(logs[static_cast<std::size_t>(r)] == logs[0]);  // 0 divergent steps
      INFO(logs[0]);
      // Steps 1-5 proceed; 6, 7, 8 are skipped (numerical_instability); the
      // third skip in a row stops the run (max_consecutive_skips = 3).
      CHECK(has_line(logs[0], "5:proceed:NORMAL"));
      CHECK(has_line(logs[0], "6:skip_step:DEBUG"));
      CHECK(has_line(logs[0], "7:skip_step:DEBUG"));
      CHECK(logs[0].find("8:stop:DEBUG:") != std::string::npos);
      CHECK(logs[0].find("9:") == std::string::npos);
      CHECK(has_line(logs[0], "anomaly numerical_instability origin " + std::to_string(nan_rank)));
      // all-gather: its own collective per check beside DDP's all-reduce
      // (made by the test per parameter, not counted); carried: the
      // gradient all-reduce alone, one per check.
      CHECK(has_line(logs[0], carried ? "collectives 8 agreement 0" : "collectives 8 agreement 8"));
    }
}

TEST_CASE("one rank's LSTM explosion escalates and skips on every rank at the same update, naming that rank") {
  for (const rows_by how : {rows_by::all_gather, rows_by::gradient_all_reduce}) {
    const bool carried = how == rows_by::gradient_all_reduce;
    INFO((carried ? "carried by the gradient all-reduce" : "all-gather"));
    const auto logs = run_job(how, 2, -1, 0, 1, 3);
    CHECK(logs[1] == logs[0]);
    INFO(logs[0]);
    CHECK(has_line(logs[0], "2:proceed:NORMAL"));
    CHECK(has_line(logs[0], "3:skip_step:DEBUG"));  // lstm_unhealthy is critical: every rank's guard skips it
    CHECK(has_line(logs[0], "anomaly lstm_unhealthy origin 1"));
    CHECK(has_line(logs[0], carried ? "collectives 14 agreement 0" : "collectives 14 agreement 14"));
    CHECK(logs[0].find("without its rank") == std::string::npos);
  }
}

namespace {
// Rank r's gradient of w for loss = sum(w * x_r) is x_r; the reference
// mean is computed here in float64 from the same data.
at::Tensor rank_data(int r) { return torch::arange(6, torch::kFloat64).mul(0.37 * (r + 1)).sub(r).to(torch::kFloat32); }

// Three forked ranks average their gradients of w, on `device` ("cpu" or
// "cuda"), carrying their signals; each writes what it got to dir/<rank>.
// A rank exits 77 when the device is not there (CUDA is first touched in the
// child: a forked process cannot use a context its parent made).
std::vector<int> run_mean_job(const std::filesystem::path& dir, const std::string& device) {
  constexpr int ranks = 3;
  const auto port = simic::test::free_local_port();
  std::filesystem::create_directories(dir);
  return simic::test::fork_ranks(ranks, [&](int r) {
    if (device == "cuda" && !torch::cuda::is_available()) return 77;
    auto group = simic::test::loopback_gloo_group(r, ranks, port, std::chrono::seconds(30));
    auto agreement = std::make_shared<distributed::agreement>(group);
    distributed::gradient_all_reduce all_reduce(group, agreement);
    at::Tensor w = torch::zeros({2, 3}, torch::TensorOptions().device(device).requires_grad(true));
    (w * rank_data(r).view({2, 3}).to(device)).sum().backward();
    signals s;
    s.loss = 10.0 * r + 0.125;  // exact in a float pair
    s.approx_kl = 1e-3 * (r + 1);
    all_reduce({w}, &s);
    const signals& job = agreement->agree(s);
    std::ofstream out(dir / std::to_string(r));
    out.precision(17);
    const at::Tensor g = w.grad().to(torch::kCPU).view({-1});
    for (int i = 0; i < 6; ++i) out << g[i].item<double>() << " ";
    out << "\n" << *job.loss << " " << *job.approx_kl << "\n" << agreement->collectives() << "\n";
    // bad input: no signals with an agreement; a region of the wrong size
    try {
      all_reduce({w});
      out << "accepted null signals\n";
    } catch (const std::invalid_argument&) {
    }
    try {
      agreement->receive(torch::zeros({5}));
      out << "accepted a wrong region\n";
    } catch (const std::invalid_argument&) {
    }
    return 0;
  });
}

// What run_mean_job's ranks wrote, checked against the float64 reference.
void check_mean_job(const std::filesystem::path& dir) {
  at::Tensor mean = torch::zeros({6}, torch::kFloat64);
  for (int r = 0; r < 3; ++r) mean += rank_data(r).to(torch::kFloat64);
  mean /= 3;
  for (int r = 0; r < 3; ++r) {
    std::istringstream in(simic::test::read_file(dir / std::to_string(r)));
    for (int i = 0; i < 6; ++i) {
      double g = 0;
      in >> g;
      CHECK(g == doctest::Approx(mean[i].item<double>()).epsilon(1e-6));
    }
    double loss = 0, kl = 0;
    std::uint64_t collectives = 9;
    std::string rest;
    in >> loss >> kl >> collectives;
    CHECK(loss == (0.125 + 10.125 + 20.125) / 3);  // the mean of the carried losses, to the last bit
    CHECK(kl == doctest::Approx(2e-3).epsilon(1e-12));
    CHECK(collectives == 0);
    std::getline(in, rest, '\0');
    CHECK(rest.find("accepted") == std::string::npos);
  }
}
}  // namespace

TEST_CASE("gradient_all_reduce: the mean of every rank's gradients (float64 reference), the rows beside them") {
  const auto dir = simic::test::fresh_dir("distributed", "mean");
  for (int code : run_mean_job(dir, "cpu")) CHECK(code == 0);
  check_mean_job(dir);
}

// On a GPU machine (bench/gpu/run.sh): the same job with the gradients on the
// GPU, ranks sharing it over Gloo; the results must be the CPU job's, bit for
// bit. Without CUDA every rank reports 77 and the case says it skipped.
TEST_CASE("gradient_all_reduce on CUDA tensors gives the CPU job's results exactly") {
  const auto cpu = simic::test::fresh_dir("distributed", "mean_cpu");
  const auto gpu = simic::test::fresh_dir("distributed", "mean_cuda");
  const std::vector<int> codes = run_mean_job(gpu, "cuda");
  if (std::all_of(codes.begin(), codes.end(), [](int c) { return c == 77; })) {
    MESSAGE("skipped: no CUDA device");
    return;
  }
  for (int code : codes) CHECK(code == 0);
  for (int code : run_mean_job(cpu, "cpu")) CHECK(code == 0);
  check_mean_job(gpu);
  for (int r = 0; r < 3; ++r)
    CHECK(simic::test::read_file(gpu / std::to_string(r)) == simic::test::read_file(cpu / std::to_string(r)));
}

TEST_CASE("event_ranks: every rank keeps its sinks, or only rank 0") {
  const std::vector<int> sinks{1, 2};
  CHECK(distributed::rank_sinks(distributed::event_ranks::every_rank, 3, sinks) == sinks);
  CHECK(distributed::rank_sinks(distributed::event_ranks::rank0, 0, sinks) == sinks);
  CHECK(distributed::rank_sinks(distributed::event_ranks::rank0, 1, sinks).empty());
}
