// The checksum simic saves beside a state: CRC-64/XZ over a canonical byte
// form of the format version and every field in visit order, so a reload
// can prove it reads back exactly what was saved before anything is applied.
//
// Canonical form, all integers little-endian:
//   u64 format version, then per field: name bytes, a 0 byte, a type tag
//   ('d' double, 'i' integer, 'v' vector of doubles), the value: a double as
//   its 8-byte IEEE bit pattern, an integer as its u64 (two's complement for
//   signed), a vector as its u64 length and then each element as a double.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "simic/archive/crc.hpp"

namespace simic {
inline namespace v0 {

// Version 1: first versioned format (format version + CRC-64 checksum keys).
inline constexpr std::int64_t state_format_version = 1;

namespace detail {

struct state_hasher {
  crc64_accumulator& crc;
  void u8(std::uint8_t b) const { crc.update(&b, 1); }
  void u64(std::uint64_t v) const {
    std::uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
    crc.update(b, 8);
  }
  void name(const char* n, std::uint8_t tag) const {
    crc.update(reinterpret_cast<const std::uint8_t*>(n), std::strlen(n));
    u8(0);
    u8(tag);
  }
  void operator()(const char* n, const double& v) const {
    name(n, 'd');
    u64(std::bit_cast<std::uint64_t>(v));
  }
  template <class U>
    requires std::is_integral_v<U>
  void operator()(const char* n, const U& v) const {
    name(n, 'i');
    u64(static_cast<std::uint64_t>(v));
  }
  void operator()(const char* n, const std::vector<double>& v) const {
    name(n, 'v');
    u64(v.size());
    for (const double x : v) u64(std::bit_cast<std::uint64_t>(x));
  }
};

}  // namespace detail

// The checksum of `st` (anything with visit(v) calling v(name, field&)) as
// saved under format `version`.
template <class State>
std::uint64_t state_checksum(State st, std::int64_t version = state_format_version) {
  crc64_accumulator crc;
  const detail::state_hasher h{crc};
  h.u64(static_cast<std::uint64_t>(version));
  st.visit(h);
  return crc.value();
}

}  // namespace v0
}  // namespace simic
