// libFuzzer target for simic's verified archive loading (LibTorch):
// verify_zip, LibTorch's parse of the verified bytes, then version, checksum
// and fields into a default_monitor. Built and run by tests/fuzz/meson.build
// (scripts/sanitize.sh fuzz), replayed in every build with LibTorch.
// Only simic::archive_error is expected; a load that succeeds must leave a
// state that reloads to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "simic/presets/ppo.hpp"
#include "simic/archive/torch_archive.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  simic::default_monitor m;
  const auto before = m.state();
  try {
    torch::serialize::InputArchive ar = simic::open_verified_archive(std::span<const std::uint8_t>(data, size));
    simic::load(ar, m);
  } catch (const simic::archive_error&) {
    if (!(m.state() == before)) std::abort();  // a failed load changed the monitor
    return 0;
  }
  // loaded: the state passed its checksum; saving and reloading it is exact
  simic::default_monitor back;
  torch::serialize::OutputArchive out;
  simic::save(out, m);
  std::ostringstream os;
  out.save_to(os);
  const std::string s = os.str();
  torch::serialize::InputArchive in = simic::open_verified_archive(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  simic::load(in, back);
  if (!(back.state() == m.state())) std::abort();
  return 0;
}
