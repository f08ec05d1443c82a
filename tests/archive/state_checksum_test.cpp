#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "simic/archive/state_checksum.hpp"

using namespace simic;

namespace {

struct small_state {
  double x = 1.5;
  std::uint64_t n = 7;
  std::vector<double> v{2.0, -0.0};
  template <class V>
  void visit(V&& vis) {
    vis("x", x);
    vis("n", n);
    vis("v", v);
  }
};

// CRC-64/XZ one bit at a time, straight from its definition (reflected
// polynomial 0xC96C5795D7870F42, init and xorout all ones): an independent
// reference for the table-driven one.
std::uint64_t crc64_bitwise(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t c = ~0ull;
  for (const std::uint8_t b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xC96C5795D7870F42ull : c >> 1;
  }
  return ~c;
}

void le64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void tag(std::vector<std::uint8_t>& out, const char* name, char t) {
  for (const char* p = name; *p; ++p) out.push_back(static_cast<std::uint8_t>(*p));
  out.push_back(0);
  out.push_back(static_cast<std::uint8_t>(t));
}

}  // namespace

TEST_CASE("state_checksum is CRC-64/XZ over the documented canonical bytes") {
  std::vector<std::uint8_t> canon;
  le64(canon, 1);  // format version
  tag(canon, "x", 'd');
  le64(canon, 0x3FF8000000000000ull);  // 1.5
  tag(canon, "n", 'i');
  le64(canon, 7);
  tag(canon, "v", 'v');
  le64(canon, 2);
  le64(canon, 0x4000000000000000ull);  // 2.0
  le64(canon, 0x8000000000000000ull);  // -0.0, distinct from +0.0
  CHECK(crc64_bitwise({'1', '2', '3', '4', '5', '6', '7', '8', '9'}) == 0x995DC9BBDF1939FAull);  // catalogue check
  CHECK(state_checksum(small_state{}, 1) == crc64_bitwise(canon));
}

TEST_CASE("state_checksum changes with any value, name order, sign of zero or version") {
  const std::uint64_t base = state_checksum(small_state{});
  small_state s;
  s.v[1] = 0.0;  // +0.0 == -0.0 as doubles, not as saved bits
  CHECK(state_checksum(s) != base);
  s = {};
  s.n = 8;
  CHECK(state_checksum(s) != base);
  s = {};
  s.v.push_back(0.0);
  CHECK(state_checksum(s) != base);
  CHECK(state_checksum(small_state{}, 2) != base);
  CHECK(state_checksum(small_state{}, 1) == base);  // the default is version 1
}
