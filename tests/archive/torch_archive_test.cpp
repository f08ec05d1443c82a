#include "support/torch_doctest.hpp"

#include <torch/version.h>

#include <cmath>
#include <cstring>
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

namespace {
// A state with one field of each kind. The vector's length, 4660 (0x1234),
// is pickled as the bytes "M\x34\x12" (BININT2): easy to find in data.pkl.
struct toy_state {
  double a = 1.5;
  std::uint64_t n = 7;
  std::vector<double> v = std::vector<double>(4660, 0.25);
  template <class V>
  void visit(V&& f) {
    f("a", a);
    f("n", n);
    f("v", v);
  }
  friend bool operator==(const toy_state&, const toy_state&) = default;
};

std::vector<std::uint8_t> toy_archive(const toy_state& st) {
  torch::serialize::OutputArchive out;
  save_state(out, st, "toy");
  std::ostringstream os;
  out.save_to(os);
  return as_bytes(os.str());
}

// Loads `bytes` into a copy of `into` through the verified path; returns the
// copy (load_state leaves it unchanged when it throws).
toy_state load_toy(const std::vector<std::uint8_t>& bytes, toy_state into = {}) {
  torch::serialize::InputArchive ar = open_verified_archive(std::span<const std::uint8_t>(bytes));
  load_state(ar, into, "toy");
  return into;
}

// The record (name) that holds `key`'s storage, from data.pkl: after the
// key's string, the first BINUNICODE string ("X", 4-byte little-endian
// length, the characters) of digits is its persistent id's storage key.
std::string storage_record(const std::vector<simic::test::archive_record>& records, const std::string& key) {
  for (const auto& r : records) {
    if (r.name != "data.pkl") continue;
    const std::string& p = r.data;
    const std::size_t k = p.find("X" + std::string(1, static_cast<char>(key.size())) + std::string(3, '\0') + key);
    REQUIRE(k != std::string::npos);
    for (std::size_t at = p.find('X', k + 5 + key.size()); at != std::string::npos && at + 5 <= p.size();
         at = p.find('X', at + 1)) {
      std::uint32_t len = 0;
      std::memcpy(&len, p.data() + at + 1, 4);
      if (len == 0 || len > 9 || at + 5 + len > p.size()) continue;
      const std::string id = p.substr(at + 5, len);
      if (id.find_first_not_of("0123456789") == std::string::npos) return "data/" + id;
    }
    FAIL("no storage key after '" << key << "' in data.pkl");
  }
  FAIL("no data.pkl");
  return {};
}

// The toy archive with data.pkl edited: the first `from` after `after`
// replaced by `to`.
std::vector<std::uint8_t> toy_pickle_edited(std::string_view after, std::string_view from, std::string_view to) {
  auto records = simic::test::read_records(toy_archive({}));
  auto& pkl = simic::test::find_record(records, "data.pkl");
  pkl.data = simic::test::replace_after(pkl.data, after, from, to);
  return simic::test::write_records(records);
}
// A pickled int64 as LONG1 with 8 bytes, little-endian (as LibTorch reads it).
std::string long1(std::int64_t v) {
  std::string s = "\x8a\x08";
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xFF));
  return s;
}
}  // namespace

TEST_CASE("a zip with every CRC right whose records lie is refused by key before an element is read") {
  using simic::test::find_record;
  using simic::test::read_records;
  using simic::test::write_records;
  using namespace std::string_view_literals;  // the edits hold NUL bytes
  const toy_state saved_state;
  const auto good = toy_archive(saved_state);
  const toy_state other{-1.0, 3, {9.0}};
  // the records written again as they are: the same state loads
  REQUIRE(load_toy(write_records(read_records(good)), other) == saved_state);
  auto records = read_records(good);
  const std::string rec_a = storage_record(records, "toy.a"), rec_v = storage_record(records, "toy.v"),
                    rec_format = storage_record(records, "toy.__format"),
                    rec_checksum = storage_record(records, "toy.__checksum");
  REQUIRE(find_record(records, rec_v).data.size() == 4660 * 8);
  REQUIRE(find_record(records, rec_a).data.size() == 8);
  const std::string first = verify_zip(std::span<const std::uint8_t>(good)).entries.at(0).name;
  const std::string root = first.substr(0, first.find('/') + 1);  // "archive/"
  auto key_of = [](const std::string& record) { return record.substr(std::string("data/").size()); };

  auto refused = [&](const std::vector<std::uint8_t>& bytes, const std::string& message) {
    toy_state into = other;
    CHECK_THROWS_WITH_AS(into = load_toy(bytes, into), doctest::Contains(message.c_str()), archive_error);
    CHECK(into == other);
  };
  const std::string lie = ": the archive's entries were renamed or its data.pkl edited";

  // A storage against its record (check_pickled_storages, before LibTorch reads the zip).
  SUBCASE("the vector's record and a scalar's swapped: 4660 doubles over 8 bytes") {
    auto swapped = records;
    for (auto& r : swapped) {
      if (r.name == rec_v) r.name = rec_a;
      else if (r.name == rec_a) r.name = rec_v;
    }
    refused(write_records(swapped), "simic::check_pickled_storages: 'toy.v' (data.pkl's storage '" + key_of(rec_v) +
                                        "': 4660 x Double, 8 bytes each) needs 37280 bytes; its record '" + root +
                                        rec_v + "' holds 8" + lie);
  }
  SUBCASE("a scalar's record empty") {
    auto emptied = records;
    find_record(emptied, rec_a).data.clear();
    refused(write_records(emptied), "'toy.a' (data.pkl's storage '" + key_of(rec_a) +
                                        "': 1 x Double, 8 bytes each) needs 8 bytes; its record '" + root + rec_a +
                                        "' holds 0" + lie);
  }
  SUBCASE("the format version's record empty") {
    auto emptied = records;
    find_record(emptied, rec_format).data.clear();
    refused(write_records(emptied), "'toy.__format' (data.pkl's storage '" + key_of(rec_format) +
                                        "': 1 x Long, 8 bytes each) needs 8 bytes; its record '" + root + rec_format +
                                        "' holds 0");
  }
  SUBCASE("the checksum's record 7 bytes: one short") {
    auto shortened = records;
    find_record(shortened, rec_checksum).data.resize(7);
    refused(write_records(shortened), "'toy.__checksum' (data.pkl's storage '" + key_of(rec_checksum) +
                                          "': 1 x Long, 8 bytes each) needs 8 bytes; its record '" + root +
                                          rec_checksum + "' holds 7");
  }
  SUBCASE("the vector's record renamed away") {
    auto renamed = records;
    find_record(renamed, rec_v).name = "data/99";
    refused(write_records(renamed), "'toy.v' (data.pkl's storage '" + key_of(rec_v) +
                                        "': 4660 x Double, 8 bytes each): the zip has no record '" + root + rec_v + "'");
  }
  SUBCASE("the vector's storage declared with -1 elements") {
    refused(toy_pickle_edited("toy.vq", "M4\x12tQ"sv, long1(-1) + "tQ"),
            "'toy.v' (data.pkl's storage '" + key_of(rec_v) +
                "': -1 x Double, 8 bytes each) declares a negative number of elements");
  }
  SUBCASE("the vector's storage declared with 2^62 elements: the byte count passes 64 bits") {
    refused(toy_pickle_edited("toy.vq", "M4\x12tQ"sv, long1(std::int64_t{1} << 62) + "tQ"),
            "'toy.v' (data.pkl's storage '" + key_of(rec_v) +
                "': 4611686018427387904 x Double, 8 bytes each) needs more than 2^64 bytes; its record '" + root +
                rec_v + "' holds 37280");
  }

  // A tensor's sizes, strides and offset against its storage: LibTorch 1.13
  // takes them from data.pkl unchecked (simic's reader of each field refuses
  // them, before an element is read); LibTorch 2.x's unpickler refuses them
  // itself while it loads (open_verified_archive's archive_error).
  auto refused_view = [&](const std::vector<std::uint8_t>& bytes, const std::string& simic_message,
                          const std::string& libtorch2_message) {
#if TORCH_VERSION_MAJOR >= 2
    (void)simic_message;
    refused(bytes, "simic::open_verified_archive: LibTorch cannot read the verified zip: " + libtorch2_message);
#else
    (void)libtorch2_message;
    refused(bytes, simic_message);
#endif
  };
  SUBCASE("the vector's storage declared empty: LibTorch reads no record, 4660 elements over none") {
    refused_view(toy_pickle_edited("toy.vq", "M4\x12tQ"sv, "K\x00tQ"sv),
                 "simic::load_state: 'toy.v' (Double, sizes [4660], strides [1], offset 0) needs 37280 bytes of "
                 "storage; its storage holds 0" + lie,
                 "Tensor: sizes 4660, strides 1, storage offset 0 and itemsize 8 require a storage of at least 37280 "
                 "bytes, but storage only has 0 bytes");
  }
  SUBCASE("a scalar's offset one past its 8 bytes") {
    refused_view(toy_pickle_edited("toy.aq", "K\x00(t(t"sv, "K\x01(t(t"sv),
                 "simic::load_state: 'toy.a' (Double, sizes [], strides [], offset 1) needs 16 bytes of storage; its "
                 "storage holds 8" + lie,
                 "Tensor: sizes , strides , storage offset 1 and itemsize 8 require a storage of at least 16 bytes, "
                 "but storage only has 8 bytes");
  }
  SUBCASE("the format version's offset one past its 8 bytes") {
    refused_view(toy_pickle_edited("toy.__formatq", "K\x00(t(t"sv, "K\x01(t(t"sv),
                 "'toy.__format' (Long, sizes [], strides [], offset 1) needs 16 bytes of storage; its storage holds 8",
                 "Tensor: sizes , strides , storage offset 1 and itemsize 8 require a storage of at least 16 bytes");
  }
  SUBCASE("the vector's offset 1: one element past its storage") {
    refused_view(toy_pickle_edited("toy.vq", "K\x00(M4\x12t"sv, "K\x01(M4\x12t"sv),
                 "'toy.v' (Double, sizes [4660], strides [1], offset 1) needs 37288 bytes of storage; its storage "
                 "holds 37280",
                 "Tensor: sizes 4660, strides 1, storage offset 1 and itemsize 8 require a storage of at least 37288 "
                 "bytes, but storage only has 37280 bytes");
  }
  SUBCASE("offset 1 and 4659 elements end at the storage's last byte: read, and refused by the checksum") {
    refused(toy_pickle_edited("toy.vq", "K\x00(M4\x12t"sv, "K\x01(M3\x12t"sv),
            "simic::load_state: checksum of the fields under 'toy' is 0x");
  }
  SUBCASE("the vector's stride 2: (4659 x 2 + 1) x 8 bytes") {
    refused_view(toy_pickle_edited("toy.vq", "(K\x01t"sv, "(K\x02t"sv),
                 "'toy.v' (Double, sizes [4660], strides [2], offset 0) needs 74552 bytes of storage; its storage "
                 "holds 37280",
                 "Tensor: sizes 4660, strides 2, storage offset 0 and itemsize 8 require a storage of at least 74552 "
                 "bytes, but storage only has 37280 bytes");
  }
  SUBCASE("a declared size of 2^26 doubles (512 MiB past the record)") {
    refused_view(toy_pickle_edited("toy.vq", "(M4\x12t(", "(" + long1(std::int64_t{1} << 26) + "t("),
                 "'toy.v' (Double, sizes [67108864], strides [1], offset 0) needs 536870912 bytes of storage; its "
                 "storage holds 37280",
                 "Tensor: sizes 67108864, strides 1, storage offset 0 and itemsize 8 require a storage of at least "
                 "536870912 bytes, but storage only has 37280 bytes");
  }
  SUBCASE("a declared size of 2^40 doubles") {
    refused_view(toy_pickle_edited("toy.vq", "(M4\x12t(", "(" + long1(std::int64_t{1} << 40) + "t("),
                 "'toy.v' (Double, sizes [1099511627776], strides [1], offset 0) needs 8796093022208 bytes",
                 "Tensor: sizes 1099511627776, strides 1, storage offset 0 and itemsize 8 require a storage of at "
                 "least 8796093022208 bytes, but storage only has 37280 bytes");
  }
  SUBCASE("a declared size whose byte count passes 64 bits (2^62 doubles)") {
    refused_view(toy_pickle_edited("toy.vq", "(M4\x12t(", "(" + long1(std::int64_t{1} << 62) + "t("),
                 "'toy.v' (Double, sizes [4611686018427387904], strides [1], offset 0) has a negative size, stride "
                 "or offset, or reaches past 2^64 bytes; its storage holds 37280",
                 "Storage size calculation overflowed with sizes=[4611686018427387904] and strides=[1]");
  }
}

TEST_CASE("an archive opened without verification: an empty record is archive_error naming the key, not c10::Error") {
  using simic::test::find_record;
  const auto good = toy_archive({});
  auto records = simic::test::read_records(good);
  const toy_state other{-1.0, 3, {9.0}};
  auto unverified = [&](const std::vector<simic::test::archive_record>& rs) {
    const auto bytes = simic::test::write_records(rs);
    torch::serialize::InputArchive ar;
    ar.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    toy_state into = other;
    load_state(ar, into, "toy");
    return into;
  };
  for (const char* key : {"toy.__format", "toy.__checksum", "toy.a", "toy.n", "toy.v"}) {
    CAPTURE(key);
    auto emptied = records;
    find_record(emptied, storage_record(records, key)).data.clear();
    const std::string message = std::string("simic::load_state: '") + key + "' (";
    CHECK_THROWS_WITH_AS(unverified(emptied), doctest::Contains(message.c_str()), archive_error);
    CHECK_THROWS_WITH_AS(unverified(emptied), doctest::Contains("its storage holds 0"), archive_error);
  }
  CHECK(unverified(records) == toy_state{});
}

TEST_CASE("swaps of two records of a monitor's archive are refused or load the saved state") {
  // Every pair of tensor records of different sizes (the empty vector's, the
  // vector's, a scalar's), and each record with the next one of other bytes.
  const default_monitor a = seasoned();
  const auto saved_state = a.state();
  const std::vector<std::uint8_t> good = as_bytes(saved(a));
  const auto records = simic::test::read_records(good);
  std::vector<std::size_t> data;  // the tensor records
  for (std::size_t i = 0; i < records.size(); ++i)
    if (records[i].name.rfind("data/", 0) == 0) data.push_back(i);
  REQUIRE(data.size() > 20);
  default_monitor m;
  const auto before = m.state();
  std::size_t threw = 0, identical = 0, pairs = 0;
  auto swap_and_load = [&](std::size_t x, std::size_t y) {
    auto swapped = records;
    std::swap(swapped[x].name, swapped[y].name);
    const auto r = simic::test::verified_load_outcome(simic::test::write_records(swapped), m, before, saved_state);
    CAPTURE(records[x].name);
    CAPTURE(records[y].name);
    CHECK(r != simic::test::load_outcome::different);
    (r == simic::test::load_outcome::threw ? threw : identical) += 1;
    ++pairs;
  };
  for (std::size_t i = 0; i < data.size(); ++i) {
    bool next_done = false;
    for (std::size_t j = i + 1; j < data.size(); ++j) {
      const auto &x = records[data[i]].data, &y = records[data[j]].data;
      if (x.size() != y.size()) {
        swap_and_load(data[i], data[j]);
      } else if (!next_done && x != y) {
        swap_and_load(data[i], data[j]);
        next_done = true;
      }
    }
  }
  MESSAGE(pairs << " swaps of " << data.size() << " tensor records: " << threw << " threw, " << identical
                << " loaded the saved state");
  CHECK(threw > 0);
  CHECK(m.state() == before);
}

TEST_CASE("an empty vector field round-trips: no elements need no storage") {
  toy_state st;
  st.v.clear();
  const toy_state other{-1.0, 3, {9.0}};
  CHECK(load_toy(toy_archive(st), other) == st);
  // the same through records written again
  CHECK(load_toy(simic::test::write_records(simic::test::read_records(toy_archive(st))), other) == st);
}
