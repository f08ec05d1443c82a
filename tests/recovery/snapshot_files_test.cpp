// snapshot_files: the last K snapshots on disk, written atomically, read back
// past damaged files, and failing writes (a full disk, an unusable name)
// that keep every previous file.
#include "recovery/recovery_test_support.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "simic/recovery/snapshot_files.hpp"
#include "support/file_size_limit.hpp"
#include "support/temp_dir.hpp"

using namespace simic;
using namespace simic::test::recovery;
namespace fs = std::filesystem;

namespace {

const simic::test::remove_at_exit snapshot_files_cleanup{"snapshot_files"};

fs::path fresh(const std::string& name) { return simic::test::fresh_dir("snapshot_files", name); }

// A real snapshot of a small model at `update`; snapshots of different
// updates differ in their bytes.
training_snapshot snapshot_at(std::uint64_t update) {
  static auto m = make_net(1);
  static torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(0.01));
  return capture_training_state(*m, opt, update, update * 10);
}

std::vector<std::string> names(const std::vector<fs::path>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.filename().string());
  return out;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string invalid_argument_of(const snapshot_file_options& o) {
  try {
    snapshot_files f(o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

bool has_tmp(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".tmp") return true;
  return false;
}

}  // namespace

TEST_CASE("keep = 2 after 4 writes leaves the newest 2, named by the zero-padded update") {
  const fs::path dir = fresh("rotate") / "nested";  // created with its parent
  snapshot_files files({dir, 2, "snapshot"});
  CHECK(fs::is_directory(dir));
  CHECK(files.files().empty());
  CHECK_FALSE(files.newest_valid().has_value());
  std::vector<training_snapshot> written;
  for (const std::uint64_t u : {10, 20, 30, 40}) {
    written.push_back(snapshot_at(u));
    CHECK(files.write(written.back()));
  }
  CHECK(names(files.files()) == std::vector<std::string>{"snapshot-000000000030.pt", "snapshot-000000000040.pt"});
  CHECK(files.failures() == 0);
  CHECK(files.last_error().empty());
  CHECK_FALSE(has_tmp(dir));
  CHECK(simic::test::read_file(dir / "snapshot-000000000030.pt") == written[2].bytes);

  const auto newest = files.newest_valid();
  REQUIRE(newest.has_value());
  CHECK(newest->file == dir / "snapshot-000000000040.pt");
  CHECK(newest->snapshot.update == 40);
  CHECK(newest->snapshot.data_position == 400);
  CHECK(newest->snapshot.bytes == written[3].bytes);
  CHECK(newest->skipped.empty());
}

TEST_CASE("keep = 1, a rewrite of the same update, long update numbers, a lower update after a rollback") {
  const fs::path dir = fresh("boundaries");
  SUBCASE("keep = 1 keeps only the newest") {
    snapshot_files files({dir, 1, "run"});
    CHECK(files.write(snapshot_at(1)));
    CHECK(files.write(snapshot_at(2)));
    CHECK(names(files.files()) == std::vector<std::string>{"run-000000000002.pt"});
  }
  SUBCASE("the same update again replaces its file") {
    snapshot_files files({dir, 3, "snapshot"});
    training_snapshot a = snapshot_at(5), b = snapshot_at(6);
    b.update = 5;  // other bytes, same update number: its file names update 6 inside, so newest_valid skips it
    CHECK(files.write(a));
    CHECK(files.write(snapshot_at(5)));
    CHECK(names(files.files()) == std::vector<std::string>{"snapshot-000000000005.pt"});
    CHECK(files.write(b));
    CHECK(simic::test::read_file(dir / "snapshot-000000000005.pt") == b.bytes);
    CHECK_FALSE(files.newest_valid().has_value());
  }
  SUBCASE("more than 12 digits: ordered by number") {
    snapshot_files files({dir, 3, "snapshot"});
    CHECK(files.path_of(999'999'999'999).filename() == "snapshot-999999999999.pt");
    CHECK(files.path_of(1'000'000'000'000).filename() == "snapshot-1000000000000.pt");
    CHECK(files.path_of(7).filename() == "snapshot-000000000007.pt");
    CHECK(files.write(snapshot_at(1'000'000'000'000)));
    CHECK(files.write(snapshot_at(999'999'999'999)));
    CHECK(names(files.files()) == std::vector<std::string>{"snapshot-999999999999.pt", "snapshot-1000000000000.pt"});
    CHECK(files.newest_valid()->snapshot.update == 1'000'000'000'000);
  }
  SUBCASE("a lower update than the files present is kept; the oldest others go") {
    snapshot_files files({dir, 2, "snapshot"});
    CHECK(files.write(snapshot_at(10)));
    CHECK(files.write(snapshot_at(20)));
    CHECK(files.write(snapshot_at(15)));
    CHECK(names(files.files()) == std::vector<std::string>{"snapshot-000000000015.pt", "snapshot-000000000020.pt"});
    CHECK(files.write(snapshot_at(5)));
    CHECK(names(files.files()) == std::vector<std::string>{"snapshot-000000000005.pt", "snapshot-000000000020.pt"});
  }
}

TEST_CASE("files() lists only this pattern's regular files; stale tmp files are removed at construction") {
  const fs::path dir = fresh("pattern");
  fs::create_directories(dir / "snapshot-000000000009.pt");  // a folder of a snapshot's name
  const std::string good = snapshot_at(3).bytes;
  for (const char* other : {"notes.txt", "snapshot-12.pt", "snapshot-0000000000012.pt", "other-000000000001.pt",
                            "snapshot-000000000001.pt.bak", "snapshot-00000000000x.pt", "snapshot-000000000001.PT",
                            "x.tmp"})
    write_file(dir / other, good);
  write_file(dir / "snapshot-000000000004.pt.tmp", good);  // a crash during a write left it
  write_file(dir / "snapshot-000000000003.pt", good);
  snapshot_files files({dir, 3, "snapshot"});
  CHECK(names(files.files()) == std::vector<std::string>{"snapshot-000000000003.pt"});
  CHECK_FALSE(fs::exists(dir / "snapshot-000000000004.pt.tmp"));
  CHECK(fs::exists(dir / "x.tmp"));
  CHECK(fs::exists(dir / "notes.txt"));
  CHECK(files.newest_valid()->snapshot.update == 3);
  // rotation never touches other names
  for (const std::uint64_t u : {4, 5, 6, 7}) CHECK(files.write(snapshot_at(u)));
  CHECK(names(files.files()).size() == 3);
  CHECK(fs::exists(dir / "snapshot-12.pt"));
  CHECK(fs::is_directory(dir / "snapshot-000000000009.pt"));
}

TEST_CASE("newest_valid skips damaged files, naming each, and returns nullopt when none is valid") {
  const fs::path dir = fresh("damaged");
  snapshot_files files({dir, 3, "snapshot"});
  for (const std::uint64_t u : {1, 2, 3}) REQUIRE(files.write(snapshot_at(u)));
  const fs::path f1 = dir / "snapshot-000000000001.pt", f2 = dir / "snapshot-000000000002.pt",
                 f3 = dir / "snapshot-000000000003.pt";

  std::string bytes = simic::test::read_file(f3);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x40);
  write_file(f3, bytes);
  auto newest = files.newest_valid();
  REQUIRE(newest.has_value());
  CHECK(newest->file == f2);
  CHECK(newest->snapshot.update == 2);
  REQUIRE(newest->skipped.size() == 1);
  CHECK(newest->skipped[0].first == f3);
  CHECK_MESSAGE(newest->skipped[0].second.find("simic::read_snapshot_bytes") != std::string::npos,
                newest->skipped[0].second);

  SUBCASE("a file holding another update than its name says") {
    fs::copy_file(f1, f2, fs::copy_options::overwrite_existing);
    newest = files.newest_valid();
    REQUIRE(newest.has_value());
    CHECK(newest->file == f1);
    REQUIRE(newest->skipped.size() == 2);
    CHECK(newest->skipped[0].first == f3);
    CHECK(newest->skipped[1].first == f2);
    CHECK(newest->skipped[1].second.find("the file holds update 1; its name says 2") != std::string::npos);
  }
  SUBCASE("all damaged: nullopt") {
    write_file(f2, "");
    std::string b1 = simic::test::read_file(f1);
    b1.resize(b1.size() - 1);
    write_file(f1, b1);
    CHECK_FALSE(files.newest_valid().has_value());
  }
}

TEST_CASE("a write to a full disk fails cleanly: false, counted, tmp removed, previous files kept") {
  const fs::path dir = fresh("full");
  snapshot_files files({dir, 3, "snapshot"});
  REQUIRE(files.write(snapshot_at(1)));
  REQUIRE(files.write(snapshot_at(2)));
  const std::string b1 = simic::test::read_file(dir / "snapshot-000000000001.pt");
  const std::string b2 = simic::test::read_file(dir / "snapshot-000000000002.pt");
  const training_snapshot big = snapshot_at(3);

  // In a child whose files may not grow past half the snapshot: write(2)
  // fails with EFBIG part way, as on a full disk.
  const int code = simic::test::exit_code_with_file_size_limit(big.size_bytes() / 2, [&] {
    if (files.write(big)) return 1;
    if (files.failures() != 1) return 2;
    if (files.last_error().find("File too large") == std::string::npos) return 3;
    if (files.last_error().find("snapshot-000000000003.pt.tmp") == std::string::npos) return 4;
    if (has_tmp(dir) || fs::exists(dir / "snapshot-000000000003.pt")) return 5;
    if (names(files.files()).size() != 2) return 6;
    return 0;
  });
  CHECK(code == 0);
  CHECK(names(files.files()) == std::vector<std::string>{"snapshot-000000000001.pt", "snapshot-000000000002.pt"});
  CHECK(simic::test::read_file(dir / "snapshot-000000000001.pt") == b1);
  CHECK(simic::test::read_file(dir / "snapshot-000000000002.pt") == b2);
  const auto newest = files.newest_valid();
  REQUIRE(newest.has_value());
  CHECK(newest->snapshot.update == 2);
  CHECK(newest->skipped.empty());
  // the same object writes again once there is room
  CHECK(files.write(big));
  CHECK(files.newest_valid()->snapshot.update == 3);
}

TEST_CASE("writes that cannot be made (an unusable tmp or target name, a vanished directory) return false") {
  const fs::path dir = fresh("unwritable");
  snapshot_files files({dir, 2, "snapshot"});
  REQUIRE(files.write(snapshot_at(1)));
  REQUIRE(files.write(snapshot_at(2)));
  const std::string b1 = simic::test::read_file(dir / "snapshot-000000000001.pt");
  const std::string b2 = simic::test::read_file(dir / "snapshot-000000000002.pt");
  const auto previous_kept = [&] {
    CHECK(names(files.files()) == std::vector<std::string>{"snapshot-000000000001.pt", "snapshot-000000000002.pt"});
    CHECK(simic::test::read_file(dir / "snapshot-000000000001.pt") == b1);
    CHECK(simic::test::read_file(dir / "snapshot-000000000002.pt") == b2);
    const auto newest = files.newest_valid();
    REQUIRE(newest.has_value());
    CHECK(newest->snapshot.update == 2);
  };

  // The tmp name is taken by a folder: open(2) fails (as in a read-only
  // directory; this test runs as root, which may write anywhere).
  fs::create_directories(dir / "snapshot-000000000003.pt.tmp");
  CHECK_FALSE(files.write(snapshot_at(3)));
  CHECK(files.failures() == 1);
  CHECK_MESSAGE(files.last_error().find("cannot write '" + (dir / "snapshot-000000000003.pt.tmp").string() + "'") !=
                    std::string::npos,
                files.last_error());
  CHECK(files.last_error().find("the previous snapshots are kept") != std::string::npos);
  previous_kept();

  // The target name is a non-empty folder: the rename fails, the tmp file goes.
  fs::create_directories(dir / "snapshot-000000000004.pt" / "inside");
  CHECK_FALSE(files.write(snapshot_at(4)));
  CHECK(files.failures() == 2);
  CHECK(files.last_error().find("cannot rename") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "snapshot-000000000004.pt.tmp"));
  previous_kept();

  // A success does not clear the last error; it leaves the counter as it is.
  fs::remove(dir / "snapshot-000000000003.pt.tmp");
  CHECK(files.write(snapshot_at(3)));
  CHECK(files.failures() == 2);
  CHECK(files.last_error().find("cannot rename") != std::string::npos);

  // The directory vanished.
  fs::remove_all(dir);
  CHECK_FALSE(files.write(snapshot_at(5)));
  CHECK(files.failures() == 3);
  CHECK(files.last_error().find("No such file or directory") != std::string::npos);
  CHECK(files.files().empty());
  CHECK_FALSE(files.newest_valid().has_value());
}

TEST_CASE("bad options throw std::invalid_argument naming the option; an empty snapshot is refused") {
  const fs::path dir = fresh("options");
  const std::string keep = invalid_argument_of({dir, 0, "snapshot"});
  CHECK(keep.find("keep = 0; it must be >= 1") != std::string::npos);
  CHECK(invalid_argument_of({fs::path(), 3, "snapshot"}).find("directory is empty") != std::string::npos);
  fs::create_directories(dir);
  write_file(dir / "a_file", "x");
  CHECK(invalid_argument_of({dir / "a_file", 3, "snapshot"}).find("directory '") != std::string::npos);
  CHECK(invalid_argument_of({dir / "a_file" / "below", 3, "snapshot"}).find("cannot be created") != std::string::npos);
  CHECK(invalid_argument_of({dir, 3, ""}).find("prefix ''") != std::string::npos);
  CHECK(invalid_argument_of({dir, 3, "a/b"}).find("prefix 'a/b'") != std::string::npos);
  CHECK(invalid_argument_of({dir, 1, "snapshot"}) == "(no error)");

  snapshot_files files({dir, 1, "snapshot"});
  CHECK_THROWS_AS(files.write(training_snapshot{}), std::invalid_argument);
  CHECK(files.failures() == 0);
}
