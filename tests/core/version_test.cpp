// simic/version.hpp against meson.build's project version (SIMIC_PROJECT_VERSION,
// passed by tests/core/meson.build): one version, written in two places that
// must agree.
#include <doctest/doctest.h>

#include <string>

#include "simic/version.hpp"

TEST_CASE("the version macros are meson.build's project version") {
  const std::string project = SIMIC_PROJECT_VERSION;
  const std::string header = std::to_string(SIMIC_VERSION_MAJOR) + "." + std::to_string(SIMIC_VERSION_MINOR) + "." +
                             std::to_string(SIMIC_VERSION_PATCH);
  CHECK(header == project);
  CHECK(SIMIC_VERSION == SIMIC_VERSION_MAJOR * 10000 + SIMIC_VERSION_MINOR * 100 + SIMIC_VERSION_PATCH);
  CHECK(simic::version_minor == SIMIC_VERSION_MINOR);
}
