#include "support/torch_doctest.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "simic/presets/ppo.hpp"
#include "simic/presets/reference.hpp"
#include "simic/archive/torch_archive.hpp"
#include "support/archive_corruption.hpp"
#include "support/temp_dir.hpp"

using namespace simic;

namespace {
using test::history_signals;
template <class Monitor>
std::string saved(const Monitor& m) {
  torch::serialize::OutputArchive out;
  save(out, m);
  std::ostringstream os;
  out.save_to(os);
  return os.str();
}
template <class Monitor>
void restore(const std::string& bytes, Monitor& m) {
  std::istringstream is(bytes);
  torch::serialize::InputArchive in;
  in.load_from(is);
  load(in, m);
}
}  // namespace

namespace {
template <class Monitor>
void check_resumes(Monitor a, Monitor b) {
  for (std::uint64_t u = 0; u < 40; ++u) {
    a.check(history_signals(u));
    if (u % 8 == 7) a.tick();
  }
  const std::string bytes = saved(a);
  restore(bytes, b);
  CHECK(b.state() == a.state());
  std::size_t reported = 0;
  for (std::uint64_t u = 40; u < 120; ++u) {
    const auto ra = a.check(history_signals(u));
    const auto rb = b.check(history_signals(u));
    CHECK(ra.report == rb.report);
    reported += ra.report.size();
    CHECK(ra.resp.act == rb.resp.act);
    if (u % 8 == 7) CHECK(a.tick() == b.tick());
  }
  CHECK(reported > 0);  // the resumed half has anomalies to agree on
  CHECK(a.state() == b.state());
}
}  // namespace

TEST_CASE("a monitor saved through a torch archive resumes bit for bit (both presets)") {
  SUBCASE("simic defaults: running moments, CUSUM, figure ring, condition latches") {
    check_resumes(default_monitor{}, default_monitor{});
  }
  SUBCASE("reference preset") { check_resumes(make_reference_monitor(), make_reference_monitor()); }
}

TEST_CASE("saved values are exact doubles and full 64-bit counters") {
  reference::gradient_drift::state_type st;
  st.norm.raw = 0.1 + 1e-17;
  st.norm.momentum_pow = std::nextafter(0.5, 1.0);
  st.norm.steps = std::numeric_limits<std::uint64_t>::max();
  torch::serialize::OutputArchive out;
  save_state(out, st, "d");
  std::ostringstream os;
  out.save_to(os);
  std::istringstream is(os.str());
  torch::serialize::InputArchive in;
  in.load_from(is);
  reference::gradient_drift::state_type back;
  load_state(in, back, "d");
  CHECK(back == st);
}

TEST_CASE("a missing or malformed entry is a clear error and loads nothing") {
  default_monitor a;
  a.check(history_signals(0));
  torch::serialize::OutputArchive out;
  save(out, a, "other_prefix");
  std::ostringstream os;
  out.save_to(os);
  default_monitor b;
  const auto keep = b.state();
  {
    std::istringstream is(os.str());
    torch::serialize::InputArchive in;
    in.load_from(is);
    CHECK_THROWS_WITH_AS(load(in, b), doctest::Contains("archive lacks 'simic.__format': it is unversioned"), archive_error);
  }
  CHECK(b.state() == keep);
  // a float32 where a float64 belongs
  torch::serialize::OutputArchive bad;
  save(bad, a);
  bad.write("simic.config.escalation_left", at::zeros({}, at::kFloat));
  std::ostringstream os2;
  bad.save_to(os2);
  std::istringstream is2(os2.str());
  torch::serialize::InputArchive in2;
  in2.load_from(is2);
  CHECK_THROWS_WITH_AS(load(in2, b), doctest::Contains("escalation_left' has dtype Float"), archive_error);
  CHECK(b.state() == keep);
}

namespace {
std::vector<std::uint8_t> as_bytes(const std::string& s) { return {s.begin(), s.end()}; }

// A default_monitor that has seen 40 checks: moments, CUSUM, figure ring and
// latches all hold non-default values.
default_monitor seasoned() {
  default_monitor m;
  for (std::uint64_t u = 0; u < 40; ++u) {
    m.check(history_signals(u));
    if (u % 8 == 7) m.tick();
  }
  return m;
}

// An archive written field by field, as a user or an older simic would:
// `format` < 0 leaves the version out, `checksum_of` gives the checksum.
template <class State>
std::string handmade(const State& fields, std::int64_t format, std::uint64_t checksum) {
  torch::serialize::OutputArchive out;
  if (format >= 0) simic::detail::write_int64(out, "simic.__format", format);
  simic::detail::write_int64(out, "simic.__checksum", static_cast<std::int64_t>(checksum));
  State copy = fields;
  copy.visit(simic::detail::archive_writer{out, "simic"});
  std::ostringstream os;
  out.save_to(os);
  return os.str();
}
}  // namespace

TEST_CASE("the saved state carries format version 1 and the CRC-64 of its fields") {
  const default_monitor a = seasoned();
  std::istringstream is(saved(a));
  torch::serialize::InputArchive in;
  in.load_from(is);
  at::Tensor v, c;
  in.read("simic.__format", v);
  in.read("simic.__checksum", c);
  CHECK(v.item<std::int64_t>() == 1);
  CHECK(static_cast<std::uint64_t>(c.item<std::int64_t>()) == state_checksum(a.state(), 1));
  // the checksum depends on every field: one changed double changes it
  auto st = a.state();
  bool changed = false;
  st.visit([&](const char*, auto& f) {
    if constexpr (std::is_same_v<std::decay_t<decltype(f)>, double>)
      if (!changed) f = std::nextafter(f, 1e300), changed = true;
  });
  REQUIRE(changed);
  CHECK(state_checksum(st) != state_checksum(a.state()));
}

TEST_CASE("an unversioned, a newer or an unknown format is refused by name") {
  const default_monitor a = seasoned();
  const auto st = a.state();
  default_monitor b;
  const auto keep = b.state();
  auto load_bytes = [&](const std::string& bytes) {
    std::istringstream is(bytes);
    torch::serialize::InputArchive in;
    in.load_from(is);
    load(in, b);
  };
  SUBCASE("missing version: an archive from before versions") {
    torch::serialize::OutputArchive out;
    auto copy = st;
    copy.visit(simic::detail::archive_writer{out, "simic"});  // fields only, as simic wrote them before
    std::ostringstream os;
    out.save_to(os);
    CHECK_THROWS_WITH_AS(load_bytes(os.str()), doctest::Contains("'simic.__format': it is unversioned"), archive_error);
  }
  SUBCASE("version 2, one above this simic's") {
    CHECK_THROWS_WITH_AS(load_bytes(handmade(st, 2, state_checksum(st, 2))),
                         doctest::Contains("'simic.__format' = 2: written by a newer simic (this one reads format 1)"),
                         archive_error);
  }
  SUBCASE("version 0, below") {
    CHECK_THROWS_WITH_AS(load_bytes(handmade(st, 0, state_checksum(st, 0))),
                         doctest::Contains("'simic.__format' = 0 is not a format this simic reads"), archive_error);
  }
  SUBCASE("version 1, at: loads") {
    load_bytes(handmade(st, 1, state_checksum(st, 1)));
    CHECK(b.state() == st);
    b.load(keep);
  }
  CHECK(b.state() == keep);
}

TEST_CASE("a field edited through LibTorch with the old checksum kept is refused; nothing loads") {
  const default_monitor a = seasoned();
  const auto st = a.state();
  auto edited = st;
  bool changed = false;  // the first positive double, one ulp toward 0 (stays valid)
  edited.visit([&](const char*, auto& f) {
    if constexpr (std::is_same_v<std::decay_t<decltype(f)>, double>)
      if (!changed && f > 0) f = std::nextafter(f, 0.0), changed = true;
  });
  REQUIRE(!(edited == st));
  default_monitor b;
  const auto keep = b.state();
  std::istringstream is(handmade(edited, 1, state_checksum(st)));
  torch::serialize::InputArchive in;
  in.load_from(is);
  CHECK_THROWS_WITH_AS(load(in, b), doctest::Contains("simic::load_state: checksum of the fields under 'simic' is 0x"),
                       archive_error);
  CHECK(b.state() == keep);
  // the same edit with the checksum of the edited fields loads it
  std::istringstream is2(handmade(edited, 1, state_checksum(edited)));
  torch::serialize::InputArchive in2;
  in2.load_from(is2);
  load(in2, b);
  CHECK(b.state() == edited);
}

TEST_CASE("save_file / load_file round trip, and a verified open of a user's own checkpoint") {
  simic::test::remove_at_exit cleanup{"torch_archive"};
  const auto dir = simic::test::fresh_dir("torch_archive", "files");
  std::filesystem::create_directories(dir);
  const default_monitor a = seasoned();
  save_file(dir / "monitor.pt", a);
  CHECK(!std::filesystem::exists(dir / "monitor.pt.tmp"));
  default_monitor b;
  load_file(dir / "monitor.pt", b);
  CHECK(b.state() == a.state());

  // the model's tensors and simic's state in one file of the user's
  torch::serialize::OutputArchive out;
  out.write("model.weight", at::arange(6, at::kFloat));
  save(out, a, "health");
  out.save_to((dir / "user.pt").string());
  torch::serialize::InputArchive in = open_verified_archive(dir / "user.pt");
  at::Tensor w;
  in.read("model.weight", w);
  CHECK(at::equal(w, at::arange(6, at::kFloat)));
  default_monitor c;
  load(in, c, "health");
  CHECK(c.state() == a.state());

  default_monitor d;
  const auto keep = d.state();
  CHECK_THROWS_WITH_AS(load_file(dir / "absent.pt", d), doctest::Contains("cannot open"), archive_error);
  std::ofstream(dir / "notzip.pt") << "not a zip";
  CHECK_THROWS_WITH_AS(load_file(dir / "notzip.pt", d), doctest::Contains("notzip.pt': simic::verify_zip: file of 9 bytes"),
                       archive_error);
  // a valid zip that is no torch archive: LibTorch's complaint, as archive_error
  {
    const std::vector<std::uint8_t> empty{0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_THROWS_WITH_AS(open_verified_archive(std::span<const std::uint8_t>(empty)),
                         doctest::Contains("LibTorch cannot read the verified zip"), archive_error);
  }
  CHECK(d.state() == keep);
}

TEST_CASE("a corrupted archive file throws and loads nothing, or loads the saved state exactly") {
  const default_monitor a = seasoned();
  const auto saved_state = a.state();
  const std::vector<std::uint8_t> good = as_bytes(saved(a));
  default_monitor m;
  const auto before = m.state();
  REQUIRE(!(before == saved_state));
  REQUIRE(simic::test::verified_load_outcome(good, m, before, saved_state) == simic::test::load_outcome::identical);

  std::vector<simic::test::corruption> cases;
  const std::size_t n = good.size();
  // bit flips over every region: 600 bytes spread over the file (local headers,
  // tensor data, pickles, code, central directory) plus every byte of the
  // last 120 (zip64 end record, locator, end record), each a different bit
  for (std::size_t i = 0; i < 600; ++i) cases.push_back({simic::test::corruption::bit_flip, i * n / 600, i % 8});
  for (std::size_t i = n - 120; i < n; ++i) cases.push_back({simic::test::corruption::bit_flip, i, (i * 5) % 8});
  // truncations: 150 lengths spread over the file, and every one of the last 60
  for (std::size_t i = 0; i < 150; ++i) cases.push_back({simic::test::corruption::truncate, i * n / 150, 0});
  for (std::size_t i = n - 60; i < n; ++i) cases.push_back({simic::test::corruption::truncate, i, 0});
  // zeroed ranges of 1, 4, 16 and 64 bytes spread over the file
  for (std::size_t len : {1u, 4u, 16u, 64u})
    for (std::size_t i = 0; i < 100; ++i) cases.push_back({simic::test::corruption::zero_range, (i * n / 100 + len) % n, len});

  std::size_t threw = 0, identical = 0;
  for (const auto& c : cases) {
    const auto bytes = c.apply(good);
    if (bytes == good) continue;  // zeroing bytes that were zero
    const auto r = simic::test::verified_load_outcome(bytes, m, before, saved_state);
    CAPTURE(c.describe());
    CHECK(r != simic::test::load_outcome::different);
    (r == simic::test::load_outcome::threw ? threw : identical) += 1;
  }
  MESSAGE(cases.size() << " corruptions of a " << n << "-byte archive: " << threw << " threw, " << identical
                       << " loaded the saved state");
  CHECK(threw > 0);
  CHECK(m.state() == before);
}
