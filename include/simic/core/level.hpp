// Telemetry levels and categories.
//
// Levels are ordered OFF < MINIMAL < NORMAL < DEBUG. A category is a tag type
// carrying the lowest level at which it is collected, so a misspelt category
// is a compile error; the string forms exist for config files and command
// lines and reject unknown names with the list of valid ones.
#pragma once

#include <array>
#include <concepts>
#include <stdexcept>
#include <string>
#include <string_view>

#include "simic/core/error.hpp"

namespace simic {
inline namespace v0 {

enum class level : unsigned char { off = 0, minimal = 1, normal = 2, debug = 3 };

inline constexpr std::array<std::string_view, 4> level_names{"OFF", "MINIMAL", "NORMAL", "DEBUG"};

namespace detail {
// The name of enum value `index`, or "invalid" for a value no enumerator has
// (a cast of a bad number): to_string never reads past its table.
template <std::size_t N>
constexpr std::string_view name_or_invalid(const std::array<std::string_view, N>& names, unsigned index) noexcept {
  return index < N ? names[index] : std::string_view("invalid");
}
constexpr char ascii_upper(char c) noexcept { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  return true;
}
template <std::size_t N>
std::string join_names(const std::array<std::string_view, N>& names) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i) out += ", ";
    out += names[i];
  }
  return out;
}
// Index of `name` in `names` (case-insensitive), or throws naming `what` and the valid names.
template <std::size_t N>
std::size_t parse_name(std::string_view name, const std::array<std::string_view, N>& names, std::string_view what) {
  for (std::size_t i = 0; i < N; ++i)
    if (iequals(name, names[i])) return i;
  throw std::invalid_argument("simic: unknown " + std::string(what) + " " + quoted_input(name) +
                              "; valid: " + join_names(names));
}
}  // namespace detail

// "OFF", "MINIMAL", "NORMAL", "DEBUG"; "invalid" for a value outside them.
constexpr std::string_view to_string(level l) noexcept {
  return detail::name_or_invalid(level_names, static_cast<unsigned>(l));
}

// Parses "OFF", "minimal", "Normal", "DEBUG" (any case).
inline level parse_level(std::string_view name) {
  return static_cast<level>(detail::parse_name(name, level_names, "level"));
}

// Categories: tag types. `min_level` is the lowest effective level at which the
// category is collected (or its detectors run).
namespace cat {
struct critical {  // numerical failures, LSTM breakdown: on at MINIMAL and above
  static constexpr level min_level = level::minimal;
  static constexpr std::string_view name = "critical";
};
struct ops_normal {  // the per-update PPO and gradient checks
  static constexpr level min_level = level::normal;
  static constexpr std::string_view name = "ops_normal";
};
struct memory {  // memory statistics, on their own interval
  static constexpr level min_level = level::normal;
  static constexpr std::string_view name = "memory";
};
struct debug {  // per-layer statistics, NaN/Inf scans, ratio diagnostics
  static constexpr level min_level = level::debug;
  static constexpr std::string_view name = "debug";
};
}  // namespace cat

template <class C>
concept Category = requires {
  { C::min_level } -> std::convertible_to<level>;
  { C::name } -> std::convertible_to<std::string_view>;
};

// Runtime category identifiers for the string form.
enum class category_id : unsigned char { critical, ops_normal, memory, debug };
inline constexpr std::array<std::string_view, 4> category_names{"critical", "ops_normal", "memory", "debug"};
inline constexpr std::array<level, 4> category_min_levels{level::minimal, level::normal, level::normal, level::debug};

// The category's name; "invalid" for a value outside the four.
constexpr std::string_view to_string(category_id c) noexcept {
  return detail::name_or_invalid(category_names, static_cast<unsigned>(c));
}
// Throws std::invalid_argument for a value outside the four.
constexpr level min_level(category_id c) {
  const unsigned i = static_cast<unsigned>(c);
  if (i >= category_min_levels.size())
    detail::throw_invalid("simic::min_level", "category", i, "critical, ops_normal, memory or debug (0..3)");
  return category_min_levels[i];
}

inline category_id parse_category(std::string_view name) {
  return static_cast<category_id>(detail::parse_name(name, category_names, "category"));
}

}  // namespace v0
}  // namespace simic
