// Sessions of forked Gloo ranks on loopback, each with its own data and
// DDP-averaged gradients, checking through simic::distributed::agreement:
// one rank's NaN gradient (after the all-reduce) makes every rank skip the
// same steps and stop on the same step with the same cause; one rank's LSTM
// explosion escalates every rank at the same update; anomaly events name the
// rank they came from; one collective per check.
#include "support/loopback_group.hpp"
#include "simic/distributed/agreement.hpp"
#include "simic/emit/sink_memory.hpp"
#include "simic/session.hpp"
#include "support/torch_doctest.hpp"

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
std::string run_rank(int rank, int ranks, std::uint16_t port, int nan_rank, int nan_from, int lstm_rank,
                     int lstm_at) {
  auto group = simic::test::loopback_gloo_group(rank, ranks, port, std::chrono::seconds(30));
  auto agreement = std::make_shared<distributed::agreement>(group);
  torch::manual_seed(1);  // the same initial weights on every rank, as DDP broadcasts them
  torch::nn::Linear net(4, 2);
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (const auto& p : net->named_parameters()) params.emplace_back(p.key(), p.value());
  auto sink = std::make_shared<memory_sink>();
  session_options o;
  o.max_consecutive_skips = 3;
  session<> tel(distributed::rank_options(o, agreement), params, {sink});
  torch::optim::SGD opt(net->parameters(), 0.01);
  std::ostringstream log;
  for (int step = 1; step <= 14; ++step) {
    tel.begin_update();
    const double scale = rank == lstm_rank && step == lstm_at ? 1e4 : 0.5;  // rms 1e4: far past the bound
    tel.lstm_state(torch::full({2, 8}, scale), torch::full({2, 8}, scale));
    torch::manual_seed(100 * rank + step);  // each rank its own data
    const at::Tensor loss = net->forward(torch::randn({8, 4})).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    for (const auto& p : net->parameters()) {  // what DDP does: the mean gradient on every rank
      std::vector<at::Tensor> g{p.grad()};
      group->allreduce(g)->wait();
      p.grad().div_(ranks);
    }
    if (rank == nan_rank && step >= nan_from) net->weight.grad()[0][0] = std::nan("");  // rank-local, after the all-reduce
    signals s;
    s.loss = loss.item<double>();
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
  log << "collectives " << agreement->collectives() << "\n";
  return log.str();
}

// Every rank's log, run in forked processes.
std::vector<std::string> run_job(int ranks, int nan_rank, int nan_from, int lstm_rank, int lstm_at) {
  const auto port = simic::test::free_local_port();
  const auto dir = simic::test::fresh_dir("distributed", "job" + std::to_string(ranks));
  std::filesystem::create_directories(dir);
  const auto codes = simic::test::fork_ranks(ranks, [&](int r) {
    std::ofstream(dir / std::to_string(r)) << run_rank(r, ranks, port, nan_rank, nan_from, lstm_rank, lstm_at);
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
  for (int ranks : {2, 4}) {
    INFO("ranks " << ranks);
    const int nan_rank = ranks - 1;
    const auto logs = run_job(ranks, nan_rank, 6, -1, 0);
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
    CHECK(has_line(logs[0], "collectives 8"));
  }
}

TEST_CASE("one rank's LSTM explosion escalates every rank at the same update, naming that rank") {
  const auto logs = run_job(2, -1, 0, 1, 3);
  CHECK(logs[1] == logs[0]);
  INFO(logs[0]);
  CHECK(has_line(logs[0], "2:proceed:NORMAL"));
  CHECK(has_line(logs[0], "3:proceed:DEBUG"));
  CHECK(has_line(logs[0], "anomaly lstm_unhealthy origin 1"));
  CHECK(has_line(logs[0], "collectives 14"));
  CHECK(logs[0].find("without its rank") == std::string::npos);
}

TEST_CASE("event_ranks: every rank keeps its sinks, or only rank 0") {
  const std::vector<int> sinks{1, 2};
  CHECK(distributed::rank_sinks(distributed::event_ranks::every_rank, 3, sinks) == sinks);
  CHECK(distributed::rank_sinks(distributed::event_ranks::rank0, 0, sinks) == sinks);
  CHECK(distributed::rank_sinks(distributed::event_ranks::rank0, 1, sinks).empty());
}
