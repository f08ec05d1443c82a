// Memory statistics (cat::memory): the process's resident set size, read
// from /proc/self/statm (Linux; absent elsewhere), and a device's allocator
// figures through a reader the caller supplies: simic/sensors/cuda_memory.hpp has the
// CUDA caching allocator's (allocated, reserved, peak bytes). A reader, not a
// dependency, so that this header needs no CUDA.
//
//   simic::memory_sensor mem({.device_reader = simic::cuda::caching_allocator_memory});
//   simic::memory_stats m = mem.measure(at::Device(at::kCUDA, 0));
#pragma once

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>

#include "simic/core/diagnostics.hpp"

namespace simic {
inline namespace v0 {

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
};

class memory_sensor {
 public:
  explicit memory_sensor(memory_sensor_options o = {}) : opts_(std::move(o)) {}

  // The process's RSS, and the device's allocator figures when `device` is
  // not the CPU and a reader is set.
  memory_stats measure(const at::Device& device = at::kCPU) const {
    memory_stats m;
    m.rss_bytes = process_rss_bytes();
    if (!device.is_cpu() && opts_.device_reader) m.device = opts_.device_reader(device.has_index() ? device.index() : 0);
    return m;
  }

  const memory_sensor_options& options() const noexcept { return opts_; }

 private:
  memory_sensor_options opts_;
};

}  // namespace v0
}  // namespace simic
