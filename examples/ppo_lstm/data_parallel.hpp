// The trainer's data-parallel job (--ranks N, docs/trainer.md): the launcher
// that starts N ranks on 127.0.0.1, and what each rank joins: a Gloo group,
// simic's agreement and the gradient all-reduce that carries its rows.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "options.hpp"
#include "simic/distributed/gradient_all_reduce.hpp"

namespace ppo_lstm {

struct data_parallel {
  simic::distributed::collective_group group;
  std::shared_ptr<simic::distributed::agreement> agreement;
  std::unique_ptr<simic::distributed::gradient_all_reduce> all_reduce;  // averages gradients, carries the rows
};

// This rank's part of the job (null when o.parallel.member() is false).
// Blocks until every rank has joined; throws std::runtime_error when they do
// not within the timeout, std::invalid_argument when this build has no Gloo.
std::unique_ptr<data_parallel> join_job(const run_options& o);

// The launcher: runs `self` (this program) as ranks 0..N-1 with `args` and
// --rank R --master-port P (a free port on 127.0.0.1), forwards SIGTERM to
// them, waits for all and returns the job's exit code: 1 if a rank failed
// or was killed, else the ranks' code (the first non-zero, in rank order).
// Once a rank failed, a rank still running `timeout_s` + 5 s later (hung)
// is killed.
int launch_job(const std::string& self, const std::vector<std::string>& args, int ranks, unsigned timeout_s);

}  // namespace ppo_lstm
