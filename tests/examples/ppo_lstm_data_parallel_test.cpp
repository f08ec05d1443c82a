// The PPO+LSTM trainer as a data-parallel job (examples/ppo_lstm, --ranks):
// 2 and 4 forked ranks on loopback Gloo, each with its own environments,
// their gradients averaged by simic::distributed::gradient_all_reduce, which
// also carries simic's agreement. A fault on one rank: every rank skips the
// same steps, escalates at the same update and stops on the same step with
// the same cause; the weights stay equal (0 divergent steps); the anomaly
// events name the rank the fault was on; the events go to each rank's file
// or to rank 0's alone.
#include "support/loopback_group.hpp"
#include "support/torch_doctest.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.hpp"
#include "ppo.hpp"
#include "support/temp_dir.hpp"

using namespace ppo_lstm;

namespace {

const simic::test::remove_at_exit cleanup{"ppo_lstm_data_parallel"};

run_options job_options(int ranks, std::uint16_t port, int rank) {
  run_options o;
  o.updates = 8;
  o.envs = 4;
  o.rollout = 32;
  o.seq_len = 16;
  o.ppo_epochs = 2;
  o.minibatches = 2;  // 4 checks per update
  o.progress_lines = false;
  o.parallel.ranks = ranks;
  o.parallel.rank = rank;
  o.parallel.master_port = port;
  o.parallel.timeout_s = 20;
  return o;
}

// What must be equal on every rank: each update's level, anomalies, skips
// and gradient norm (of the averaged gradients), the skips, the stop, and
// the final weights. Not the returns: each rank has its own environments.
std::string digest(const run_summary& s) {
  std::ostringstream d;
  d.precision(17);
  for (const update_record& u : s.updates)
    d << "update " << u.update << " level " << simic::to_string(u.level) << " grad " << u.grad_norm << " anomalies "
      << u.anomalies << " [" << u.kinds << "] skipped " << u.skipped_steps << "\n";
  for (const anomaly_record& a : s.anomalies)
    d << "anomaly " << a.update << "/" << a.step << " " << simic::to_string(a.kind) << " "
      << simic::to_string(a.severity) << "\n";
  for (const skip_record& k : s.skips) d << "skip " << k.update << "/" << k.step << " " << k.reason << "\n";
  d << "stopped " << s.stopped << " exit " << s.exit_code << " reason '" << s.stop_reason << "'\n";
  d << "steps " << s.optimizer_steps << " checks " << s.checks << " updates " << s.updates_done << "\n";
  d << "weights " << s.weights_checksum.first << " " << s.weights_checksum.second << "\n";
  d << "all-reduces " << s.all_reduces << " agreement collectives " << s.agreement_collectives << "\n";
  return d.str();
}

struct job {
  std::vector<std::string> digests;  // in rank order
  std::filesystem::path dir;         // where the ranks wrote
};

// Runs the job (forked ranks); `edit(options, dir)` sets each rank's options.
template <class Edit>
job run_job(int ranks, const std::string& name, Edit edit) {
  const auto port = simic::test::free_local_port();
  const auto dir = simic::test::fresh_dir("ppo_lstm_data_parallel", name);
  std::filesystem::create_directories(dir);
  const auto codes = simic::test::fork_ranks(ranks, [&](int r) {
    run_options o = job_options(ranks, port, r);
    edit(o, dir);
    std::ofstream(dir / ("digest" + std::to_string(r))) << digest(run(o));
    return 0;
  });
  for (int code : codes) CHECK(code == 0);
  job out{{}, dir};
  for (int r = 0; r < ranks; ++r) out.digests.push_back(simic::test::read_file(dir / ("digest" + std::to_string(r))));
  return out;
}

std::vector<nlohmann::json> read_events(const std::filesystem::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("2 and 4 ranks, a NaN gradient on the last rank: every rank skips and stops on the same step, same cause") {
  for (int ranks : {2, 4}) {
    INFO("ranks " << ranks);
    const bool rank0_only = ranks == 2;  // --events-ranks rank0 with 2 ranks, every with 4
    const job j = run_job(ranks, "nan" + std::to_string(ranks), [&](run_options& o, const auto& dir) {
      o.injections.push_back(parse_injection("nan-grad@3-"));
      o.parallel.fault_rank = ranks - 1;
      o.max_skips = 3;
      o.events_path = (dir / "events.jsonl").string();
      o.parallel.events = rank0_only ? events_ranks::rank0 : events_ranks::every;
    });
    const auto& digests = j.digests;
    const auto events = j.dir / "events.jsonl";
    for (int r = 1; r < ranks; ++r) CHECK(digests[static_cast<std::size_t>(r)] == digests[0]);  // 0 divergent steps
    const std::string& d = digests[0];
    INFO(d);
    // Updates 1-2 step 8 times; update 3's first three steps are skipped and
    // the third stops the job (max_skips 3).
    CHECK(has(d, "skip 3/0 "));
    CHECK(has(d, "skip 3/1 "));
    CHECK(has(d, "skip 3/2 stopping: 3 consecutive"));
    CHECK(has(d, "stopped 1 exit 3 reason 'stopping: 3 consecutive updates skipped"));
    CHECK(has(d, "non-finite gradients"));
    CHECK(has(d, "steps 8 checks 11 updates 3\n"));
    CHECK(has(d, "anomaly 3/0 numerical_instability critical"));
    // One gradient all-reduce per check, carrying the agreement: none of its own.
    CHECK(has(d, "all-reduces 11 agreement collectives 0\n"));
    // Events: rank 0's file alone (rank0), or one per rank (every); the
    // anomaly names the rank the NaN came from.
    const auto dir = events.parent_path();
    for (int r = 0; r < ranks; ++r) {
      const auto own = dir / ("events.rank" + std::to_string(r) + ".jsonl");
      CHECK(std::filesystem::exists(own) == !rank0_only);
    }
    const auto rank0_file = rank0_only ? events : dir / "events.rank0.jsonl";
    const auto lines = read_events(rank0_file);
    REQUIRE(!lines.empty());
    int anomalies = 0;
    for (const auto& e : lines) {
      if (e.contains("rank")) CHECK(e["rank"] == 0);
      if (e["event"] == "anomaly") {
        ++anomalies;
        CHECK(e["origin_ranks"] == nlohmann::json::array({ranks - 1}));
      }
    }
    CHECK(anomalies == 3);
    if (!rank0_only) {
      const auto last = read_events(dir / ("events.rank" + std::to_string(ranks - 1) + ".jsonl"));
      for (const auto& e : last)
        if (e.contains("rank")) CHECK(e["rank"] == ranks - 1);
    }
  }
}

TEST_CASE("an LSTM explosion on rank 1 of 2 escalates both ranks at that update, naming rank 1") {
  const job j = run_job(2, "lstm", [&](run_options& o, const auto& dir) {
    o.injections.push_back(parse_injection("lstm-explode@4"));
    o.parallel.fault_rank = 1;
    o.events_path = (dir / "events.jsonl").string();
  });
  const auto& digests = j.digests;
  const auto events = j.dir / "events.jsonl";
  CHECK(digests[1] == digests[0]);
  const std::string& d = digests[0];
  INFO(d);
  CHECK(has(d, "update 3 level NORMAL"));
  CHECK(has(d, "update 4 level DEBUG"));
  CHECK(has(d, "anomaly 4/0 lstm_unhealthy critical"));
  CHECK(has(d, "stopped 0 exit 0"));
  // Rank 0's own LSTM stayed healthy: its lstm_health events say so, and its
  // anomaly names rank 1.
  const auto lines = read_events(events.parent_path() / "events.rank0.jsonl");
  bool named = false;
  for (const auto& e : lines) {
    if (e["event"] == "anomaly" && e["anomaly"] == "lstm_unhealthy") named = e["origin_ranks"] == nlohmann::json::array({1});
    if (e["event"] == "lstm_health") CHECK(e["c_norm"].get<double>() < 100.0);
  }
  CHECK(named);
}

TEST_CASE("healthy job: the ranks learn in lockstep (equal weights), one all-reduce per step and no other collective") {
  const auto digests = run_job(2, "healthy", [](run_options&, const auto&) {}).digests;
  CHECK(digests[1] == digests[0]);
  INFO(digests[0]);
  CHECK(has(digests[0], "stopped 0 exit 0"));
  CHECK(has(digests[0], "steps 32 checks 32 updates 8\n"));
  CHECK(has(digests[0], "all-reduces 32 agreement collectives 0\n"));
}

TEST_CASE("data-parallel options: bad values are refused naming the option") {
  run_options o = job_options(2, 0, 0);
  o.parallel.master_port = 0;  // a launcher's options: run() is for a rank
  CHECK_THROWS_WITH_AS(run(o), doctest::Contains("needs master_port"), std::invalid_argument);
  o = job_options(2, 1234, 2);
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("rank = 2"), std::invalid_argument);
  o = job_options(65, 1234, 0);
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("ranks = 65"), std::invalid_argument);
  o = job_options(2, 1234, 0);
  o.parallel.fault_rank = 2;
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("fault_rank = 2"), std::invalid_argument);
  o.parallel.fault_rank = 1;
  o.parallel.timeout_s = 0;
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("timeout_s = 0"), std::invalid_argument);
  // Each rank's events file.
  o = job_options(4, 1234, 3);
  o.events_path = "out/ev.jsonl";
  CHECK(o.rank_events_path() == "out/ev.rank3.jsonl");
  o.events_path = "out.d/events";
  CHECK(o.rank_events_path() == "out.d/events.rank3");
  o.parallel.events = events_ranks::rank0;
  CHECK(o.rank_events_path().empty());
  o.parallel.rank = 0;
  CHECK(o.rank_events_path() == "out.d/events");
}
