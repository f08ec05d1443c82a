// Memory statistics (cat::memory): the process's resident set size, read
// from /proc/self/statm (Linux; absent elsewhere), and a device's allocator
// figures through a reader the caller supplies: simic/sensors/cuda_memory.hpp has the
// CUDA caching allocator's (allocated, reserved, peak bytes). A reader, not a
// dependency, so that this header needs no CUDA.
//
//   simic::memory_sensor mem({.device_reader = simic::cuda::caching_allocator_memory});
//   simic::memory_stats m = mem.measure(at::Device(at::kCUDA, 0));
//
// In a session (sensors/sensor.hpp) it measures at begin_update() in updates
// 1, 1 + every, ... at NORMAL and up, when there is a sink, for the device of
// the first watched parameter; its figures go to the memory event only.
#pragma once

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

// A device's allocator figures (simic/sensors/cuda_memory.hpp for CUDA).
struct device_memory {
  std::int64_t device = 0;           // device index
  std::uint64_t allocated = 0;       // bytes in live tensors
  std::uint64_t reserved = 0;        // bytes the caching allocator holds
  std::uint64_t peak_allocated = 0;  // largest `allocated` since the process began (or the last reset)
  friend bool operator==(const device_memory&, const device_memory&) = default;
};

// Memory at one moment. Absent: not known on this platform / device.
struct memory_stats {
  std::optional<std::uint64_t> rss_bytes{};  // resident set size of the process
  std::optional<device_memory> device{};
  // Bytes others hold for the run, by name (simic::recovery's snapshots: "snapshot_bytes").
  std::vector<std::pair<std::string, std::uint64_t>> held{};
  friend bool operator==(const memory_stats&, const memory_stats&) = default;
};

// The memory event (cat::memory).
struct memory_event {
  static constexpr std::string_view name = "memory";
  memory_stats memory{};
  void describe(field_writer& w) const {
    if (memory.rss_bytes) w.count("rss_bytes", *memory.rss_bytes, "memory");
    for (const auto& [key, bytes] : memory.held) w.count(key, bytes, "memory");
    if (const auto& d = memory.device) {
      w.integer("device_index", d->device);
      w.count("allocated_bytes", d->allocated);
      w.count("reserved_bytes", d->reserved);
      w.count("peak_allocated_bytes", d->peak_allocated);
      if (w.scalars()) {
        w.scalar("memory/device_allocated_bytes", static_cast<double>(d->allocated));
        w.scalar("memory/device_reserved_bytes", static_cast<double>(d->reserved));
        w.scalar("memory/device_peak_allocated_bytes", static_cast<double>(d->peak_allocated));
      }
    }
  }
};

// The process's resident set in bytes; absent where /proc/self/statm is not readable.
inline std::optional<std::uint64_t> process_rss_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return std::nullopt;
  unsigned long long size = 0, resident = 0;
  const int read = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (read != 2 || page <= 0) return std::nullopt;
  return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(page);
}

// Reads one device's allocator figures; absent when it has none to give.
using device_memory_reader = std::function<std::optional<device_memory>(std::int64_t device_index)>;

struct memory_sensor_options {
  device_memory_reader device_reader{};  // for non-CPU devices; none: device figures absent
  std::uint32_t every = 50;              // in a session: updates 1, 1 + every, ...
};

class memory_sensor {
 public:
  using options_type = memory_sensor_options;
  using category = cat::memory;
  static constexpr std::string_view name = "memory";

  explicit memory_sensor(memory_sensor_options o = {}) : opts_(std::move(o)) {
    detail::require(opts_.every >= 1, "simic::memory_sensor_options", "every", opts_.every, ">= 1");
  }

  // The process's RSS, and the device's allocator figures when `device` is
  // not the CPU and a reader is set.
  memory_stats measure(const at::Device& device = at::kCPU) const {
    memory_stats m;
    m.rss_bytes = process_rss_bytes();
    if (!device.is_cpu() && opts_.device_reader) m.device = opts_.device_reader(device.has_index() ? device.index() : 0);
    return m;
  }

  const memory_sensor_options& options() const noexcept { return opts_; }

  // Adds bytes held elsewhere to every measurement, as `name` (a reader that
  // is empty removes the name): what a recovery's snapshots take.
  void count_held(const std::string& name, std::function<std::uint64_t()> bytes) {
    std::erase_if(held_, [&](const auto& h) { return h.first == name; });
    if (bytes) held_.emplace_back(name, std::move(bytes));
  }

  // ---- in a session (sensors/sensor.hpp) ----------------------------------
  template <class M>
  void begin_update(const sensor_context<M>& ctx) {
    // Its figures only go to events: none are read without a sink.
    if (!due_every(ctx.update(), opts_.every) || !ctx.template collects<category>() || !ctx.emitting()) return;
    ++measurements_;
    memory_stats m = measure(ctx.weights().empty() ? at::Device(at::kCPU) : ctx.weights()[0].device());
    for (const auto& [name, bytes] : held_) m.held.emplace_back(name, bytes());
    ctx.emit(memory_event{.memory = std::move(m)});
  }
  std::uint64_t measurements() const noexcept { return measurements_; }

 private:
  memory_sensor_options opts_;
  std::vector<std::pair<std::string, std::function<std::uint64_t()>>> held_;
  std::uint64_t measurements_ = 0;
};

}  // namespace v0
}  // namespace simic
