// JSONL file sink, the default: one event per line (docs/events.md).
//
// Each line goes to the file in one write(2) on an unbuffered descriptor, so
// a process killed with SIGKILL leaves every complete line in the file (the
// kernel has it) and at most the last line partial. A write that fails part
// way is cut back off the file, so a later line never follows a torn one.
// An existing file is truncated at the first line written, not at opening:
// a run that fails before it emits anything leaves the old file as it was.
// POSIX only (open/write/ftruncate/fsync).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simic/emit/json.hpp"
#include "simic/emit/sink.hpp"

namespace simic {
inline namespace v0 {

struct jsonl_options {
  bool append = false;         // keep an existing file's lines (else truncate it at the first line)
  bool sync_on_flush = false;  // fsync on flush(): survives a power cut, not only a kill
};

class jsonl_sink final : public sink {
 public:
  // Opens (creating parent directories) or throws std::system_error naming the path.
  explicit jsonl_sink(std::filesystem::path path, jsonl_options opts = {}) : path_(std::move(path)), opts_(opts) {
    if (path_.empty()) throw std::invalid_argument("simic::jsonl_sink: path is empty; valid: a file path");
    if (path_.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path_.parent_path(), ec);
      if (ec) throw std::system_error(ec, "simic::jsonl_sink: cannot create directory " + path_.parent_path().string());
    }
    // No O_TRUNC: opening checks that the file can be written; write_line() truncates.
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (opts_.append ? O_APPEND : 0);
    fd_ = ::open(path_.c_str(), flags, 0644);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "simic::jsonl_sink: cannot open " + path_.string());
    struct stat st {};
    const bool regular = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
    if (regular) size_ = static_cast<std::uint64_t>(st.st_size);
    truncated_ = opts_.append || !regular;  // a device or pipe has nothing to truncate
  }
  ~jsonl_sink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string name() const override { return "jsonl:" + path_.string(); }
  const std::filesystem::path& path() const noexcept { return path_; }
  // Lines this sink wrote (events and the final hub_stats line).
  std::uint64_t lines_written() const noexcept { return lines_.load(); }
  // Events this sink wrote (a write that threw is not one).
  std::uint64_t events_written() const noexcept { return events_.load(); }

 protected:
  void do_write(const event& e) override {
    write_line(to_json_line(e));
    ++events_;
    last_update_ = e.update();
    last_epoch_ = e.epoch();
  }
  void do_flush() override {
    if (opts_.sync_on_flush && ::fsync(fd_) != 0)
      throw std::system_error(errno, std::generic_category(), "simic::jsonl_sink: fsync " + path_.string());
  }
  void do_finish(const hub_counts& c) override {
    write_line(hub_stats_line(c, last_update_, last_epoch_, events_.load()));
    if (opts_.sync_on_flush) ::fsync(fd_);
  }

 private:
  void write_line(std::string_view line) {
    if (!truncated_) {
      if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0)
        throw std::system_error(errno, std::generic_category(), "simic::jsonl_sink: truncate " + path_.string());
      size_ = 0;
      truncated_ = true;
    }
    std::size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        // Cut the partial line off, so the next line starts on a line of its own.
        if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) == 0 && !opts_.append)
          ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET);
        throw std::system_error(err, std::generic_category(), "simic::jsonl_sink: write " + path_.string());
      }
      done += static_cast<std::size_t>(n);
    }
    size_ += line.size();
    ++lines_;
  }

  std::filesystem::path path_;
  jsonl_options opts_;
  int fd_ = -1;
  std::uint64_t size_ = 0;  // bytes of complete lines in the file
  bool truncated_ = false;  // the old content is gone (or kept: append)
  std::atomic<std::uint64_t> lines_{0};  // read by other threads
  std::atomic<std::uint64_t> events_{0};
  std::uint64_t last_update_ = 0;
  std::uint64_t last_epoch_ = 0;
};

}  // namespace v0
}  // namespace simic
