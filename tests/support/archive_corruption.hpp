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
#include <string>
#include <vector>

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

}  // namespace simic::test
