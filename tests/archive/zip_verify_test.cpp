#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "simic/archive/crc.hpp"
#include "simic/archive/inflate.hpp"
#include "simic/archive/zip_verify.hpp"

using namespace simic;

namespace {

std::vector<std::uint8_t> from_hex(std::string_view hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}
std::vector<std::uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

// Reference data, produced by Python 3's zlib and zipfile (the commands are
// in the comments), so neither the CRCs nor the streams come from simic.
//
// CRC catalogue check values (reveng.sourceforge.io/crc-catalogue): CRC-32/
// ISO-HDLC of "123456789" is 0xCBF43926, CRC-64/XZ is 0x995DC9BBDF1939FA.
//
// Streams: zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy) over
//   periodic: bytes((i*7) % 251 for i in range(70000))
//   far_match: A + bytes(32000) + A, A = 300 bytes of the LCG
//              x = (x*1103515245 + 12345) % 2**31 from x = 1, byte (x>>16) & 0xFF
// periodic_fixed uses level 6, zlib.Z_FIXED; the others level 9, default.
// periodic_fixed: 70000 bytes, zlib.crc32 = 0x49a3692c, 911-byte raw deflate stream
const char* const periodic_fixed_hex =
    "6360e7139551d632b4b077f30d894eca2c28af6bed993c6be18af5dbf61e397de9e683e7efbe3272f08bc9aa681b593ab8fb"
    "85c624671556d4b7f54e99bd68e586edfb8e9eb97cebe18bf7df983805c4e554758cad1c3dfcc36253b28b2a1bdafba6ce59"
    "bc6ae38efdc7ce5eb9fde8e587efcc5c8212f26aba26d64e9e01e171a939c5558d1dfdd3e62e59bd69e781e3e7aede79fcea"
    "e30f166e214905753d531b67afc088f8b4dc92eaa6ce09d3e72d5db379d7c113e7afdd7df2fad34f561e6129450d7d335b17"
    "efa0c884f4bcd29ae6ae8933e62f5bbb65f7a19317aedf7bfae6f32f365e1169254d03733b579fe0a8c48cfcb2da96ee4933"
    "172c5fb775cfe153176fdc7ff6f60bc3a8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba3"
    "5e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551"
    "af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8"
    "d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4"
    "eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eea"
    "f551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5"
    "faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a"
    "7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd"
    "3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e"
    "1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af"
    "8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d7"
    "47bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eb"
    "a35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf551af8f7a7dd4eba35e1ff5faa8d747bd3eeaf5"
    "51af8f7a7dd4ebb4f23a00";

// periodic_dynamic: 70000 bytes, zlib.crc32 = 0x49a3692c, 591-byte raw deflate stream
const char* const periodic_dynamic_hex =
    "edcf438210000000c0cdb6b9d9b66ddbb66dd766dbb66ddbb66d5ba75ed16de60713102672ac84c9d365cd53b854c51af59b"
    "b5edd27bd088f1d3e62e59bd69e781e3e7aede79fceae38f6061a3c44e94227db6bc454a57aad9a079bbae7d068f9c307dde"
    "d2359b771d3c71fedadd27af3ffd0c1e2e6a9cc4293364cf57b44ce55a0d5bb4efd677c8a88933e62f5bbb65f7a19317aedf"
    "7bfae6f3af10e1a3c50d4c953147fe6265abd46ed4b243f77e43474f9ab960f9baad7b0e9fba78e3feb3b75f7e878c103d5e"
    "92d4997216285eae6a9dc6ad3af6e83f6ccce4590b57acdfb6f7c8e94b371f3c7ff7f54fa88831e2274d933957c112e5abd5"
    "6dd2ba53cf014163a7cc5eb472c3f67d47cf5cbef5f0c5fb6f7f43478a992059da2cb90b95ac50bd5ed3369d7b0d1c3e6eea"
    "9cc5ab36eed87fecec95db8f5e7ef81ea0aeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeae"
    "aeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeae"
    "aeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeae"
    "aeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeae"
    "aeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeae"
    "aeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaefebfeaff00";

// far_match: 32600 bytes, zlib.crc32 = 0xd2064fce, 434-byte raw deflate stream
const char* const far_match_hex =
    "eddddf2b1c0000c071a7a86bbb24356d9c4de6611ea67345cc8fd8fc4ab3dc383bb6a3e16ed2e50ed344170fdc3d70677ed4"
    "91cd516e9c6b8d424d7e44478956b486c9763b3c58f12016f7c08b3f607fc0f7f38f7c96f44d15599e3f9edcb3995f0dc12e"
    "83604eb22baff24b57ab0c0abb315e71280fa85f6f1ed88ccfcd8b8cf95c56b8ed5d675975dfa935156df598ef26451f3d7e"
    "f75474316bdbde6b31ed3cd0645fca5dda7b1ef3d80b9f76a770e7f99afd51468f6c43f6c1b7ff7062c137c092392e087144"
    "19257db2b46e5db439ff2c567cebc258736a69087c993cadd199fcb48a654150a434e1fdbc7848241a95b6e995e6c4833735"
    "b6b8b1c54effe1d2e59f2bbf8b5d2773422ff5a03bdc1a2a317c7fed1c7ea67f28ace8eaffa219f95870234ddb38f92dfda6"
    "6d2862d3e1b1fe9daabb5f15d691d1e8b47d6a9efad1dabe375af244a672f749c3cf95f6afd5c5afb274fad991d6fcdbbac5"
    "15e57e84d461cc510dd4bf5597f6961f57ca53ace21ca7f7bfe98e542f000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000b8b6c415ffdf57fc15";

// zipfile.ZipFile(w) with ZipInfo(date_time=(2026,1,1,0,0,0)): "a.txt" stored,
// b"hello simic\n" (zlib.crc32 0xfa299f7e); "b/c.bin" deflated,
// b"abcabcabcabc"*20 + bytes(range(40)) (280 bytes, zlib.crc32 0xb239d824).
// zipfile reads it back with header offsets 0 and 47, compressed sizes 12, 48.
const char* const python_zip_hex =
    "504b03041400000000000000215c7e9f29fa0c0000000c00000005000000612e74787468656c6c6f2073696d69630a504b0304"
    "1400000008000000215c24d839b2300000001801000007000000622f632e62696e4b4c4a4e1c49888191899985958d9d8393"
    "8b9b87978f5f4050485844544c5c42524a5a46564e5e4151495945554d1d00504b010214031400000000000000215c7e9f29"
    "fa0c0000000c000000050000000000000000000000800100000000612e747874504b010214031400000008000000215c24d8"
    "39b2300000001801000007000000000000000000000080012f000000622f632e62696e504b0506000000000200020068000000"
    "840000000000";

std::vector<std::uint8_t> periodic(std::size_t n) {
  std::vector<std::uint8_t> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<std::uint8_t>((i * 7) % 251);
  return d;
}
std::vector<std::uint8_t> far_match() {
  std::vector<std::uint8_t> a;
  std::uint64_t x = 1;
  for (int i = 0; i < 300; ++i) {
    x = (x * 1103515245 + 12345) % (1ull << 31);
    a.push_back(static_cast<std::uint8_t>((x >> 16) & 0xFF));
  }
  std::vector<std::uint8_t> d = a;
  d.resize(d.size() + 32000, 0);
  d.insert(d.end(), a.begin(), a.end());
  return d;
}

struct inflated {
  std::vector<std::uint8_t> data;
  std::size_t consumed = 0;
};
inflated inflate_all(const std::vector<std::uint8_t>& in, std::uint64_t max_out) {
  inflated r;
  auto sink = [&](const std::uint8_t* p, std::size_t n) { r.data.insert(r.data.end(), p, p + n); };
  const auto [used, out] = detail::inflater::decode_all(in, max_out, sink);
  r.consumed = used;
  CHECK(out == r.data.size());
  return r;
}

void put16(std::vector<std::uint8_t>& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
void put32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}
void append_le(std::vector<std::uint8_t>& b, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// The Python zip with LibTorch's zip64 end records (as PyTorchStreamWriter
// writes them: zip64 end record + locator, then the classic end record).
std::vector<std::uint8_t> with_zip64_end(bool saturate_classic) {
  std::vector<std::uint8_t> z = from_hex(python_zip_hex);
  const std::size_t eocd = z.size() - 22;
  std::vector<std::uint8_t> classic(z.begin() + static_cast<long>(eocd), z.end());
  z.resize(eocd);
  const std::uint64_t rec = z.size();
  append_le(z, 0x06064b50, 4);
  append_le(z, 44, 8);
  append_le(z, 0x031e, 2);
  append_le(z, 45, 2);
  append_le(z, 0, 4);
  append_le(z, 0, 4);
  append_le(z, 2, 8);
  append_le(z, 2, 8);
  append_le(z, 0x68, 8);
  append_le(z, 0x84, 8);
  append_le(z, 0x07064b50, 4);
  append_le(z, 0, 4);
  append_le(z, rec, 8);
  append_le(z, 1, 4);
  if (saturate_classic) {
    put16(classic, 8, 0xFFFF);
    put16(classic, 10, 0xFFFF);
    put32(classic, 12, 0xFFFFFFFF);
    put32(classic, 16, 0xFFFFFFFF);
  }
  z.insert(z.end(), classic.begin(), classic.end());
  return z;
}

bool same_listing(const zip_listing& a, const zip_listing& b) {
  if (a.entries.size() != b.entries.size() || a.zip64 != b.zip64) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    const auto &x = a.entries[i], &y = b.entries[i];
    if (x.name != y.name || x.header_offset != y.header_offset || x.data_offset != y.data_offset ||
        x.compressed_size != y.compressed_size || x.size != y.size || x.crc32 != y.crc32 || x.method != y.method)
      return false;
  }
  return true;
}

}  // namespace

TEST_CASE("CRC-32 and CRC-64/XZ give the catalogue's check values") {
  CHECK(crc32(bytes_of("123456789")) == 0xCBF43926u);
  CHECK(crc64(bytes_of("123456789")) == 0x995DC9BBDF1939FAull);
  CHECK(crc32({}) == 0u);
  CHECK(crc64({}) == 0u);
  CHECK(crc32(bytes_of("hello simic\n")) == 0xfa299f7eu);  // zlib.crc32
  // piecewise updates give the same value as one pass
  crc32_accumulator c;
  const auto p = periodic(70000);
  c.update(p.data(), 12345);
  c.update(p.data() + 12345, p.size() - 12345);
  CHECK(c.value() == 0x49a3692cu);
}

TEST_CASE("inflate decodes zlib's fixed, dynamic and far-reaching streams exactly") {
  SUBCASE("fixed Huffman, 70000 bytes (the 32 KiB window wraps twice)") {
    const auto r = inflate_all(from_hex(periodic_fixed_hex), 70000);
    CHECK(r.consumed == 911);
    CHECK(r.data == periodic(70000));
    CHECK(crc32(r.data) == 0x49a3692cu);
  }
  SUBCASE("dynamic Huffman") {
    const auto r = inflate_all(from_hex(periodic_dynamic_hex), 70000);
    CHECK(r.consumed == 591);
    CHECK(r.data == periodic(70000));
  }
  SUBCASE("a match 32300 bytes back") {
    const auto r = inflate_all(from_hex(far_match_hex), 32600);
    CHECK(r.consumed == 434);
    CHECK(r.data == far_match());
    CHECK(crc32(r.data) == 0xd2064fceu);
  }
  SUBCASE("stored blocks built by hand") {
    // block 1: not final, stored, 3 bytes; block 2: final, stored, 0 bytes
    const std::vector<std::uint8_t> s{0x00, 3, 0, 0xFC, 0xFF, 'a', 'b', 'c', 0x01, 0, 0, 0xFF, 0xFF};
    const auto r = inflate_all(s, 3);
    CHECK(r.data == bytes_of("abc"));
    CHECK(r.consumed == s.size());
    auto bad = s;
    bad[3] = 0xFD;  // NLEN no longer the complement of LEN
    CHECK_THROWS_WITH_AS(inflate_all(bad, 3), doctest::Contains("complement"), archive_error);
  }
}

TEST_CASE("inflate rejects damaged streams and output beyond the expected size") {
  const auto s = from_hex(periodic_dynamic_hex);
  CHECK_THROWS_WITH_AS(inflate_all(s, 69999), doctest::Contains("exceeds the expected 69999"), archive_error);
  CHECK_NOTHROW(inflate_all(s, 70000));  // at the size
  for (std::size_t cut : {0ul, 1ul, 2ul, 100ul, 590ul}) {
    CAPTURE(cut);
    const std::vector<std::uint8_t> t(s.begin(), s.begin() + static_cast<long>(cut));
    CHECK_THROWS_AS(inflate_all(t, 70000), archive_error);
  }
  CHECK_THROWS_WITH_AS(inflate_all({0x07}, 10), doctest::Contains("block type 3"), archive_error);
  // every single bit flip of a stream: either an error, or some output; never a crash or overrun
  const auto f = from_hex(far_match_hex);
  std::size_t threw = 0;
  for (std::size_t bit = 0; bit < f.size() * 8; ++bit) {
    auto g = f;
    g[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    try {
      const auto r = inflate_all(g, 32600);
      CHECK(r.data.size() <= 32600);
    } catch (const archive_error&) {
      ++threw;
    }
  }
  CHECK(threw > 0);
}

TEST_CASE("verify_zip accepts Python's zip and lists it as zipfile does") {
  const auto z = from_hex(python_zip_hex);
  const zip_listing l = verify_zip(z);
  REQUIRE(l.entries.size() == 2);
  CHECK(!l.zip64);
  CHECK(l.entries[0].name == "a.txt");
  CHECK(l.entries[0].header_offset == 0);
  CHECK(l.entries[0].data_offset == 35);  // 30 + 5-byte name
  CHECK(l.entries[0].size == 12);
  CHECK(l.entries[0].crc32 == 0xfa299f7eu);
  CHECK(l.entries[0].method == 0);
  CHECK(l.entries[1].name == "b/c.bin");
  CHECK(l.entries[1].header_offset == 47);
  CHECK(l.entries[1].compressed_size == 48);
  CHECK(l.entries[1].size == 280);
  CHECK(l.entries[1].crc32 == 0xb239d824u);
  CHECK(l.entries[1].method == 8);
  // an empty zip: the end record alone
  const std::vector<std::uint8_t> empty{0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(verify_zip(empty).entries.empty());
}

TEST_CASE("verify_zip reads LibTorch's zip64 end records") {
  SUBCASE("classic end record with real values beside zip64") {
    const zip_listing l = verify_zip(with_zip64_end(false));
    CHECK(l.zip64);
    CHECK(l.entries.size() == 2);
  }
  SUBCASE("classic end record saturated (0xFFFF...)") { CHECK(verify_zip(with_zip64_end(true)).entries.size() == 2); }
  SUBCASE("the two records disagree") {
    auto z = with_zip64_end(false);
    const std::size_t eocd = z.size() - 22;
    put16(z, eocd + 8, 1);
    put16(z, eocd + 10, 1);
    CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("disagree"), archive_error);
  }
  SUBCASE("saturated without a locator") {
    auto z = from_hex(python_zip_hex);
    put32(z, z.size() - 22 + 16, 0xFFFFFFFF);
    CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("no zip64 locator"), archive_error);
  }
}

TEST_CASE("verify_zip rejects wrong CRCs, bad offsets and a truncated central directory") {
  const auto good = from_hex(python_zip_hex);
  const std::size_t cd = 0x84, cd2 = cd + 46 + 5, eocd = good.size() - 22;
  SUBCASE("CRC in the central directory off by one bit") {
    auto z = good;
    z[cd + 16] ^= 1;
    CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("entry 'a.txt': local header (CRC-32 0xfa299f7e"), archive_error);
  }
  SUBCASE("CRC wrong in both headers: the data decides") {
    auto z = good;
    put32(z, 14, 0xfa299f7f);
    put32(z, cd + 16, 0xfa299f7f);
    CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("CRC-32 of its data is 0xfa299f7e; the central directory says 0xfa299f7f"),
                         archive_error);
  }
  SUBCASE("one data byte changed") {
    auto z = good;
    z[35] ^= 0x20;  // 'h' -> 'H'
    CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("CRC-32 of its data"), archive_error);
  }
  SUBCASE("deflated data changed") {
    auto z = good;
    z[47 + 30 + 7 + 20] ^= 0x01;
    CHECK_THROWS_AS(verify_zip(z), archive_error);
  }
  SUBCASE("local header offset one byte off, below and above") {
    for (std::uint32_t off : {46u, 48u}) {
      auto z = good;
      put32(z, cd2 + 42, off);
      CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("entry 'b/c.bin'"), archive_error);
    }
    auto z = good;
    put32(z, cd2 + 42, 0xFFFFFFF0u);  // far beyond the file
    CHECK_THROWS_AS(verify_zip(z), archive_error);
  }
  SUBCASE("central directory offset or size off") {
    for (std::uint32_t off : {0x83u, 0x85u}) {
      auto z = good;
      put32(z, eocd + 16, off);
      CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("central directory"), archive_error);
    }
    auto z = good;
    put32(z, eocd + 12, 0x67);
    CHECK_THROWS_AS(verify_zip(z), archive_error);
  }
  SUBCASE("entry count one below and one above") {
    for (std::uint16_t n : {1, 3}) {
      auto z = good;
      put16(z, eocd + 8, n);
      put16(z, eocd + 10, n);
      CHECK_THROWS_AS(verify_zip(z), archive_error);
    }
  }
  SUBCASE("truncated central directory: every shorter file") {
    for (std::size_t len = 0; len < good.size(); ++len) {
      CAPTURE(len);
      const std::vector<std::uint8_t> t(good.begin(), good.begin() + static_cast<long>(len));
      CHECK_THROWS_AS(verify_zip(t), archive_error);
    }
  }
  SUBCASE("a trailing byte after the end record") {
    auto z = good;
    z.push_back(0);
    CHECK_THROWS_WITH_AS(verify_zip(z), doctest::Contains("comment of 0 bytes, but 1 bytes follow"), archive_error);
  }
  SUBCASE("encrypted, directory and duplicate entries") {
    auto enc = good;
    enc[6] |= 1;
    enc[cd + 8] |= 1;
    CHECK_THROWS_WITH_AS(verify_zip(enc), doctest::Contains("general purpose flags 0x1"), archive_error);
    auto dir = good;
    dir[cd + 38] |= 0x10;
    CHECK_THROWS_WITH_AS(verify_zip(dir), doctest::Contains("'a.txt' is a directory"), archive_error);
    auto renamed = good;
    renamed[cd2 + 46 + 0] = 'a';  // central name of entry 2 -> "a/c.bin" (local still "b/c.bin")
    CHECK_THROWS_WITH_AS(verify_zip(renamed), doctest::Contains("the local header names 'b/c.bin'"), archive_error);
    // "a.txt" twice: its local entry (47 bytes) twice, its central entry
    // (51 bytes) twice, the second pointing at offset 47
    std::vector<std::uint8_t> dup(good.begin(), good.begin() + 47);
    dup.insert(dup.end(), good.begin(), good.begin() + 47);
    dup.insert(dup.end(), good.begin() + static_cast<long>(cd), good.begin() + static_cast<long>(cd2));
    dup.insert(dup.end(), good.begin() + static_cast<long>(cd), good.begin() + static_cast<long>(cd2));
    put32(dup, 94 + 51 + 42, 47);
    dup.insert(dup.end(), good.begin() + static_cast<long>(eocd), good.end());
    put16(dup, dup.size() - 22 + 8, 2);
    put16(dup, dup.size() - 22 + 10, 2);
    put32(dup, dup.size() - 22 + 12, 102);
    put32(dup, dup.size() - 22 + 16, 94);
    CHECK_THROWS_WITH_AS(verify_zip(dup), doctest::Contains("entry 'a.txt' appears twice"), archive_error);
    // the same with the second one named "b.txt" is a valid zip: the construction is sound
    dup[47 + 30] = 'b';
    dup[94 + 51 + 46] = 'b';
    CHECK(verify_zip(dup).entries.size() == 2);
  }
}

TEST_CASE("verify_zip: every single bit flip is rejected or leaves the listing and data as they were") {
  for (const bool z64 : {false, true}) {
    const auto good = z64 ? with_zip64_end(false) : from_hex(python_zip_hex);
    const zip_listing ref = verify_zip(good);
    std::size_t threw = 0, accepted = 0;
    for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
      auto z = good;
      z[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      try {
        const zip_listing l = verify_zip(z);
        ++accepted;
        CAPTURE(bit);
        CHECK(same_listing(l, ref));
        // accepted flips touch no byte that the listing's data covers
        for (const auto& e : ref.entries)
          CHECK(!(bit / 8 >= e.data_offset && bit / 8 < e.data_offset + e.compressed_size));
      } catch (const archive_error&) {
        ++threw;
      }
    }
    MESSAGE("zip64 " << z64 << ": " << threw << " flips rejected, " << accepted << " accepted (timestamps, versions, attributes)");
    CHECK(threw > accepted);
  }
}
