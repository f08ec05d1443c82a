// Fuzz target: the trainer's --inject spec (KIND@U, KIND@U-V, KIND@U-).
// A spec either throws std::invalid_argument or gives a valid window whose
// printed form parses back to the same injection.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view spec(reinterpret_cast<const char*>(data), size);
  ppo_lstm::injection inj{};
  try {
    inj = ppo_lstm::parse_injection(spec);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (inj.first < 1 || inj.last < inj.first) std::abort();
  std::string printed = std::string(ppo_lstm::to_string(inj.kind)) + "@" + std::to_string(inj.first) + "-";
  if (inj.last != ppo_lstm::until_end) printed += std::to_string(inj.last);
  const ppo_lstm::injection again = ppo_lstm::parse_injection(printed);
  if (again.kind != inj.kind || again.first != inj.first || again.last != inj.last) std::abort();
  return 0;
}
