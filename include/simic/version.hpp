// simic's version, as a number a program can test at compile time. It is
// meson.build's project version; the packaging test checks that they agree.
#pragma once

#define SIMIC_VERSION_MAJOR 0
#define SIMIC_VERSION_MINOR 1
#define SIMIC_VERSION_PATCH 0
// MAJOR * 10000 + MINOR * 100 + PATCH: #if SIMIC_VERSION >= 200 ...
#define SIMIC_VERSION (SIMIC_VERSION_MAJOR * 10000 + SIMIC_VERSION_MINOR * 100 + SIMIC_VERSION_PATCH)

namespace simic {
inline namespace v0 {
inline constexpr int version_major = SIMIC_VERSION_MAJOR;
inline constexpr int version_minor = SIMIC_VERSION_MINOR;
inline constexpr int version_patch = SIMIC_VERSION_PATCH;
}  // namespace v0
}  // namespace simic
