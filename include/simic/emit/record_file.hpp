// An append-only file written in whole records, shared by the file sinks
// (JSONL lines, TensorBoard records).
//
// Each record goes to the file through an unbuffered descriptor in one write
// loop, so a process killed with SIGKILL leaves every complete record in the
// file and at most the last one partial. A write that fails part way is cut
// back off the file, so a later record never follows a torn one. POSIX only.
#pragma once

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace simic {
inline namespace v0 {
namespace detail {

class record_file {
 public:
  // Opens `path` with open(2)'s `flags` (O_WRONLY | O_CLOEXEC are added),
  // creating its parent directories. `who` prefixes every error, e.g.
  // "simic::jsonl_sink"; errors are std::system_error naming the path.
  record_file(std::filesystem::path path, int flags, std::string who) : path_(std::move(path)), who_(std::move(who)) {
    if (path_.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path_.parent_path(), ec);
      if (ec) throw std::system_error(ec, who_ + ": cannot create directory " + path_.parent_path().string());
    }
    append_mode_ = (flags & O_APPEND) != 0;
    fd_ = ::open(path_.c_str(), flags | O_WRONLY | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), who_ + ": cannot open " + path_.string());
    struct stat st {};
    regular_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
    if (regular_) size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~record_file() {
    if (fd_ >= 0) ::close(fd_);
  }
  record_file(const record_file&) = delete;
  record_file& operator=(const record_file&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  // A regular file (not a device or a pipe, which have no size to keep).
  bool regular() const noexcept { return regular_; }
  // Bytes of complete records in the file.
  std::uint64_t size() const noexcept { return size_; }

  // Empties the file and writes from its start.
  void truncate() {
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0)
      throw std::system_error(errno, std::generic_category(), who_ + ": truncate " + path_.string());
    size_ = 0;
  }

  // Writes one whole record, or throws std::system_error with nothing of it
  // left in a regular file.
  void append(std::string_view record) {
    std::size_t done = 0;
    while (done < record.size()) {
      const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        if (done > 0 && regular_ && ::ftruncate(fd_, static_cast<off_t>(size_)) == 0 && !append_mode_)
          ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET);
        throw std::system_error(err, std::generic_category(), who_ + ": write " + path_.string());
      }
      done += static_cast<std::size_t>(n);
    }
    size_ += record.size();
  }

  void sync() {
    if (::fsync(fd_) != 0) throw std::system_error(errno, std::generic_category(), who_ + ": fsync " + path_.string());
  }

 private:
  std::filesystem::path path_;
  std::string who_;
  int fd_ = -1;
  bool regular_ = false;
  bool append_mode_ = false;
  std::uint64_t size_ = 0;
};

}  // namespace detail
}  // namespace v0
}  // namespace simic
