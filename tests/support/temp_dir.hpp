// A per-process scratch folder for tests that write files, removed at exit
// (forked children leave with _exit and skip the removal).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include <unistd.h>

namespace simic::test {

// <tmp>/simic_<what>_<pid>
inline std::filesystem::path test_root(const std::string& what) {
  return std::filesystem::temp_directory_path() / ("simic_" + what + "_" + std::to_string(::getpid()));
}

struct remove_at_exit {
  std::string what;
  ~remove_at_exit() {
    std::error_code ec;
    std::filesystem::remove_all(test_root(what), ec);
  }
};

// An empty (not yet created) folder `name` under the test root.
inline std::filesystem::path fresh_dir(const std::string& what, const std::string& name) {
  const std::filesystem::path d = test_root(what) / name;
  std::filesystem::remove_all(d);
  return d;
}

// A file's bytes ("" if it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace simic::test
