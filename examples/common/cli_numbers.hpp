// The numbers of the example trainers' command lines: an option's value as an
// integer in a range or a positive number up to a bound, or a usage error
// (std::invalid_argument) naming the option, the text and the valid range.
#pragma once

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace examples_common {

// A bad command line: main() prints "PROG: error: MSG" and the usage (exit_usage).
[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }

// `text` as an integer in [lo, hi]; else "WHAT: 'TEXT' is not an integer in [LO, HI]".
inline std::uint64_t parse_u64(std::string_view text, std::string_view what, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || p != end || v < lo || v > hi)
    fail(std::string(what) + ": '" + std::string(text) + "' is not an integer in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "]");
  return v;
}

// `text` as a finite number in (0, hi]; else "WHAT: 'TEXT' is not a number in
// (0, HI_TEXT]" (`hi_text`: how the trainer writes `hi`).
inline double parse_positive(std::string_view text, std::string_view what, double hi, std::string_view hi_text) {
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno != 0 || !std::isfinite(v) || v <= 0.0 || v > hi)
    fail(std::string(what) + ": '" + s + "' is not a number in (0, " + std::string(hi_text) + "]");
  return v;
}

}  // namespace examples_common
