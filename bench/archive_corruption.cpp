// Random corruptions of a saved default_monitor archive, each loaded in a
// forked child so that a crash is counted, not fatal. Every corruption is
// loaded twice: through simic's verified path (verify_zip, then LibTorch,
// then version + checksum) and through LibTorch's loader alone (version +
// checksum still checked), to show what the zip verification adds.
//
//   archive_corruption [--count N] [--seed S] [--structure] [--module] [--verified-only]
//   archive_corruption ... --case I      (run case I of each run here, no fork)
//
// Byte-level corruptions (bit flips, truncations, zeroed ranges) always run.
// --structure adds N structure-aware ones (tests/support/archive_corruption.hpp:
// records renamed, swapped, duplicated, emptied, resized; data.pkl's sizes,
// keys and storage keys edited; the zip and its CRCs kept valid). --module
// runs the same on a torch::save checkpoint of a small module too, loaded by
// simic::load_verified (verified) and Module::load (LibTorch alone). The
// verified paths load from a file, so that each failure's message can be
// checked to name the file and a record or key.
//
// --verified-only skips LibTorch's loader alone (for a sanitizer build).
// Prints threw / identical / different / crashed per path, and how many
// verified failures named no record or key; exits 1 if a verified path ever
// loads a different state or crashes.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <sstream>
#include <string>

#include "simic/presets/ppo.hpp"
#include "simic/archive/module_archive.hpp"
#include "simic/archive/torch_archive.hpp"
#include "support/archive_corruption.hpp"

namespace {

using simic::test::load_outcome;

simic::default_monitor seasoned() {
  simic::default_monitor m;
  for (std::uint64_t u = 0; u < 40; ++u) {
    m.check(simic::test::history_signals(u));
    if (u % 8 == 7) m.tick();
  }
  return m;
}

// One byte per case from a child: a load_outcome, or one of these for a
// refusal whose message names no record or key: one that names the part of
// the zip's structure that is wrong instead (a damaged end record or
// central directory has no record to name), and one that names nothing.
constexpr unsigned char threw_structure = 3, threw_unnamed = 4;

struct tally {
  std::size_t threw = 0, identical = 0, different = 0, crashed = 0, zip_structure = 0, unnamed = 0;
  double seconds = 0;
  void print(const std::string& what, bool verified) const {
    std::printf("  %-40s threw %6zu  identical %6zu  different %4zu  crashed %4zu", what.c_str(), threw, identical,
                different, crashed);
    if (verified) std::printf("  naming the zip's structure %4zu, nothing %zu", zip_structure, unnamed);
    std::printf("  (%.1f s)\n", seconds);
  }
};

// Runs outcome(i) for i in [0, n) in forked children, one byte per outcome
// through a pipe: a child that dies on a signal marks case i as crashed, and
// a fresh child goes on from i + 1 (a fork per case would be slower than the
// loads themselves).
tally run_forked(const std::string& path, std::size_t n, const std::function<unsigned char(std::size_t)>& outcome) {
  tally t;
  const auto start = std::chrono::steady_clock::now();
  std::size_t next = 0;
  while (next < n) {
    int fd[2];
    if (pipe(fd) != 0) std::abort();
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
#if !defined(__SANITIZE_ADDRESS__)
      // A corrupted size can make LibTorch's loader allocate without bound;
      // a 4 GiB address-space cap turns that into an exception here instead
      // of the machine's OOM killer. (ASan reserves terabytes of address
      // space for its shadow: there, ASAN_OPTIONS' allocator limits apply.)
      const rlimit cap{4ull << 30, 4ull << 30};
      setrlimit(RLIMIT_AS, &cap);
#endif
      for (std::size_t i = next; i < n; ++i) {
        const unsigned char b = outcome(i);
        if (write(fd[1], &b, 1) != 1) _exit(3);
      }
      _exit(0);
    }
    close(fd[1]);
    unsigned char b = 0;
    while (read(fd[0], &b, 1) == 1) {
      switch (b) {
        case static_cast<unsigned char>(load_outcome::threw): ++t.threw; break;
        case threw_structure: ++t.threw, ++t.zip_structure; break;
        case threw_unnamed: ++t.threw, ++t.unnamed; break;
        case static_cast<unsigned char>(load_outcome::identical): ++t.identical; break;
        default: ++t.different; break;
      }
      ++next;
    }
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (next < n) {  // the child ended early: case `next` crashed it
      ++t.crashed;
      std::printf("  %s: crash (%s) on case %zu\n", path.c_str(),
                  WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exit", next);
      ++next;
    }
  }
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return t;
}

// A verified outcome with its message checked: the file and one of `names`.
unsigned char checked(load_outcome r, const std::string& message, const std::filesystem::path& file,
                      const std::vector<std::string>& names, const char* what, std::size_t i) {
  if (r != load_outcome::threw) return static_cast<unsigned char>(r);
  if (simic::test::names_file_and_one_of(message, file.string(), names)) return static_cast<unsigned char>(r);
  // a byte-level corruption can damage an entry's name itself: verify_zip
  // then names the entry as the file spells it now
  if (message.find("'" + file.string() + "': simic::verify_zip: entry '") != std::string::npos)
    return static_cast<unsigned char>(r);
  const bool zip_level = message.find("simic::verify_zip: ") != std::string::npos;
  for (const char* part : {"end record", "central directory", "zip64", "-byte file", "file of "})
    if (zip_level && message.find("'" + file.string() + "'") != std::string::npos && message.find(part) != std::string::npos)
      return threw_structure;
  static int shown = 0;  // a few examples per child
  if (shown++ < 3) std::fprintf(stderr, "  unnamed (%s, case %zu): %s\n", what, i, message.c_str());
  return threw_unnamed;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t count = 10000;
  std::uint64_t seed = 1;
  std::size_t only = SIZE_MAX;
  bool structure = false, module = false, verified_only = false;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--structure")) structure = true;
    else if (!std::strcmp(argv[i], "--module")) module = true;
    else if (!std::strcmp(argv[i], "--verified-only")) verified_only = true;
    else if (!std::strcmp(argv[i], "--count") && has_value) count = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--seed") && has_value) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--case") && has_value) only = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "archive_corruption: unknown argument '%s'; valid: --count N, --seed S, --case I (< N), "
                   "--structure, --module, --verified-only\n", argv[i]);
      return 2;
    }
  }
  if (only != SIZE_MAX && only >= count) {
    std::fprintf(stderr, "archive_corruption: --case %zu is past --count %zu (valid: 0 to %zu)\n", only, count, count - 1);
    return 2;
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("simic_archive_corruption_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / "ckpt.pt";

  // The monitor archive.
  const simic::default_monitor a = seasoned();
  torch::serialize::OutputArchive out;
  simic::save(out, a);
  std::ostringstream os;
  out.save_to(os);
  const std::string s = os.str();
  const std::vector<std::uint8_t> good(s.begin(), s.end());
  const auto saved_state = a.state();
  simic::default_monitor m;
  const auto before = m.state();
  const simic::test::structure_target monitor_target(good);
  const auto monitor_names = simic::test::nameable(monitor_target, {});

  // The module checkpoint.
  const simic::test::probe_net saved_net(1);
  const std::vector<std::uint8_t> net_good = simic::test::saved_module(*saved_net);
  simic::test::probe_net net(2);
  const auto net_before = simic::test::module_copies(*net, true), net_saved = simic::test::module_copies(*saved_net, false);
  const simic::test::structure_target net_target(net_good);
  const auto net_names = simic::test::nameable(net_target, simic::test::module_keys(*net));

  // The cases, drawn in this order whatever is run, so that a seed names the same cases.
  std::mt19937_64 rng(seed);
  std::vector<simic::test::corruption> bytes_cases, net_bytes_cases;
  std::vector<simic::test::structure_corruption> structure_cases, net_structure_cases;
  for (std::size_t i = 0; i < count; ++i) bytes_cases.push_back(simic::test::random_corruption(rng, good.size()));
  if (structure)
    for (std::size_t i = 0; i < count; ++i)
      structure_cases.push_back(simic::test::random_structure_corruption(rng, monitor_target));
  if (module) {
    for (std::size_t i = 0; i < count; ++i) net_bytes_cases.push_back(simic::test::random_corruption(rng, net_good.size()));
    if (structure)
      for (std::size_t i = 0; i < count; ++i)
        net_structure_cases.push_back(simic::test::random_structure_corruption(rng, net_target));
  }

  struct run {
    std::string name;
    std::function<std::vector<std::uint8_t>(std::size_t)> bytes;
    std::function<std::string(std::size_t)> describe;
    std::function<unsigned char(const std::vector<std::uint8_t>&, std::size_t)> verified, unverified;
  };
  auto monitor_verified = [&](const char* what) {
    return [&, what](const std::vector<std::uint8_t>& b, std::size_t i) {
      std::string message;
      const auto r = simic::test::verified_file_outcome(b, file, m, before, saved_state, message);
      return checked(r, message, file, monitor_names, what, i);
    };
  };
  auto monitor_unverified = [&](const std::vector<std::uint8_t>& b, std::size_t) {
    return static_cast<unsigned char>(simic::test::unverified_load_outcome(b, m, before, saved_state));
  };
  auto module_verified = [&](const char* what) {
    return [&, what](const std::vector<std::uint8_t>& b, std::size_t i) {
      std::string message;
      const auto r = simic::test::module_file_outcome(b, file, *net, net_before, net_saved, message);
      return checked(r, message, file, net_names, what, i);
    };
  };
  auto module_unverified = [&](const std::vector<std::uint8_t>& b, std::size_t) {
    return static_cast<unsigned char>(simic::test::module_unverified_outcome(b, *net, net_saved));
  };
  std::vector<run> runs;
  runs.push_back({"monitor archive, byte-level", [&](std::size_t i) { return bytes_cases[i].apply(good); },
                  [&](std::size_t i) { return bytes_cases[i].describe(); }, monitor_verified("monitor bytes"),
                  monitor_unverified});
  if (structure)
    runs.push_back({"monitor archive, structure-aware",
                    [&](std::size_t i) { return structure_cases[i].apply(monitor_target.zip); },
                    [&](std::size_t i) { return structure_cases[i].describe(monitor_target.zip); },
                    monitor_verified("monitor structure"), monitor_unverified});
  if (module) {
    runs.push_back({"module checkpoint, byte-level", [&](std::size_t i) { return net_bytes_cases[i].apply(net_good); },
                    [&](std::size_t i) { return net_bytes_cases[i].describe(); }, module_verified("module bytes"),
                    module_unverified});
    if (structure)
      runs.push_back({"module checkpoint, structure-aware",
                      [&](std::size_t i) { return net_structure_cases[i].apply(net_target.zip); },
                      [&](std::size_t i) { return net_structure_cases[i].describe(net_target.zip); },
                      module_verified("module structure"), module_unverified});
  }

  if (only != SIZE_MAX) {  // case I of each run in this process, to reproduce it
    for (const run& r : runs) {
      const auto b = r.bytes(only);
      std::printf("%s, case %zu: %s\n", r.name.c_str(), only, r.describe(only).c_str());
      std::printf("  verified: %d\n", static_cast<int>(r.verified(b, only)));
      std::printf("  unverified: %d\n", static_cast<int>(r.unverified(b, only)));
    }
    std::filesystem::remove_all(dir);
    return 0;
  }
  std::printf("%zu corruptions of each kind, seed %llu; a %zu-byte default_monitor archive", count,
              static_cast<unsigned long long>(seed), good.size());
  if (module) std::printf(" and a %zu-byte module checkpoint", net_good.size());
  std::printf("\n");
  bool failed = false;
  for (const run& r : runs) {
    const tally verified = run_forked(r.name + " (verified)", count, [&](std::size_t i) { return r.verified(r.bytes(i), i); });
    std::printf("%s:\n", r.name.c_str());
    verified.print("verified (load_file / load_verified):", true);
    if (!verified_only)
      run_forked(r.name + " (LibTorch alone)", count, [&](std::size_t i) { return r.unverified(r.bytes(i), i); })
          .print("LibTorch's loader (+ checksum for simic):", false);
    failed |= verified.different != 0 || verified.crashed != 0;
  }
  std::filesystem::remove_all(dir);
  return failed ? 1 : 0;
}
