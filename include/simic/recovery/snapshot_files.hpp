// The last K training snapshots (recovery/training_state.hpp) as files in one
// directory, "<prefix>-<update, 12 digits or more>.pt", so that a run killed
// or crashed can go back to its last good state after a restart.
//
// A write never damages what is there: the snapshot goes to "<name>.tmp",
// is flushed to the disk (fsync) and its size checked, and only then renamed
// over <name>; a full disk or any other I/O failure removes the tmp file,
// keeps every previous file, and is reported by the return value, failures()
// and last_error(), never by an exception (training goes on without this
// snapshot). Reading back verifies each file (zip CRCs and the snapshot's own
// description) and falls back to older files past damaged ones.
//
// Files are ordered by the update number in their names ("oldest" = lowest).
// Not thread-safe: one object per directory, used by one thread.
#pragma once

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simic/recovery/training_state.hpp"

namespace simic {
inline namespace v0 {

struct snapshot_file_options {
  std::filesystem::path directory;  // created if missing
  std::uint32_t keep = 3;           // files kept after each write, >= 1
  std::string prefix = "snapshot";  // file names: "<prefix>-<update>.pt"
};

class snapshot_files {
 public:
  struct loaded {
    training_snapshot snapshot;
    std::filesystem::path file;
    // newer files that did not read back valid, newest first, with the reason
    std::vector<std::pair<std::filesystem::path, std::string>> skipped;
  };

  // Validates the options (std::invalid_argument naming the option and what
  // is valid), creates the directory if missing, and removes tmp files that a
  // crash during a write left behind ("<prefix>-<update>.pt.tmp").
  explicit snapshot_files(snapshot_file_options options) : o_(std::move(options)) {
    if (o_.keep < 1)
      throw std::invalid_argument("simic::snapshot_files: keep = 0; it must be >= 1 (the number of files kept)");
    if (o_.directory.empty())
      throw std::invalid_argument("simic::snapshot_files: directory is empty; it must name the folder for the snapshots");
    if (o_.prefix.empty() || o_.prefix.find('/') != std::string::npos || o_.prefix.find('\0') != std::string::npos)
      throw std::invalid_argument("simic::snapshot_files: prefix '" + o_.prefix +
                                  "' must be a non-empty file name part without '/'");
    std::error_code ec;
    std::filesystem::create_directories(o_.directory, ec);
    if (!std::filesystem::is_directory(o_.directory))
      throw std::invalid_argument("simic::snapshot_files: directory '" + o_.directory.string() +
                                  "' is not a folder and cannot be created" + (ec ? ": " + ec.message() : std::string()));
    for (const auto& e : std::filesystem::directory_iterator(o_.directory, ec)) {
      const std::string name = e.path().filename().string();
      std::error_code ignored;
      if (name.size() > 4 && name.ends_with(".tmp") && update_of(name.substr(0, name.size() - 4)) &&
          e.is_regular_file(ignored))
        std::filesystem::remove(e.path(), ignored);
    }
  }

  // "<prefix>-<update, zero-padded to 12 digits>.pt" in the directory.
  std::filesystem::path path_of(std::uint64_t update) const {
    std::string digits = std::to_string(update);
    if (digits.size() < 12) digits.insert(0, 12 - digits.size(), '0');
    return o_.directory / (o_.prefix + "-" + digits + ".pt");
  }

  // Writes the snapshot atomically (tmp, fsync, size check, rename; a file
  // of the same update is replaced), then deletes the oldest files beyond
  // `keep`, never the one just written. Returns false, with failures()
  // counting it and last_error() saying why, on any write failure; the tmp
  // file is removed and every previous file kept. A file that cannot be
  // deleted in the rotation is named in last_error() but does not fail the
  // write. Throws only std::invalid_argument for a snapshot without bytes.
  bool write(const training_snapshot& s) {
    if (s.bytes.empty())
      throw std::invalid_argument("simic::snapshot_files::write: the snapshot has no bytes (a default-constructed one?)");
    const std::filesystem::path target = path_of(s.update);
    std::filesystem::path tmp = target;
    tmp += ".tmp";
    if (std::string why = write_synced(tmp, s.bytes); !why.empty()) return fail("cannot write '" + tmp.string() + "': " + why);
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      ::unlink(tmp.c_str());
      return fail("cannot rename '" + tmp.string() + "' to '" + target.string() + "': " + why);
    }
    sync_directory();
    std::vector<std::filesystem::path> present = files();
    std::size_t count = present.size();
    for (const auto& p : present) {
      if (count <= o_.keep) break;
      if (p == target) continue;
      std::error_code ec;
      if (std::filesystem::remove(p, ec))
        --count;
      else
        last_error_ = "simic::snapshot_files: cannot delete the old snapshot '" + p.string() + "'" +
                      (ec ? ": " + ec.message() : std::string());
    }
    return true;
  }

  // The snapshot files present (regular files named by the pattern), oldest
  // (lowest update) first. Empty if the directory cannot be read.
  std::vector<std::filesystem::path> files() const {
    std::vector<std::pair<std::uint64_t, std::filesystem::path>> found;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(o_.directory, ec)) {
      std::error_code type_ec;
      if (!e.is_regular_file(type_ec)) continue;
      if (const auto u = update_of(e.path().filename().string())) found.emplace_back(*u, e.path());
    }
    std::sort(found.begin(), found.end());
    std::vector<std::filesystem::path> out;
    out.reserve(found.size());
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
  }

  // The newest file that reads back valid: a sound zip (every CRC), a
  // snapshot description that parses (read_snapshot_bytes), and the update
  // its name says. Each newer file that fails is named in `skipped` with
  // its error. nullopt when none is valid. Whether it fits a model is for
  // restore_training_state to say.
  std::optional<loaded> newest_valid() const {
    loaded out;
    const std::vector<std::filesystem::path> present = files();
    for (auto it = present.rbegin(); it != present.rend(); ++it) {
      try {
        training_snapshot s = read_snapshot_bytes(read_all(*it));
        const std::uint64_t named = *update_of(it->filename().string());
        if (s.update != named)
          throw archive_error("simic::snapshot_files: the file holds update " + std::to_string(s.update) +
                              "; its name says " + std::to_string(named));
        out.snapshot = std::move(s);
        out.file = *it;
        return out;
      } catch (const std::exception& e) {
        out.skipped.emplace_back(*it, e.what());
      }
    }
    return std::nullopt;
  }

  // Writes that returned false.
  std::uint64_t failures() const noexcept { return failures_; }
  // Why the last failure happened ("" if none yet); a later success does not clear it.
  const std::string& last_error() const noexcept { return last_error_; }
  const snapshot_file_options& options() const noexcept { return o_; }

 private:
  // The update number of a snapshot file name, or nullopt if the name is not
  // exactly one this object writes.
  std::optional<std::uint64_t> update_of(const std::string& name) const {
    const std::string head = o_.prefix + "-";
    if (name.size() < head.size() + 12 + 3 || name.compare(0, head.size(), head) != 0 || !name.ends_with(".pt"))
      return std::nullopt;
    const std::string_view digits(name.data() + head.size(), name.size() - head.size() - 3);
    std::uint64_t u = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), u);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    if (path_of(u).filename().string() != name) return std::nullopt;  // one spelling per update
    return u;
  }

  // "" when `bytes` are in `path`, flushed to the disk, with the right size.
  static std::string write_synced(const std::filesystem::path& path, const std::string& bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return std::strerror(errno);
    std::string why;
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        why = n < 0 ? std::string(std::strerror(errno)) : "write(2) wrote nothing";
        why += " after " + std::to_string(done) + " of " + std::to_string(bytes.size()) + " bytes";
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    if (why.empty() && ::fsync(fd) != 0) why = std::string("fsync: ") + std::strerror(errno);
    struct stat st {};
    if (why.empty() && ::fstat(fd, &st) != 0) why = std::string("fstat: ") + std::strerror(errno);
    if (why.empty() && static_cast<std::uint64_t>(st.st_size) != bytes.size())
      why = "the file has " + std::to_string(st.st_size) + " bytes after writing " + std::to_string(bytes.size());
    if (::close(fd) != 0 && why.empty()) why = std::string("close: ") + std::strerror(errno);
    if (!why.empty()) ::unlink(path.c_str());
    return why;
  }

  // The rename reaches the disk with the directory (best effort: not every
  // file system syncs a directory).
  void sync_directory() const {
    const int fd = ::open(o_.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
  }

  static std::string read_all(const std::filesystem::path& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw archive_error("simic::snapshot_files: cannot open '" + path.string() + "'");
    const std::streamoff size = f.tellg();
    if (size < 0) throw archive_error("simic::snapshot_files: cannot size '" + path.string() + "'");
    std::string bytes(static_cast<std::size_t>(size), '\0');
    f.seekg(0);
    if (!f.read(bytes.data(), size))
      throw archive_error("simic::snapshot_files: read " + std::to_string(f.gcount()) + " of " + std::to_string(size) +
                          " bytes of '" + path.string() + "'");
    return bytes;
  }

  bool fail(std::string why) {
    ++failures_;
    last_error_ = "simic::snapshot_files::write: " + std::move(why) + "; the previous snapshots are kept";
    return false;
  }

  snapshot_file_options o_;
  std::uint64_t failures_ = 0;
  std::string last_error_;
};

}  // namespace v0
}  // namespace simic
