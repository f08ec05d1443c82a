// Corruptions of a saved archive file and the one rule they are held to:
// loading a corrupted file either throws simic::archive_error and leaves the
// monitor as it was, or loads exactly the saved state. Shared by
// tests/archive/torch_archive_test.cpp (a quick matrix) and bench/archive_corruption
// (the full random run).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <caffe2/serialize/inline_container.h>

#include "simic/core/signals.hpp"
#include "simic/archive/torch_archive.hpp"

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

}  // namespace simic::test
