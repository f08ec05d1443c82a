// Fuzz target: the parsers of simic's names (levels, categories, severities,
// anomaly kinds), which read configuration files and command lines. Each
// either throws std::invalid_argument or returns a value whose name equals
// the input up to case.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/level.hpp"

namespace {

bool same_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

template <class Parse>
void check_round_trip(std::string_view input, Parse parse) {
  try {
    const auto value = parse(input);
    if (!same_ignoring_case(to_string(value), input)) std::abort();  // parsed to a different name
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  using namespace simic;
  check_round_trip(input, [](std::string_view s) { return parse_level(s); });
  check_round_trip(input, [](std::string_view s) { return parse_category(s); });
  check_round_trip(input, [](std::string_view s) { return parse_severity(s); });
  check_round_trip(input, [](std::string_view s) { return parse_anomaly_kind(s); });
  return 0;
}
