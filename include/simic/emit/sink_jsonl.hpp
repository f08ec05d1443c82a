// JSONL file sink, the default: one event per line (docs/events.md).
//
// Each line goes to the file in one write loop on an unbuffered descriptor
// (emit/record_file.hpp), so a process killed with SIGKILL leaves every
// complete line in the file and at most the last line partial, and a write
// that fails part way is cut back off the file.
// An existing file is truncated at the first line written, not at opening:
// a run that fails before it emits anything leaves the old file as it was.
// POSIX only (open/write/ftruncate/fsync).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>

#include "simic/emit/json.hpp"
#include "simic/emit/record_file.hpp"
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
  explicit jsonl_sink(std::filesystem::path path, jsonl_options opts = {})
      : opts_(opts), file_(checked(std::move(path)), O_CREAT | (opts.append ? O_APPEND : 0), "simic::jsonl_sink") {
    // No O_TRUNC: opening checks that the file can be written; write_line() truncates.
    truncated_ = opts_.append || !file_.regular();  // a device or pipe has nothing to truncate
  }

  std::string name() const override { return "jsonl:" + file_.path().string(); }
  const std::filesystem::path& path() const noexcept { return file_.path(); }
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
    if (opts_.sync_on_flush) file_.sync();
  }
  void do_finish(const hub_counts& c) override {
    write_line(hub_stats_line(c, last_update_, last_epoch_, events_.load()));
    if (opts_.sync_on_flush) {
      try {
        file_.sync();
      } catch (const std::system_error&) {  // the lines are written; a failed fsync loses none of them now
      }
    }
  }

 private:
  static std::filesystem::path checked(std::filesystem::path p) {
    if (p.empty()) throw std::invalid_argument("simic::jsonl_sink: path is empty; valid: a file path");
    return p;
  }
  void write_line(std::string_view line) {
    if (!truncated_) {
      file_.truncate();
      truncated_ = true;
    }
    file_.append(line);
    ++lines_;
  }

  jsonl_options opts_;
  detail::record_file file_;
  bool truncated_ = false;  // the old content is gone (or kept: append)
  std::atomic<std::uint64_t> lines_{0};  // read by other threads
  std::atomic<std::uint64_t> events_{0};
  std::uint64_t last_update_ = 0;
  std::uint64_t last_epoch_ = 0;
};

}  // namespace v0
}  // namespace simic
