// The CUDA caching allocator's figures for simic::memory_sensor
// (sensors/memory.hpp): allocated, reserved and peak allocated bytes of one
// device, as torch.cuda.memory_stats() gives them ("allocated_bytes.all.current",
// "reserved_bytes.all.current", "allocated_bytes.all.peak"). Compiled out
// (always absent) without SIMIC_CUDA (reduce/cuda/config.hpp).
//
//   simic::ppo_session<> tel(o, *model, sinks,
//                            simic::memory_sensor_options{.device_reader = simic::cuda::caching_allocator_memory});
#pragma once

#include <cstdint>
#include <optional>

#include "simic/sensors/memory.hpp"
#include "simic/reduce/cuda/config.hpp"

#if SIMIC_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace simic {
inline namespace v0 {
namespace cuda {

inline std::optional<device_memory> caching_allocator_memory(std::int64_t device_index) {
#if SIMIC_CUDA
  // Index 0 is StatType::AGGREGATE (all pools) in every LibTorch (1.13:
  // c10::cuda::CUDACachingAllocator::StatType; 2.x: c10::CachingAllocator::StatType).
  constexpr std::size_t all_pools = 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device_index));
  device_memory d;
  d.device = device_index;
  d.allocated = static_cast<std::uint64_t>(stats.allocated_bytes[all_pools].current);
  d.reserved = static_cast<std::uint64_t>(stats.reserved_bytes[all_pools].current);
  d.peak_allocated = static_cast<std::uint64_t>(stats.allocated_bytes[all_pools].peak);
  return d;
#else
  (void)device_index;
  return std::nullopt;
#endif
}

}  // namespace cuda
}  // namespace v0
}  // namespace simic
