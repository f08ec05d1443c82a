// Table-driven reflected CRCs: CRC-32 (ISO-HDLC, as in zip and zlib) for
// zip entries, CRC-32C (Castagnoli, as in TensorBoard's event files) for
// tfevents records, CRC-64/XZ (ECMA-182 polynomial) for simic's state
// checksum. Each detects every burst error up to its width.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace simic {
inline namespace v0 {
namespace detail {

template <class U, U reflected_poly>
constexpr std::array<U, 256> crc_table() {
  std::array<U, 256> t{};
  for (U i = 0; i < 256; ++i) {
    U c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ reflected_poly : c >> 1;
    t[i] = c;
  }
  return t;
}

template <class U, U reflected_poly>
struct reflected_crc {
  static constexpr std::array<U, 256> table = crc_table<U, reflected_poly>();
  U reg = ~U{0};  // init all ones; the final value is inverted (xorout all ones)
  void update(const std::uint8_t* p, std::size_t n) noexcept {
    U c = reg;
    for (std::size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    reg = c;
  }
  void update(std::span<const std::uint8_t> s) noexcept { update(s.data(), s.size()); }
  U value() const noexcept { return ~reg; }
};

}  // namespace detail

using crc32_accumulator = detail::reflected_crc<std::uint32_t, 0xEDB88320u>;
using crc32c_accumulator = detail::reflected_crc<std::uint32_t, 0x82F63B78u>;
using crc64_accumulator = detail::reflected_crc<std::uint64_t, 0xC96C5795D7870F42ull>;

inline std::uint32_t crc32(std::span<const std::uint8_t> s) noexcept {
  crc32_accumulator c;
  c.update(s);
  return c.value();
}
inline std::uint32_t crc32c(std::span<const std::uint8_t> s) noexcept {
  crc32c_accumulator c;
  c.update(s);
  return c.value();
}
inline std::uint64_t crc64(std::span<const std::uint8_t> s) noexcept {
  crc64_accumulator c;
  c.update(s);
  return c.value();
}

}  // namespace v0
}  // namespace simic
