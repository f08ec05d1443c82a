// bench/common: the forked worker pool of the benches that run the example
// trainers (bench/detection, bench/recovery). LibTorch's seed and thread
// settings are process-wide, so each run has a process of its own; it sends
// its result back through a pipe as text.
#pragma once

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// Runs `run(i)` for every i in [0, count) in up to `jobs` forked workers at
// once and returns the results in the order of i. Each worker writes
// `encode(result)` to its pipe and exits; the parent reads whichever worker
// writes first, whole (a result may exceed a pipe's buffer), then reaps it.
// A run that throws, a worker that fails and a result that `decode` refuses
// each give a Result whose `error` says so. `finished(i, n, result)` is
// called as each run ends, n of them so far (the progress lines).
template <class Result>
std::vector<Result> run_forked(std::size_t count, int jobs, const std::function<Result(std::size_t)>& run,
                               const std::function<std::string(const Result&)>& encode,
                               const std::function<Result(const std::string&)>& decode,
                               const std::function<void(std::size_t, std::size_t, const Result&)>& finished) {
  struct worker {
    pid_t pid;
    int fd;
    std::size_t index;
  };
  std::vector<Result> results(count);
  std::vector<worker> running;
  std::size_t next = 0, done = 0;
  while (done < count) {
    while (next < count && static_cast<int>(running.size()) < jobs) {
      int fds[2];
      if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
      std::fflush(nullptr);
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
      if (pid == 0) {
        close(fds[0]);
        std::string text;
        try {
          text = encode(run(next));
        } catch (const std::exception& e) {
          Result r;
          r.error = e.what();
          text = encode(r);
        }
        std::size_t off = 0;
        while (off < text.size()) {
          const ssize_t n = write(fds[1], text.data() + off, text.size() - off);
          if (n <= 0) _exit(3);
          off += static_cast<std::size_t>(n);
        }
        close(fds[1]);
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], next});
      ++next;
    }
    // The first worker with something to read (or that exited: end of file).
    std::vector<pollfd> fds;
    for (const worker& w : running) fds.push_back({w.fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    std::size_t k = 0;
    while (fds[k].revents == 0) ++k;
    const worker w = running[k];
    running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = read(w.fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    close(w.fd);
    int status = 0;
    if (waitpid(w.pid, &status, 0) < 0) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
    Result& r = results[w.index];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) {
      r.error = "worker failed (status " + std::to_string(status) + ")";
    } else {
      try {
        r = decode(out);
      } catch (const std::exception& e) {
        r = Result{};
        r.error = std::string("unreadable result: ") + e.what();
      }
    }
    ++done;
    finished(w.index, done, r);
  }
  return results;
}

}  // namespace bench
