// The named values of the example trainers' command lines: a name's place in
// a list of names, a detector preset and a telemetry level, with the usage
// error (std::invalid_argument) that lists the valid names.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "cli_numbers.hpp"
#include "simic/core/level.hpp"
#include "text.hpp"

namespace examples_common {

// The index of `name` in `names` (the last that matches), or none.
template <class Names>
std::optional<std::size_t> name_index(const Names& names, std::string_view name) {
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (name == names[i]) found = i;
  return found;
}

// The preset `value` names (Preset's enumerators in the order of `names`);
// else "OPTION: unknown preset 'VALUE'; valid: a, b".
template <class Preset, std::size_t N>
Preset parse_preset(const std::string& option, const std::string& value, const std::array<std::string_view, N>& names) {
  const auto k = name_index(names, value);
  if (!k) fail(option + ": unknown preset '" + value + "'; valid: " + join_names(names));
  return static_cast<Preset>(*k);
}

// --level's value; else "--level: unknown level 'VALUE'; valid: OFF, ...".
inline simic::level parse_level_option(const std::string& value) {
  try {
    return simic::parse_level(value);
  } catch (const std::invalid_argument&) {
    fail("--level: unknown level '" + value + "'; valid: " + join_names(simic::level_names));
  }
}

}  // namespace examples_common
