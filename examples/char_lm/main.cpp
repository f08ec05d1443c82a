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

#include "lm.hpp"
#include "options.hpp"
#include "simic/core/signal_guard.hpp"

int main(int argc, char** argv) {
  const std::string prog = argc > 0 ? argv[0] : "char_lm";
  char_lm::parsed_command_line cl;
  try {
    cl = char_lm::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: error: %s\n%s", prog.c_str(), e.what(), char_lm::usage(prog).c_str());
    return char_lm::exit_usage;
  }
  if (cl.help) {
    std::fputs(char_lm::usage(prog).c_str(), stdout);
    return char_lm::exit_ok;
  }
  // SIGTERM and SIGINT stop the loop between steps; the run closes its
  // events and exits 128+N. A second one kills.
  const simic::signal_guard stop_on_signal;
  try {
    const char_lm::run_summary s = char_lm::run(cl.options);
    std::fputs(char_lm::describe(s).c_str(), stdout);
    std::fflush(stdout);
    if (s.interrupted_by != 0)
      std::fprintf(stderr, "%s: interrupted by %s after %llu steps; events flushed, exit code %d\n", prog.c_str(),
                   simic::signal_name(s.interrupted_by).c_str(), static_cast<unsigned long long>(s.steps_done),
                   s.exit_code);
    return s.exit_code;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog.c_str(), e.what());
    return char_lm::exit_usage;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: failed: out of memory\n", prog.c_str());
    return char_lm::exit_failed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: failed: %s\n", prog.c_str(), e.what());
    return char_lm::exit_failed;
  }
}
