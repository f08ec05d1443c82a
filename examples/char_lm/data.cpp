#include "data.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

namespace char_lm {

corpus load_fortunes(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string install = "; install the Debian package 'fortunes' (apt-get install fortunes) or name "
                              "another directory with --data";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument("--data: no fortune files: '" + dir + "' is not a directory" + install);
  std::vector<fs::path> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    // *.u8 are symbolic links to the plain files; *.dat are strfile's indexes.
    if (it->is_symlink(ec) || !it->is_regular_file(ec) || p.extension() == ".dat") continue;
    paths.push_back(p);
  }
  if (ec) throw std::invalid_argument("--data: cannot list '" + dir + "': " + ec.message() + install);
  if (paths.empty()) throw std::invalid_argument("--data: no fortune files in '" + dir + "'" + install);
  std::sort(paths.begin(), paths.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  corpus c;
  std::string all;
  for (const fs::path& p : paths) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::invalid_argument("--data: cannot read '" + p.string() + "'");
    all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    c.files.push_back(p.filename().string());
  }
  const std::uint64_t n = train_bytes(all.size());
  c.valid = all.substr(n);
  all.resize(n);
  c.train = std::move(all);
  return c;
}

}  // namespace char_lm
