// Runs a body in a forked child whose files may not grow past a size
// (RLIMIT_FSIZE, SIGXFSZ ignored), so that write(2) stops part way and then
// fails with EFBIG, as on a full disk, without touching the test process.
#pragma once

#include <csignal>
#include <cstdint>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace simic::test {

// The child's exit code: the body's return value, 10 if the limit could not
// be set, 13 if the body threw; -1 if the child did not exit normally.
template <class Body>
int exit_code_with_file_size_limit(std::uint64_t bytes, Body body) {
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{.rlim_cur = bytes, .rlim_max = RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(10);
    int code = 13;
    try {
      code = body();
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

}  // namespace simic::test
