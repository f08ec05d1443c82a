// The LM trainer's own text helpers (as examples/ppo_lstm's): printf-style
// formatting and "a, b, c" lists of names (its usage text and messages).
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

namespace char_lm {

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

}  // namespace char_lm
