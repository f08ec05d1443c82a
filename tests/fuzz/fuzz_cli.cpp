// Fuzz target: the trainer's command line. The input is split at NUL bytes
// into arguments; parsing either throws std::invalid_argument (the trainer's
// exit 2 with one line) or gives options that pass validate().
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.emplace_back();
      if (args.size() > 64) break;  // a command line, not a file
    } else {
      args.back() += static_cast<char>(data[i]);
    }
  }
  try {
    const ppo_lstm::parsed_command_line cl = ppo_lstm::parse_command_line(args);
    if (!cl.help) cl.options.validate();  // what parsing accepted, validation must too
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
