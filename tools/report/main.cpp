// simic-report RUN.jsonl -o REPORT.html [--title T] [--max-points N] [--max-anomalies N]:
// one self-contained HTML page of a run's events (docs/report.md).
// Exit status: 0 written, 2 usage error or bad input (one line on stderr).
#include <charconv>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "report.hpp"

namespace {

constexpr const char* usage =
    "usage: simic-report RUN.jsonl -o REPORT.html [--title TITLE] [--max-points N] [--max-anomalies N]\n"
    "  RUN.jsonl            a run's events (one JSON object per line, docs/events.md)\n"
    "  -o, --output PATH    the HTML page to write (self-contained: no network fetch)\n"
    "  --title TITLE        the page's title (default: from the run_id)\n"
    "  --max-points N       points per drawn series after min-max decimation, 4 to 1000000 (default 2000)\n"
    "  --max-anomalies N    anomaly markers drawn per kind (and 20 times N in all), and rollbacks drawn,\n"
    "                       1 to 1000000 (default 200); every line is counted on the page\n"
    "  -h, --help           this text\n";

int usage_error(const std::string& what) {
  std::fprintf(stderr, "simic-report: %s\n%s", what.c_str(), usage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string in, out;
  simic::report::options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "-h" || a == "--help") {
      std::fputs(usage, stdout);
      return 0;
    } else if (a == "-o" || a == "--output") {
      const char* v = value();
      if (!v || !*v) return usage_error(std::string(a) + ": needs the output path");
      out = v;
    } else if (a == "--title") {
      const char* v = value();
      if (!v) return usage_error("--title: needs a title");
      o.title = v;
    } else if (a == "--max-points") {
      const char* v = value();
      const std::string_view s = v ? v : "";
      unsigned long long n = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (!v || ec != std::errc{} || end != s.data() + s.size() || n < 4 || n > 1000000)
        return usage_error("--max-points: '" + std::string(s) + "' is not an integer from 4 to 1000000");
      o.max_points = static_cast<std::size_t>(n);
    } else if (a == "--max-anomalies") {
      const char* v = value();
      const std::string_view s = v ? v : "";
      unsigned long long n = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (!v || ec != std::errc{} || end != s.data() + s.size() || n < 1 || n > 1000000)
        return usage_error("--max-anomalies: '" + std::string(s) + "' is not an integer from 1 to 1000000");
      o.max_anomalies = static_cast<std::size_t>(n);
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error("unknown option '" + std::string(a) + "'");
    } else if (in.empty()) {
      in = a;
    } else {
      return usage_error("one input file only; got '" + in + "' and '" + std::string(a) + "'");
    }
  }
  if (in.empty()) return usage_error("no input file (RUN.jsonl)");
  if (out.empty()) return usage_error("no output file (-o REPORT.html)");
  try {
    simic::report::write_report(in, out, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "simic-report: %s\n", e.what());
    return 2;
  }
  return 0;
}
