// simic-report RUN.jsonl -o REPORT.html [--title T] [--max-points N] [--max-anomalies N] [--band-gap N]:
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
    "usage: simic-report RUN.jsonl -o REPORT.html [--title TITLE] [--max-points N] [--max-anomalies N] [--band-gap N]\n"
    "  RUN.jsonl            a run's events (one JSON object per line, docs/events.md)\n"
    "  -o, --output PATH    the HTML page to write (self-contained: no network fetch)\n"
    "  --title TITLE        the page's title (default: from the run_id)\n"
    "  --max-points N       points per drawn series after min-max decimation, 4 to 1000000 (default 2000)\n"
    "  --max-anomalies N    anomaly markers drawn per kind (onsets first; 20 times N in all), rollbacks and\n"
    "                       skipped-step lines drawn, 1 to 1000000 (default 200); every line is counted\n"
    "  --band-gap N         anomalies of one kind (and skipped steps) at most N updates apart are one band,\n"
    "                       0 to 1000000000 (default 1); past 500 bands a kind doubles its gap\n"
    "  -h, --help           this text\n";

// An argument as a message quotes it: at most 60 bytes, with its length.
std::string shown_arg(std::string_view s) {
  return s.size() <= 60 ? std::string(s) : std::string(s.substr(0, 60)) + "... (" + std::to_string(s.size()) + " bytes)";
}

// An unsigned integer argument within [lo, hi], or nothing.
bool integer_in(const char* v, unsigned long long lo, unsigned long long hi, unsigned long long& n) {
  const std::string_view s = v ? v : "";
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  return v && ec == std::errc{} && end == s.data() + s.size() && n >= lo && n <= hi;
}

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
      unsigned long long n = 0;
      if (!integer_in(v, 4, 1000000, n))
        return usage_error("--max-points: '" + shown_arg(v ? v : "") + "' is not an integer from 4 to 1000000");
      o.max_points = static_cast<std::size_t>(n);
    } else if (a == "--max-anomalies") {
      const char* v = value();
      unsigned long long n = 0;
      if (!integer_in(v, 1, 1000000, n))
        return usage_error("--max-anomalies: '" + shown_arg(v ? v : "") + "' is not an integer from 1 to 1000000");
      o.max_anomalies = static_cast<std::size_t>(n);
    } else if (a == "--band-gap") {
      const char* v = value();
      unsigned long long n = 0;
      if (!integer_in(v, 0, simic::report::max_band_gap, n))
        return usage_error("--band-gap: '" + shown_arg(v ? v : "") + "' is not an integer from 0 to 1000000000");
      o.band_gap = n;
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error("unknown option '" + shown_arg(a) + "'");
    } else if (in.empty()) {
      in = a;
    } else {
      return usage_error("one input file only; got '" + shown_arg(in) + "' and '" + shown_arg(a) + "'");
    }
  }
  if (in.empty()) return usage_error("no input file (RUN.jsonl)");
  if (out.empty()) return usage_error("no output file (-o REPORT.html)");
  try {
    simic::report::write_report(in, out, o);
  } catch (const simic::report::error& e) {
    std::fprintf(stderr, "simic-report: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {  // not foreseen (out of memory): still one line naming the input
    std::fprintf(stderr, "simic-report: %s: %s\n", simic::report::detail::printable(in).c_str(),
                 simic::report::detail::bounded(e.what()).c_str());
    return 2;
  }
  return 0;
}
