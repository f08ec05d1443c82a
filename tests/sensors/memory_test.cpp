// The memory sensor (sensors/memory.hpp): the process's resident set against
// /proc/self/status read independently, the device reader, bad options, and
// its event as JSON and TensorBoard write it.
#include "support/torch_doctest.hpp"

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/written_event.hpp"
#include "simic/sensors/memory.hpp"

using namespace simic;

namespace {
// VmRSS of /proc/self/status, in bytes (the kernel's other view of the same figure).
std::optional<std::uint64_t> status_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream f(line.substr(6));
      std::uint64_t kb = 0;
      f >> kb;
      return kb * 1024;
    }
  return std::nullopt;
}
}  // namespace

TEST_CASE("memory sensor: the resident set agrees with /proc/self/status within a page run") {
  const auto want = status_rss_bytes();
  const memory_stats m = memory_sensor{}.measure();
  REQUIRE(want.has_value());
  REQUIRE(m.rss_bytes.has_value());
  CHECK(*m.rss_bytes > 0);
  // Both read the same counter a moment apart: within 16 MB of each other.
  const double diff = static_cast<double>(*m.rss_bytes) - static_cast<double>(*want);
  CHECK(std::abs(diff) < 16.0 * 1024 * 1024);
  CHECK_FALSE(m.device.has_value());  // the CPU has no allocator reader
}

TEST_CASE("memory sensor: a device's figures come from the reader, with the device's index; none without one") {
  std::vector<std::int64_t> asked;
  const memory_sensor with({.device_reader = [&](std::int64_t i) -> std::optional<device_memory> {
    asked.push_back(i);
    return device_memory{.device = i, .allocated = 10, .reserved = 30, .peak_allocated = 20};
  }});
  const memory_stats m = with.measure(at::Device(at::kCUDA, 1));
  REQUIRE(m.device.has_value());
  CHECK(m.device->device == 1);
  CHECK(m.device->reserved == 30);
  CHECK(asked == std::vector<std::int64_t>{1});
  CHECK_FALSE(with.measure(at::kCPU).device.has_value());  // the reader is for devices only
  CHECK(asked.size() == 1);
  CHECK_FALSE(memory_sensor{}.measure(at::Device(at::kCUDA, 0)).device.has_value());
}

TEST_CASE("memory sensor options: every below 1 is refused, naming it") {
  CHECK_THROWS_WITH_AS(memory_sensor({.every = 0}), doctest::Contains("every"), std::invalid_argument);
  CHECK(memory_sensor({.every = 1}).options().every == 1);
}

TEST_CASE("the memory event: rss_bytes, and the device's figures only when known; TensorBoard's tags") {
  auto j = simic::test::json_of(event(3, 1, memory_event{.memory = {.rss_bytes = 123456789}}));
  CHECK(j["event"] == "memory");
  CHECK(j["rss_bytes"] == 123456789);
  for (const char* absent : {"device_index", "allocated_bytes", "reserved_bytes", "peak_allocated_bytes"})
    CHECK_FALSE(j.contains(absent));
  const device_memory d{.device = 1, .allocated = 10, .reserved = 30, .peak_allocated = 20};
  j = simic::test::json_of(event(3, 1, memory_event{.memory = {.device = d}}).with_context({.device = "cuda:1"}));
  CHECK_FALSE(j.contains("rss_bytes"));
  CHECK(j["device"] == "cuda:1");  // the context's device string is kept
  CHECK(j["device_index"] == 1);
  CHECK(j["allocated_bytes"] == 10);
  CHECK(j["reserved_bytes"] == 30);
  CHECK(j["peak_allocated_bytes"] == 20);

  memory_event m;
  CHECK(simic::test::scalars_of(event(3, 1, m)).empty());
  m.memory.rss_bytes = 1u << 20;
  m.memory.device = device_memory{.device = 0, .allocated = 10, .reserved = 20, .peak_allocated = 30};
  CHECK(simic::test::scalars_of(event(3, 1, m)) ==
        std::vector<tensorboard_scalar>{{"memory/rss_bytes", 1 << 20},
                                        {"memory/device_allocated_bytes", 10},
                                        {"memory/device_reserved_bytes", 20},
                                        {"memory/device_peak_allocated_bytes", 30}});
}
