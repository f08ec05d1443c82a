// printf-style formatting into a std::string, for anomaly details and errors.
// Only called when there is something to report, never on the quiet path.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>

namespace simic {
inline namespace v0 {
namespace detail {

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
inline std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string out(n > 0 ? static_cast<std::size_t>(n) : 0u, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, args);
  va_end(args);
  return out;
}

}  // namespace detail
}  // namespace v0
}  // namespace simic
