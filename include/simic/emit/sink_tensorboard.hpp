// TensorBoard sink: the scalars of simic's events as a TensorBoard event file
// (`events.out.tfevents.*`), which `tensorboard --logdir DIR` shows.
//
// No TensorFlow or protobuf library: a scalar event is three protobuf fields
// and a summary of (tag, float) values, encoded here by hand, and each is
// framed as a TFRecord (length, masked CRC-32C of the length, data, masked
// CRC-32C of the data). One simic event becomes at most one record holding
// all its scalars, written whole (emit/record_file.hpp), so a killed process
// leaves a file TensorBoard reads up to its last complete record.
// Which events give which tags: each payload's describe() (the number fields
// it gives a group, and its scalar() and tally() calls); docs/events.md has
// the table.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <span>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "simic/archive/crc.hpp"
#include "simic/emit/names.hpp"
#include "simic/emit/record_file.hpp"
#include "simic/emit/sink.hpp"

namespace simic {
inline namespace v0 {

// One TensorBoard scalar: its tag and its value (stored as float32).
struct tensorboard_scalar {
  std::string tag{};
  double value = 0.0;
  friend bool operator==(const tensorboard_scalar&, const tensorboard_scalar&) = default;
};

// What the scalars remember between events: tally() counts so far, by tag
// (anomalies by kind, and in all).
struct tensorboard_tally {
  std::map<std::string, std::uint64_t, std::less<>> counts{};
};

namespace detail {

// A payload's scalars (field_writer with scalars()): the number fields that
// name a group as "<group>/<key>", and what the payload writes by scalar()
// and tally(); text and structure are not scalars.
class tensorboard_writer final : public field_writer {
 public:
  tensorboard_writer(tensorboard_tally& tally, std::vector<tensorboard_scalar>& out) : tally_(tally), out_(out) {}

  void real(std::string_view key, double v, std::string_view group) override { put(key, v, group); }
  void count(std::string_view key, std::uint64_t v, std::string_view group) override {
    put(key, static_cast<double>(v), group);
  }
  void integer(std::string_view, std::int64_t) override {}
  void flag(std::string_view key, bool v, std::string_view group) override { put(key, v ? 1.0 : 0.0, group); }
  void text(std::string_view, std::string_view) override {}
  void integers(std::string_view, std::span<const std::int64_t>) override {}
  void texts(std::string_view, std::span<const std::string>) override {}
  void begin_array(std::string_view) override {}
  void begin_object(std::string_view) override {}
  void end() override {}
  bool scalars() const noexcept override { return true; }
  // Every tag is made valid UTF-8 (utf8_replaced, as the JSONL sink's keys
  // and text): TensorBoard's readers stop at a record with an invalid tag.
  void scalar(std::string_view tag, double v) override { out_.push_back({utf8_replaced(tag), v}); }
  void tally(std::string_view tag) override {
    const std::string valid = utf8_replaced(tag);
    auto it = tally_.counts.find(valid);
    if (it == tally_.counts.end()) it = tally_.counts.emplace(valid, 0).first;
    out_.push_back({it->first, static_cast<double>(++it->second)});
  }

 private:
  void put(std::string_view key, double v, std::string_view group) {
    if (group.empty()) return;
    std::string tag;
    tag.reserve(group.size() + 1 + key.size());
    tag.append(group).append(1, '/').append(key);
    out_.push_back({utf8_replaced(tag), v});
  }
  tensorboard_tally& tally_;
  std::vector<tensorboard_scalar>& out_;
};

// Protobuf wire format, the three field kinds a scalar event needs.
inline void put_varint(std::string& b, std::uint64_t v) {
  while (v >= 0x80) {
    b.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  b.push_back(static_cast<char>(v));
}
template <class T>
inline void put_little_endian(std::string& b, T v) {
  static_assert(std::endian::native == std::endian::little, "tfevents records are little-endian");
  char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  b.append(raw, sizeof(T));
}
// A double as float32, rounded to nearest as IEEE 754 converts: a finite
// value past float's range is +-inf (or +-FLT_MAX within half a unit of it),
// where a plain cast would be undefined behaviour.
inline float to_float32(double v) noexcept {
  constexpr double max = std::numeric_limits<float>::max();
  if (std::isnan(v) || (v <= max && v >= -max)) return static_cast<float>(v);
  constexpr double overflow = max + 0x1p103;  // FLT_MAX plus half its unit in the last place
  const float big = std::fabs(v) >= overflow ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::max();
  return v < 0 ? -big : big;
}
inline void put_bytes_field(std::string& b, unsigned field, std::string_view bytes) {
  put_varint(b, (field << 3) | 2);
  put_varint(b, bytes.size());
  b.append(bytes);
}

}  // namespace detail

// The scalars of one event (the table in docs/events.md); `tally` carries the
// anomaly counts from one event to the next.
inline std::vector<tensorboard_scalar> tensorboard_scalars(const event& e, tensorboard_tally& tally) {
  std::vector<tensorboard_scalar> out;
  detail::tensorboard_writer w(tally, out);
  e.describe(w);
  return out;
}

// The hub's final counts, as scalars (written by the sink's finish).
inline std::vector<tensorboard_scalar> tensorboard_scalars(const hub_counts& c) {
  return {{"hub/emitted", static_cast<double>(c.emitted)},
          {"hub/delivered", static_cast<double>(c.delivered)},
          {"hub/dropped", static_cast<double>(c.dropped)},
          {"hub/failed", static_cast<double>(c.failed)},
          {"hub/undelivered", static_cast<double>(c.undelivered)}};
}

// TensorBoard's Event message (tensorflow/core/util/event.proto): wall_time
// (1, double), step (2, int64), file_version (3, string) or summary (5) of
// values with tag (1, string) and simple_value (2, float).
inline std::string tensorboard_event_proto(double wall_time, std::int64_t step,
                                           const std::vector<tensorboard_scalar>& scalars) {
  std::string summary;
  for (const auto& s : scalars) {
    std::string value;
    detail::put_bytes_field(value, 1, s.tag);
    detail::put_varint(value, (2u << 3) | 5);
    detail::put_little_endian(value, detail::to_float32(s.value));
    detail::put_bytes_field(summary, 1, value);
  }
  std::string b;
  detail::put_varint(b, (1u << 3) | 1);
  detail::put_little_endian(b, wall_time);
  if (step != 0) {  // proto3 leaves a zero field out
    detail::put_varint(b, 2u << 3);
    detail::put_varint(b, static_cast<std::uint64_t>(step));
  }
  detail::put_bytes_field(b, 5, summary);
  return b;
}

// The first record of every event file: the format's version string.
inline std::string tensorboard_file_version_proto(double wall_time) {
  std::string b;
  detail::put_varint(b, (1u << 3) | 1);
  detail::put_little_endian(b, wall_time);
  detail::put_bytes_field(b, 3, "brain.Event:2");
  return b;
}

// TFRecord's masked CRC-32C: rotated and offset so that a CRC stored inside
// the data it covers does not give a trivial checksum.
inline std::uint32_t tfrecord_masked_crc(std::string_view bytes) noexcept {
  const std::uint32_t c =
      crc32c({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

// One TFRecord: uint64 length, masked CRC of the length, data, masked CRC of
// the data; integers little-endian.
inline std::string tfrecord(std::string_view data) {
  std::string len;
  detail::put_little_endian(len, static_cast<std::uint64_t>(data.size()));
  std::string r = len;
  detail::put_little_endian(r, tfrecord_masked_crc(len));
  r.append(data);
  detail::put_little_endian(r, tfrecord_masked_crc(data));
  return r;
}

struct tensorboard_options {
  std::string filename_suffix{};  // appended to the file name, e.g. ".rank0"
  bool sync_on_flush = false;     // fsync on flush(): survives a power cut, not only a kill
};

class tensorboard_sink final : public sink {
 public:
  // Creates a new event file in `log_dir` (made if missing), named as
  // TensorBoard's writers name theirs, and writes its version record; throws
  // std::invalid_argument for an empty directory and std::system_error
  // naming the file if it cannot be created or written.
  explicit tensorboard_sink(const std::filesystem::path& log_dir, tensorboard_options opts = {})
      : opts_(std::move(opts)),
        file_(file_name(checked(log_dir), opts_.filename_suffix), O_CREAT | O_EXCL, "simic::tensorboard_sink") {
    file_.append(tfrecord(tensorboard_file_version_proto(detail::unix_seconds(event::clock::now()))));
  }

  std::string name() const override { return "tensorboard:" + file_.path().string(); }
  // The event file.
  const std::filesystem::path& path() const noexcept { return file_.path(); }
  // Events that gave scalars and were written (a write that threw is not one).
  std::uint64_t events_written() const noexcept { return events_.load(); }
  std::uint64_t scalars_written() const noexcept { return scalars_.load(); }

 protected:
  void do_write(const event& e) override {
    // Only anomalies change the counts; they are counted on a copy, so that a
    // failed write leaves them as they were.
    const bool counts = e.is<anomaly_event>();
    tensorboard_tally after = counts ? tally_ : tensorboard_tally{};
    const std::vector<tensorboard_scalar> s = tensorboard_scalars(e, after);
    last_update_ = e.update();  // as the JSONL sink's: the hub's counts go at the last event's update
    if (s.empty()) return;
    write_record(detail::unix_seconds(e.time()), e.update(), s);
    if (counts) tally_ = std::move(after);
    ++events_;
  }
  void do_flush() override {
    if (opts_.sync_on_flush) file_.sync();
  }
  void do_finish(const hub_counts& c) override {
    write_record(detail::unix_seconds(event::clock::now()), last_update_, tensorboard_scalars(c));
  }

 private:
  static const std::filesystem::path& checked(const std::filesystem::path& dir) {
    if (dir.empty()) throw std::invalid_argument("simic::tensorboard_sink: log_dir is empty; valid: a directory path");
    return dir;
  }
  // events.out.tfevents.<seconds>.<host>.<pid>.<n>: the time and host as
  // TensorBoard's writers put them; pid and a per-process count keep two
  // sinks of one second apart.
  static std::filesystem::path file_name(const std::filesystem::path& dir, const std::string& suffix) {
    static std::atomic<unsigned> made{0};
    char host[256] = "localhost";
    if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(event::clock::now().time_since_epoch()).count();
    return dir / ("events.out.tfevents." + std::to_string(secs) + "." + host + "." + std::to_string(::getpid()) + "." +
                  std::to_string(made++) + suffix);
  }
  void write_record(double wall_time, std::uint64_t step, const std::vector<tensorboard_scalar>& s) {
    // int64 in the format; an update past it is clamped rather than wrapped negative.
    const auto signed_step = static_cast<std::int64_t>(std::min<std::uint64_t>(step, INT64_MAX));
    file_.append(tfrecord(tensorboard_event_proto(wall_time, signed_step, s)));
    scalars_ += s.size();
  }

  tensorboard_options opts_;
  detail::record_file file_;
  tensorboard_tally tally_{};
  std::uint64_t last_update_ = 0;
  std::atomic<std::uint64_t> events_{0};  // read by other threads
  std::atomic<std::uint64_t> scalars_{0};
};

}  // namespace v0
}  // namespace simic
