// Fuzz target: simic-report's reader and page (tools/report/report.hpp),
// which read an events file that may be anyone's. Each input is one file:
// it either parses, and then renders, or throws report::error with one
// bounded line. Any other exception, a crash, a stack overflow (deep
// nesting), a message of more than one line or longer than 2,000 bytes, a
// page whose data block is broken out of, or more markers drawn than the
// bounds allow is a finding.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "report.hpp"

namespace {

std::size_t count_of(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (auto p = s.find(part); p != std::string::npos; p = s.find(part, p + 1)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace rep = simic::report;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  rep::options o;
  o.max_points = 16;
  o.max_anomalies = 3;
  try {
    const rep::run r = rep::parse(in, "fuzz.jsonl", o);
    if (r.anomalies.size() > o.max_anomalies * (r.kinds.size() + 1)) std::abort();  // drawn past the bound
    if (r.rollbacks.size() > o.max_anomalies || r.kinds.size() > rep::max_kinds) std::abort();
    if (r.unknown.size() > rep::max_unknown_names) std::abort();
    const std::string page = rep::render_html(r, o);
    if (count_of(page, "</script>") != 2) std::abort();  // a value broke out of the data block
  } catch (const rep::error& e) {
    const std::string what = e.what();
    if (what.find('\n') != std::string::npos || what.size() > 2000) std::abort();
  }
  return 0;
}
