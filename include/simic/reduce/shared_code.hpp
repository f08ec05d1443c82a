// Code written once for two compilers: expanded here as host C++ (so the CPU
// tests and the CPU back ends run it) and kept, as text, for NVRTC, which
// compiles the same tokens into the fused CUDA kernels
// (reduce/cuda/kernel_source.hpp). SIMIC_SHARED_CODE(name, code) expands `code` and
// stores `#code` in shared_code::name next to it; the device prelude gives
// SIMIC_SHARED_FN, SIMIC_SHARED_CONSTEXPR, the integer type names and the
// helpers below their device meaning. Shared code uses only what both sides
// have: plain structs and functions, the helpers below, <math.h>.
//
// No LibTorch, no CUDA: layer core.
#pragma once

#include <math.h>  // sqrt, fabs ... in the global namespace, as on the device

#include <cstdint>
#include <cstring>

// Expands the code for the host and keeps its text for NVRTC.
#define SIMIC_SHARED_CODE(name, ...) \
  __VA_ARGS__                        \
  namespace shared_code {            \
  inline constexpr const char name[] = #__VA_ARGS__; \
  }

#define SIMIC_SHARED_FN inline
#define SIMIC_SHARED_CONSTEXPR constexpr inline

namespace simic {
inline namespace v0 {
namespace detail {

// The device prelude's typedefs, with their host spelling.
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i64 = std::int64_t;

// Host meaning of the device's __int_as_float.
inline float bits_to_f32(u32 b) noexcept {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// max / min that ignore a NaN operand (IEEE maxNum for quiet and signaling
// NaN alike): the device's max.f32 / min.f32 (fmaxf ...), and on the host
// explicit compares, since glibc's fmaxf returns NaN for a signaling NaN.
template <class T>
inline T max_ignoring_nan(T a, T x) noexcept {
  if (x != x) return a;
  if (a != a) return x;
  return x > a ? x : a;
}
template <class T>
inline T min_ignoring_nan(T a, T x) noexcept {
  if (x != x) return a;
  if (a != a) return x;
  return x < a ? x : a;
}
inline float max_f32(float a, float x) noexcept { return max_ignoring_nan(a, x); }
inline float min_f32(float a, float x) noexcept { return min_ignoring_nan(a, x); }
inline double max_f64(double a, double x) noexcept { return max_ignoring_nan(a, x); }
inline double min_f64(double a, double x) noexcept { return min_ignoring_nan(a, x); }

}  // namespace detail
}  // namespace v0
}  // namespace simic
