// Checks a zip file the way LibTorch will read it, before LibTorch reads it:
// LibTorch 1.13's loader (miniz under PyTorchStreamReader) checks no CRC-32
// and trusts offsets, so a damaged checkpoint can load silently different
// tensors or crash the process. verify_zip() parses the end records (zip64
// included), every central directory entry and every local header, and
// recomputes every entry's CRC-32 (inflating the deflated ones); anything
// inconsistent throws simic::archive_error naming the entry and the field.
//
// It is strict on purpose: the file must be exactly what a plain zip writer
// (LibTorch's, Python's) produces: one disk, no encryption, stored or
// deflated files only (no directory entries), no duplicate names, and local
// entries, central directory and end records tiling the file with no gaps.
// No LibTorch here: this header is fuzzed and tested on its own.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "simic/archive/archive_error.hpp"
#include "simic/archive/crc.hpp"
#include "simic/archive/inflate.hpp"

namespace simic {
inline namespace v0 {

struct zip_entry {
  std::string name;
  std::uint64_t header_offset = 0;  // of the local header
  std::uint64_t data_offset = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint32_t crc32 = 0;
  std::uint16_t method = 0;  // 0 stored, 8 deflated
};

struct zip_listing {
  std::vector<zip_entry> entries;  // in central directory order
  bool zip64 = false;              // the end records include zip64 ones
};

namespace detail {

constexpr std::uint32_t zip_local_sig = 0x04034b50, zip_central_sig = 0x02014b50, zip_end_sig = 0x06054b50,
                        zip64_end_sig = 0x06064b50, zip64_locator_sig = 0x07064b50, zip_descriptor_sig = 0x08074b50;
// flags a reader may meet here: deflate options (1, 2), data descriptor (3), UTF-8 names (11)
constexpr std::uint16_t zip_allowed_flags = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 11);
constexpr std::uint16_t zip_descriptor_flag = 1u << 3;

[[noreturn]] inline void zip_fail(const std::string& what) { throw archive_error("simic::verify_zip: " + what); }

inline std::string hex32(std::uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

// Bounds-checked little-endian reads over the whole file.
struct zip_bytes {
  std::span<const std::uint8_t> b;
  bool has(std::uint64_t at, std::uint64_t n) const { return at <= b.size() && n <= b.size() - at; }
  void need(std::uint64_t at, std::uint64_t n, const std::string& what) const {
    if (!has(at, n))
      zip_fail(what + " (" + std::to_string(n) + " bytes at offset " + std::to_string(at) + ") runs past the end of the " +
               std::to_string(b.size()) + "-byte file");
  }
  std::uint64_t le(std::uint64_t at, int n) const {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[static_cast<std::size_t>(at) + static_cast<std::size_t>(i)];
    return v;
  }
  std::uint16_t u16(std::uint64_t at) const { return static_cast<std::uint16_t>(le(at, 2)); }
  std::uint32_t u32(std::uint64_t at) const { return static_cast<std::uint32_t>(le(at, 4)); }
  std::uint64_t u64(std::uint64_t at) const { return le(at, 8); }
};

// The zip64 extended information extra field (id 1) of a header: the 8-byte
// values of the fields saturated in the fixed part, in the order usize,
// csize, offset, disk. Returns whether the field was present.
struct zip64_fields {
  std::uint64_t size, compressed_size, offset;
  std::uint32_t disk;
};
inline bool read_zip64_extra(const zip_bytes& z, std::uint64_t at, std::uint64_t len, zip64_fields& f,
                             bool want_size, bool want_csize, bool want_offset, bool want_disk,
                             const std::string& where) {
  bool found = false;
  const std::uint64_t end = at + len;
  while (at < end) {
    if (end - at < 4) zip_fail(where + ": extra field header is cut short");
    const std::uint16_t id = z.u16(at), n = z.u16(at + 2);
    at += 4;
    if (end - at < n) zip_fail(where + ": extra field 0x" + hex32(id).substr(2) + " runs past the extra area");
    if (id == 1) {
      if (found) zip_fail(where + ": two zip64 extra fields");
      found = true;
      std::uint64_t p = at;
      const std::uint64_t q = at + n;
      auto take = [&](int bytes, const char* what) {
        if (q - p < static_cast<std::uint64_t>(bytes)) zip_fail(where + ": zip64 extra field lacks the " + what);
        const std::uint64_t v = z.le(p, bytes);
        p += static_cast<std::uint64_t>(bytes);
        return v;
      };
      if (want_size) f.size = take(8, "size");
      if (want_csize) f.compressed_size = take(8, "compressed size");
      if (want_offset) f.offset = take(8, "header offset");
      if (want_disk) f.disk = static_cast<std::uint32_t>(take(4, "disk number"));
    }
    at += n;
  }
  return found;
}

struct zip_end {
  std::uint64_t entries, cd_size, cd_offset, cd_end;
  bool zip64;
};

inline zip_end read_zip_end(const zip_bytes& z) {
  const std::uint64_t size = z.b.size();
  if (size < 22) zip_fail("file of " + std::to_string(size) + " bytes is too short for a zip (the end record alone is 22)");
  // The last end-record signature, as miniz picks it; its comment must end the file.
  std::uint64_t p = size - 22;
  const std::uint64_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
  while (z.u32(p) != zip_end_sig) {
    if (p == lowest) zip_fail("no end of central directory record in the last " + std::to_string(size - lowest) + " bytes");
    --p;
  }
  if (z.u16(p + 20) != size - p - 22)
    zip_fail("end record at offset " + std::to_string(p) + " has a comment of " + std::to_string(z.u16(p + 20)) +
             " bytes, but " + std::to_string(size - p - 22) + " bytes follow it");
  if (z.u16(p + 4) != 0 || z.u16(p + 6) != 0) zip_fail("end record names a disk other than 0 (multi-disk zips are not read)");
  zip_end e{z.u16(p + 10), z.u32(p + 12), z.u32(p + 16), p, false};
  if (z.u16(p + 8) != e.entries)
    zip_fail("end record counts " + std::to_string(z.u16(p + 8)) + " entries on this disk but " +
             std::to_string(e.entries) + " in all");
  const bool saturated = e.entries == 0xFFFF || e.cd_size == 0xFFFFFFFF || e.cd_offset == 0xFFFFFFFF;
  if (p >= 20 && z.u32(p - 20) == zip64_locator_sig) {
    const std::uint64_t loc = p - 20;
    if (z.u32(loc + 4) != 0 || z.u32(loc + 16) != 1) zip_fail("zip64 locator names a disk other than 0 of 1");
    const std::uint64_t r = z.u64(loc + 8);
    if (r > loc || loc - r < 56) zip_fail("zip64 end record offset " + std::to_string(r) + " does not leave room before its locator at " + std::to_string(loc));
    if (z.u32(r) != zip64_end_sig) zip_fail("no zip64 end record signature at offset " + std::to_string(r));
    if (z.u64(r + 4) != loc - r - 12)
      zip_fail("zip64 end record at " + std::to_string(r) + " says it has " + std::to_string(z.u64(r + 4)) +
               " bytes, but its locator follows after " + std::to_string(loc - r - 12));
    if (z.u32(r + 16) != 0 || z.u32(r + 20) != 0) zip_fail("zip64 end record names a disk other than 0");
    const std::uint64_t n_disk = z.u64(r + 24), n = z.u64(r + 32), cd_size = z.u64(r + 40), cd_offset = z.u64(r + 48);
    if (n_disk != n)
      zip_fail("zip64 end record counts " + std::to_string(n_disk) + " entries on this disk but " + std::to_string(n) + " in all");
    // Where the classic record is not saturated it must agree with zip64.
    if ((e.entries != 0xFFFF && e.entries != n) || (e.cd_size != 0xFFFFFFFF && e.cd_size != cd_size) ||
        (e.cd_offset != 0xFFFFFFFF && e.cd_offset != cd_offset))
      zip_fail("end record (" + std::to_string(e.entries) + " entries, directory of " + std::to_string(e.cd_size) +
               " bytes at " + std::to_string(e.cd_offset) + ") and zip64 end record (" + std::to_string(n) + ", " +
               std::to_string(cd_size) + ", " + std::to_string(cd_offset) + ") disagree");
    e = {n, cd_size, cd_offset, r, true};
  } else if (saturated) {
    zip_fail("end record has zip64 placeholders (0xFFFF...) but no zip64 locator precedes it");
  }
  if (e.cd_offset > e.cd_end || e.cd_end - e.cd_offset != e.cd_size)
    zip_fail("central directory of " + std::to_string(e.cd_size) + " bytes at offset " + std::to_string(e.cd_offset) +
             " does not end where the end records begin (offset " + std::to_string(e.cd_end) + ")");
  if (e.entries > e.cd_size / 46)
    zip_fail(std::to_string(e.entries) + " entries cannot fit a central directory of " + std::to_string(e.cd_size) + " bytes");
  return e;
}

}  // namespace detail

// Verifies `bytes` as a whole zip file; returns its listing or throws
// simic::archive_error saying what is wrong.
inline zip_listing verify_zip(std::span<const std::uint8_t> bytes) {
  using namespace detail;
  const zip_bytes z{bytes};
  const zip_end end = read_zip_end(z);
  zip_listing out;
  out.zip64 = end.zip64;
  out.entries.reserve(static_cast<std::size_t>(end.entries));
  std::vector<std::uint16_t> flags;
  std::uint64_t at = end.cd_offset;
  for (std::uint64_t i = 0; i < end.entries; ++i) {
    const std::string where = "central directory entry " + std::to_string(i) + " (offset " + std::to_string(at) + ")";
    if (end.cd_end - at < 46) zip_fail(where + " runs past the central directory");
    if (z.u32(at) != zip_central_sig) zip_fail(where + " has no central header signature");
    const std::uint16_t flag = z.u16(at + 8), method = z.u16(at + 10);
    const std::uint64_t nlen = z.u16(at + 28), xlen = z.u16(at + 30), clen = z.u16(at + 32);
    if (end.cd_end - at - 46 < nlen + xlen + clen) zip_fail(where + ": name, extra and comment run past the central directory");
    zip_entry e;
    e.name.assign(reinterpret_cast<const char*>(bytes.data() + at + 46), static_cast<std::size_t>(nlen));
    const std::string named = "entry '" + e.name + "'";
    if (e.name.empty()) zip_fail(where + " has an empty name");
    if (e.name.find('\0') != std::string::npos) zip_fail(where + " has a NUL byte in its name");
    if (e.name.back() == '/' || (z.u32(at + 38) & 0x10u) != 0) zip_fail(named + " is a directory; only files are read");
    if ((flag & ~zip_allowed_flags) != 0)
      zip_fail(named + " has general purpose flags " + hex32(flag) + " (encryption or unknown features)");
    if (method != 0 && method != 8) zip_fail(named + " uses compression method " + std::to_string(method) + " (only 0 stored and 8 deflated are read)");
    e.method = method;
    e.crc32 = z.u32(at + 16);
    e.compressed_size = z.u32(at + 20);
    e.size = z.u32(at + 24);
    e.header_offset = z.u32(at + 42);
    std::uint32_t disk = z.u16(at + 34);
    zip64_fields f{};
    const bool want_size = e.size == 0xFFFFFFFF, want_csize = e.compressed_size == 0xFFFFFFFF,
               want_offset = e.header_offset == 0xFFFFFFFF, want_disk = disk == 0xFFFF;
    const bool has64 = read_zip64_extra(z, at + 46 + nlen, xlen, f, want_size, want_csize, want_offset, want_disk, named);
    if ((want_size || want_csize || want_offset || want_disk) && !has64)
      zip_fail(named + " has zip64 placeholders but no zip64 extra field");
    if (want_size) e.size = f.size;
    if (want_csize) e.compressed_size = f.compressed_size;
    if (want_offset) e.header_offset = f.offset;
    if (want_disk) disk = f.disk;
    if (disk != 0) zip_fail(named + " starts on disk " + std::to_string(disk));
    if (method == 0 && e.size != e.compressed_size)
      zip_fail(named + " is stored but its size " + std::to_string(e.size) + " differs from its compressed size " +
               std::to_string(e.compressed_size));
    flags.push_back(flag);
    out.entries.push_back(std::move(e));
    at += 46 + nlen + xlen + clen;
  }
  if (at != end.cd_end)
    zip_fail("central directory holds " + std::to_string(at - end.cd_offset) + " bytes of " + std::to_string(end.entries) +
             " entries, but the end record says " + std::to_string(end.cd_size));
  {
    std::vector<std::string_view> names;
    for (const auto& e : out.entries) names.push_back(e.name);
    std::sort(names.begin(), names.end());
    const auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) zip_fail("entry '" + std::string(*dup) + "' appears twice");
  }
  // Local entries, in file order, must tile [0, central directory).
  std::vector<std::size_t> order(out.entries.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return out.entries[a].header_offset < out.entries[b].header_offset; });
  std::uint64_t next = 0;
  for (const std::size_t i : order) {
    zip_entry& e = out.entries[i];
    const std::string named = "entry '" + e.name + "'";
    const std::uint64_t h = e.header_offset;
    if (h != next)
      zip_fail(named + ": local header at offset " + std::to_string(h) + ", but the previous entry ends at " + std::to_string(next));
    if (end.cd_offset - h < 30) zip_fail(named + ": local header at " + std::to_string(h) + " runs into the central directory");
    if (z.u32(h) != zip_local_sig) zip_fail(named + ": no local header signature at offset " + std::to_string(h));
    const std::uint16_t lflag = z.u16(h + 6), lmethod = z.u16(h + 8);
    const std::uint64_t nlen = z.u16(h + 26), xlen = z.u16(h + 28);
    if (lflag != flags[i]) zip_fail(named + ": local flags " + hex32(lflag) + " differ from the central " + hex32(flags[i]));
    if (lmethod != e.method) zip_fail(named + ": local method " + std::to_string(lmethod) + " differs from the central " + std::to_string(e.method));
    if (end.cd_offset - h - 30 < nlen + xlen) zip_fail(named + ": local name and extra run into the central directory");
    if (std::string_view(reinterpret_cast<const char*>(bytes.data() + h + 30), static_cast<std::size_t>(nlen)) != e.name)
      zip_fail(named + ": the local header names '" +
               std::string(reinterpret_cast<const char*>(bytes.data() + h + 30), static_cast<std::size_t>(nlen)) + "'");
    std::uint64_t lcrc = z.u32(h + 14), lcsize = z.u32(h + 18), lsize = z.u32(h + 22);
    zip64_fields f{};
    const bool local64 = read_zip64_extra(z, h + 30 + nlen, xlen, f, lsize == 0xFFFFFFFF, lcsize == 0xFFFFFFFF,
                                          false, false, named + " (local)");
    if (local64) {
      if (lsize == 0xFFFFFFFF) lsize = f.size;
      if (lcsize == 0xFFFFFFFF) lcsize = f.compressed_size;
    } else if (lsize == 0xFFFFFFFF || lcsize == 0xFFFFFFFF) {
      zip_fail(named + ": local zip64 placeholders but no zip64 extra field");
    }
    const bool described = (lflag & zip_descriptor_flag) != 0;
    const bool local_zero = lcrc == 0 && lcsize == 0 && lsize == 0;
    if (!(described && local_zero) && (lcrc != e.crc32 || lcsize != e.compressed_size || lsize != e.size))
      zip_fail(named + ": local header (CRC-32 " + hex32(static_cast<std::uint32_t>(lcrc)) + ", " + std::to_string(lcsize) +
               " -> " + std::to_string(lsize) + " bytes) disagrees with the central directory (" + hex32(e.crc32) + ", " +
               std::to_string(e.compressed_size) + " -> " + std::to_string(e.size) + ")");
    e.data_offset = h + 30 + nlen + xlen;
    if (end.cd_offset - e.data_offset < e.compressed_size)
      zip_fail(named + ": " + std::to_string(e.compressed_size) + " bytes of data at offset " + std::to_string(e.data_offset) +
               " run into the central directory at " + std::to_string(end.cd_offset));
    const auto data = bytes.subspan(static_cast<std::size_t>(e.data_offset), static_cast<std::size_t>(e.compressed_size));
    crc32_accumulator crc;
    if (e.method == 0) {
      crc.update(data);
    } else {
      auto sink = [&](const std::uint8_t* p, std::size_t n) { crc.update(p, n); };
      std::pair<std::size_t, std::uint64_t> r;
      try {
        r = inflater::decode_all(data, e.size, sink);
      } catch (const archive_error& x) {
        zip_fail(named + ": " + x.what());
      }
      if (r.first != data.size())
        zip_fail(named + ": its deflate stream ends after " + std::to_string(r.first) + " of " + std::to_string(data.size()) + " bytes");
      if (r.second != e.size)
        zip_fail(named + ": inflates to " + std::to_string(r.second) + " bytes; the central directory says " + std::to_string(e.size));
    }
    if (crc.value() != e.crc32)
      zip_fail(named + ": CRC-32 of its data is " + hex32(crc.value()) + "; the central directory says " + hex32(e.crc32));
    next = e.data_offset + e.compressed_size;
    if (described) {
      // optional signature, CRC-32, then sizes of 8 bytes when the entry is zip64
      const std::uint64_t width = local64 ? 8 : 4;
      std::uint64_t d = next;
      if (end.cd_offset - d >= 4 && z.u32(d) == zip_descriptor_sig) d += 4;
      if (end.cd_offset - d < 4 + 2 * width) zip_fail(named + ": data descriptor at " + std::to_string(next) + " runs into the central directory");
      const std::uint32_t dcrc = z.u32(d);
      const std::uint64_t dcsize = z.le(d + 4, static_cast<int>(width)), dsize = z.le(d + 4 + width, static_cast<int>(width));
      if (dcrc != e.crc32 || dcsize != e.compressed_size || dsize != e.size)
        zip_fail(named + ": data descriptor (CRC-32 " + hex32(dcrc) + ", " + std::to_string(dcsize) + " -> " +
                 std::to_string(dsize) + " bytes) disagrees with the central directory");
      next = d + 4 + 2 * width;
    }
  }
  if (next != end.cd_offset)
    zip_fail("the last entry ends at offset " + std::to_string(next) + ", but the central directory starts at " +
             std::to_string(end.cd_offset));
  return out;
}

}  // namespace v0
}  // namespace simic
