// Argument validation with one wording for every error, so a user always
// learns which argument was wrong and what range is valid:
//   "<where>: <arg> = <value> is out of range; valid: <valid>"
// Public: a detector or sensor of your own validates its options the same way.
//
//   simic::require_argument(o.window >= 2, "my_detector", "window", o.window, ">= 2");
#pragma once

#include <cmath>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

// Marks the reporting path of a check (formatting a detail) as rarely taken,
// so the quiet path stays small enough to inline into monitor::check.
#if defined(__GNUC__)
#define SIMIC_COLD [[gnu::cold, gnu::noinline]]
#else
#define SIMIC_COLD
#endif

namespace simic {
inline namespace v0 {

// Throws std::invalid_argument naming `arg`, its value and the valid range.
template <class T>
[[noreturn]] inline void throw_invalid_argument(std::string_view where, std::string_view arg, const T& value,
                                                std::string_view valid) {
  std::ostringstream os;
  os.precision(17);
  os << where << ": " << arg << " = " << value << " is out of range; valid: " << valid;
  throw std::invalid_argument(os.str());
}

// The same unless `ok`.
template <class T>
inline void require_argument(bool ok, std::string_view where, std::string_view arg, const T& value,
                             std::string_view valid) {
  if (!ok) throw_invalid_argument(where, arg, value, valid);
}

namespace detail {
// The library's own short names for the two.
template <class T>
[[noreturn]] inline void throw_invalid(std::string_view where, std::string_view arg, const T& value,
                                       std::string_view valid) {
  throw_invalid_argument(where, arg, value, valid);
}
template <class T>
inline void require(bool ok, std::string_view where, std::string_view arg, const T& value, std::string_view valid) {
  if (!ok) throw_invalid_argument(where, arg, value, valid);
}
inline bool finite(double x) noexcept { return std::isfinite(x); }

// A caller's string quoted for an error message, safe to print: printable
// ASCII as it is, every other byte (and the quote and the backslash, so the
// text reads back unambiguously) as \xNN; at most `max` bytes of it shown, a
// longer one ending in "..." followed by its length in bytes.
//   quoted_input("a\nb") == "'a\\x0ab'"
inline std::string quoted_input(std::string_view s, std::size_t max = 64) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "'";
  const std::size_t shown = s.size() < max ? s.size() : max;
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\'' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  out.push_back('\'');
  if (shown < s.size()) out.insert(out.size() - 1, "...").append(" (" + std::to_string(s.size()) + " bytes)");
  return out;
}
}  // namespace detail
}  // namespace v0
}  // namespace simic
