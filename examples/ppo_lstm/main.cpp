// Command line of the PPO+LSTM CartPole trainer. Exit codes (docs/trainer.md):
// 0 done, 1 failed, 2 bad command line / unwritable path / over the memory
// limit, 3 stopped by the monitor, 4 events lost, 128+N stopped by signal N
// (SIGTERM, SIGINT), each after every event was flushed.
#include <cstdio>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/cli_main.hpp"
#include "data_parallel.hpp"
#include "options.hpp"
#include "ppo.hpp"
#include "simic/core/signal_guard.hpp"

int main(int argc, char** argv) {
  const std::string prog = argc > 0 ? argv[0] : "ppo_lstm";
  ppo_lstm::parsed_command_line cl;
  if (const auto done = examples_common::parse_or_exit(prog, std::vector<std::string>(argv + 1, argv + argc),
                                                       ppo_lstm::parse_command_line, ppo_lstm::usage, cl))
    return *done;
  // --ranks N: this process starts the job's N ranks and waits for them.
  if (cl.options.parallel.launcher()) {
    try {
      return ppo_lstm::launch_job(prog, std::vector<std::string>(argv + 1, argv + argc), cl.options.parallel.ranks,
                                     cl.options.parallel.timeout_s);
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "%s: error: %s\n", prog.c_str(), e.what());
      return ppo_lstm::exit_usage;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: failed: %s\n", prog.c_str(), e.what());
      return ppo_lstm::exit_failed;
    }
  }
  // SIGTERM (a preempted job) and SIGINT (Ctrl-C) stop the loop between
  // steps; the run closes its events and exits 128+N. A second one kills.
  const simic::signal_guard stop_on_signal;
  return examples_common::exit_code_of(prog, [&] {
    const ppo_lstm::run_summary s = ppo_lstm::run(cl.options);
    std::fputs(ppo_lstm::describe(s).c_str(), stdout);
    std::fflush(stdout);
    examples_common::report_interrupted(prog, s.interrupted_by, s.updates_done, "updates", s.exit_code);
    return s.exit_code;
  });
}
