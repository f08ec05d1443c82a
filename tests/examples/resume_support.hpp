// What the example trainers' recovery and resume tests share: scratch
// directories, a run's events file as comparable lines (without what
// measures the process rather than the training: simic::process_measured_fields),
// and damaged copies of a file.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/event.hpp"

namespace resume_support {

namespace fs = std::filesystem;

// A fresh directory of its own under the temporary directory.
inline fs::path scratch(const std::string& test, const std::string& name) {
  const fs::path d = fs::temp_directory_path() / (test + "_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

inline std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// The events of a JSONL file, each without simic::process_measured_fields,
// the hub_stats line (the process's own counts) left out.
inline std::vector<std::string> timeless_events(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.at("event") == "hub_stats") continue;
    for (const std::string_view f : simic::process_measured_fields) j.erase(std::string(f));
    out.push_back(j.dump());
  }
  return out;
}

// The events of `lines` from index `first` on.
inline std::vector<std::string> from(const std::vector<std::string>& lines, std::size_t first) {
  if (first > lines.size()) throw std::out_of_range("resume_support::from: past the end");
  return {lines.begin() + static_cast<std::ptrdiff_t>(first), lines.end()};
}

// How many events of `lines` have "update" <= `last` (those of the steps or
// updates up to a checkpoint at `last`: an independent count of the events
// before it).
inline std::size_t events_through(const std::vector<std::string>& lines, std::uint64_t last) {
  std::size_t n = 0;
  for (const std::string& l : lines) n += nlohmann::json::parse(l).at("update").get<std::uint64_t>() <= last;
  return n;
}

// The events of `lines` named `name`, parsed.
inline std::vector<nlohmann::json> named(const std::vector<std::string>& lines, const std::string& name) {
  std::vector<nlohmann::json> out;
  for (const std::string& l : lines) {
    nlohmann::json j = nlohmann::json::parse(l);
    if (j.at("event") == name) out.push_back(std::move(j));
  }
  return out;
}

// A copy of `src` at `dst` with the byte at `offset` flipped.
inline void flip_byte(const fs::path& src, const fs::path& dst, std::size_t offset) {
  std::string b = read_bytes(src);
  if (offset >= b.size()) throw std::out_of_range("resume_support::flip_byte: offset past the end");
  b[offset] = static_cast<char>(~static_cast<unsigned char>(b[offset]));
  write_bytes(dst, b);
}

}  // namespace resume_support
