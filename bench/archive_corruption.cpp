// Random corruptions of a saved default_monitor archive, each loaded in a
// forked child so that a crash is counted, not fatal. Every corruption is
// loaded twice: through simic's verified path (verify_zip, then LibTorch,
// then version + checksum) and through LibTorch's loader alone (version +
// checksum still checked), to show what the zip verification adds.
//
//   archive_corruption [--count N] [--seed S]     (defaults 10000, 1)
//   archive_corruption --seed S --case I           (run case I here, no fork)
//
// Prints threw / identical / different / crashed per path; exits 1 if the
// verified path ever loads a different state or crashes.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>

#include "simic/presets/ppo.hpp"
#include "simic/archive/torch_archive.hpp"
#include "support/archive_corruption.hpp"

namespace {

simic::default_monitor seasoned() {
  simic::default_monitor m;
  for (std::uint64_t u = 0; u < 40; ++u) {
    m.check(simic::test::history_signals(u));
    if (u % 8 == 7) m.tick();
  }
  return m;
}

struct tally {
  std::size_t threw = 0, identical = 0, different = 0, crashed = 0;
  void print(const char* what) const {
    std::printf("%-34s threw %6zu  identical %6zu  different %4zu  crashed %4zu\n", what, threw, identical, different,
                crashed);
  }
};

// Runs outcome(i) for i in [0, n) in forked children, one byte per outcome
// through a pipe: a child that dies on a signal marks case i as crashed, and
// a fresh child goes on from i + 1 (a fork per case would be slower than the
// loads themselves).
template <class F>
tally run_forked(const char* path, std::size_t n, F&& outcome) {
  tally t;
  std::size_t next = 0;
  while (next < n) {
    int fd[2];
    if (pipe(fd) != 0) std::abort();
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      // A corrupted size can make LibTorch's loader allocate without bound;
      // a 4 GiB address-space cap turns that into an exception here instead
      // of the machine's OOM killer.
      const rlimit cap{4ull << 30, 4ull << 30};
      setrlimit(RLIMIT_AS, &cap);
      for (std::size_t i = next; i < n; ++i) {
        const auto b = static_cast<unsigned char>(outcome(i));
        if (write(fd[1], &b, 1) != 1) _exit(3);
      }
      _exit(0);
    }
    close(fd[1]);
    unsigned char b = 0;
    while (read(fd[0], &b, 1) == 1) {
      switch (static_cast<simic::test::load_outcome>(b)) {
        case simic::test::load_outcome::threw: ++t.threw; break;
        case simic::test::load_outcome::identical: ++t.identical; break;
        default: ++t.different; break;
      }
      ++next;
    }
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (next < n) {  // the child ended early: case `next` crashed it
      ++t.crashed;
      std::printf("  %s: crash (%s) on case %zu\n", path,
                  WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exit", next);
      ++next;
    }
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t count = 10000;
  std::uint64_t seed = 1;
  std::size_t only = SIZE_MAX;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--count")) count = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--case")) only = std::strtoull(argv[i + 1], nullptr, 10);
  }
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

  std::mt19937_64 rng(seed);
  std::vector<simic::test::corruption> cases;
  for (std::size_t i = 0; i < count; ++i) cases.push_back(simic::test::random_corruption(rng, good.size()));
  if (only != SIZE_MAX) {  // one case in this process, to reproduce it
    std::printf("case %zu: %s\n", only, cases[only].describe().c_str());
    std::printf("verified: %d\n", static_cast<int>(simic::test::verified_load_outcome(cases[only].apply(good), m, before, saved_state)));
    std::printf("unverified: %d\n", static_cast<int>(simic::test::unverified_load_outcome(cases[only].apply(good), m, before, saved_state)));
    return 0;
  }
  const tally verified = run_forked("verified", count, [&](std::size_t i) {
    return simic::test::verified_load_outcome(cases[i].apply(good), m, before, saved_state);
  });
  const tally unverified = run_forked("unverified", count, [&](std::size_t i) {
    return simic::test::unverified_load_outcome(cases[i].apply(good), m, before, saved_state);
  });
  std::printf("%zu random corruptions (seed %llu: bit flips, truncations, zeroed 1-64 byte ranges) of a %zu-byte archive\n",
              count, static_cast<unsigned long long>(seed), good.size());
  verified.print("verified (load_file path):");
  unverified.print("LibTorch loader + checksum only:");
  return verified.different == 0 && verified.crashed == 0 ? 0 : 1;
}
