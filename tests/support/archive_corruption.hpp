// Corruptions of a saved archive file and the one rule they are held to:
// loading a corrupted file either throws simic::archive_error and leaves the
// monitor (or module) as it was, or loads exactly the saved state. Two
// families: byte-level (corruption: bit flips, truncations, zeroed ranges)
// and structure-aware (structure_corruption: the zip and every CRC-32 kept
// valid while records or data.pkl lie). Shared by tests/archive (quick
// matrices) and bench/archive_corruption (the full random runs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <caffe2/serialize/inline_container.h>

#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "simic/core/signals.hpp"
#include "simic/archive/crc.hpp"
#include "simic/archive/module_archive.hpp"
#include "simic/archive/torch_archive.hpp"
#include "simic/archive/torch_pickle.hpp"
#include "simic/archive/zip_verify.hpp"

namespace simic::test {

// The signals of update `u` of a monitor's history with some of everything
// in its state: drift after update 60, a NaN at 25, a KL spike at 15 and a
// performance drop at 90.
inline signals history_signals(std::uint64_t u) {
  signals s;
  gradient_signal g;
  g.total_norm = 1.0 + 0.3 * std::sin(static_cast<double>(u)) + (u > 60 ? 0.05 * static_cast<double>(u - 60) : 0.0);
  g.health = 1.0 - 0.01 * static_cast<double>(u % 3);
  g.min_param_norm = 1e-3;
  g.max_param_norm = 0.9;
  g.parameters = 8;
  if (u == 25) g.nan_count = 2;
  s.gradients = g;
  s.approx_kl = u == 15 ? 0.2 : 0.01;
  s.performance = 100.0 + std::cos(static_cast<double>(u)) - (u == 90 ? 40.0 : 0.0);
  s.progress = training_progress(u + 1, 200);
  return s;
}

struct corruption {
  enum kind_t { bit_flip, truncate, zero_range } kind;
  std::size_t at = 0;      // byte (flip, zero start) or new length (truncate)
  std::size_t length = 0;  // bit index 0..7 for a flip, bytes for a zeroed range
  std::vector<std::uint8_t> apply(const std::vector<std::uint8_t>& good) const {
    std::vector<std::uint8_t> b = good;
    if (kind == bit_flip) {
      b[at] ^= static_cast<std::uint8_t>(1u << length);
    } else if (kind == truncate) {
      b.resize(at);
    } else {
      for (std::size_t i = at; i < at + length && i < b.size(); ++i) b[i] = 0;
    }
    return b;
  }
  std::string describe() const {
    if (kind == bit_flip) return "flip bit " + std::to_string(length) + " of byte " + std::to_string(at);
    if (kind == truncate) return "truncate to " + std::to_string(at) + " bytes";
    return "zero " + std::to_string(length) + " bytes at " + std::to_string(at);
  }
};

inline corruption random_corruption(std::mt19937_64& rng, std::size_t size) {
  std::uniform_int_distribution<std::size_t> byte(0, size - 1);
  switch (rng() % 3) {
    case 0: return {corruption::bit_flip, byte(rng), static_cast<std::size_t>(rng() % 8)};
    case 1: return {corruption::truncate, byte(rng), 0};
    default: return {corruption::zero_range, byte(rng), 1 + static_cast<std::size_t>(rng() % 64)};
  }
}

enum class load_outcome { threw, identical, different };

// Loads `bytes` into `m` through the verified path. `m` must hold `before`
// on entry; it is put back to `before` on return.
template <class Monitor>
load_outcome verified_load_outcome(const std::vector<std::uint8_t>& bytes, Monitor& m,
                                   const typename Monitor::state_type& before,
                                   const typename Monitor::state_type& saved) {
  try {
    torch::serialize::InputArchive ar = open_verified_archive(std::span<const std::uint8_t>(bytes));
    load(ar, m);
  } catch (const archive_error&) {
    return m.state() == before ? load_outcome::threw : load_outcome::different;
  }
  const bool same = m.state() == saved;
  m.load(before);
  return same ? load_outcome::identical : load_outcome::different;
}

// The same through LibTorch's loader alone (no zip verification; simic's
// version and checksum still checked), for comparison.
template <class Monitor>
load_outcome unverified_load_outcome(const std::vector<std::uint8_t>& bytes, Monitor& m,
                                     const typename Monitor::state_type& before,
                                     const typename Monitor::state_type& saved) {
  try {
    torch::serialize::InputArchive ar;
    ar.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    load(ar, m);
  } catch (const std::exception&) {
    return m.state() == before ? load_outcome::threw : load_outcome::different;
  }
  const bool same = m.state() == saved;
  m.load(before);
  return same ? load_outcome::identical : load_outcome::different;
}

// Archives whose zip is valid but whose contents lie: the records of a saved
// archive, renamed, emptied or edited, written again by LibTorch's own zip
// writer, so that every CRC-32, offset and size is right and verify_zip
// passes them on.
struct archive_record {
  std::string name;  // without the archive's folder: "data.pkl", "data/0", ...
  std::string data;
};

// The records of a torch archive, as LibTorch's reader lists them.
inline std::vector<archive_record> read_records(const std::vector<std::uint8_t>& bytes) {
  std::istringstream is(std::string(bytes.begin(), bytes.end()));
  caffe2::serialize::PyTorchStreamReader r(&is);
  std::vector<archive_record> out;
  for (const std::string& name : r.getAllRecords()) {
    auto [data, size] = r.getRecord(name);
    out.push_back({name, std::string(static_cast<const char*>(data.get()), size)});
  }
  return out;
}

// A torch archive of `records`. The writer writes the version record (and,
// on LibTorch 2.x, the serialization id) itself: those are taken from
// `records` for the version number and not copied.
inline std::vector<std::uint8_t> write_records(const std::vector<archive_record>& records) {
  std::vector<std::uint8_t> out;
  caffe2::serialize::PyTorchStreamWriter w([&](const void* p, std::size_t n) {
    out.insert(out.end(), static_cast<const std::uint8_t*>(p), static_cast<const std::uint8_t*>(p) + n);
    return n;
  });
  for (const archive_record& r : records) {
    if (r.name == "version" || r.name == ".data/version") {
      w.setMinVersion(std::stoull(r.data));
      continue;
    }
    if (r.name == ".data/serialization_id") continue;
    w.writeRecord(r.name, r.data.data(), r.data.size());
  }
  w.writeEndOfFile();
  return out;
}

inline archive_record& find_record(std::vector<archive_record>& records, std::string_view name) {
  for (archive_record& r : records)
    if (r.name == name) return r;
  throw std::invalid_argument("archive has no record '" + std::string(name) + "'");
}

// `s` with the first `from` after the first `after` replaced by `to` (a
// pickle has no lengths or offsets to fix: an opcode may grow or shrink).
inline std::string replace_after(std::string s, std::string_view after, std::string_view from, std::string_view to) {
  const std::size_t a = s.find(after);
  if (a == std::string::npos) throw std::invalid_argument("no '" + std::string(after) + "' to edit after");
  const std::size_t at = s.find(from, a + after.size());
  if (at == std::string::npos) throw std::invalid_argument("no such bytes after '" + std::string(after) + "'");
  s.replace(at, from.size(), to);
  return s;
}


// ---- Structure-aware corruptions: the zip stays valid, its contents lie ----

// A zip as LibTorch (or any plain writer) lays it out, read entry by entry so
// that it can be written back with records renamed, swapped, duplicated,
// resized or edited, and every CRC-32, size, offset, local header, data
// descriptor and central directory entry consistent again. Written back
// unchanged it is the same file byte for byte (checked by the tests).
struct zip_record_entry {
  std::string name;
  std::string stored;            // the data as stored (deflated where method is 8)
  std::uint16_t method = 0, flags = 0;
  std::uint32_t crc = 0;
  std::uint64_t size = 0;        // inflated
  std::string local_fixed;       // local header bytes 4..13: version needed, flags, method, time, date
  std::string local_extra;       // LibTorch's alignment padding ("FB" field)
  std::string central_fixed;     // central header bytes 4..15: made by, needed, flags, method, time, date
  std::string central_attrs;     // central header bytes 36..41: internal and external attributes
  std::string central_extra, comment;
  bool descriptor_signature = false;

  // The record's bytes, inflated where stored deflated.
  std::string data() const {
    if (method == 0) return stored;
    std::string out;
    auto sink = [&](const std::uint8_t* p, std::size_t n) { out.append(reinterpret_cast<const char*>(p), n); };
    simic::detail::inflater::decode_all(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(stored.data()), stored.size()), size, sink);
    return out;
  }
  // New bytes, stored; CRC-32 and sizes recomputed.
  void set_data(std::string d) {
    method = 0;
    crc = simic::crc32(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(d.data()), d.size()));
    size = d.size();
    stored = std::move(d);
  }
};

struct zip_records {
  std::vector<zip_record_entry> entries;  // in central directory order (LibTorch's: file order too)
  std::string comment;
  // LibTorch's writer (miniz) ends every file with a zip64 end record and
  // locator before the classic end record, whatever its size: their
  // versions (made by, needed), or empty where the file has none.
  std::string zip64_versions;
  std::string root() const { return entries.at(0).name.substr(0, entries.at(0).name.find('/') + 1); }
  std::size_t index_of(std::string_view name) const {
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (entries[i].name == name) return i;
    throw std::invalid_argument("zip has no entry '" + std::string(name) + "'");
  }
};

namespace detail {
inline std::uint64_t le_at(const std::vector<std::uint8_t>& b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b.at(at + static_cast<std::size_t>(i));
  return v;
}
inline void put_le(std::vector<std::uint8_t>& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void put_bytes(std::vector<std::uint8_t>& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }
inline std::string take(const std::vector<std::uint8_t>& b, std::size_t at, std::size_t n) {
  if (at > b.size() || n > b.size() - at) throw std::invalid_argument("zip fixture: field past the end");
  return std::string(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
}
// Fixed header bytes with the flags and method (at `flags_at`) set.
inline std::string with_flags_method(std::string fixed, std::size_t flags_at, std::uint16_t flags, std::uint16_t method) {
  fixed[flags_at] = static_cast<char>(flags & 0xFF);
  fixed[flags_at + 1] = static_cast<char>(flags >> 8);
  fixed[flags_at + 2] = static_cast<char>(method & 0xFF);
  fixed[flags_at + 3] = static_cast<char>(method >> 8);
  return fixed;
}
}  // namespace detail

// Reads a zip that simic::verify_zip accepts, small enough to need no zip64
// field (zip64 end records are kept); throws std::invalid_argument for
// anything else.
inline zip_records read_zip_records(const std::vector<std::uint8_t>& b) {
  const zip_listing listing = verify_zip(std::span<const std::uint8_t>(b));
  std::size_t end = b.size() - 22;
  while (detail::le_at(b, end, 4) != 0x06054b50) {
    if (end == 0) throw std::invalid_argument("zip fixture: no end record");
    --end;
  }
  zip_records z;
  if (listing.zip64) {
    const std::size_t r = static_cast<std::size_t>(detail::le_at(b, end - 20 + 8, 8));  // from the locator
    if (detail::le_at(b, end + 10, 2) == 0xFFFF || detail::le_at(b, end + 12, 4) == 0xFFFFFFFF ||
        detail::le_at(b, end + 16, 4) == 0xFFFFFFFF || detail::le_at(b, r + 4, 8) != 44)
      throw std::invalid_argument("zip fixture: saturated or extended zip64 end records are not rewritten");
    z.zip64_versions = detail::take(b, r + 12, 4);
  }
  z.comment = detail::take(b, end + 22, static_cast<std::size_t>(detail::le_at(b, end + 20, 2)));
  std::size_t at = static_cast<std::size_t>(detail::le_at(b, end + 16, 4));
  for (const zip_entry& e : listing.entries) {
    zip_record_entry r;
    const std::size_t nlen = detail::le_at(b, at + 28, 2), xlen = detail::le_at(b, at + 30, 2),
                      clen = detail::le_at(b, at + 32, 2);
    r.name = e.name;
    r.method = e.method;
    r.flags = static_cast<std::uint16_t>(detail::le_at(b, at + 8, 2));
    r.crc = e.crc32;
    r.size = e.size;
    r.central_fixed = detail::take(b, at + 4, 12);
    r.central_attrs = detail::take(b, at + 36, 6);
    r.central_extra = detail::take(b, at + 46 + nlen, xlen);
    r.comment = detail::take(b, at + 46 + nlen + xlen, clen);
    at += 46 + nlen + xlen + clen;
    const std::size_t h = static_cast<std::size_t>(e.header_offset);
    r.local_fixed = detail::take(b, h + 4, 10);
    r.local_extra = detail::take(b, h + 30 + detail::le_at(b, h + 26, 2), detail::le_at(b, h + 28, 2));
    r.stored = detail::take(b, static_cast<std::size_t>(e.data_offset), static_cast<std::size_t>(e.compressed_size));
    const std::size_t after = static_cast<std::size_t>(e.data_offset + e.compressed_size);
    r.descriptor_signature = (r.flags & 8) != 0 && after + 4 <= b.size() && detail::le_at(b, after, 4) == 0x08074b50;
    z.entries.push_back(std::move(r));
  }
  return z;
}

// Writes `z` as a zip: each entry's local header (CRC-32 and sizes there, or
// zero there and in a data descriptor after the data when its flags say so),
// its data, then the central directory and the end record, all offsets and
// sizes computed from what is written.
inline std::vector<std::uint8_t> write_zip_records(const zip_records& z) {
  using detail::put_bytes;
  using detail::put_le;
  std::vector<std::uint8_t> out;
  std::vector<std::uint64_t> offsets;
  for (const zip_record_entry& e : z.entries) {
    if (e.stored.size() > 0xFFFFFFFEu || e.size > 0xFFFFFFFEu) throw std::invalid_argument("zip fixture: entry too large");
    offsets.push_back(out.size());
    const bool described = (e.flags & 8) != 0;
    put_le(out, 0x04034b50, 4);
    put_bytes(out, detail::with_flags_method(e.local_fixed, 2, e.flags, e.method));
    put_le(out, described ? 0 : e.crc, 4);
    put_le(out, described ? 0 : e.stored.size(), 4);
    put_le(out, described ? 0 : e.size, 4);
    put_le(out, e.name.size(), 2);
    put_le(out, e.local_extra.size(), 2);
    put_bytes(out, e.name);
    put_bytes(out, e.local_extra);
    put_bytes(out, e.stored);
    if (described) {
      if (e.descriptor_signature) put_le(out, 0x08074b50, 4);
      put_le(out, e.crc, 4);
      put_le(out, e.stored.size(), 4);
      put_le(out, e.size, 4);
    }
  }
  const std::uint64_t cd = out.size();
  for (std::size_t i = 0; i < z.entries.size(); ++i) {
    const zip_record_entry& e = z.entries[i];
    put_le(out, 0x02014b50, 4);
    put_bytes(out, detail::with_flags_method(e.central_fixed, 4, e.flags, e.method));
    put_le(out, e.crc, 4);
    put_le(out, e.stored.size(), 4);
    put_le(out, e.size, 4);
    put_le(out, e.name.size(), 2);
    put_le(out, e.central_extra.size(), 2);
    put_le(out, e.comment.size(), 2);
    put_le(out, 0, 2);  // disk
    put_bytes(out, e.central_attrs);
    put_le(out, offsets[i], 4);
    put_bytes(out, e.name);
    put_bytes(out, e.central_extra);
    put_bytes(out, e.comment);
  }
  const std::uint64_t cd_size = out.size() - cd;
  if (!z.zip64_versions.empty()) {
    const std::uint64_t r = out.size();
    put_le(out, 0x06064b50, 4);
    put_le(out, 44, 8);  // the record's size after this field
    put_bytes(out, z.zip64_versions);
    put_le(out, 0, 8);  // this disk, the directory's disk
    put_le(out, z.entries.size(), 8);
    put_le(out, z.entries.size(), 8);
    put_le(out, cd_size, 8);
    put_le(out, cd, 8);
    put_le(out, 0x07064b50, 4);  // locator: disk 0, the record's offset, 1 disk
    put_le(out, 0, 4);
    put_le(out, r, 8);
    put_le(out, 1, 4);
  }
  put_le(out, 0x06054b50, 4);
  put_le(out, 0, 4);  // this disk, the directory's disk
  put_le(out, z.entries.size(), 2);
  put_le(out, z.entries.size(), 2);
  put_le(out, cd_size, 4);
  put_le(out, cd, 4);
  put_le(out, z.comment.size(), 2);
  put_bytes(out, z.comment);
  return out;
}

// The opcodes of a pickle as LibTorch's pickler writes them (protocol 2),
// with their byte ranges, memo puts left out: enough to find and replace the
// parts of a storage's persistent id. Throws std::invalid_argument on an
// opcode LibTorch does not write (a fixture problem, not simic's).
struct pickle_op {
  std::size_t at = 0, length = 0;  // the opcode and its argument
  std::uint8_t code = 0;
};
inline std::vector<pickle_op> pickle_ops(std::string_view p) {
  std::vector<pickle_op> ops;
  std::size_t at = 0;
  auto le = [&](std::size_t from, int n) {
    if (from + static_cast<std::size_t>(n) > p.size()) throw std::invalid_argument("pickle fixture: cut short");
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[from + static_cast<std::size_t>(i)]);
    return static_cast<std::size_t>(v);
  };
  while (at < p.size()) {
    const auto code = static_cast<std::uint8_t>(p[at]);
    std::size_t arg = 0;
    switch (code) {
      case 0x80: case 'q': case 'h': case 'K': arg = 1; break;  // PROTO, BINPUT, BINGET, BININT1
      case 'M': arg = 2; break;
      case 'r': case 'j': case 'J': arg = 4; break;  // LONG_BINPUT, LONG_BINGET, BININT
      case 'G': arg = 8; break;
      case 'X': arg = 4 + le(at + 1, 4); break;  // BINUNICODE
      case 0x8a: arg = 1 + le(at + 1, 1); break;  // LONG1
      case 'c': {  // GLOBAL: two lines
        const std::size_t a = p.find('\n', at + 1), b = a == std::string_view::npos ? a : p.find('\n', a + 1);
        if (b == std::string_view::npos) throw std::invalid_argument("pickle fixture: GLOBAL cut short");
        arg = b - at;
        break;
      }
      case ')': case '}': case ']': case '(': case 't': case 0x85: case 0x86: case 0x87: case 'Q': case 'R':
      case 'b': case 'u': case 's': case 'e': case 'a': case 'N': case 0x88: case 0x89: case 0x81: case '.':
        break;
      default: throw std::invalid_argument("pickle fixture: opcode " + std::to_string(code) + " is not LibTorch's");
    }
    if (code != 'q' && code != 'r') ops.push_back({at, 1 + arg, code});
    at += 1 + arg;
    if (code == '.') break;
  }
  return ops;
}

// Where data.pkl spells each storage's persistent id (in the order of
// simic::pickled_storages): MARK, 'storage', type, key, device, numel,
// TUPLE, BINPERSID, and before it (LibTorch's layout of a named tensor) the
// name and the rebuild global. Each is the op that pushes that value.
struct pickled_storage_site {
  pickle_op key, numel;
  std::optional<pickle_op> field;
};
inline std::vector<pickled_storage_site> storage_sites(std::string_view pickle) {
  const std::vector<pickle_op> ops = pickle_ops(pickle);
  std::vector<pickled_storage_site> sites;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].code != 'Q') continue;
    if (i < 7 || ops[i - 1].code != 't' || ops[i - 7].code != '(')
      throw std::invalid_argument("pickle fixture: a persistent id not laid out as LibTorch's");
    pickled_storage_site s{ops[i - 4], ops[i - 2], std::nullopt};
    if (i >= 10 && ops[i - 8].code == '(' && (ops[i - 9].code == 'c' || ops[i - 9].code == 'h') &&
        (ops[i - 10].code == 'X' || ops[i - 10].code == 'h'))
      s.field = ops[i - 10];
    sites.push_back(s);
  }
  return sites;
}

// Pickle opcodes for a string (BINUNICODE) and an integer (the shortest of
// BININT1, BININT2, BININT, LONG1 of 8 bytes), as LibTorch's pickler writes them.
inline std::string pickle_text(std::string_view s) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((s.size() >> (8 * i)) & 0xFF));
  return out.append(s);
}
inline std::string pickle_int(std::int64_t v) {
  std::string out;
  auto bytes = [&](int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xFF));
  };
  if (v >= 0 && v < 256) out = "K", bytes(1);
  else if (v >= 0 && v < 65536) out = "M", bytes(2);
  else if (v >= INT32_MIN && v <= INT32_MAX) out = "J", bytes(4);
  else out = "\x8a\x08", bytes(8);
  return out;
}

// One structure-aware corruption. The record kinds rewrite entries of the
// zip; the data.pkl kinds replace one opcode of a storage's persistent id or
// of its tensor's name (an opcode that puts to the memo carries the edit to
// what gets it later). Either way the result is written by
// write_zip_records, so every CRC-32, size and offset is right.
struct structure_corruption {
  enum kind_t {
    rename_record,    // entry a gets a name no entry has
    rename_onto,      // entry a gets entry b's name: two entries of one name
    swap_records,     // entries a and b swap names (so, contents)
    duplicate_entry,  // a second entry named as a, holding b's data, right after a
    empty_record,     // entry a holds no bytes
    truncate_record,  // entry a keeps its first `value` bytes
    extend_record,    // entry a gets `text` appended
    storage_numel,    // storage a declares `value` elements
    storage_key,      // storage a's key becomes `text` (b: the storage it was taken from, or npos)
    swap_storage_keys,  // storages a and b swap keys
    field_name,       // the name storage a's tensor is stored under becomes `text`
    kinds
  } kind = rename_record;
  std::size_t a = 0, b = 0;
  std::int64_t value = 0;
  std::string text;

  static constexpr const char* kind_names[kinds] = {
      "rename_record", "rename_onto", "swap_records", "duplicate_entry", "empty_record", "truncate_record",
      "extend_record", "storage_numel", "storage_key", "swap_storage_keys", "field_name"};

  zip_records applied(const zip_records& good) const {
    zip_records z = good;
    auto& e = z.entries;
    switch (kind) {
      case rename_record: e.at(a).name = text; break;
      case rename_onto: e.at(a).name = e.at(b).name; break;
      case swap_records: std::swap(e.at(a).name, e.at(b).name); break;
      case duplicate_entry: {
        zip_record_entry copy = e.at(b);
        copy.name = e.at(a).name;
        e.insert(e.begin() + static_cast<std::ptrdiff_t>(a) + 1, std::move(copy));
        break;
      }
      case empty_record: e.at(a).set_data({}); break;
      case truncate_record: e.at(a).set_data(e.at(a).data().substr(0, static_cast<std::size_t>(value))); break;
      case extend_record: e.at(a).set_data(e.at(a).data() + text); break;
      default: {  // the data.pkl kinds
        zip_record_entry& pkl = e.at(z.index_of(z.root() + "data.pkl"));
        const std::string p = pkl.data();
        const std::vector<pickled_storage_site> sites = storage_sites(p);
        std::vector<std::pair<pickle_op, std::string>> edits;  // replaced from the back
        if (kind == storage_numel) edits.push_back({sites.at(a).numel, pickle_int(value)});
        if (kind == storage_key) edits.push_back({sites.at(a).key, pickle_text(text)});
        if (kind == swap_storage_keys) {
          const auto keys = pickled_storages(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(p.data()), p.size()));
          edits.push_back({sites.at(a).key, pickle_text(keys.at(b).key)});
          edits.push_back({sites.at(b).key, pickle_text(keys.at(a).key)});
        }
        if (kind == field_name) {
          if (!sites.at(a).field) throw std::invalid_argument("storage has no name in data.pkl");
          edits.push_back({*sites.at(a).field, pickle_text(text)});
        }
        std::sort(edits.begin(), edits.end(), [](const auto& x, const auto& y) { return x.first.at > y.first.at; });
        std::string edited = p;
        for (const auto& [op, with] : edits) edited.replace(op.at, op.length, with);
        pkl.set_data(std::move(edited));
      }
    }
    return z;
  }
  std::vector<std::uint8_t> apply(const zip_records& good) const { return write_zip_records(applied(good)); }

  std::string describe(const zip_records& good) const {
    const std::string k = kind_names[kind];
    auto name = [&](std::size_t i) { return "'" + good.entries.at(i).name + "'"; };
    switch (kind) {
      case rename_record: return k + " " + name(a) + " -> '" + text + "'";
      case rename_onto: return k + " " + name(a) + " -> " + name(b);
      case swap_records: return k + " " + name(a) + " <-> " + name(b);
      case duplicate_entry: return k + " " + name(a) + " again, holding " + name(b) + "'s data";
      case empty_record: return k + " " + name(a);
      case truncate_record: return k + " " + name(a) + " to " + std::to_string(value) + " bytes";
      case extend_record: return k + " " + name(a) + " by " + std::to_string(text.size()) + " bytes";
      case storage_numel: return k + " storage #" + std::to_string(a) + " declares " + std::to_string(value);
      case storage_key: return k + " storage #" + std::to_string(a) + " key -> '" + text + "'";
      case swap_storage_keys: return k + " storages #" + std::to_string(a) + " <-> #" + std::to_string(b);
      case field_name: return k + " storage #" + std::to_string(a) + " named '" + text + "'";
      default: return k;
    }
  }
};

// What a structure-aware generator draws from: the zip's entries and
// data.pkl's storages.
struct structure_target {
  zip_records zip;
  std::vector<std::size_t> tensor_records;  // entries under "<root>data/"
  std::vector<pickled_storage> storages;
  std::vector<bool> named;  // storages whose tensor's name data.pkl spells where LibTorch puts it

  explicit structure_target(const std::vector<std::uint8_t>& bytes) : zip(read_zip_records(bytes)) {
    for (std::size_t i = 0; i < zip.entries.size(); ++i)
      if (zip.entries[i].name.rfind(zip.root() + "data/", 0) == 0) tensor_records.push_back(i);
    const std::string p = zip.entries.at(zip.index_of(zip.root() + "data.pkl")).data();
    storages = pickled_storages(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(p.data()), p.size()));
    for (const pickled_storage_site& s : storage_sites(p)) named.push_back(s.field.has_value());
    if (storages.size() != named.size() || tensor_records.size() < 2 || storages.size() < 2)
      throw std::invalid_argument("structure_target: not a torch archive with two tensors or more");
  }
};

// A random structure-aware corruption of `kind`: two thirds of the record
// kinds pick a tensor record, one third any entry (data.pkl, code, version).
inline structure_corruption random_structure_corruption(std::mt19937_64& rng, const structure_target& t,
                                                        structure_corruption::kind_t kind) {
  using sc = structure_corruption;
  const std::size_t entries = t.zip.entries.size(), storages = t.storages.size();
  auto record = [&] { return rng() % 3 != 0 ? t.tensor_records[rng() % t.tensor_records.size()] : rng() % entries; };
  auto other = [&](std::size_t than, auto pick) {
    std::size_t o = pick();
    while (o == than) o = pick();
    return o;
  };
  sc c;
  c.kind = kind;
  switch (kind) {
    case sc::rename_record: {
      c.a = record();
      const std::string& n = t.zip.entries[c.a].name;
      c.text = rng() % 2 ? t.zip.root() + "data/" + std::to_string(1000 + rng() % 9000) : n + "_";
      break;
    }
    case sc::rename_onto: case sc::swap_records: case sc::duplicate_entry:
      c.a = record();
      c.b = kind == sc::duplicate_entry && rng() % 2 ? c.a : other(c.a, record);
      break;
    case sc::empty_record: c.a = record(); break;
    case sc::truncate_record: {
      c.a = record();
      const std::size_t n = t.zip.entries[c.a].size;
      c.value = n == 0 ? 0 : static_cast<std::int64_t>(rng() % n);
      break;
    }
    case sc::extend_record: {
      c.a = record();
      const std::size_t n = 1 + rng() % 64;
      for (std::size_t i = 0; i < n; ++i) c.text.push_back(rng() % 2 ? '\0' : static_cast<char>(rng() & 0xFF));
      break;
    }
    case sc::storage_numel: {
      c.a = rng() % storages;
      const std::int64_t n = t.storages[c.a].numel;
      const std::int64_t menu[] = {0, n - 1, n + 1, 2 * n, n / 2, -1, -n, std::int64_t{1} << 31,
                                   std::int64_t{1} << 40, std::int64_t{1} << 62};
      c.value = menu[rng() % std::size(menu)];
      break;
    }
    case sc::storage_key:
      c.a = rng() % storages;
      if (rng() % 2) {
        c.b = other(c.a, [&] { return rng() % storages; });
        c.text = t.storages[c.b].key;  // two storages, one record
      } else {
        c.b = SIZE_MAX;
        c.text = std::to_string(storages + rng() % 1000);  // no such record
      }
      break;
    case sc::swap_storage_keys:
      c.a = rng() % storages;
      c.b = other(c.a, [&] { return rng() % storages; });
      break;
    case sc::field_name: {
      std::vector<std::size_t> named;
      for (std::size_t i = 0; i < storages; ++i)
        if (t.named[i]) named.push_back(i);
      if (named.empty()) throw std::invalid_argument("no storage's tensor is named in data.pkl");
      c.a = named[rng() % named.size()];
      const std::size_t o = named[rng() % named.size()];
      c.text = rng() % 2 ? t.storages[o].field : t.storages[c.a].field + "_";
      break;
    }
    default: throw std::invalid_argument("no such structure corruption kind");
  }
  return c;
}
inline structure_corruption random_structure_corruption(std::mt19937_64& rng, const structure_target& t) {
  return random_structure_corruption(rng, t, static_cast<structure_corruption::kind_t>(rng() % structure_corruption::kinds));
}

// A module for the checkpoint corruptions: nested two deep (fc1, then
// head.1 inside a Sequential with a parameterless ReLU), a float64 and an
// int64 buffer, and every tensor of another byte size (60, 12, 24, 8, 40
// and 16 bytes at the default width 3), so that a swap of any two of its
// records changes a size. Its values come from `seed`.
struct probe_netImpl : torch::nn::Module {
  explicit probe_netImpl(std::uint64_t seed, std::int64_t width = 3) {
    torch::manual_seed(seed);
    fc1 = register_module("fc1", torch::nn::Linear(5, width));
    head = register_module("head", torch::nn::Sequential(torch::nn::ReLU(), torch::nn::Linear(width, 2)));
    scale = register_buffer("scale", torch::rand({5}, torch::kDouble));
    steps = register_buffer("steps", torch::randint(1, 1000, {2}, torch::kLong));
  }
  torch::nn::Linear fc1{nullptr};
  torch::nn::Sequential head{nullptr};
  at::Tensor scale, steps;
};
TORCH_MODULE(probe_net);

inline std::vector<std::uint8_t> saved_module(const torch::nn::Module& m) {
  torch::serialize::OutputArchive out;
  m.save(out);
  std::ostringstream os;
  out.save_to(os);
  const std::string s = os.str();
  return {s.begin(), s.end()};
}

// ---- Loads through the verified file paths, with the failure's message ----

// Whether an archive_error's message names the file and one of `names` (a
// record, a key), each in quotes.
inline bool names_file_and_one_of(const std::string& message, const std::string& file,
                                  const std::vector<std::string>& names) {
  if (message.find("'" + file + "'") == std::string::npos) return false;
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& n) { return !n.empty() && message.find("'" + n + "'") != std::string::npos; });
}

// The names a failure of `bytes` may name: every entry, storage key and
// field of the saved archive, the record of each storage, the keys of
// `extra` (a module's dotted parameter names), and `also` (the mutation's own
// new name, if any).
inline std::vector<std::string> nameable(const structure_target& t, const std::vector<std::string>& extra,
                                         const std::string& also = {}) {
  std::vector<std::string> n = extra;
  for (const auto& e : t.zip.entries) n.push_back(e.name);
  for (const auto& s : t.storages) {
    n.push_back(s.field);
    n.push_back(s.key);
    n.push_back(t.zip.root() + "data/" + s.key);
  }
  if (!also.empty()) {
    n.push_back(also);
    n.push_back(t.zip.root() + "data/" + also);
  }
  return n;
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write '" + path.string() + "'");
}

// Loads `bytes` into `m` through load_file (the file written to `path`).
// `m` must hold `before` on entry; it is put back to `before` on return.
// A failure's message goes to `message`.
template <class Monitor>
load_outcome verified_file_outcome(const std::vector<std::uint8_t>& bytes, const std::filesystem::path& path,
                                   Monitor& m, const typename Monitor::state_type& before,
                                   const typename Monitor::state_type& saved, std::string& message) {
  write_bytes(path, bytes);
  try {
    load_file(path, m);
  } catch (const archive_error& e) {
    message = e.what();
    return m.state() == before ? load_outcome::threw : load_outcome::different;
  }
  const bool same = m.state() == saved;
  m.load(before);
  return same ? load_outcome::identical : load_outcome::different;
}

// Every tensor of a module (recursively: parameters, then buffers), keyed.
inline std::vector<std::pair<std::string, at::Tensor>> module_tensors(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}
// The keys a failure may name in a module: its tensors' and its
// submodules' (a data.pkl edit can rename a child too).
inline std::vector<std::string> module_keys(const torch::nn::Module& m) {
  std::vector<std::string> keys;
  for (const auto& [k, t] : module_tensors(m)) keys.push_back(k);
  for (const auto& c : m.named_modules("", /*include_self=*/false)) keys.push_back(c.key());
  return keys;
}
// Deep copies of a module's tensors, as they are (for a bitwise compare) or
// in float64 (exact for float32 and for integers below 2^53).
inline std::vector<at::Tensor> module_copies(const torch::nn::Module& m, bool float64) {
  std::vector<at::Tensor> out;
  for (const auto& [k, t] : module_tensors(m)) out.push_back(float64 ? t.detach().to(at::kDouble, false, true) : t.detach().clone());
  return out;
}
// Whether two tensors hold the same bytes (NaN payloads and signed zeros included).
inline bool bitwise_equal(const at::Tensor& x, const at::Tensor& y) {
  if (x.scalar_type() != y.scalar_type() || x.sizes() != y.sizes()) return false;
  const at::Tensor a = x.detach().contiguous(), b = y.detach().contiguous();
  return a.nbytes() == b.nbytes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}
inline bool module_holds(const torch::nn::Module& m, const std::vector<at::Tensor>& copies, bool float64) {
  const auto now = module_tensors(m);
  if (now.size() != copies.size()) return false;
  for (std::size_t i = 0; i < now.size(); ++i) {
    if (float64 ? !at::equal(now[i].second.detach().to(at::kDouble), copies[i]) : !bitwise_equal(now[i].second, copies[i]))
      return false;
  }
  return true;
}
inline void module_restore(torch::nn::Module& m, const std::vector<at::Tensor>& copies) {
  torch::NoGradGuard no_grad;
  const auto now = module_tensors(m);
  for (std::size_t i = 0; i < now.size(); ++i) now[i].second.copy_(copies[i]);
}

// Loads `bytes` into `m` through load_verified (the file written to `path`).
// `before` (float64) and `saved` (bitwise) are copies of m's tensors before
// and of the saved module's; m is put back to `before` on return.
inline load_outcome module_file_outcome(const std::vector<std::uint8_t>& bytes, const std::filesystem::path& path,
                                        torch::nn::Module& m, const std::vector<at::Tensor>& before,
                                        const std::vector<at::Tensor>& saved, std::string& message) {
  write_bytes(path, bytes);
  try {
    load_verified(path, m);
  } catch (const archive_error& e) {
    message = e.what();
    return module_holds(m, before, true) ? load_outcome::threw : load_outcome::different;
  }
  const bool same = module_holds(m, saved, false);
  module_restore(m, before);
  return same ? load_outcome::identical : load_outcome::different;
}
// The same through torch::load alone, for comparison: any exception counts
// as a refusal (what LibTorch's loader leaves in the module is not checked).
inline load_outcome module_unverified_outcome(const std::vector<std::uint8_t>& bytes, torch::nn::Module& m,
                                              const std::vector<at::Tensor>& saved) {
  const auto keep = module_copies(m, false);
  load_outcome r;
  try {
    torch::serialize::InputArchive ar;
    ar.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    m.load(ar);
    r = module_holds(m, saved, false) ? load_outcome::identical : load_outcome::different;
  } catch (const std::exception&) {
    r = load_outcome::threw;
  }
  // Module::load may have replaced tensors by others of other shapes: put the
  // module's own back by setting each to a fresh copy of `keep`
  torch::NoGradGuard no_grad;
  const auto now = module_tensors(m);
  for (std::size_t i = 0; i < now.size(); ++i) now[i].second.set_(keep[i].clone());
  return r;
}

}  // namespace simic::test
