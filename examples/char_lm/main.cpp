// Command line of the byte-level transformer LM trainer. Exit codes
// (docs/lm_trainer.md): 0 done, 1 failed, 2 bad command line / unwritable
// path / no fortune files, 3 stopped by the monitor, 4 events lost, 128+N
// stopped by signal N (SIGTERM, SIGINT), each after every event was flushed.
#include <cstdio>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/cli_main.hpp"
#include "lm.hpp"
#include "options.hpp"
#include "simic/core/signal_guard.hpp"

int main(int argc, char** argv) {
  const std::string prog = argc > 0 ? argv[0] : "char_lm";
  char_lm::parsed_command_line cl;
  if (const auto done = examples_common::parse_or_exit(prog, std::vector<std::string>(argv + 1, argv + argc),
                                                       char_lm::parse_command_line, char_lm::usage, cl))
    return *done;
  // SIGTERM and SIGINT stop the loop between steps; the run closes its
  // events and exits 128+N. A second one kills.
  const simic::signal_guard stop_on_signal;
  return examples_common::exit_code_of(prog, [&] {
    const char_lm::run_summary s = char_lm::run(cl.options);
    std::fputs(char_lm::describe(s).c_str(), stdout);
    std::fflush(stdout);
    examples_common::report_interrupted(prog, s.interrupted_by, s.steps_done, "steps", s.exit_code);
    return s.exit_code;
  });
}
