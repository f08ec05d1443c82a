// Names and text as every writer puts them in a file: the one definition the
// JSONL and TensorBoard sinks (and a user's writer) share.
//
// - utf8_replaced(): invalid UTF-8 replaced by U+FFFD, one for each maximal
//   ill-formed subsequence (Unicode's "substitution of maximal subparts", as
//   Python's bytes.decode("utf-8", "replace") does). A name with a stray byte
//   (a layer or metric named from raw bytes) would otherwise make a JSONL
//   line unparsable, and a TensorBoard file whose readers (EventFileLoader,
//   EventAccumulator) stop with a DecodeError at that record, losing every
//   record after it.
// - unique_metric_names(): a metric list's names as written; a name met
//   again gets "#2", "#3", ... rather than overwriting the first in JSONL
//   (docs/decisions/sensors-and-events.md).
// No LibTorch, no JSON library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace simic {
inline namespace v0 {

namespace detail {

// The length of the well-formed UTF-8 sequence at s[i], or 0 when none
// starts there; `maximal` gets the length of the longest prefix that could
// start one (the maximal subpart, at least 1), which one U+FFFD replaces.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& maximal) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  maximal = 1;
  if (c < 0x80) return 1;
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte (Unicode Table 3-7)
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2, lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    need = 2;
  } else if (c == 0xED) {
    need = 2, hi = 0x9F;  // no surrogates
  } else if (c == 0xF0) {
    need = 3, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3, hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;  // 0x80..0xC1, 0xF5..0xFF: never a first byte
  }
  for (std::size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    maximal = k + 1;
  }
  return need + 1;
}

}  // namespace detail

// Whether `s` is well-formed UTF-8.
inline bool valid_utf8(std::string_view s) noexcept {
  std::size_t maximal = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = detail::utf8_sequence(s, i, maximal);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// `s` with each maximal ill-formed subsequence replaced by U+FFFD (bytes EF
// BF BD); well-formed text is returned unchanged.
inline std::string utf8_replaced(std::string_view s) {
  if (valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t maximal = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = detail::utf8_sequence(s, i, maximal);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      i += maximal;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// The names a list of named values is written under, in order: each made
// valid UTF-8 (utf8_replaced), and a name met again (equal after the
// replacement) gets "#k", the smallest k >= 2 for which "<name>#k" is no
// other name of the list: every value is written, under a name that JSONL
// and TensorBoard share.
inline std::vector<std::string> unique_metric_names(const std::vector<std::string_view>& raw) {
  std::vector<std::string> names;
  names.reserve(raw.size());
  for (const std::string_view r : raw) names.push_back(utf8_replaced(r));
  std::unordered_set<std::string_view> given(names.begin(), names.end());
  if (given.size() == names.size()) return names;  // no repeats: as they are
  std::unordered_set<std::string> taken;                      // names assigned so far
  std::vector<std::string> out;
  out.reserve(names.size());
  for (const std::string& n : names) {
    std::string name = n;
    for (std::uint64_t k = 2; taken.count(name) != 0; ++k) {
      name = n + "#" + std::to_string(k);
      if (given.count(name) != 0) name = n;  // another of the list's own names: try the next k
    }
    taken.insert(name);
    out.push_back(std::move(name));
  }
  return out;
}

}  // namespace v0
}  // namespace simic
