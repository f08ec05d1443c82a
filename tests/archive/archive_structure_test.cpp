// Structure-aware corruptions (tests/support/archive_corruption.hpp): the zip
// and every CRC-32 stay valid while records or data.pkl lie. Each kind, a
// few dozen times with a fixed seed, on a saved monitor archive and on a
// saved module checkpoint, through the verified file paths (load_file,
// load_verified): refused by an archive_error naming the file and a record
// or key, the target unchanged; or loaded bit for bit as saved.
#include "support/torch_doctest.hpp"

#include <array>
#include <filesystem>
#include <random>
#include <sstream>

#include "simic/archive/module_archive.hpp"
#include "simic/presets/ppo.hpp"
#include "support/archive_corruption.hpp"
#include "support/temp_dir.hpp"

using namespace simic;
using sc = simic::test::structure_corruption;

namespace {

default_monitor seasoned() {
  default_monitor m;
  for (std::uint64_t u = 0; u < 40; ++u) {
    m.check(simic::test::history_signals(u));
    if (u % 8 == 7) m.tick();
  }
  return m;
}

std::vector<std::uint8_t> saved_monitor(const default_monitor& m) {
  torch::serialize::OutputArchive out;
  save(out, m);
  std::ostringstream os;
  out.save_to(os);
  const std::string s = os.str();
  return {s.begin(), s.end()};
}

}  // namespace

TEST_CASE("a saved archive read into records and written back is the same file byte for byte") {
  for (const auto& good : {saved_monitor(seasoned()), simic::test::saved_module(*simic::test::probe_net(1))}) {
    const auto z = simic::test::read_zip_records(good);
    CHECK(z.entries.size() > 8);
    CHECK(simic::test::write_zip_records(z) == good);
    // and a record changed is written with its CRC-32 and sizes again
    auto changed = z;
    changed.entries.at(0).set_data("abc");
    const auto listing = verify_zip(std::span<const std::uint8_t>(simic::test::write_zip_records(changed)));
    CHECK(listing.entries.at(0).size == 3);
    CHECK(listing.entries.at(0).crc32 == 0x352441c2u);  // CRC-32 of "abc" (the standard check value table)
  }
}

TEST_CASE("structure-aware corruptions keep the zip valid; only the duplicate-name kinds break its rules") {
  const simic::test::structure_target t(saved_monitor(seasoned()));
  std::mt19937_64 rng(5);
  for (int k = 0; k < sc::kinds; ++k) {
    const auto kind = static_cast<sc::kind_t>(k);
    for (int i = 0; i < 10; ++i) {
      const sc c = simic::test::random_structure_corruption(rng, t, kind);
      CAPTURE(c.describe(t.zip));
      const auto bytes = c.apply(t.zip);
      if (kind == sc::rename_onto || kind == sc::duplicate_entry)
        CHECK_THROWS_WITH_AS(verify_zip(std::span<const std::uint8_t>(bytes)), doctest::Contains("' appears twice"),
                             archive_error);
      else
        CHECK_NOTHROW(verify_zip(std::span<const std::uint8_t>(bytes)));
    }
  }
}

TEST_CASE("every structure-aware corruption kind is refused by file and name, or loads exactly what was saved") {
  simic::test::remove_at_exit cleanup{"archive_structure"};
  const auto dir = simic::test::fresh_dir("archive_structure", "files");
  std::filesystem::create_directories(dir);
  constexpr int per_kind = 24;

  // a monitor archive: its checksum covers every field's value
  const default_monitor a = seasoned();
  const auto saved_state = a.state();
  const simic::test::structure_target mt(saved_monitor(a));
  default_monitor m;
  const auto before = m.state();
  // a module checkpoint: no checksum; each tensor of another byte size
  const simic::test::probe_net saved_net(1);
  const simic::test::structure_target nt(simic::test::saved_module(*saved_net));
  simic::test::probe_net net(2);
  const auto net_before = simic::test::module_copies(*net, true), net_saved = simic::test::module_copies(*saved_net, false);
  const auto net_keys = simic::test::module_keys(*net);

  std::mt19937_64 rng(20240601);
  std::array<std::array<std::size_t, 2>, sc::kinds> threw{}, identical{};
  std::size_t unnamed = 0;
  for (int k = 0; k < sc::kinds; ++k) {
    const auto kind = static_cast<sc::kind_t>(k);
    for (int i = 0; i < per_kind; ++i) {
      for (int target = 0; target < 2; ++target) {
        const simic::test::structure_target& t = target == 0 ? mt : nt;
        const sc c = simic::test::random_structure_corruption(rng, t, kind);
        const auto path = dir / (target == 0 ? "monitor.pt" : "net.pt");
        std::string message;
        const auto r = target == 0
                           ? simic::test::verified_file_outcome(c.apply(t.zip), path, m, before, saved_state, message)
                           : simic::test::module_file_outcome(c.apply(t.zip), path, *net, net_before, net_saved, message);
        CAPTURE(c.describe(t.zip));
        CAPTURE(message);
        CHECK(r != simic::test::load_outcome::different);
        if (r == simic::test::load_outcome::threw) {
          ++threw[k][target];
          const bool named = simic::test::names_file_and_one_of(message, path.string(),
                                                                simic::test::nameable(t, target == 0 ? std::vector<std::string>{} : net_keys, c.text));
          CHECK(named);
          unnamed += !named;
        } else {
          ++identical[k][target];
        }
      }
    }
  }
  std::ostringstream os;
  for (int k = 0; k < sc::kinds; ++k)
    os << sc::kind_names[k] << ": monitor " << threw[k][0] << " threw, " << identical[k][0] << " identical; module "
       << threw[k][1] << " threw, " << identical[k][1] << " identical\n";
  MESSAGE(os.str() << unnamed << " messages without the file and a record or key");
  // two entries of one name: refused by the zip check, whatever they hold
  for (const auto kind : {sc::rename_onto, sc::duplicate_entry})
    for (int target = 0; target < 2; ++target) CHECK(threw[kind][target] == per_kind);
  CHECK(m.state() == before);
  CHECK(simic::test::module_holds(*net, net_before, true));
}
