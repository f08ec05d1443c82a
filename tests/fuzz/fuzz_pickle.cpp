// libFuzzer target for the reader of LibTorch pickles' storage ids alone (no
// LibTorch): archive/torch_pickle.hpp. Built and run by tests/fuzz/meson.build
// (scripts/sanitize.sh fuzz), replayed in every build. Any input either
// gives its storages or throws simic::archive_error; anything else (another
// exception, a sanitizer report, a crash) is a finding. Each storage found
// points at a BINPERSID opcode of the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "simic/archive/torch_pickle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    for (const simic::pickled_storage& s : simic::pickled_storages(std::span<const std::uint8_t>(data, size)))
      if (s.at >= size || data[s.at] != 'Q') std::abort();
  } catch (const simic::archive_error&) {
  }
  return 0;
}
