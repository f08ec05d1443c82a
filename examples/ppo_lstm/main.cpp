// Command line of the PPO+LSTM CartPole trainer. Exit codes: 0 done, 2 bad
// command line, 3 stopped by the monitor (after every event was flushed).
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "options.hpp"
#include "ppo.hpp"

int main(int argc, char** argv) {
  const std::string prog = argc > 0 ? argv[0] : "ppo_lstm";
  ppo_lstm::parsed_command_line cl;
  try {
    cl = ppo_lstm::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: error: %s\n%s", prog.c_str(), e.what(), ppo_lstm::usage(prog).c_str());
    return ppo_lstm::exit_usage;
  }
  if (cl.help) {
    std::fputs(ppo_lstm::usage(prog).c_str(), stdout);
    return ppo_lstm::exit_ok;
  }
  try {
    const ppo_lstm::run_summary s = ppo_lstm::run(cl.options);
    std::fputs(ppo_lstm::describe(s).c_str(), stdout);
    return s.exit_code;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog.c_str(), e.what());
    return ppo_lstm::exit_usage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: failed: %s\n", prog.c_str(), e.what());
    return 1;
  }
}
