// TensorBoard sink: the scalars of simic's events as a TensorBoard event file
// (`events.out.tfevents.*`), which `tensorboard --logdir DIR` shows.
//
// No TensorFlow or protobuf library: a scalar event is three protobuf fields
// and a summary of (tag, float) values, encoded here by hand, and each is
// framed as a TFRecord (length, masked CRC-32C of the length, data, masked
// CRC-32C of the data). One simic event becomes at most one record holding
// all its scalars, written whole (emit/record_file.hpp), so a killed process
// leaves a file TensorBoard reads up to its last complete record.
// Which events give which tags: tensorboard_scalars() below; docs/events.md
// has the table.
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
#include <variant>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "simic/archive/crc.hpp"
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

// What the mapping remembers between events: anomaly counts so far, by kind.
struct tensorboard_tally {
  std::map<std::string, std::uint64_t, std::less<>> anomalies_by_kind{};
  std::uint64_t anomalies = 0;
};

namespace detail {

struct tensorboard_mapper {
  tensorboard_tally& tally;
  std::vector<tensorboard_scalar>& out;

  void put(std::string tag, double v) { out.push_back({std::move(tag), v}); }
  void put(std::string tag, const std::optional<double>& v) {
    if (v) put(std::move(tag), *v);
  }
  static double level_number(level l) { return static_cast<double>(static_cast<unsigned>(l)); }

  void operator()(const update_metrics& p) {
    put("update/loss", p.loss);
    put("update/policy_loss", p.policy_loss);
    put("update/value_loss", p.value_loss);
    put("update/entropy", p.entropy);
    put("update/approx_kl", p.approx_kl);
    put("update/clip_fraction", p.clip_fraction);
    put("update/ratio_max", p.ratio_max);
    put("update/ratio_min", p.ratio_min);
    put("update/explained_variance", p.explained_variance);
    put("update/learning_rate", p.learning_rate);
    for (const auto& m : p.extra) put("update/" + m.name, m.value);
  }
  void operator()(const gradient_health_event& p) {
    const gradient_signal& g = p.gradients;
    put("gradients/total_norm", g.total_norm);
    put("gradients/health", g.health);
    put("gradients/min_param_norm", g.min_param_norm);
    put("gradients/max_param_norm", g.max_param_norm);
    put("gradients/vanishing", static_cast<double>(g.vanishing));
    put("gradients/exploding", static_cast<double>(g.exploding));
    put("gradients/nan_count", static_cast<double>(g.nan_count));
    put("gradients/inf_count", static_cast<double>(g.inf_count));
    put("gradients/host_module_ratio", p.host_module_ratio);
  }
  void operator()(const lstm_health_event& p) {
    put("lstm/h_norm", p.lstm.h_norm);
    put("lstm/c_norm", p.lstm.c_norm);
    put("lstm/h_max_abs", p.lstm.h_max_abs);
    put("lstm/c_max_abs", p.lstm.c_max_abs);
    put("lstm/healthy", p.healthy ? 1.0 : 0.0);
  }
  // Counts so far, so that each kind's curve is a staircase of its anomalies.
  void operator()(const anomaly_event& p) {
    const std::string_view kind = to_string(p.kind);
    auto it = tally.anomalies_by_kind.find(kind);
    if (it == tally.anomalies_by_kind.end()) it = tally.anomalies_by_kind.emplace(std::string(kind), 0).first;
    ++it->second;
    ++tally.anomalies;
    put("anomalies/" + it->first, static_cast<double>(it->second));
    put("anomalies/total", static_cast<double>(tally.anomalies));
    put("telemetry/level", level_number(p.level_after));
  }
  void operator()(const anomaly_clear_event&) {}
  void operator()(const escalation_start_event& p) { put("telemetry/level", level_number(p.to)); }
  void operator()(const escalation_end_event& p) { put("telemetry/level", level_number(p.to)); }
  void operator()(const layer_gradients_event& p) {
    for (const auto& l : p.report.layers) {
      put("layers/" + l.name + "/norm", l.norm);
      put("layers/" + l.name + "/health", l.health);
    }
  }
  void operator()(const nan_inf_scan_event& p) {
    put("nan_inf_scan/offenders", static_cast<double>(p.report.offenders.size()));
    put("nan_inf_scan/max_abs_weight", p.report.max_abs_weight);
    put("nan_inf_scan/max_abs_grad", p.report.max_abs_grad);
  }
  void operator()(const ratio_diagnostic_event& p) {
    put("ratio_diagnostic/outliers", static_cast<double>(p.report.outliers.size()));
    put("ratio_diagnostic/max_abs_logprob_diff", p.report.max_abs_logprob_diff);
  }
  void operator()(const response_event& p) {
    put("response/total_skips", static_cast<double>(p.total_skips));
    put("response/consecutive_skips", static_cast<double>(p.consecutive_skips));
    if (p.act == action::stop) put("response/stop", 1.0);
  }
  void operator()(const performance_degradation_event& p) {
    put("performance/current", p.current);
    put("performance/rolling_mean", p.rolling_mean);
    put("performance/drop", p.drop);
    put("performance/threshold", p.threshold);
  }
  void operator()(const memory_event& p) {
    if (p.memory.rss_bytes) put("memory/rss_bytes", static_cast<double>(*p.memory.rss_bytes));
    if (const auto& d = p.memory.device) {
      put("memory/device_allocated_bytes", static_cast<double>(d->allocated));
      put("memory/device_reserved_bytes", static_cast<double>(d->reserved));
      put("memory/device_peak_allocated_bytes", static_cast<double>(d->peak_allocated));
    }
  }
  void operator()(const epoch_summary& p) {
    put("epoch/performance", p.performance);
    put("epoch/updates", static_cast<double>(p.updates));
    put("epoch/anomalies", static_cast<double>(p.anomalies));
    put("telemetry/level", level_number(p.level_after));
    for (const auto& m : p.metrics) put("epoch/" + m.name, m.value);
  }
  void operator()(const profiler_trace_event&) {}
  void operator()(const phase_timings_event& p) {
    for (const auto& ph : p.phases) {
      put("phases/" + ph.phase + "/total_s", ph.total_s);
      put("phases/" + ph.phase + "/mean_s", ph.mean_s());
    }
  }
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
  std::visit(detail::tensorboard_mapper{tally, out}, e.payload());
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
