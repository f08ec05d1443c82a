// The trainer's text: the fortune files of the Debian package `fortunes`
// (/usr/share/games/fortunes), read in sorted order and split 90/10 by bytes
// into training and validation text. No LibTorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace char_lm {

struct corpus {
  std::vector<std::string> files;  // the files read, in order (names within the directory)
  std::string train;               // the first 90% of the bytes
  std::string valid;               // the rest
  std::uint64_t total() const noexcept { return train.size() + valid.size(); }
};

// Bytes of `total` that go to training: floor(0.9 * total).
constexpr std::uint64_t train_bytes(std::uint64_t total) noexcept { return total * 9 / 10; }

// Reads the plain files of `dir` (regular files, not symbolic links; not the
// strfile indexes *.dat), sorted by name, concatenated and split.
// Throws std::invalid_argument naming the Debian package when the directory is
// missing or holds no fortune file.
corpus load_fortunes(const std::string& dir);

}  // namespace char_lm
