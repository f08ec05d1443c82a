#include "data_parallel.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>

#include <sys/wait.h>
#include <unistd.h>

#ifdef USE_C10D_GLOO
#include "simic/distributed/gloo_group.hpp"
#endif

namespace ppo_lstm {

namespace {
[[noreturn]] void refuse_without_gloo() {
  throw std::invalid_argument("--ranks: this build has no Gloo (LibTorch's c10d with Gloo, libgloo-dev's headers)");
}
}  // namespace

#ifdef USE_C10D_GLOO
namespace {
constexpr bool have_gloo = true;
std::uint16_t launch_port() { return simic::distributed::free_local_port(); }
}  // namespace

std::unique_ptr<data_parallel> join_job(const run_options& o) {
  if (!o.parallel.member()) return nullptr;
  auto dp = std::make_unique<data_parallel>();
  dp->group = simic::distributed::gloo_group({.port = o.parallel.master_port,
                                              .rank = o.parallel.rank,
                                              .ranks = o.parallel.ranks,
                                              .timeout = std::chrono::seconds(o.parallel.timeout_s)});
  dp->agreement = std::make_shared<simic::distributed::agreement>(dp->group);
  dp->all_reduce = std::make_unique<simic::distributed::gradient_all_reduce>(dp->group, dp->agreement);
  return dp;
}
#else
namespace {
constexpr bool have_gloo = false;
std::uint16_t launch_port() { return 0; }
}  // namespace

std::unique_ptr<data_parallel> join_job(const run_options& o) {
  if (!o.parallel.member()) return nullptr;
  refuse_without_gloo();
}
#endif

namespace {
volatile std::sig_atomic_t forward_signal = 0;
extern "C" void note_signal(int sig) { forward_signal = sig; }
}  // namespace

int launch_job(const std::string& self, const std::vector<std::string>& args, int ranks, unsigned timeout_s) {
  if (!have_gloo) refuse_without_gloo();
  const std::string port = std::to_string(launch_port());
  // SIGTERM goes to the launcher alone: it is passed on. SIGINT from a
  // terminal reaches every rank by itself: the launcher only waits.
  struct sigaction on_term {}, old_term{}, ignore{}, old_int{};
  on_term.sa_handler = note_signal;
  sigemptyset(&on_term.sa_mask);
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGTERM, &on_term, &old_term);
  ::sigaction(SIGINT, &ignore, &old_int);
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    std::vector<std::string> a{self};
    a.insert(a.end(), args.begin(), args.end());
    a.insert(a.end(), {"--rank", std::to_string(r), "--master-port", port});
    const pid_t p = ::fork();
    if (p == 0) {
      ::sigaction(SIGTERM, &old_term, nullptr);
      ::signal(SIGINT, SIG_DFL);
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "%s: cannot start rank %d: %s\n", self.c_str(), r, std::strerror(errno));
      ::_exit(127);
    }
    if (p < 0) {
      for (pid_t q : pids) ::kill(q, SIGTERM);
      throw std::runtime_error("cannot start rank " + std::to_string(r) + ": " + std::strerror(errno));
    }
    pids.push_back(p);
  }
  std::vector<int> codes(pids.size(), -1);
  bool failed = false;  // a rank failed, could not start or was killed
  // Once a rank failed, the others fail by themselves within the timeout
  // (their next collective); one that does not (hung) is killed after it.
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  std::size_t left = pids.size();
  while (left > 0) {
    if (failed && !kill_at) kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s + 5);
    int status = 0;
    const pid_t p = ::waitpid(-1, &status, kill_at ? WNOHANG : 0);
    if (p == 0) {  // polling after a failure
      if (std::chrono::steady_clock::now() >= *kill_at) {
        for (std::size_t r = 0; r < pids.size(); ++r)
          if (codes[r] < 0) {
            std::fprintf(stderr, "%s: rank %zu did not stop %u s after the job failed: killed\n", self.c_str(), r,
                         timeout_s + 5);
            ::kill(pids[r], SIGKILL);
          }
        kill_at = std::chrono::steady_clock::time_point::max();
      }
      ::usleep(20'000);
      continue;
    }
    if (p < 0) {
      if (errno != EINTR) break;
      if (const int sig = forward_signal) {
        forward_signal = 0;
        for (std::size_t r = 0; r < pids.size(); ++r)
          if (codes[r] < 0) ::kill(pids[r], sig);
      }
      continue;
    }
    for (std::size_t r = 0; r < pids.size(); ++r) {
      if (pids[r] != p) continue;
      --left;
      if (WIFSIGNALED(status)) {
        codes[r] = 128 + WTERMSIG(status);
        failed = true;
        std::fprintf(stderr, "%s: rank %zu was killed by signal %d\n", self.c_str(), r, WTERMSIG(status));
      } else {
        codes[r] = WEXITSTATUS(status);
        if (codes[r] == 1 || codes[r] == 127) {
          failed = true;
          std::fprintf(stderr, "%s: rank %zu failed (exit code %d)\n", self.c_str(), r, codes[r]);
        }
      }
    }
  }
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  if (failed || left > 0) return 1;
  for (int c : codes)
    if (c != 0) return c;
  return 0;
}

}  // namespace ppo_lstm
