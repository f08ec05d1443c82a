// libFuzzer target for the zip verifier alone (no LibTorch); built and run by
// tests/fuzz/meson.build (scripts/sanitize.sh fuzz), replayed in every build.
// Any input either verifies or throws simic::archive_error; anything else
// (another exception, a sanitizer report, a crash) is a finding. An accepted
// input is cross-checked: every entry lies inside the file; then its
// data.pkl's storages are checked against their records
// (archive/torch_pickle.hpp), as open_verified_archive does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "simic/archive/torch_pickle.hpp"
#include "simic/archive/zip_verify.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const simic::zip_listing l = simic::verify_zip(std::span<const std::uint8_t>(data, size));
    for (const auto& e : l.entries)
      if (e.data_offset > size || e.compressed_size > size - e.data_offset) std::abort();
    simic::check_pickled_storages(std::span<const std::uint8_t>(data, size), l);
  } catch (const simic::archive_error&) {
  }
  return 0;
}
