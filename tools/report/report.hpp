// simic-report's logic: reads a run's events.jsonl (docs/events.md) and
// writes one self-contained HTML page (docs/report.md). Kept apart from
// main.cpp so that tests/tools can drive it without a process. Needs
// nlohmann-json only; no LibTorch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic::report {

// Every failure the command line reports as one line and exit status 2.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One drawn point. y is NaN/inf where the event wrote "nan"/"inf"/"-inf":
// kept, because a non-finite signal is what a reader of the report looks for.
struct point {
  double x = 0.0;
  double y = 0.0;
};

struct series {
  std::vector<point> points;
  std::size_t nonfinite = 0;
};

// What one line or one run may make the report hold and draw (docs/report.md,
// "Size and limits"): a hostile or runaway file costs bounded memory, a
// bounded page and no stack overflow. What is cut is counted and said.
inline constexpr std::size_t max_depth = 64;           // nesting of objects and arrays in one line
inline constexpr std::size_t max_message = 200;        // bytes of an error's message after "FILE:LINE: "
inline constexpr std::size_t max_echo = 60;            // bytes of a bad value quoted in an error (so the message fits)
inline constexpr std::size_t max_line = std::size_t{64} << 20;  // bytes of one line (64 MiB)
inline constexpr std::uint64_t max_values = 1000000;   // JSON values (commas and brackets) in one line
inline constexpr std::size_t max_text = 500;           // bytes kept of a free text (detail, reason, run_id, ...)
inline constexpr std::size_t max_name = 100;           // bytes kept of a name (kind, severity, cause, event, ...)
inline constexpr std::size_t markers_per_bound = 20;   // anomaly markers in all: 20 x options::max_anomalies
inline constexpr std::size_t max_kinds = 64;           // anomaly kinds counted and drawn apiece
inline constexpr std::size_t max_ranks = 32;           // origin_ranks kept per anomaly
inline constexpr std::size_t max_unknown_names = 100;  // unknown event names counted apiece
inline constexpr std::size_t max_bands = 500;          // bands per anomaly kind, and of skipped steps
inline constexpr std::uint64_t max_band_gap = 1000000000;  // options::band_gap's largest value
inline constexpr std::size_t max_escalations = 200;    // escalation periods drawn and listed (the first)

struct options {
  std::string title;              // empty: "simic run report: <run_id or file>"
  std::size_t max_points = 2000;  // per series, after decimation (>= 4)
  std::size_t max_anomalies = 200;  // anomaly markers drawn per kind (and 20 times that in all), rollbacks drawn (>= 1)
  // Consecutive anomaly lines of one kind (and skipped steps) at most this
  // many updates apart are one band (a run); 0 to max_band_gap. A kind that
  // would need more than max_bands bands doubles its gap until it fits.
  std::uint64_t band_gap = 1;
};

struct anomaly_mark {
  std::uint64_t update = 0;
  std::size_t line = 0;  // its line in the file
  std::string kind, severity, detail, level_after, chart;
  std::optional<double> value, threshold;
  std::vector<std::int64_t> origin_ranks;  // data-parallel: the ranks it came from (docs/distributed.md), at most max_ranks
  std::size_t rank_count = 0;              // origin_ranks' length in the file
  bool onset = false;  // the kind's first line, or its first after an anomaly_clear of the kind
};

// A run of lines of one kind (or of skipped steps): consecutive lines each
// at most the gap's number of updates from the run's range.
struct band {
  std::uint64_t first = 0, last = 0;          // the lowest and highest update of its lines
  // Its first and last line in the file; for skipped steps, their numbers
  // (1-based) in the order they were counted, which is not always line order.
  std::size_t first_line = 0, last_line = 0;
  std::uint64_t count = 0, onsets = 0;        // its lines, and the onsets among them
  std::size_t drawn = 0;                      // its lines drawn as markers (set once the file is read)
};

// Lines in file order cut into bands: a line within `gap` updates of the
// last band's range joins it, else opens a new one. Past `cap` bands the gap
// doubles (0 becomes 1) and neighbouring bands within it merge, until at
// most `cap` are left: bounded memory and page, and every line still lies
// in exactly one band. Bands are what a streaming pass at the final gap
// would have made (their inner gaps are all smaller).
struct banding {
  std::uint64_t gap = 1;
  std::size_t cap = max_bands;
  std::vector<band> bands;

  static bool near(std::uint64_t lo, std::uint64_t hi, std::uint64_t a, std::uint64_t b, std::uint64_t gap) {
    // [a, b] within gap of [lo, hi]; saturating, no overflow near 2^64.
    const bool left = a > hi && a - hi > gap, right = lo > b && lo - b > gap;
    return !left && !right;
  }
  void add(std::uint64_t u, std::size_t line, bool onset) {
    if (!bands.empty() && near(bands.back().first, bands.back().last, u, u, gap)) {
      band& b = bands.back();
      b.first = std::min(b.first, u), b.last = std::max(b.last, u), b.last_line = line;
      ++b.count, b.onsets += onset;
    } else {
      bands.push_back(band{u, u, line, line, 1, onset ? 1u : 0u, 0});
    }
    while (bands.size() > cap) coarsen();
  }
  void coarsen() {
    gap = gap == 0 ? 1 : gap > UINT64_MAX / 2 ? UINT64_MAX : gap * 2;
    std::size_t w = 0;
    for (std::size_t i = 1; i < bands.size(); ++i) {
      band& a = bands[w];
      const band& b = bands[i];
      if (near(a.first, a.last, b.first, b.last, gap)) {
        a.first = std::min(a.first, b.first), a.last = std::max(a.last, b.last), a.last_line = b.last_line;
        a.count += b.count, a.onsets += b.onsets;
      } else {
        bands[++w] = b;
      }
    }
    bands.resize(w + 1);
  }
  std::uint64_t lines() const {
    std::uint64_t n = 0;
    for (const band& b : bands) n += b.count;
    return n;
  }
};

// Anomaly lines of one kind: exact counts; `drawn` of them are in run::anomalies.
struct kind_count {
  std::string kind, chart;
  std::uint64_t warning = 0, critical = 0, other = 0;  // other: any other severity text, or none
  std::size_t drawn = 0;
  std::uint64_t onsets = 0;       // onset lines (exact); drawn first, each at its update
  std::size_t onsets_drawn = 0;   // of them drawn (all unless past the markers' bound)
  banding bands;                  // every line of the kind in its band
  std::uint64_t total() const { return warning + critical + other; }
};

// A rollback (docs/events.md): the trainer restored the snapshot taken at
// restored_update and skips the data window [window_first, window_last).
// Absent fields are empty / nullopt.
struct rollback_mark {
  std::uint64_t update = 0;  // the update at which it happened
  std::size_t line = 0;
  std::string reason, cause, attribution, replay_error, snapshot_file, skipped_files;
  std::optional<std::uint64_t> onset_update, restored_update, window_first, window_last, rollbacks;
  std::optional<double> lr_factor, lr_scale;
  std::optional<bool> margin_met;  // the snapshot at least the recovery's margin of checks before the onset
};

struct snapshot_stats {
  std::uint64_t lines = 0;                          // snapshot lines
  std::optional<std::uint64_t> held, held_bytes;    // the last line's
  std::optional<std::uint64_t> file_failures;       // the last line's: snapshot files that failed, so far
  std::string file;                                 // the last line's, where given
};

// An escalation period, in updates; open: no escalation_end before the file ended.
struct period {
  std::uint64_t from = 0, to = 0;
  bool open = false;
  std::string levels, reason;
};

// A skipped optimizer step or the stop, at the step's x.
struct step_mark {
  std::uint64_t update = 0;
  double x = 0.0;
  std::string reason;
  std::size_t line = 0;  // the line that made it (the later of the two for one step)
  std::size_t seq = 0;   // a skipped step's number among the file's, as counted (its band's first_line..last_line)
};

// Distinct update numbers as disjoint ranges: a run's consecutive updates
// cost one range, not a node each (1,000,000 updates held 48 MB).
class update_set {
 public:
  void insert(std::uint64_t u) {
    if (!ranges_.empty()) {  // the common case: in the last range, or just past it
      auto& [a, b] = *std::prev(ranges_.end());
      if (u >= a && u <= b) return;
      if (b != UINT64_MAX && u == b + 1) {
        b = u, ++size_;
        return;
      }
    }
    auto it = ranges_.upper_bound(u);  // the first range starting after u
    if (it != ranges_.begin()) {
      auto prev = std::prev(it);
      if (u <= prev->second) return;
      if (u == prev->second + 1) {
        prev->second = u, ++size_;
        if (it != ranges_.end() && it->first == u + 1) prev->second = it->second, ranges_.erase(it);
        return;
      }
    }
    if (it != ranges_.end() && it->first == u + 1) {
      const std::uint64_t b = it->second;
      ranges_.erase(it);
      ranges_.emplace(u, b), ++size_;
      return;
    }
    ranges_.emplace(u, u), ++size_;
  }
  std::uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::uint64_t min() const { return ranges_.begin()->first; }
  std::uint64_t max() const { return ranges_.rbegin()->second; }
  std::size_t ranges() const { return ranges_.size(); }

 private:
  std::map<std::uint64_t, std::uint64_t> ranges_;  // first -> last
  std::uint64_t size_ = 0;
};

struct hub_stats {
  bool present = false;  // false: the file has no hub_stats line (the hub never closed it)
  std::map<std::string, std::uint64_t> counts;  // emitted, delivered, written, dropped, failed, undelivered
};

// The events of the documented schema (docs/events.md); any other name is
// counted as unknown and otherwise ignored.
inline constexpr std::string_view known_events[] = {
    "update",         "gradient_health",         "lstm_health",      "anomaly",         "anomaly_clear",
    "escalation_start", "escalation_end",        "response",         "layer_gradients", "nan_inf_scan",
    "ratio_diagnostic", "memory",                "performance_degradation", "epoch_summary", "profiler_trace",
    "phase_timings",  "hub_stats",               "rollback",         "snapshot"};

struct run {
  std::string source;  // the file name, for the page and messages
  std::size_t lines = 0;
  std::map<std::string, std::size_t> events;   // documented names -> lines
  std::map<std::string, std::size_t> unknown;  // other names -> lines, the first max_unknown_names names
  std::size_t unknown_other = 0;               // lines of unknown names past those
  std::size_t texts_cut = 0;                   // text fields longer than max_text (names: max_name), cut
  bool partial_last_line = false;              // a last line without newline that is not JSON: ignored
  std::string run_id;
  update_set updates;  // distinct update numbers of every line
  std::optional<double> first_time, last_time;

  // The drawn signal figures by name (core/signals.hpp's descriptors with a
  // chart): per optimizer step those of the update and gradient_health
  // events (x = update - 1 + (k + 1) / n for the k-th of n steps), per update
  // the LSTM state's and the epoch's performance (x = update).
  std::map<std::string, series, std::less<>> figures;
  // A figure's series (empty when the file has none).
  const series& figure(std::string_view name) const {
    static const series none{};
    const auto it = figures.find(name);
    return it == figures.end() ? none : it->second;
  }

  // Anomalies: every line counted by kind and severity and kept in its
  // kind's bands; drawn, per kind, at most options::max_anomalies markers:
  // the onsets first (all of them up to the bound, else the first and an
  // even sample), an even random sample of the repeats in the room left;
  // in file order.
  std::vector<anomaly_mark> anomalies;
  std::uint64_t anomaly_lines = 0;
  std::vector<kind_count> kinds;  // the first max_kinds kinds, in order of first appearance
  kind_count other_kinds;         // the lines of further kinds (kind "(other kinds)"), drawn in grey
  std::map<std::string, std::uint64_t> anomalies_by_chart;  // lines per chart id
  std::size_t max_anomalies = 0;  // the bound they were read with
  std::uint64_t band_gap = 1;     // options::band_gap they were read with
  std::size_t max_markers() const {
    const std::size_t all = max_anomalies > SIZE_MAX / markers_per_bound ? SIZE_MAX : markers_per_bound * max_anomalies;
    return std::max(all, max_kinds + 1);
  }
  // Rollbacks: every line counted, at most options::max_anomalies kept and drawn.
  std::vector<rollback_mark> rollbacks;
  std::uint64_t rollback_lines = 0;
  snapshot_stats snapshots;
  std::vector<period> escalations;  // the first max_escalations
  std::uint64_t escalations_cut = 0;  // periods past them: counted
  std::vector<step_mark> skips;  // drawn: the first skipped step and an even sample, at most options::max_anomalies
  std::uint64_t skip_steps = 0;  // skipped steps (exact; the stop's step not among them)
  banding skip_bands;            // every skipped step in its band (by update)
  std::optional<step_mark> stop;
  std::uint64_t skip_responses = 0;  // response lines with action skip_step
  std::uint64_t skip_flags = 0;      // update lines with extra.skipped_step != 0
  hub_stats hub;

  // Drawn as bounds: the anomalies' thresholds where the file has them,
  // else the defaults (simic/core/thresholds.hpp).
  double ratio_upper = defaults::ratio_explosion, ratio_lower = defaults::ratio_collapse;
  double kl_spike = defaults::kl_spike, kl_extreme = defaults::kl_extreme;

  std::uint64_t first_update() const { return updates.empty() ? 0 : updates.min(); }
  std::uint64_t last_update() const { return updates.empty() ? 0 : updates.max(); }
};

// The chart an anomaly kind is marked on: the chart of the signal it judges,
// the performance chart for the rest (user kinds included).
inline std::string chart_for(std::string_view kind) {
  auto starts = [&](std::string_view p) { return kind.substr(0, p.size()) == p; };
  if (starts("kl_")) return "kl";
  if (starts("ratio_")) return "ratio";
  if (kind == "update_ratio_drift") return "update";
  if (starts("loss_") || kind == "learning_stall") return "loss";
  if (kind == "gradient_health_drift") return "health";
  if (starts("gradient_") || kind == "numerical_instability" || kind == "host_ratio_drift") return "gradient";
  if (starts("lstm_")) return "lstm";
  if (starts("entropy_") || kind == "value_collapse") return "policy";
  return "performance";
}

namespace detail {

// The length of s's first `limit` bytes or fewer, not splitting a UTF-8 character.
inline std::size_t utf8_floor(std::string_view s, std::size_t limit) {
  if (s.size() <= limit) return s.size();
  std::size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

// s cut to its first `limit` bytes, saying how long it was.
inline std::string cut(std::string s, std::size_t limit) {
  if (s.size() <= limit) return s;
  const std::size_t n = s.size();
  s.resize(utf8_floor(s, limit));
  return s + "... (" + std::to_string(n) + " bytes in all)";
}

// An error's message, bounded: at most max_message bytes (cut on a UTF-8
// boundary, "..." at the end), control characters as '?', so that it stays
// one short line whatever the input.
inline std::string bounded(std::string m) {
  for (char& c : m)
    if (static_cast<unsigned char>(c) < 0x20 || c == '\x7F') c = '?';
  if (m.size() > max_message) m = m.substr(0, utf8_floor(m, max_message - 3)) + "...";
  return m;
}

// The error for `where` ("FILE:LINE" or "FILE"): "where: message", the
// message bounded.
inline error bad(const std::string& where, std::string message) { return error(where + ": " + bounded(std::move(message))); }

// A file name as errors print it: control characters (a newline in a path)
// as '?', so that the error stays one line.
inline std::string printable(std::string name) {
  for (char& c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == '\x7F') c = '?';
  return name;
}

// Reads lines through the stream's buffer, at most `limit` bytes a line: a
// line without end (a killed writer's, /dev/zero) costs bounded memory.
class line_reader {
 public:
  enum result { end, line, unterminated, too_long };
  explicit line_reader(std::istream& in) : sb_(in.rdbuf()) {}
  // end: no more input; line: a line ended by '\n' (not kept); unterminated:
  // the last line, without '\n'; too_long: more than `limit` bytes without
  // '\n' (the rest is not read).
  result next(std::string& out, std::size_t limit) {
    out.clear();
    for (;;) {
      if (pos_ == end_ && !fill()) return out.empty() ? end : unterminated;
      const char* b = buf_.data() + pos_;
      const void* nl = std::memchr(b, '\n', end_ - pos_);
      const std::size_t n = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - b) : end_ - pos_;
      if (n > limit - out.size()) return too_long;
      out.append(b, n);
      pos_ += n;
      if (nl) {
        ++pos_;
        return line;
      }
    }
  }

 private:
  bool fill() {
    if (!sb_) return false;
    const std::streamsize got = sb_->sgetn(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    if (got <= 0) return false;
    pos_ = 0, end_ = static_cast<std::size_t>(got);
    return true;
  }
  std::streambuf* sb_;
  std::vector<char> buf_ = std::vector<char>(std::size_t{1} << 16);
  std::size_t pos_ = 0, end_ = 0;
};

// A value as an error message quotes it: its JSON, cut to max_echo bytes.
// Safe: a line nested deeper than max_depth never reaches dump().
inline std::string echo(const nlohmann::json& v) {
  return cut(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), max_echo);
}

// A line's shape before it is parsed: the byte (1-based) at which it opens
// its (max_depth + 1)-th nested object or array (0: within max_depth), and
// the byte at which its values (commas and opening brackets) pass
// max_values (0: within). Brackets and commas inside strings do not count.
// A scan without recursion: it runs before the parse, so that nothing
// recursive (dump, compare, copy) meets a deep value and the parse's memory
// is bounded (about 100 bytes a value).
struct shape {
  std::size_t deep_at = 0, wide_at = 0;
};
inline shape shape_of(std::string_view line) {
  std::size_t depth = 0;
  std::uint64_t values = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{' || c == ',') {
      if (++values > max_values) return {0, i + 1};
      if (c != ',' && ++depth > max_depth) return {i + 1, 0};
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return {};
}
inline std::size_t too_deep_at(std::string_view line) { return shape_of(line).deep_at; }

// A bounded, deterministic sample of a stream: the first item always, and
// an even random sample of the rest (reservoir sampling, a fixed seed), at
// most `cap` in all. Memory: cap items, however long the stream.
template <class T>
struct sample {
  std::size_t cap = 1;
  std::uint64_t seen = 0;
  std::vector<T> kept;
  std::uint64_t state = 0x5EED5EED5EED5EEDull;

  explicit sample(std::size_t c) : cap(c) {}
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  void add(T item) {
    ++seen;
    if (kept.size() < cap) {
      kept.push_back(std::move(item));
      return;
    }
    if (cap < 2) return;
    // The i-th item after the first replaces a slot of the cap - 1 with probability (cap - 1) / i.
    const std::uint64_t i = seen - 1, j = next() % i;
    if (j < cap - 1) kept[1 + j] = std::move(item);
  }
};

// A number field: a JSON number, or one of the strings the JSONL sink writes
// for non-finite values. Absent -> nullopt; anything else is an error.
inline std::optional<double> number(const nlohmann::json& j, const char* key, const std::string& where,
                                    const char* label = nullptr) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    if (s == "nan") return std::nan("");
    if (s == "inf") return HUGE_VAL;
    if (s == "-inf") return -HUGE_VAL;
  }
  throw bad(where, "field '" + std::string(label ? label : key) + "' is " + echo(*it) +
                       "; valid: a number, \"nan\", \"inf\" or \"-inf\"");
}

// An unsigned integer field. Absent or null -> nullopt; anything else is an error.
inline std::optional<std::uint64_t> count(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  throw bad(where, "field '" + std::string(key) + "' is " + echo(*it) + "; valid: an unsigned integer");
}

// A true/false field. Absent or null -> nullopt; anything else is an error.
inline std::optional<bool> flag(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_boolean()) return it->get<bool>();
  throw bad(where, "field '" + std::string(key) + "' is " + echo(*it) + "; valid: true or false");
}

// A string field, cut to `limit` bytes (++cut_count when cut). Absent or
// null -> empty; anything else is an error.
inline std::string string_field(const nlohmann::json& j, const char* key, const std::string& where,
                                std::size_t& cut_count, std::size_t limit = max_text) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) throw bad(where, "field '" + std::string(key) + "' is " + echo(*it) + "; valid: a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > limit) ++cut_count;
  return cut(s, limit);
}

// An array of integers (origin_ranks). Absent -> empty; anything else is an error.
// Keeps the first `keep` (all are checked); *length: the array's length.
inline std::vector<std::int64_t> integers(const nlohmann::json& j, const char* key, const std::string& where,
                                          std::size_t keep = static_cast<std::size_t>(-1),
                                          std::size_t* length = nullptr) {
  std::vector<std::int64_t> out;
  if (length) *length = 0;
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  bool ok = it->is_array();
  if (ok)
    for (const auto& x : *it) {
      if (!x.is_number_integer()) {
        ok = false;
        break;
      }
      if (out.size() < keep) out.push_back(x.get<std::int64_t>());
    }
  if (!ok) throw bad(where, "field '" + std::string(key) + "' is " + echo(*it) + "; valid: an array of integers");
  if (length) *length = it->size();
  return out;
}

// A text field: a string as it is, anything else as its JSON (bounded:
// the line is at most max_depth deep), cut to `limit` bytes (++cut_count
// when cut).
inline std::string text(const nlohmann::json& j, const char* key, std::size_t& cut_count,
                        std::size_t limit = max_text) {
  const auto it = j.find(key);
  if (it == j.end()) return {};
  std::string s = it->is_string() ? it->get<std::string>()
                                  : it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > limit) ++cut_count;
  return cut(std::move(s), limit);
}

// Lines of one event per update (its optimizer steps): a sorted vector that
// a run's updates, coming in order, extend at its end (16 bytes an update),
// and a map for the updates that come out of order (a trainer renumbering
// after a rollback). One for all the figures of an event: a map per figure
// took 9 x 48 bytes an update.
struct step_counts {
  std::vector<std::pair<std::uint64_t, std::size_t>> in_order;
  std::map<std::uint64_t, std::size_t> out_of_order;

  // This line's index among its update's lines (k), counting it.
  std::size_t add(std::uint64_t u) {
    if (in_order.empty() || in_order.back().first < u) {
      if (out_of_order.empty() || out_of_order.find(u) == out_of_order.end()) {
        in_order.emplace_back(u, 1);
        return 0;
      }
    } else if (in_order.back().first == u) {
      return in_order.back().second++;
    } else if (const auto it = std::lower_bound(in_order.begin(), in_order.end(), std::pair<std::uint64_t, std::size_t>{u, 0});
               it != in_order.end() && it->first == u) {
      return it->second++;
    }
    return out_of_order[u]++;
  }
  // Lines of update u so far (0: none).
  std::size_t of(std::uint64_t u) const {
    const auto it = std::lower_bound(in_order.begin(), in_order.end(), std::pair<std::uint64_t, std::size_t>{u, 0});
    if (it != in_order.end() && it->first == u) return it->second;
    const auto o = out_of_order.find(u);
    return o == out_of_order.end() ? 0 : o->second;
  }
  double x_of(std::uint64_t u, std::size_t k) const {
    const std::size_t n = of(u);
    return static_cast<double>(u) - 1.0 + (static_cast<double>(k) + 1.0) / (n == 0 ? 1.0 : static_cast<double>(n));
  }
};

// A series whose x is placed once the number of steps of each update is known.
struct stepped {
  struct raw {
    std::uint64_t update;
    std::size_t index;  // k-th line of its event in its update
    double y;
  };
  std::vector<raw> items;

  void add(std::uint64_t u, std::size_t k, std::optional<double> y) {
    if (y) items.push_back({u, k, *y});
  }
  // Moves the points into s (the raw items freed: the peak holds one series twice, not all).
  void place_into(series& s, const step_counts& counts) {
    s.points.reserve(s.points.size() + items.size());
    for (const raw& r : items) {
      s.points.push_back({counts.x_of(r.update, r.index), r.y});
      if (!std::isfinite(r.y)) ++s.nonfinite;
    }
    items.clear();
    items.shrink_to_fit();
  }
};

inline void add_point(series& s, double x, std::optional<double> y) {
  if (!y) return;
  s.points.push_back({x, *y});
  if (!std::isfinite(*y)) ++s.nonfinite;
}

}  // namespace detail

namespace detail {

// Keeps n of v's items: the first `fixed` stay, the rest an even random
// choice among the others (a partial Fisher-Yates shuffle), in any order.
template <class T, class Next>
void choose(std::vector<T>& v, std::size_t n, std::size_t fixed, Next&& next) {
  if (v.size() <= n) return;
  for (std::size_t i = fixed; i < n; ++i) std::swap(v[i], v[i + next() % (v.size() - i)]);
  v.resize(n);
}

// One anomaly kind's drawing while the file is read: its onsets and its
// repeats each in a bounded sample (the onsets' sample holds them all up to
// the bound), whether its condition is open (an onset not yet cleared).
struct kind_state {
  sample<anomaly_mark> onsets, repeats;
  bool open = false;
  explicit kind_state(std::size_t cap) : onsets(cap), repeats(cap) { repeats.state ^= 0xA5A5A5A5ull; }
};

}  // namespace detail

// Reads events from `in`; `name` names the source in errors
// ("NAME:LINE: message", the message at most max_message bytes). Throws
// report::error on a line that is not a JSON object with a string "event"
// and an unsigned "update", on a line longer than max_line, nested deeper
// than max_depth or holding more than max_values values, on a number beyond
// a double's range, on a read field of the wrong type, and when there is no
// event at all. Holds one line at a time: memory grows with the drawn
// series (steps and updates), not with anomaly, rollback or skip lines
// (options::max_anomalies, max_bands).
inline run parse(std::istream& in, const std::string& name, const options& o = {}) {
  if (o.max_anomalies < 1)
    throw error("max_anomalies = " + std::to_string(o.max_anomalies) + "; valid: 1 or more");
  if (o.band_gap > max_band_gap)
    throw error("band_gap = " + std::to_string(o.band_gap) + "; valid: 0 to " + std::to_string(max_band_gap));
  run r;
  r.source = name;
  r.max_anomalies = o.max_anomalies;
  r.band_gap = o.band_gap;
  r.other_kinds.kind = "(other kinds)";
  r.other_kinds.chart = "performance";
  r.other_kinds.bands.gap = r.skip_bands.gap = o.band_gap;
  const std::string label = detail::printable(name);  // in errors
  // Figures drawn per optimizer step, and the steps of each update: of the
  // update lines (which place the skips and the stop too) and of the
  // gradient_health lines.
  std::map<std::string, detail::stepped, std::less<>> per_step, per_health;
  detail::step_counts steps, health_steps;
  // Skipped steps of the current step's lines, keyed by (update, step): the
  // flagged update line and its response are one step. Counted, banded and
  // sampled when the next update line begins another step.
  using step_key = std::pair<std::uint64_t, std::size_t>;
  std::map<step_key, step_mark> pending_skips;
  detail::sample<step_mark> skip_sample(o.max_anomalies);
  std::optional<step_key> stop_key;
  std::optional<period> open;
  std::string reason_stop;
  bool bounds_seen[4] = {false, false, false, false};
  std::map<std::string, std::size_t, std::less<>> kind_at;  // kind -> index into r.kinds
  std::vector<detail::kind_state> kind_states;
  detail::kind_state other_state(o.max_anomalies);
  detail::sample<rollback_mark> rollback_sample(o.max_anomalies);
  auto text = [&](const nlohmann::json& j, const char* key, std::size_t limit = max_text) {
    return detail::text(j, key, r.texts_cut, limit);
  };
  auto flush_skips = [&] {
    for (auto& [key, m] : pending_skips) {
      if (stop_key && *stop_key == key) continue;  // the stopping step is drawn as the stop
      m.seq = static_cast<std::size_t>(++r.skip_steps);
      r.skip_bands.add(key.first, m.seq, false);
      m.x = static_cast<double>(key.second);  // the step's index until the updates' step counts are known
      skip_sample.add(std::move(m));
    }
    pending_skips.clear();
  };

  detail::line_reader reader(in);
  std::string line;
  std::size_t lineno = 0;
  for (;;) {
    const auto got = reader.next(line, max_line);
    if (got == detail::line_reader::end) break;
    ++lineno;
    const std::string where = label + ":" + std::to_string(lineno);
    if (got == detail::line_reader::too_long)
      throw detail::bad(where, "a line longer than " + std::to_string(max_line) + " bytes; valid: at most " +
                                   std::to_string(max_line) + " bytes a line (one event)");
    const bool has_newline = got == detail::line_reader::line;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank: no event, nothing to draw
    if (const detail::shape sh = detail::shape_of(line); sh.deep_at)
      throw detail::bad(where, "nested deeper than " + std::to_string(max_depth) + " levels (at byte " +
                                   std::to_string(sh.deep_at) + "); valid: at most " + std::to_string(max_depth) +
                                   " levels of objects and arrays");
    else if (sh.wide_at)
      throw detail::bad(where, "more than " + std::to_string(max_values) + " values (at byte " +
                                   std::to_string(sh.wide_at) + "); valid: at most " + std::to_string(max_values) +
                                   " values (commas and brackets) a line");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      // A killed writer leaves a partial last line without its newline
      // (docs/events.md): the events before it are still a report.
      if (!has_newline) {
        r.partial_last_line = true;
        break;
      }
      throw detail::bad(where, "not valid JSON (at byte " + std::to_string(e.byte) + ")");
    } catch (const nlohmann::json::out_of_range& e) {
      // 406: a number beyond a double's range, as 1e400. The message quotes
      // the number, which may be long.
      const std::string_view w = e.what();
      const auto a = w.find('\''), b = w.rfind('\'');
      if (e.id != 406 || a == std::string_view::npos || b <= a) throw detail::bad(where, e.what());
      throw detail::bad(where, "a number out of range: " + detail::cut(std::string(w.substr(a + 1, b - a - 1)), max_echo) +
                                   "; valid: within a double's range (about 1.8e308), \"inf\" or \"-inf\"");
    } catch (const nlohmann::json::exception& e) {
      throw detail::bad(where, e.what());
    }
    if (line.capacity() > (std::size_t{1} << 20)) {  // a long line's buffer is not kept for the rest of the file
      line.clear();
      line.shrink_to_fit();
    }
    try {
      if (!j.is_object()) throw detail::bad(where, "not a JSON object; valid: one event object per line");
      const auto ev_it = j.find("event");
      if (ev_it == j.end() || !ev_it->is_string()) throw detail::bad(where, "no string field 'event'");
      const auto up_it = j.find("update");
      if (up_it == j.end() || !up_it->is_number_unsigned())
        throw detail::bad(where, "field 'update' is missing or not an unsigned integer");
      const auto& ev_full = ev_it->get_ref<const std::string&>();
      if (ev_full.size() > max_name) ++r.texts_cut;
      const std::string ev_name = detail::cut(ev_full, max_name);
      const std::uint64_t u = up_it->get<std::uint64_t>();
      ++r.lines;

      const bool known = std::find(std::begin(known_events), std::end(known_events), ev_name) != std::end(known_events);
      if (!known) {
        if (const auto it = r.unknown.find(ev_name); it != r.unknown.end()) ++it->second;
        else if (r.unknown.size() < max_unknown_names) r.unknown.emplace(ev_name, 1);
        else ++r.unknown_other;
        continue;
      }
      ++r.events[ev_name];
      r.updates.insert(u);
      if (const auto t = detail::number(j, "time", where); t && std::isfinite(*t)) {
        r.first_time = r.first_time ? std::min(*r.first_time, *t) : *t;
        r.last_time = r.last_time ? std::max(*r.last_time, *t) : *t;
      }
      if (r.run_id.empty()) r.run_id = text(j, "run_id");
      const double xu = static_cast<double>(u);

      if (ev_name == "update") {
        flush_skips();  // a new step: the last one's skips are complete
        const std::size_t k = steps.add(u);
        for (const scalar_signal& f : scalar_signals)
          if (f.step_record && !f.chart.empty())
            per_step[std::string(f.name())].add(u, k, detail::number(j, std::string(f.name()).c_str(), where));
        const std::string entropy(signal_set::name(signal_set::entropy));  // the heads' mean, in the record
        per_step[entropy].add(u, k, detail::number(j, entropy.c_str(), where));
        if (const auto ex = j.find("extra"); ex != j.end() && ex->is_object()) {
          const auto skipped = detail::number(*ex, "skipped_step", where, "extra.skipped_step");
          if (skipped && *skipped != 0.0) {
            ++r.skip_flags;
            pending_skips.try_emplace({u, k}, step_mark{u, 0.0, "skipped_step", lineno});
          }
          const auto stopped = detail::number(*ex, "stopped", where, "extra.stopped");
          if (stopped && *stopped != 0.0 && !stop_key) stop_key = {u, k};
        }
      } else if (ev_name == "gradient_health") {
        const std::size_t k = health_steps.add(u);
        for (const auto& m : gradient_members)
          if (!m.chart.empty())
            per_health[std::string(m.name)].add(u, k, detail::number(j, std::string(m.name).c_str(), where));
      } else if (ev_name == "lstm_health") {
        for (const auto& m : lstm_members)
          if (!m.chart.empty())
            detail::add_point(r.figures[std::string(m.name)], xu, detail::number(j, std::string(m.name).c_str(), where));
      } else if (ev_name == "epoch_summary") {
        const std::string performance(signal_set::name(signal_set::performance));
        detail::add_point(r.figures[performance], xu, detail::number(j, performance.c_str(), where));
      } else if (ev_name == "anomaly") {
        anomaly_mark a;
        a.update = u;
        a.line = lineno;
        a.kind = text(j, "anomaly", max_name);
        if (a.kind.empty()) throw detail::bad(where, "anomaly without its kind (field 'anomaly')");
        a.severity = text(j, "severity", max_name);
        a.detail = text(j, "detail");
        a.level_after = text(j, "level_after", max_name);
        a.value = detail::number(j, "value", where);
        a.threshold = detail::number(j, "threshold", where);
        a.origin_ranks = detail::integers(j, "origin_ranks", where, max_ranks, &a.rank_count);
        a.chart = chart_for(a.kind);
        // The first threshold of each bound kind is the one drawn.
        auto take = [&](const char* kind, double& bound, bool& seen) {
          if (a.kind == kind && a.threshold && std::isfinite(*a.threshold) && !seen) bound = *a.threshold, seen = true;
        };
        take("ratio_explosion", r.ratio_upper, bounds_seen[0]);
        take("ratio_collapse", r.ratio_lower, bounds_seen[1]);
        take("kl_spike", r.kl_spike, bounds_seen[2]);
        take("kl_extreme", r.kl_extreme, bounds_seen[3]);
        // Counted always, banded always; kept in its kind's bounded samples.
        ++r.anomaly_lines;
        ++r.anomalies_by_chart[a.chart];
        kind_count* kc = &r.other_kinds;
        detail::kind_state* ks = &other_state;
        if (const auto it = kind_at.find(a.kind); it != kind_at.end()) {
          kc = &r.kinds[it->second];
          ks = &kind_states[it->second];
        } else if (r.kinds.size() < max_kinds) {
          kind_at.emplace(a.kind, r.kinds.size());
          kind_count k;
          k.kind = a.kind, k.chart = a.chart, k.bands.gap = o.band_gap;
          r.kinds.push_back(std::move(k));
          kind_states.emplace_back(o.max_anomalies);
          kc = &r.kinds.back();
          ks = &kind_states.back();
        }
        // An onset: the kind's first line, or its first since an
        // anomaly_clear of the kind (docs/events.md: a condition is reported
        // at its onset, then cleared); the rest repeat a condition that
        // still holds (report_mode::every_check, or no clear written).
        a.onset = !ks->open;
        ks->open = true;
        ++(a.severity == "warning" ? kc->warning : a.severity == "critical" ? kc->critical : kc->other);
        kc->onsets += a.onset;
        kc->bands.add(u, lineno, a.onset);
        (a.onset ? ks->onsets : ks->repeats).add(std::move(a));
      } else if (ev_name == "anomaly_clear") {
        // Ends the kind's condition: its next line is an onset. Kinds past
        // max_kinds are not told apart (their group's first line is its only onset).
        if (const auto it = j.find("anomaly"); it != j.end() && it->is_string()) {
          const auto& kind = it->get_ref<const std::string&>();
          if (const auto at = kind_at.find(detail::cut(kind, max_name)); at != kind_at.end())
            kind_states[at->second].open = false;
        }
      } else if (ev_name == "rollback") {
        rollback_mark m;
        m.update = u;
        m.line = lineno;
        m.reason = detail::string_field(j, "reason", where, r.texts_cut);
        m.cause = detail::string_field(j, "cause", where, r.texts_cut, max_name);
        m.attribution = detail::string_field(j, "attribution", where, r.texts_cut, max_name);
        m.replay_error = detail::string_field(j, "replay_error", where, r.texts_cut);
        m.snapshot_file = detail::string_field(j, "snapshot_file", where, r.texts_cut);
        m.skipped_files = detail::string_field(j, "skipped_files", where, r.texts_cut);
        m.onset_update = detail::count(j, "onset_update", where);
        m.restored_update = detail::count(j, "restored_update", where);
        m.window_first = detail::count(j, "window_first", where);
        m.window_last = detail::count(j, "window_last", where);
        m.rollbacks = detail::count(j, "rollbacks", where);
        m.lr_factor = detail::number(j, "lr_factor", where);
        m.lr_scale = detail::number(j, "lr_scale", where);
        m.margin_met = detail::flag(j, "margin_met", where);
        if (m.restored_update && *m.restored_update > u)
          throw detail::bad(where, "field 'restored_update' is " + std::to_string(*m.restored_update) +
                                       ", after the rollback's own update " + std::to_string(u) +
                                       "; valid: the update of a snapshot taken at or before it");
        if (m.window_first && m.window_last && *m.window_last < *m.window_first)
          throw detail::bad(where, "the skipped window [" + std::to_string(*m.window_first) + ", " +
                                       std::to_string(*m.window_last) +
                                       ") ends before it begins; valid: window_first <= window_last");
        ++r.rollback_lines;
        rollback_sample.add(std::move(m));
      } else if (ev_name == "snapshot") {
        (void)detail::count(j, "data_position", where);
        (void)detail::count(j, "bytes", where);
        const auto held = detail::count(j, "held", where), held_bytes = detail::count(j, "held_bytes", where);
        const auto failures = detail::count(j, "file_failures", where);
        if (failures) r.snapshots.file_failures = failures;
        std::string file = detail::string_field(j, "file", where, r.texts_cut);
        ++r.snapshots.lines;
        if (held) r.snapshots.held = held;
        if (held_bytes) r.snapshots.held_bytes = held_bytes;
        if (!file.empty()) r.snapshots.file = std::move(file);
      } else if (ev_name == "escalation_start") {
        if (!open) open = period{u, u, true, text(j, "from") + " -> " + text(j, "to"), text(j, "reason")};
      } else if (ev_name == "escalation_end") {
        period p = open ? *open : period{r.first_update(), u, true, {}, {}};
        p.to = u;
        p.open = false;
        if (!open) p.levels = text(j, "from") + " -> " + text(j, "to");
        if (r.escalations.size() < max_escalations) r.escalations.push_back(std::move(p));
        else ++r.escalations_cut;
        open.reset();
      } else if (ev_name == "response") {
        // The session writes a step's response right after its update line,
        // so the response belongs to the last step seen in this update.
        std::string act = text(j, "action");
        if (act.empty()) act = text(j, "act");
        const std::size_t n = steps.of(u);
        const std::size_t k = n == 0 ? 0 : n - 1;
        const std::string reason = text(j, "reason");
        if (act == "skip_step") {
          ++r.skip_responses;
          pending_skips.insert_or_assign(step_key{u, k}, step_mark{u, 0.0, reason, lineno});
        } else if (act == "stop") {
          stop_key = {u, k};
          reason_stop = reason;
          pending_skips.erase(step_key{u, k});  // its step is drawn as the stop
        }
      } else if (ev_name == "hub_stats") {
        r.hub.present = true;
        for (const char* key : {"emitted", "delivered", "written", "dropped", "failed", "undelivered"})
          if (const auto it = j.find(key); it != j.end() && it->is_number_unsigned())
            r.hub.counts[key] = it->get<std::uint64_t>();
      }
    } catch (const nlohmann::json::exception& e) {
      // Whatever the library throws on a line is still that line's error.
      throw detail::bad(where, e.what());
    }
  }
  if (lineno == 0) throw detail::bad(label, "empty file; valid: one JSON event per line (docs/events.md)");
  if (r.lines == 0) throw detail::bad(label, "no event in " + std::to_string(lineno) + " lines");
  flush_skips();
  if (open) {
    open->to = r.last_update();
    if (r.escalations.size() < max_escalations) r.escalations.push_back(*open);
    else ++r.escalations_cut;
  }
  for (auto& [name, st] : per_step) st.place_into(r.figures[name], steps);
  for (auto& [name, st] : per_health) st.place_into(r.figures[name], health_steps);
  r.skips = std::move(skip_sample.kept);
  for (step_mark& m : r.skips) m.x = steps.x_of(m.update, static_cast<std::size_t>(m.x));
  std::sort(r.skips.begin(), r.skips.end(), [](const step_mark& a, const step_mark& b) { return a.seq < b.seq; });
  if (stop_key) r.stop = step_mark{stop_key->first, steps.x_of(stop_key->first, stop_key->second),
                                   reason_stop.empty() ? "update line flagged stopped" : reason_stop, 0, 0};

  // Each kind's markers: its onsets (all, up to max_anomalies; past that the
  // first and an even sample), then an even sample of its repeats in the
  // room left.
  kind_states.push_back(std::move(other_state));
  struct pick {
    std::vector<anomaly_mark> onsets, repeats;
    std::size_t size() const { return onsets.size() + repeats.size(); }
  };
  std::vector<pick> picks(kind_states.size());
  std::size_t kept = 0;
  for (std::size_t i = 0; i < kind_states.size(); ++i) {
    auto& ks = kind_states[i];
    picks[i].onsets = std::move(ks.onsets.kept);
    picks[i].repeats = std::move(ks.repeats.kept);
    detail::choose(picks[i].repeats, o.max_anomalies - picks[i].onsets.size(), 0, [&] { return ks.repeats.next(); });
    kept += picks[i].size();
  }
  // At most markers_per_bound x max_anomalies markers in all (each kind at
  // least its first): past that, each kind keeps an equal share, or all of
  // its markers where that is smaller; within its share, onsets first.
  const std::size_t budget = r.max_markers();
  if (kept > budget) {
    std::vector<std::size_t> order(picks.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return picks[a].size() < picks[b].size(); });
    std::size_t left = budget;
    for (std::size_t n = 0; n < order.size(); ++n) {
      pick& p = picks[order[n]];
      auto& ks = kind_states[order[n]];
      const std::size_t share = std::min(p.size(), left / (order.size() - n));
      left -= share;
      // >= 1 for a kind with lines: the budget is at least the number of kinds.
      if (share <= p.onsets.size()) {
        detail::choose(p.onsets, share, 1, [&] { return ks.onsets.next(); });  // the kind's first stays
        p.repeats.clear();
      } else {
        detail::choose(p.repeats, share - p.onsets.size(), 0, [&] { return ks.repeats.next(); });
      }
    }
  }
  // The markers, in file order; each band's number of them.
  auto settle = [&](kind_count& k, pick& p) {
    k.drawn = p.size();
    k.onsets_drawn = p.onsets.size();
    std::vector<std::size_t> at;
    for (auto* v : {&p.onsets, &p.repeats})
      for (anomaly_mark& a : *v) at.push_back(a.line), r.anomalies.push_back(std::move(a));
    std::sort(at.begin(), at.end());
    for (band& b : k.bands.bands)
      b.drawn = static_cast<std::size_t>(std::upper_bound(at.begin(), at.end(), b.last_line) -
                                         std::lower_bound(at.begin(), at.end(), b.first_line));
  };
  for (std::size_t i = 0; i < r.kinds.size(); ++i) settle(r.kinds[i], picks[i]);
  settle(r.other_kinds, picks.back());
  std::sort(r.anomalies.begin(), r.anomalies.end(), [](const anomaly_mark& a, const anomaly_mark& b) { return a.line < b.line; });
  {
    std::vector<std::size_t> at;
    for (const step_mark& m : r.skips) at.push_back(m.seq);
    for (band& b : r.skip_bands.bands)
      b.drawn = static_cast<std::size_t>(std::upper_bound(at.begin(), at.end(), b.last_line) -
                                         std::lower_bound(at.begin(), at.end(), b.first_line));
  }
  r.rollbacks = std::move(rollback_sample.kept);
  std::sort(r.rollbacks.begin(), r.rollbacks.end(), [](const rollback_mark& a, const rollback_mark& b) { return a.line < b.line; });
  return r;
}

inline run read_file(const std::string& path, const options& o = {}) {
  const std::string label = detail::printable(path);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw detail::bad(label, "a directory; valid: an events file (JSONL)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw detail::bad(label, "cannot open for reading");
  return parse(in, path, o);
}

// Min-max decimation: at most max_points finite points (>= 4), in x order,
// keeping the smallest and largest y of each of max_points / 2 runs of
// consecutive points, so that a spike of one step survives. Non-finite
// points are all kept (beyond max_points): each is a finding.
inline std::vector<point> downsample(const std::vector<point>& in, std::size_t max_points) {
  if (max_points < 4) throw std::invalid_argument("simic::report::downsample: max_points = " +
                                                  std::to_string(max_points) + "; valid: 4 or more");
  std::vector<point> finite, out;
  for (const point& p : in) (std::isfinite(p.y) ? finite : out).push_back(p);
  if (finite.size() <= max_points) {
    out.insert(out.end(), finite.begin(), finite.end());
  } else {
    const std::size_t buckets = max_points / 2, n = finite.size();
    for (std::size_t b = 0; b < buckets; ++b) {
      const std::size_t lo = b * n / buckets, hi = (b + 1) * n / buckets;
      std::size_t imin = lo, imax = lo;
      for (std::size_t i = lo; i < hi; ++i) {
        if (finite[i].y < finite[imin].y) imin = i;
        if (finite[i].y > finite[imax].y) imax = i;
      }
      out.push_back(finite[std::min(imin, imax)]);
      if (imin != imax) out.push_back(finite[std::max(imin, imax)]);
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const point& a, const point& b) { return a.x < b.x; });
  return out;
}

// For a <script type="application/json"> block: JSON text in which "<", ">"
// and "&" (only ever inside strings there) become \u escapes, so no
// "</script" or "<!--" can end the block, and U+2028/U+2029 too, which old
// JavaScript parsers take for line ends.
inline std::string escape_script_json(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 16);
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else if (c == '\xE2' && i + 2 < json.size() && json[i + 1] == '\x80' && (json[i + 2] == '\xA8' || json[i + 2] == '\xA9')) {
      out += json[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else out += c;
  }
  return out;
}

// For HTML text and attribute values.
inline std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace detail {

// 6 significant digits: the page draws at most a few thousand pixels, and
// printing the full 17 digits would triple its size.
inline double round6(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return std::strtod(buf, nullptr);
}

inline nlohmann::json y_json(double y) {
  if (std::isnan(y)) return "nan";
  if (std::isinf(y)) return y > 0 ? "inf" : "-inf";
  return round6(y);
}

inline nlohmann::json points_json(const series& s, std::size_t max_points) {
  nlohmann::json a = nlohmann::json::array();
  for (const point& p : downsample(s.points, max_points))
    a.push_back(nlohmann::json::array({std::round(p.x * 1e4) / 1e4, y_json(p.y)}));
  return a;
}

inline nlohmann::json opt_json(const std::optional<double>& v) { return v ? y_json(*v) : nlohmann::json(nullptr); }

// A number for a label: %g.
inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace detail

// A rollback in words: the marker's tooltip and the table's row. Absent
// fields read "not given".
inline std::string rollback_label(const rollback_mark& m) {
  auto u = [](const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : std::string("?"); };
  std::string s = "rollback" + (m.rollbacks ? " " + std::to_string(*m.rollbacks) : std::string()) + " at update " +
                  std::to_string(m.update) + ": " + (m.cause.empty() ? "cause not given" : m.cause) +
                  (m.reason.empty() ? "" : " (" + m.reason + ")");
  s += m.restored_update ? "; restored the snapshot of update " + std::to_string(*m.restored_update)
                         : std::string("; restored snapshot not given");
  if (m.onset_update) s += ", onset at update " + std::to_string(*m.onset_update);
  if (m.margin_met == false) s += " (less than the margin before the onset: the oldest held)";
  s += m.window_first || m.window_last ? "; data window [" + u(m.window_first) + ", " + u(m.window_last) + ") skipped"
                                       : std::string("; data window not given");
  s += m.lr_factor ? "; LR factor " + detail::num(*m.lr_factor) : std::string("; LR factor not given");
  if (m.lr_scale) s += " (LR scale now " + detail::num(*m.lr_scale) + ")";
  s += m.attribution.empty() ? std::string("; attribution not given") : "; attribution: " + m.attribution;
  if (!m.replay_error.empty()) s += " (" + m.replay_error + ")";
  if (!m.snapshot_file.empty()) s += "; snapshot file " + m.snapshot_file;
  if (!m.skipped_files.empty()) s += "; skipped files " + m.skipped_files;
  return s;
}

// The data the page's script draws: only the fields drawn, decimated.
inline nlohmann::json page_data(const run& r, const options& o) {
  using nlohmann::json;
  auto s = [&](const char* name, const char* color, const series& se) {
    return json{{"name", name}, {"color", color}, {"points", detail::points_json(se, o.max_points)}};
  };
  auto hline = [](double y, const std::string& label, const char* color) {
    return json{{"y", detail::round6(y)}, {"label", label}, {"color", color}};
  };
  auto num = detail::num;
  // The series of chart `id`: the signal figures whose descriptor names it
  // (core/signals.hpp), in descriptor order.
  auto figures_of = [&](std::string_view id) {
    json out = json::array();
    if (id == "policy") out.push_back(s("entropy", "#8c564b", r.figure(signal_set::name(signal_set::entropy))));
    if (id == "performance")
      out.push_back(s("performance", "#1f77b4", r.figure(signal_set::name(signal_set::performance))));
    for (const scalar_signal& f : scalar_signals)
      if (f.step_record && f.chart == id) out.push_back(s(std::string(f.name()).c_str(), std::string(f.color).c_str(), r.figure(f.name())));
    for (const auto& m : gradient_members)
      if (m.chart == id) out.push_back(s(std::string(m.name).c_str(), std::string(m.color).c_str(), r.figure(m.name)));
    for (const auto& m : lstm_members)
      if (m.chart == id) out.push_back(s(std::string(m.name).c_str(), std::string(m.color).c_str(), r.figure(m.name)));
    return out;
  };
  json charts = json::array();
  charts.push_back({{"id", "performance"}, {"title", "Performance (mean return per update, epoch_summary)"}, {"log", false},
                    {"series", figures_of("performance")}, {"hlines", json::array()}});
  charts.push_back({{"id", "loss"}, {"title", "Loss (per optimizer step)"}, {"log", "auto"},
                    {"series", figures_of("loss")}, {"hlines", json::array()}});
  charts.push_back({{"id", "gradient"}, {"title", "Gradient norm (total, per optimizer step)"}, {"log", "auto"},
                    {"series", figures_of("gradient")}, {"hlines", json::array()}});
  charts.push_back({{"id", "update"}, {"title", "Update ratio, ||step|| / ||weights|| (per optimizer step)"},
                    {"log", "auto"}, {"series", figures_of("update")}, {"hlines", json::array()}});
  charts.push_back({{"id", "health"}, {"title", "Gradient health (0 = every parameter vanishing or exploding, 1 = none)"},
                    {"log", false}, {"range", json::array({0, 1.05})}, {"height", 90},
                    {"series", figures_of("health")}, {"hlines", json::array()}});
  charts.push_back({{"id", "kl"}, {"title", "Approximate KL (per optimizer step)"}, {"log", "auto"},
                    {"series", figures_of("kl")},
                    {"hlines", json::array({hline(r.kl_spike, "kl_spike " + num(r.kl_spike), "#e6a100"),
                                            hline(r.kl_extreme, "kl_extreme " + num(r.kl_extreme), "#d62728")})}});
  charts.push_back({{"id", "ratio"}, {"title", "Policy ratio max / min (per optimizer step)"}, {"log", true},
                    {"series", figures_of("ratio")},
                    {"hlines", json::array({hline(r.ratio_upper, "ratio_explosion " + num(r.ratio_upper), "#d62728"),
                                            hline(r.ratio_lower, "ratio_collapse " + num(r.ratio_lower), "#1f77b4")})}});
  charts.push_back({{"id", "policy"}, {"title", "Entropy (normalised) and explained variance (per optimizer step)"},
                    {"log", false}, {"series", figures_of("policy")}, {"hlines", json::array()}});
  charts.push_back({{"id", "lstm"}, {"title", "LSTM state (per update)"}, {"log", "auto"},
                    {"series", figures_of("lstm")}, {"hlines", json::array()}});

  json anomalies = json::array();
  for (const anomaly_mark& a : r.anomalies)
    anomalies.push_back({{"update", a.update}, {"kind", a.kind}, {"severity", a.severity}, {"chart", a.chart},
                         {"detail", a.detail}, {"value", detail::opt_json(a.value)},
                         {"threshold", detail::opt_json(a.threshold)}, {"level_after", a.level_after},
                         {"origin_ranks", a.origin_ranks}, {"rank_count", a.rank_count}, {"onset", a.onset}});
  // Bands as [first update, last update, lines, onsets, drawn as markers]:
  // compact, as a kind has up to max_bands of them.
  auto bands_json = [](const banding& b) {
    json out = json::array();
    for (const band& x : b.bands) out.push_back(json::array({x.first, x.last, x.count, x.onsets, x.drawn}));
    return out;
  };
  json kinds = json::array();
  for (const kind_count& k : r.kinds)
    kinds.push_back({{"kind", k.kind}, {"chart", k.chart}, {"total", k.total()}, {"drawn", k.drawn},
                     {"onsets", k.onsets}, {"onsets_drawn", k.onsets_drawn}, {"band_gap", k.bands.gap},
                     {"bands", bands_json(k.bands)}});
  json rollbacks = json::array();
  for (const rollback_mark& m : r.rollbacks)
    rollbacks.push_back({{"update", m.update},
                         {"restored_update", m.restored_update ? json(*m.restored_update) : json(nullptr)},
                         {"cause", m.cause}, {"label", rollback_label(m)}});
  json escalations = json::array();
  for (const period& p : r.escalations)
    escalations.push_back({{"from", p.from}, {"to", p.to}, {"open", p.open}, {"levels", p.levels}, {"reason", p.reason}});
  json skips = json::array();
  for (const step_mark& m : r.skips)
    skips.push_back({{"update", m.update}, {"x", std::round(m.x * 1e4) / 1e4}, {"reason", m.reason}});
  json skip_bands = bands_json(r.skip_bands);
  json stop = nullptr;
  if (r.stop) stop = {{"update", r.stop->update}, {"x", std::round(r.stop->x * 1e4) / 1e4}, {"reason", r.stop->reason}};
  const double lo = r.first_update() > 0 ? static_cast<double>(r.first_update()) - 1.0 : 0.0;
  return {{"x_range", json::array({lo, std::max(lo + 1.0, static_cast<double>(r.last_update()))})},
          {"charts", charts},
          {"anomalies", anomalies},
          {"anomaly_lines", r.anomaly_lines},
          {"anomalies_by_chart", r.anomalies_by_chart},
          {"max_anomalies", r.max_anomalies},
          {"max_markers", r.max_markers()},
          {"kinds", kinds},
          {"other_kinds", {{"total", r.other_kinds.total()}, {"drawn", r.other_kinds.drawn},
                           {"onsets", r.other_kinds.onsets}, {"onsets_drawn", r.other_kinds.onsets_drawn},
                           {"band_gap", r.other_kinds.bands.gap}, {"bands", bands_json(r.other_kinds.bands)}}},
          {"rollbacks", rollbacks},
          {"rollback_lines", r.rollback_lines},
          {"escalations", escalations},
          {"skips", skips},
          {"skip_steps", r.skip_steps},
          {"skip_bands", skip_bands},
          {"skip_band_gap", r.skip_bands.gap},
          {"stop", stop}};
}

namespace detail {

inline std::string row(std::string_view k, std::string_view v) {
  return "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>\n";
}

// The summary: written here rather than by the script, so that it reads
// even where scripts are off.
inline std::string summary_html(const run& r) {
  std::string h = "<table class=\"summary\">\n";
  h += row("run_id", r.run_id.empty() ? "(not set)" : r.run_id);
  h += row("file", r.source);
  std::string upd = std::to_string(r.updates.size());
  if (!r.updates.empty())
    upd += " (updates " + std::to_string(r.first_update()) + " to " + std::to_string(r.last_update()) + ")";
  h += row("updates", upd);
  if (r.first_time && r.last_time) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f s", *r.last_time - *r.first_time);
    h += row("wall time (first to last event)", buf);
  }
  std::size_t events = 0;
  for (const auto& [n, c] : r.events) events += c;
  h += row("event lines", std::to_string(events) + " (+ " + std::to_string(r.lines - events) + " of unknown events)");
  std::string an = std::to_string(r.anomaly_lines);
  if (r.anomalies.size() < r.anomaly_lines)
    an += " (" + std::to_string(r.anomalies.size()) + " drawn, " + std::to_string(r.anomaly_lines - r.anomalies.size()) +
          " not drawn: at most " + std::to_string(r.max_anomalies) + " markers per kind, " +
          std::to_string(r.max_markers()) + " in all)";
  h += row("anomalies", an);
  std::string sk = std::to_string(r.skip_steps) + " (response skip_step lines: " + std::to_string(r.skip_responses) +
                   ", update lines flagged skipped_step: " + std::to_string(r.skip_flags) + ")";
  if (r.skips.size() < r.skip_steps)
    sk += "; " + std::to_string(r.skips.size()) + " drawn as lines, at most " + std::to_string(r.max_anomalies) +
          "; all in " + std::to_string(r.skip_bands.bands.size()) + " bands (runs within " +
          std::to_string(r.skip_bands.gap) + (r.skip_bands.gap == 1 ? " update)" : " updates)");
  h += row("skipped optimizer steps", sk);
  h += row("stop", r.stop ? "at update " + std::to_string(r.stop->update) + ": " + r.stop->reason : "none");
  std::string rb = r.rollback_lines == 0 ? "none" : std::to_string(r.rollback_lines);
  for (std::size_t i = 0; i < r.rollbacks.size() && i < 10; ++i)
    rb += (i ? "; update " : " (update ") + std::to_string(r.rollbacks[i].update) +
          (r.rollbacks[i].cause.empty() ? "" : ": " + r.rollbacks[i].cause);
  if (r.rollbacks.size() > 10) rb += "; ...";
  if (!r.rollbacks.empty()) rb += ")";
  if (r.rollbacks.size() < r.rollback_lines)
    rb += "; " + std::to_string(r.rollbacks.size()) + " drawn, " + std::to_string(r.rollback_lines - r.rollbacks.size()) +
          " not drawn: at most " + std::to_string(r.max_anomalies);
  h += row("rollbacks", rb);
  if (r.snapshots.lines > 0) {
    std::string sn = std::to_string(r.snapshots.lines) + " taken; at the end " +
                     (r.snapshots.held ? std::to_string(*r.snapshots.held) : std::string("?")) + " held, " +
                     (r.snapshots.held_bytes ? std::to_string(*r.snapshots.held_bytes) : std::string("?")) + " bytes";
    if (!r.snapshots.file.empty()) sn += "; last file " + r.snapshots.file;
    if (r.snapshots.file_failures && *r.snapshots.file_failures > 0)
      sn += "; " + std::to_string(*r.snapshots.file_failures) + " snapshot files failed";
    h += row("snapshots", sn);
  }
  std::string esc = std::to_string(r.escalations.size() + r.escalations_cut);
  for (std::size_t i = 0; i < r.escalations.size() && i < 10; ++i) {
    const period& p = r.escalations[i];
    esc += "; updates " + std::to_string(p.from) + " to " + std::to_string(p.to) + (p.open ? " (still open)" : "") +
           (p.levels.empty() ? "" : " " + p.levels) + (p.reason.empty() ? "" : " (" + p.reason + ")");
  }
  if (r.escalations.size() > 10) esc += "; ...";
  if (r.escalations_cut > 0)
    esc += "; the first " + std::to_string(r.escalations.size()) + " drawn, " + std::to_string(r.escalations_cut) + " not";
  h += row("escalations", esc);
  if (r.hub.present) {
    std::string hub;
    for (const char* key : {"emitted", "delivered", "written", "dropped", "failed", "undelivered"}) {
      const auto it = r.hub.counts.find(key);
      hub += (hub.empty() ? "" : ", ") + std::string(key) + " " + (it == r.hub.counts.end() ? "-" : std::to_string(it->second));
    }
    h += row("hub", hub);
  } else {
    h += row("hub", "no hub_stats line: the hub did not close this file (the process died, or a sink hung)");
  }
  if (r.texts_cut > 0)
    h += row("cut texts", std::to_string(r.texts_cut) + " text fields longer than " + std::to_string(max_text) +
                              " bytes (names: " + std::to_string(max_name) + "): cut, each saying its full length");
  if (r.partial_last_line) h += row("last line", "partial (no newline, not JSON): ignored");
  h += "</table>\n";
  return h;
}

// Anomalies by kind and severity (exact counts) and how many were drawn.
inline std::string kinds_html(const run& r) {
  std::uint64_t other = r.other_kinds.other;
  for (const kind_count& k : r.kinds) other += k.other;
  const std::uint64_t gap0 = r.band_gap;
  std::string h = "<h2>Anomalies by kind and severity</h2>\n<table class=\"kinds\"><tr><th>kind</th><th>chart</th>"
                  "<th>warning</th><th>critical</th>";
  if (other) h += "<th>other severity</th>";
  h += "<th>total</th><th>drawn</th><th>onsets (drawn)</th><th>bands</th></tr>\n";
  auto line = [&](const kind_count& k, bool swatch, const std::string& chart) {
    h += "<tr><td>" + (swatch ? "<span class=\"swatch\" data-kind=\"" + html_escape(k.kind) + "\"></span>" : std::string()) +
         html_escape(k.kind) + "</td><td>" + html_escape(chart) + "</td><td>" + std::to_string(k.warning) + "</td><td>" +
         std::to_string(k.critical) + "</td>" + (other ? "<td>" + std::to_string(k.other) + "</td>" : std::string()) +
         "<td>" + std::to_string(k.total()) + "</td><td>" + std::to_string(k.drawn) + "</td><td>" +
         std::to_string(k.onsets) + " (" + std::to_string(k.onsets_drawn) + ")</td><td>" +
         std::to_string(k.bands.bands.size()) + (k.bands.gap != gap0 ? " (gap " + std::to_string(k.bands.gap) + ")" : "") +
         "</td></tr>\n";
  };
  for (const kind_count& k : r.kinds) line(k, true, k.chart);
  if (r.other_kinds.total() > 0) line(r.other_kinds, false, "each its own");
  if (r.kinds.empty()) h += "<tr><td colspan=\"9\">none</td></tr>\n";
  h += "</table>\n";
  if (r.anomalies.size() < r.anomaly_lines)
    h += "<p class=\"note\" id=\"anomaly-cut\">" + std::to_string(r.anomalies.size()) + " of " +
         std::to_string(r.anomaly_lines) + " anomaly lines drawn (" + std::to_string(r.anomaly_lines - r.anomalies.size()) +
         " not drawn): at most " + std::to_string(r.max_anomalies) + " markers per kind and " +
         std::to_string(r.max_markers()) +
         " in all: the onsets first (the first of the kind and every line after its anomaly_clear), then an even "
         "sample of the rest. The counts are exact, and every line lies in a band drawn in its chart's lane.</p>\n";
  if (r.anomaly_lines > 0)
    h += "<p class=\"note\" id=\"anomaly-bands\">Bands: consecutive lines of a kind within " + std::to_string(gap0) +
         (gap0 == 1 ? " update" : " updates") + " of each other are one band, drawn as a bar in the chart's lane; a kind with more than " +
         std::to_string(max_bands) + " bands doubles its gap until it has at most that many (the gap said in the table).</p>\n";
  if (r.other_kinds.total() > 0)
    h += "<p class=\"note\">Kinds past the first " + std::to_string(max_kinds) +
         " are counted together as (other kinds) and drawn in grey.</p>\n";
  return h;
}

// Event lines by name, the skipped steps and the stop, the rollbacks.
inline std::string details_html(const run& r) {
  std::string h;

  h += "<h3>Event lines by name</h3>\n<table class=\"events\">";
  for (const auto& [n, c] : r.events) h += "<tr><td>" + html_escape(n) + "</td><td>" + std::to_string(c) + "</td></tr>";
  for (const auto& [n, c] : r.unknown)
    h += "<tr><td>" + html_escape(n) + " (unknown, ignored)</td><td>" + std::to_string(c) + "</td></tr>";
  if (r.unknown_other > 0)
    h += "<tr><td>unknown names past the first " + std::to_string(max_unknown_names) + " (ignored)</td><td>" +
         std::to_string(r.unknown_other) + "</td></tr>";
  h += "</table>\n";
  if (!r.skips.empty() || r.stop) {
    h += "<h3>Skipped steps and stop</h3>\n<table class=\"skips\">";
    std::size_t shown = 0;
    for (const step_mark& m : r.skips) {
      if (shown == 50) break;
      ++shown;
      h += "<tr><td>update " + std::to_string(m.update) + " skip</td><td>" + html_escape(m.reason) + "</td></tr>";
    }
    if (r.skip_steps > shown)
      h += "<tr><td colspan=\"2\">... " + std::to_string(r.skip_steps - shown) + " more skipped steps" +
           (r.skips.size() < r.skip_steps ? " (the rows are the first and an even sample)" : "") + "</td></tr>";
    if (r.stop)
      h += "<tr><td>update " + std::to_string(r.stop->update) + " stop</td><td>" + html_escape(r.stop->reason) + "</td></tr>";
    h += "</table>\n";
  }
  if (r.rollback_lines > 0) {
    auto u = [](const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : std::string("?"); };
    h += "<h3>Rollbacks</h3>\n<table class=\"rollbacks\"><tr><th>update</th><th>#</th><th>cause</th>"
         "<th>restored snapshot of update</th><th>onset update</th><th>data window skipped</th><th>LR factor</th>"
         "<th>LR scale</th><th>attribution</th><th>reason</th><th>files</th></tr>\n";
    std::size_t shown = 0;
    for (const rollback_mark& m : r.rollbacks) {
      if (++shown > 50) break;
      std::string files = m.snapshot_file.empty() ? "" : "snapshot " + m.snapshot_file;
      if (!m.skipped_files.empty()) files += (files.empty() ? "" : "; ") + std::string("skipped ") + m.skipped_files;
      h += "<tr><td>" + std::to_string(m.update) + "</td><td>" + u(m.rollbacks) + "</td><td>" + html_escape(m.cause) +
           "</td><td>" + u(m.restored_update) + (m.margin_met == false ? " (margin not met)" : "") + "</td><td>" +
           u(m.onset_update) + "</td><td>" +
           (m.window_first || m.window_last ? "[" + u(m.window_first) + ", " + u(m.window_last) + ")" : std::string()) +
           "</td><td>" + (m.lr_factor ? num(*m.lr_factor) : std::string()) + "</td><td>" +
           (m.lr_scale ? num(*m.lr_scale) : std::string()) + "</td><td>" + html_escape(m.attribution + (m.replay_error.empty() ? "" : ": " + m.replay_error)) + "</td><td>" +
           html_escape(m.reason) + "</td><td>" + html_escape(files) + "</td></tr>\n";
    }
    const std::uint64_t listed = std::min<std::uint64_t>(r.rollbacks.size(), 50);
    if (r.rollback_lines > listed)
      h += "<tr><td colspan=\"11\">... " + std::to_string(r.rollback_lines - listed) + " more (of " +
           std::to_string(r.rollback_lines) + " rollback lines; " + std::to_string(r.rollbacks.size()) +
           " drawn)</td></tr>\n";
    h += "</table>\n";
  }
  return h;
}

}  // namespace detail

// The page's own style and drawing script (no network fetch anywhere).
inline constexpr std::string_view page_css = R"CSS(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;margin:4px 0}th,td{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
table.summary th{background:#f6f6f6;white-space:nowrap}.top>div:first-child{max-width:600px}
.chart{margin:6px 0 2px}.chart h2{margin:10px 0 0}.series-key{font-size:12px;color:#444;margin-left:8px}
.series-key span{margin-right:12px}.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:6px 0;
padding:6px 8px;border:1px solid #e4e4e4;background:#fafafa}.legend div{display:flex;align-items:center;gap:4px}
svg text{font:11px system-ui,sans-serif;fill:#444}.note{color:#666;font-size:12px}
.top{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
)CSS";

inline constexpr std::string_view page_js = R"JS(
(function () {
  'use strict';
  var t0 = performance.now();
  var D = JSON.parse(document.getElementById('simic-data').textContent);
  var SVG = 'http://www.w3.org/2000/svg';
  var W = 1180, PL = 64, PR = 150, PH0 = 170, PB = 26, ROW = 13;
  var SHAPES = ['circle', 'square', 'triangle', 'diamond', 'down', 'plus', 'star'];
  var COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function title(e, s) { el('title', {}, e).textContent = s; return e; }
  // Kinds in order of first appearance: each gets its own shape and colour.
  // A Map: a kind is any text, "constructor" and "__proto__" included.
  var kinds = new Map(), OTHER = {shape: 'circle', color: '#444'};
  D.kinds.forEach(function (k, i) {
    kinds.set(k.kind, {shape: SHAPES[i % SHAPES.length], color: COLORS[i % COLORS.length]});
  });
  function style(kind) { return kinds.get(kind) || OTHER; }
  function shapePath(shape, r) {
    var h = r * 0.95;
    switch (shape) {
      case 'square': return 'M' + -h + ',' + -h + 'h' + 2 * h + 'v' + 2 * h + 'h' + -2 * h + 'z';
      case 'triangle': return 'M0,' + -r * 1.1 + 'L' + r + ',' + r * 0.8 + 'L' + -r + ',' + r * 0.8 + 'z';
      case 'down': return 'M0,' + r * 1.1 + 'L' + r + ',' + -r * 0.8 + 'L' + -r + ',' + -r * 0.8 + 'z';
      case 'diamond': return 'M0,' + -r * 1.25 + 'L' + r + ',0L0,' + r * 1.25 + 'L' + -r + ',0z';
      case 'plus': var w = r * 0.4; return 'M' + -w + ',' + -r + 'h' + 2 * w + 'v' + (r - w) + 'h' + (r - w) + 'v' + 2 * w +
        'h' + (w - r) + 'v' + (r - w) + 'h' + -2 * w + 'v' + (w - r) + 'h' + (w - r) + 'v' + -2 * w + 'h' + (r - w) + 'z';
      case 'star': var p = ''; for (var i = 0; i < 10; i++) { var a = Math.PI / 5 * i - Math.PI / 2, q = i % 2 ? r * 0.5 : r * 1.2;
        p += (i ? 'L' : 'M') + (q * Math.cos(a)).toFixed(2) + ',' + (q * Math.sin(a)).toFixed(2); } return p + 'z';
      default: return 'M' + -r + ',0a' + r + ',' + r + ' 0 1,0 ' + 2 * r + ',0a' + r + ',' + r + ' 0 1,0 ' + -2 * r + ',0z';
    }
  }
  function marker(parent, kind, severity, x, y, r, cls) {
    var k = style(kind);
    var crit = severity === 'critical';
    return el('path', {d: shapePath(k.shape, r), transform: 'translate(' + x + ',' + y + ')', 'class': cls || '',
      fill: crit ? k.color : '#fff', stroke: k.color, 'stroke-width': crit ? 1 : 1.8}, parent);
  }
  function swatchSvg(w, h) { var s = el('svg', {width: w, height: h, viewBox: '0 0 ' + w + ' ' + h}); return s; }
  function niceStep(span, n) {
    var raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  }
  function fmt(v) {
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(0);
    return +v.toPrecision(4) + '';
  }
  var x0 = D.x_range[0], x1 = D.x_range[1];
  function X(x) { return PL + (x - x0) / (x1 - x0) * (W - PL - PR); }

  // Anomalies per chart, stacked in the chart's marker lane by update.
  var byChart = {};
  D.anomalies.forEach(function (a) { (byChart[a.chart] = byChart[a.chart] || []).push(a); });
  // Each kind's bands (runs of its lines), on its chart: every line lies in one.
  var bandsByChart = {};
  D.kinds.forEach(function (k) { (bandsByChart[k.chart] = bandsByChart[k.chart] || []).push(k); });
  if (D.other_kinds.total) (bandsByChart.performance = bandsByChart.performance || []).push(
    {kind: null, chart: 'performance', bands: D.other_kinds.bands, label: '(other kinds)'});
  // A band is drawn where it says more than its markers do: a run of two or
  // more lines, or a line whose marker was not drawn.
  function shown(b) { return b[2] > 1 || b[4] < b[2]; }
  var markers = 0, anomalyBands = 0, skipBands = 0;
  var root = document.getElementById('charts');

  D.charts.forEach(function (c) {
    var PH = c.height || PH0, list = byChart[c.id] || [], slot = {}, rows = 0;
    list.forEach(function (a) { a._row = slot[a.update] = (slot[a.update] || 0) + 1; rows = Math.max(rows, a._row); });
    var lane = Math.max(1, Math.min(rows, 8)) * ROW + 6, top = lane + 4, H = top + PH + PB;
    var box = document.createElement('div'); box.className = 'chart'; root.appendChild(box);
    var h2 = document.createElement('h2'); h2.textContent = c.title; box.appendChild(h2);
    var key = document.createElement('span'); key.className = 'series-key'; h2.appendChild(key);
    var svg = el('svg', {width: '100%', viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'xMinYMin meet',
      'data-chart': c.id, role: 'img'}, box);

    // y range over finite values; log where asked, or "auto" for a wide positive spread.
    var lo = Infinity, hi = -Infinity, minPos = Infinity, any = false;
    c.series.forEach(function (s) {
      var k = document.createElement('span'); k.style.color = s.color;
      k.textContent = '\u25a0 ' + s.name + (s.points.length ? '' : ' (no data)'); key.appendChild(k);
      s.points.forEach(function (p) {
        if (typeof p[1] !== 'number') return;
        any = true; lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); if (p[1] > 0) minPos = Math.min(minPos, p[1]);
      });
    });
    c.hlines.forEach(function (l) { if (any) { lo = Math.min(lo, l.y); hi = Math.max(hi, l.y); if (l.y > 0) minPos = Math.min(minPos, l.y); } });
    if (c.range) { lo = c.range[0]; hi = c.range[1]; any = true; }
    if (!any) { lo = 0; hi = 1; }
    var log = c.log === true ? minPos < Infinity : c.log === 'auto' ? (minPos < Infinity && hi / minPos > 100) : false;
    var ylo, yhi;
    if (log) { var floor = minPos; ylo = Math.log10(floor) - 0.1; yhi = Math.log10(Math.max(hi, floor)) + 0.1; }
    else { var pad = (hi - lo) * 0.06 || Math.abs(hi) * 0.1 || 1; ylo = c.range ? lo : lo - pad; yhi = c.range ? hi : hi + pad; }
    function Y(v) {
      var t = log ? Math.log10(Math.max(v, Math.pow(10, ylo))) : v;
      return top + PH - (t - ylo) / (yhi - ylo) * PH;
    }
    el('rect', {x: PL, y: top, width: W - PL - PR, height: PH, fill: '#fff', stroke: '#ccc'}, svg);

    // Escalation periods, then skips and the stop, under the curves.
    D.escalations.forEach(function (p) {
      var a = X(p.from - 0.5), b = X(p.to + 0.5);
      title(el('rect', {x: a, y: top, width: Math.max(2, b - a), height: PH, fill: '#ffb74d', 'fill-opacity': 0.22,
        'class': 'escalation'}, svg), 'escalation ' + p.levels + ', updates ' + p.from + ' to ' + p.to +
        (p.open ? ' (still open)' : '') + (p.reason ? ': ' + p.reason : ''));
    });
    D.skip_bands.forEach(function (b) {
      if (!shown(b)) return;
      var a = X(b[0] - 1), e = X(b[1]);  // the steps of updates first to last
      title(el('rect', {x: a, y: top, width: Math.max(2, e - a), height: PH, fill: '#7b1fa2', 'fill-opacity': 0.13,
        'class': 'skip-band'}, svg), b[2] + ' skipped step' + (b[2] > 1 ? 's' : '') + ', updates ' + b[0] +
        (b[1] > b[0] ? ' to ' + b[1] : '') + ' (' + b[4] + ' drawn as lines)');
      skipBands++;
    });
    D.skips.forEach(function (m) {
      title(el('line', {x1: X(m.x), x2: X(m.x), y1: top, y2: top + PH, stroke: '#7b1fa2', 'stroke-dasharray': '2,2',
        'class': 'skip-mark'}, svg), 'skipped step, update ' + m.update + ': ' + m.reason);
    });
    // Rollbacks: the updates thrown away shaded from the restored snapshot's
    // update to the rollback's, and a mark at the rollback.
    D.rollbacks.forEach(function (rb) {
      var xr = Math.min(W - PR, Math.max(PL, X(rb.update)));
      if (rb.restored_update !== null) {
        var a = Math.min(W - PR, Math.max(PL, X(rb.restored_update)));
        title(el('rect', {x: a, y: top, width: Math.max(2, xr - a), height: PH, fill: '#546e7a', 'fill-opacity': 0.2,
          'class': 'rollback-band'}, svg), rb.label);
      }
      title(el('line', {x1: xr, x2: xr, y1: top, y2: top + PH, stroke: '#263238', 'stroke-width': 2,
        'stroke-dasharray': '7,2,2,2', 'class': 'rollback-mark'}, svg), rb.label);
      var lt = el('text', {x: xr + 4, y: top + 24, fill: '#263238', 'class': 'rollback-label'}, svg);
      lt.textContent = 'rollback' + (rb.cause ? ' (' + rb.cause + ')' : '');
      title(lt, rb.label);
    });
    if (D.stop) {
      title(el('line', {x1: X(D.stop.x), x2: X(D.stop.x), y1: top, y2: top + PH, stroke: '#b71c1c', 'stroke-width': 3,
        'class': 'stop-mark'}, svg), 'stop, update ' + D.stop.update + ': ' + D.stop.reason);
      el('text', {x: X(D.stop.x) + 4, y: top + 12, fill: '#b71c1c'}, svg).textContent = 'stop';
    }

    // Axes: y ticks (decades on a log axis), x ticks in updates.
    var ticks = [];
    if (log) { for (var d = Math.ceil(ylo); d <= Math.floor(yhi); d++) ticks.push(Math.pow(10, d)); }
    else { var st = niceStep(yhi - ylo, Math.max(2, Math.round(PH / 34))); for (var t = Math.ceil(ylo / st) * st; t <= yhi + 1e-12; t += st) ticks.push(t); }
    ticks.forEach(function (t) {
      el('line', {x1: PL, x2: W - PR, y1: Y(t), y2: Y(t), stroke: '#eee'}, svg);
      el('text', {x: PL - 5, y: Y(t) + 4, 'text-anchor': 'end'}, svg).textContent = fmt(t);
    });
    var xs = niceStep(x1 - x0, 12);
    for (var xt = Math.ceil(x0 / xs) * xs; xt <= x1 + 1e-9; xt += xs) {
      el('line', {x1: X(xt), x2: X(xt), y1: top + PH, y2: top + PH + 4, stroke: '#999'}, svg);
      el('text', {x: X(xt), y: top + PH + 16, 'text-anchor': 'middle'}, svg).textContent = fmt(xt);
    }
    el('text', {x: W - PR + 22, y: top + PH + 16}, svg).textContent = 'update';
    if (log) el('text', {x: 4, y: top + 10}, svg).textContent = 'log';

    // Bounds.
    c.hlines.forEach(function (l) {
      el('line', {x1: PL, x2: W - PR, y1: Y(l.y), y2: Y(l.y), stroke: l.color, 'stroke-dasharray': '6,4', 'class': 'bound'}, svg);
      el('text', {x: W - PR + 4, y: Y(l.y) + 4, fill: l.color}, svg).textContent = l.label;
    });

    // Curves: a non-finite value breaks the line and is marked at the bottom.
    c.series.forEach(function (s) {
      var d = '', pen = false;
      s.points.forEach(function (p) {
        if (typeof p[1] !== 'number') {
          pen = false;
          title(el('path', {d: 'M' + X(p[0]) + ',' + (top + PH - 2) + 'l-4,-7h8z', fill: '#b71c1c', 'class': 'nonfinite'}, svg),
            s.name + ' = ' + p[1] + ' at update ' + p[0]);
          return;
        }
        d += (pen ? 'L' : 'M') + X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1); pen = true;
      });
      if (d) el('path', {d: d, fill: 'none', stroke: s.color, 'stroke-width': 1.3, 'stroke-linejoin': 'round'}, svg);
      if (s.points.length <= 120) s.points.forEach(function (p) {
        if (typeof p[1] === 'number') el('circle', {cx: X(p[0]), cy: Y(p[1]), r: 1.8, fill: s.color}, svg);
      });
    });

    // Anomaly markers: one per anomaly line, in the lane above the plot
    // (rows past the eighth overlap the last), with a faint guide down.
    var total = D.anomalies_by_chart[c.id] || 0;
    el('text', {x: W - PR + 4, y: 12, 'class': 'anomaly-count'}, svg).textContent = !total ? '' :
      list.length < total ? list.length + ' of ' + total + ' anomalies drawn' : total + ' anomal' + (total > 1 ? 'ies' : 'y');
    (bandsByChart[c.id] || []).forEach(function (k) {
      var color = style(k.kind).color, name = k.label || k.kind;
      k.bands.forEach(function (b) {
        if (!shown(b)) return;
        var a = X(b[0]) - 1.5, e = X(b[1]) + 1.5;
        var r = el('rect', {x: a, y: lane, width: Math.max(3, e - a), height: 4, fill: color, 'fill-opacity': 0.6,
          'class': 'anomaly-band'}, svg);
        if (k.kind !== null) r.setAttribute('data-kind', k.kind);
        title(r, name + ': ' + b[2] + ' line' + (b[2] > 1 ? 's' : '') + ', updates ' + b[0] + (b[1] > b[0] ? ' to ' + b[1] : '') +
          '; ' + b[3] + ' onset' + (b[3] === 1 ? '' : 's') + ', ' + b[4] + ' drawn as markers');
        anomalyBands++;
      });
    });
    list.forEach(function (a) {
      var cx = X(a.update), cy = lane - (Math.min(a._row, 8) - 0.5) * ROW - 2;
      el('line', {x1: cx, x2: cx, y1: lane, y2: top + PH, stroke: style(a.kind).color, 'stroke-opacity': 0.25}, svg);
      var m = marker(svg, a.kind, a.severity, cx, cy, 4.5, 'anomaly-marker');
      m.setAttribute('data-kind', a.kind); m.setAttribute('data-severity', a.severity);
      if (a.onset) m.setAttribute('data-onset', '1');
      title(m, a.severity + ' ' + a.kind + (a.onset ? ' (onset)' : ' (still holding)') + ' at update ' + a.update + (a.value !== null ? ': value ' + a.value : '') +
        (a.threshold !== null ? ', threshold ' + a.threshold : '') + (a.detail ? '\n' + a.detail : '') +
        (a.level_after ? '\nlevel after: ' + a.level_after : '') +
        (a.origin_ranks.length ? '\nfrom rank' + (a.rank_count > 1 ? 's ' : ' ') + a.origin_ranks.join(', ') +
          (a.rank_count > a.origin_ranks.length ? ', ... (' + a.rank_count + ' ranks)' : '') : ''));
      markers++;
    });
  });

  // Legend: kinds (shape and colour), severities, periods and marks.
  var lg = document.getElementById('legend');
  function item(svg, label) { var d = document.createElement('div'); d.appendChild(svg); d.appendChild(document.createTextNode(label)); lg.appendChild(d); }
  kinds.forEach(function (v, k) { var s = swatchSvg(14, 14); marker(s, k, 'critical', 7, 7, 4.5); item(s, k); });
  if (D.other_kinds.total) { var so = swatchSvg(14, 14); marker(so, null, 'critical', 7, 7, 4.5); item(so, '(other kinds)'); }
  var s1 = swatchSvg(14, 14); marker(s1, '', 'critical', 7, 7, 4.5); item(s1, 'filled: critical');
  var s2 = swatchSvg(14, 14); marker(s2, '', 'warning', 7, 7, 4.5); item(s2, 'hollow: warning (or other)');
  var s3 = swatchSvg(18, 14); el('rect', {x: 0, y: 1, width: 18, height: 12, fill: '#ffb74d', 'fill-opacity': 0.4}, s3); item(s3, 'escalation period');
  var s8 = swatchSvg(18, 14); el('rect', {x: 0, y: 5, width: 18, height: 4, fill: '#7f7f7f', 'fill-opacity': 0.6}, s8); item(s8, 'anomaly band (a run of one kind)');
  var s4 = swatchSvg(10, 14); el('line', {x1: 5, x2: 5, y1: 0, y2: 14, stroke: '#7b1fa2', 'stroke-dasharray': '2,2'}, s4); item(s4, 'skipped step');
  var s9 = swatchSvg(18, 14); el('rect', {x: 0, y: 1, width: 18, height: 12, fill: '#7b1fa2', 'fill-opacity': 0.2}, s9); item(s9, 'skipped steps (a run)');
  var s5 = swatchSvg(10, 14); el('line', {x1: 5, x2: 5, y1: 0, y2: 14, stroke: '#b71c1c', 'stroke-width': 3}, s5); item(s5, 'stop');
  var s7 = swatchSvg(18, 14); el('rect', {x: 0, y: 1, width: 18, height: 12, fill: '#546e7a', 'fill-opacity': 0.3}, s7);
  el('line', {x1: 16, x2: 16, y1: 0, y2: 14, stroke: '#263238', 'stroke-width': 2, 'stroke-dasharray': '7,2,2,2'}, s7);
  item(s7, 'rollback (shaded: the updates thrown away)');
  var s6 = swatchSvg(10, 14); el('path', {d: 'M5,13l-4,-7h8z', fill: '#b71c1c'}, s6); item(s6, 'non-finite value');
  // The summary's kind table gets each kind's marker.
  document.querySelectorAll('.swatch[data-kind]').forEach(function (sw) {
    var k = sw.getAttribute('data-kind'); if (!kinds.has(k)) return;
    var s = swatchSvg(12, 12); marker(s, k, 'critical', 6, 6, 4); sw.appendChild(s);
  });

  var ms = performance.now() - t0;
  var b = document.body;
  b.setAttribute('data-anomaly-markers', String(markers));
  b.setAttribute('data-anomaly-lines', String(D.anomaly_lines));
  b.setAttribute('data-rollbacks', String(D.rollbacks.length));
  b.setAttribute('data-anomaly-bands', String(anomalyBands));
  b.setAttribute('data-skip-marks', String(D.skips.length));
  b.setAttribute('data-skip-steps', String(D.skip_steps));
  b.setAttribute('data-skip-bands', String(skipBands / D.charts.length));
  b.setAttribute('data-render-ms', ms.toFixed(1));
  b.setAttribute('data-rendered', '1');
  document.getElementById('render-note').textContent =
    'Drawn by the page: ' + markers + ' anomaly markers' + (markers < D.anomaly_lines ? ' of ' + D.anomaly_lines +
    ' anomaly lines (at most ' + D.max_anomalies + ' per kind, ' + D.max_markers + ' in all; ' +
    (D.anomaly_lines - markers) + ' not drawn)' : '') + (anomalyBands ? ', ' + anomalyBands + ' anomaly bands' : '') +
    ', ' + D.rollbacks.length + ' rollbacks' + (D.skip_steps ? ', ' + D.skips.length + ' skip lines of ' + D.skip_steps +
    ' skipped steps' + (skipBands ? ' and ' + skipBands / D.charts.length + ' skip bands' : '') : '') +
    ', in ' + ms.toFixed(1) + ' ms.';
})();
)JS";

// The whole page.
inline std::string render_html(const run& r, const options& o) {
  if (o.max_points < 4)
    throw error("max_points = " + std::to_string(o.max_points) + "; valid: 4 or more");
  const std::string title =
      !o.title.empty() ? o.title : "simic run report: " + (r.run_id.empty() ? r.source : r.run_id);
  const std::string data =
      escape_script_json(page_data(r, o).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  std::string h;
  h.reserve(data.size() + 32768);
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" + html_escape(title) + "</title>\n";
  h += "<style>";
  h += page_css;
  h += "</style>\n</head>\n<body>\n<h1>" + html_escape(title) + "</h1>\n";
  h += "<div class=\"note\">" + html_escape(r.source) + ": " + std::to_string(r.lines) +
       " event lines. Hover a marker for the anomaly's or the rollback's detail. Steps of an update lie between it and the one before.</div>\n";
  h += "<div class=\"top\"><div><h2>Summary</h2>\n" + detail::summary_html(r) + "</div><div>" + detail::kinds_html(r) +
       "</div></div>\n";
  h += "<h2>Signals</h2>\n<div id=\"legend\" class=\"legend\"></div>\n<div id=\"charts\"></div>\n";
  h += "<noscript><p>The charts are drawn by this page's script; the summary above needs none.</p></noscript>\n";
  h += "<p id=\"render-note\" class=\"note\"></p>\n<h2>Details</h2>\n" + detail::details_html(r);
  h += "<script type=\"application/json\" id=\"simic-data\">" + data + "</script>\n";
  h += "<script>";
  h += page_js;
  h += "</script>\n</body></html>\n";
  return h;
}

// The command line's work: read, render, write.
inline void write_report(const std::string& in_path, const std::string& out_path, const options& o) {
  const run r = read_file(in_path, o);
  const std::string page = render_html(r, o);
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  if (!out) throw error(out_path + ": cannot open for writing");
  out.write(page.data(), static_cast<std::streamsize>(page.size()));
  out.close();
  if (!out) throw error(out_path + ": write failed");
}

}  // namespace simic::report
