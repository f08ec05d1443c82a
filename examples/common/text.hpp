// Text helpers of the example trainers (examples/ppo_lstm, examples/char_lm):
// printf-style formatting, "a, b, c" lists of names (usage texts and
// messages), and the first line of a message.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

namespace examples_common {

template <class... Args>
std::string format(const char* pattern, Args... args) {
  std::string out(128, '\0');
  int n = std::snprintf(out.data(), out.size(), pattern, args...);
  if (n >= static_cast<int>(out.size())) {
    out.resize(static_cast<std::size_t>(n) + 1);
    n = std::snprintf(out.data(), out.size(), pattern, args...);
  }
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0u);
  return out;
}

template <class Names>
std::string join_names(const Names& names) {
  std::string out;
  for (const std::string_view n : names) out.append(out.empty() ? "" : ", ").append(n);
  return out;
}

// The first line of a message (LibTorch's may carry a stack trace or source context).
inline std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace examples_common
