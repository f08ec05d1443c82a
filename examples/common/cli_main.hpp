// The steps of an example trainer's main(): parse the command line (a usage
// error or --help ends the process), run, and turn what escaped into one line
// on stderr and an exit code (exit_codes.hpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "exit_codes.hpp"
#include "simic/core/signal_guard.hpp"

namespace examples_common {

// Parses `args` with `parse` into `out`. Returns the process's exit code when
// it is done already: a bad command line ("PROG: error: WHAT" and the usage on
// stderr, exit_usage) or --help (the usage on stdout, exit_ok); else none.
template <class Parsed, class Parse, class Usage>
std::optional<int> parse_or_exit(const std::string& prog, const std::vector<std::string>& args, Parse&& parse,
                                 Usage&& usage, Parsed& out) {
  try {
    out = parse(args);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: error: %s\n%s", prog.c_str(), e.what(), usage(prog).c_str());
    return exit_usage;
  }
  if (out.help) {
    std::fputs(usage(prog).c_str(), stdout);
    return exit_ok;
  }
  return std::nullopt;
}

// body()'s exit code; what it throws, as one line on stderr and an exit code:
// std::invalid_argument "PROG: error: WHAT" (exit_usage), std::bad_alloc
// "PROG: failed: out of memory" (exit_failed), any other std::exception
// "PROG: failed: WHAT" (exit_failed).
template <class Body>
int exit_code_of(const std::string& prog, Body&& body) {
  try {
    return body();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog.c_str(), e.what());
    return exit_usage;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: failed: out of memory\n", prog.c_str());
    return exit_failed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: failed: %s\n", prog.c_str(), e.what());
    return exit_failed;
  }
}

// After a run a signal stopped: "PROG: interrupted by SIGTERM after N UNITS;
// events flushed, exit code C" on stderr (none if `sig` is 0).
inline void report_interrupted(const std::string& prog, int sig, std::uint64_t done, const char* units,
                               int exit_code) {
  if (sig == 0) return;
  std::fprintf(stderr, "%s: interrupted by %s after %llu %s; events flushed, exit code %d\n", prog.c_str(),
               simic::signal_name(sig).c_str(), static_cast<unsigned long long>(done), units, exit_code);
}

}  // namespace examples_common
