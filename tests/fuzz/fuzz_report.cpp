// Fuzz target: simic-report's reader and page (tools/report/report.hpp),
// which read an events file that may be anyone's. Each input is one file:
// it either parses, and then renders, or throws report::error with one
// bounded line, "fuzz.jsonl:LINE: message" or "fuzz.jsonl: message" (no
// line applies), the message at most max_message bytes. Any other
// exception, a crash, a stack overflow (deep nesting), another message
// shape, a page whose data block is broken out of, more markers, skip lines
// or bands drawn than the bounds allow, or counts the bands do not add up
// to is a finding.
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

// "fuzz.jsonl:N: m" or "fuzz.jsonl: m", one line, m at most max_message bytes.
bool well_formed(const std::string& what) {
  const std::string name = "fuzz.jsonl";
  if (what.rfind(name, 0) != 0 || what.find('\n') != std::string::npos) return false;
  std::size_t at = name.size();
  if (what.compare(at, 1, ":") != 0) return false;
  ++at;
  const std::size_t digits = what.find_first_not_of("0123456789", at);
  if (digits == std::string::npos) return false;
  if (digits > at) {  // a line number, then ": "
    if (what[at] == '0' || what.compare(digits, 1, ":") != 0) return false;
    at = digits + 1;
  }
  if (what.compare(at, 1, " ") != 0) return false;
  return what.size() - at - 1 <= simic::report::max_message;
}

bool bands_hold(const simic::report::banding& b, std::uint64_t lines, std::size_t drawn) {
  std::size_t d = 0;
  for (const auto& x : b.bands) d += x.drawn;
  return b.bands.size() <= simic::report::max_bands && b.lines() == lines && d == drawn;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace rep = simic::report;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  rep::options o;
  o.max_points = 16;
  o.max_anomalies = 3;
  o.band_gap = size % 3;  // 0, 1 or 2: the gaps' edges from the input
  try {
    const rep::run r = rep::parse(in, "fuzz.jsonl", o);
    if (r.anomalies.size() > o.max_anomalies * (r.kinds.size() + 1)) std::abort();  // drawn past the bound
    if (r.rollbacks.size() > o.max_anomalies || r.kinds.size() > rep::max_kinds) std::abort();
    if (r.unknown.size() > rep::max_unknown_names) std::abort();
    if (r.skips.size() > o.max_anomalies || r.skips.size() > r.skip_steps) std::abort();
    if (!bands_hold(r.skip_bands, r.skip_steps, r.skips.size())) std::abort();  // a skip outside every band
    for (const auto& k : r.kinds) {
      if (!bands_hold(k.bands, k.total(), k.drawn) || k.onsets > k.total() || k.onsets_drawn > k.drawn) std::abort();
      if (k.onsets_drawn < std::min<std::uint64_t>(k.onsets, k.drawn)) std::abort();  // a repeat drawn before an onset
    }
    if (!bands_hold(r.other_kinds.bands, r.other_kinds.total(), r.other_kinds.drawn)) std::abort();
    if (r.escalations.size() > rep::max_escalations) std::abort();
    const std::string page = rep::render_html(r, o);
    if (count_of(page, "</script>") != 2) std::abort();  // a value broke out of the data block
  } catch (const rep::error& e) {
    if (!well_formed(e.what())) std::abort();
  }
  return 0;
}
