// Anomaly kinds, severities, and the ordered report the detectors append to.
//
// A kind is a small value: the built-in kinds are constants
// (anomaly_kind::kl_spike, ...), and a user detector registers its own with
// register_anomaly_kind("throughput_drop", severity::warning), so a new kind needs
// no edit of simic. Every anomaly carries its figures (the observed value, the
// threshold and, where one exists, the baseline it was judged against) and a
// severity; the detail text is built from them.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "simic/core/level.hpp"

namespace simic {
inline namespace v0 {

// How much an anomaly matters. By default only critical anomalies escalate
// telemetry and drive the response policy (config_options::escalate_on,
// skip_then_stop, which skips the step); warnings are reported and counted.
enum class severity : unsigned char { warning, critical };

inline constexpr std::array<std::string_view, 2> severity_names{"warning", "critical"};
// "warning", "critical"; "invalid" for a value outside them.
constexpr std::string_view to_string(severity s) noexcept {
  return detail::name_or_invalid(severity_names, static_cast<unsigned>(s));
}
inline severity parse_severity(std::string_view name) {
  return static_cast<severity>(detail::parse_name(name, severity_names, "severity"));
}

class anomaly_kind {
 public:
  // Names kept from the reference telemetry so that dashboards keep working;
  // the last ten are simic's own.
  static const anomaly_kind ratio_explosion, ratio_collapse, value_collapse, numerical_instability,
      entropy_collapse, entropy_low, kl_spike, kl_extreme, gradient_norm_drift, gradient_health_drift,
      performance_degradation, lstm_unhealthy, gradient_vanishing, gradient_exploding, update_ratio_drift,
      signal_missing, host_ratio_drift, loss_spike, loss_divergence, loss_extreme, learning_stall;
  static constexpr std::uint16_t builtin_count = 21;

  constexpr anomaly_kind() noexcept = default;  // ratio_explosion; for aggregates that fill it later

  constexpr std::uint16_t id() const noexcept { return id_; }
  constexpr bool builtin() const noexcept { return id_ < builtin_count; }
  friend constexpr bool operator==(anomaly_kind, anomaly_kind) = default;
  friend constexpr auto operator<=>(anomaly_kind, anomaly_kind) = default;

  // The kind with this id (built-in ids are 0..builtin_count - 1, registered ones follow).
  // Throws for an id that names no kind.
  static anomaly_kind from_id(std::uint16_t id);

 private:
  constexpr explicit anomaly_kind(std::uint16_t id) noexcept : id_(id) {}
  friend anomaly_kind register_anomaly_kind(std::string_view, severity);
  std::uint16_t id_ = 0;
};

inline constexpr anomaly_kind anomaly_kind::ratio_explosion{0}, anomaly_kind::ratio_collapse{1},
    anomaly_kind::value_collapse{2}, anomaly_kind::numerical_instability{3}, anomaly_kind::entropy_collapse{4},
    anomaly_kind::entropy_low{5}, anomaly_kind::kl_spike{6}, anomaly_kind::kl_extreme{7},
    anomaly_kind::gradient_norm_drift{8}, anomaly_kind::gradient_health_drift{9},
    anomaly_kind::performance_degradation{10}, anomaly_kind::lstm_unhealthy{11},
    anomaly_kind::gradient_vanishing{12}, anomaly_kind::gradient_exploding{13}, anomaly_kind::update_ratio_drift{14},
    anomaly_kind::signal_missing{15}, anomaly_kind::host_ratio_drift{16}, anomaly_kind::loss_spike{17},
    anomaly_kind::loss_divergence{18}, anomaly_kind::loss_extreme{19}, anomaly_kind::learning_stall{20};

// The built-in kinds' names, by id.
inline constexpr std::array<std::string_view, anomaly_kind::builtin_count> anomaly_kind_names{
    "ratio_explosion",     "ratio_collapse",       "value_collapse",        "numerical_instability",
    "entropy_collapse",    "entropy_low",          "kl_spike",              "kl_extreme",
    "gradient_norm_drift", "gradient_health_drift", "performance_degradation", "lstm_unhealthy",
    "gradient_vanishing",  "gradient_exploding",    "update_ratio_drift",
    "signal_missing",      "host_ratio_drift",      "loss_spike",            "loss_divergence",
    "loss_extreme",        "learning_stall"};

// The built-in kinds' default severities, by id: a condition that corrupts
// training or that a healthy run never shows is critical; one that healthy
// runs show now and then, or that precedes a failure, is a warning.
inline constexpr std::array<severity, anomaly_kind::builtin_count> builtin_severities{
    severity::critical,  // ratio_explosion
    severity::warning,   // ratio_collapse
    severity::warning,   // value_collapse
    severity::critical,  // numerical_instability
    severity::critical,  // entropy_collapse
    severity::warning,   // entropy_low
    severity::warning,   // kl_spike
    severity::critical,  // kl_extreme
    severity::warning,   // gradient_norm_drift
    severity::warning,   // gradient_health_drift
    severity::warning,   // performance_degradation
    severity::critical,  // lstm_unhealthy
    severity::warning,   // gradient_vanishing
    severity::critical,  // gradient_exploding
    severity::warning,   // update_ratio_drift
    severity::warning,   // signal_missing
    severity::warning,   // host_ratio_drift
    severity::warning,   // loss_spike: one step far above the loss's noise (detect/loss_shift.hpp)
    severity::warning,   // loss_divergence: a sustained rise
    severity::critical,  // loss_extreme: a spike 100 spreads and more (a loss x1e6): the step is damaged
    severity::warning,   // learning_stall: training gave back what it gained (detect/learning_stall.hpp)
};

namespace detail {
// User kinds, append-only for the life of the process: a name handed out
// stays valid (a deque never moves its elements).
struct kind_registry {
  struct entry {
    std::string name;
    severity default_severity;
  };
  std::shared_mutex mutex;
  std::deque<entry> user;
  static kind_registry& get() {
    static kind_registry r;
    return r;
  }
};
inline bool valid_kind_name(std::string_view n) noexcept {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}
}  // namespace detail

// Registers a user kind (a lower-case identifier of at most 64 characters,
// not a built-in name) with its default severity, or returns the kind already
// registered under that name. Thread-safe.
inline anomaly_kind register_anomaly_kind(std::string_view name, severity default_severity) {
  constexpr auto where = "simic::register_anomaly_kind";
  detail::require(static_cast<unsigned>(default_severity) <= 1u, where, "default_severity",
                  static_cast<unsigned>(default_severity), "warning or critical");
  // The refused name is quoted escaped and bounded (detail::quoted_input): it
  // may hold anything, a newline or a NUL among it.
  if (!detail::valid_kind_name(name))
    throw std::invalid_argument(std::string(where) + ": name " + detail::quoted_input(name) +
                                " is not valid; valid: 1 to 64 characters of a-z, 0-9 and _");
  if (std::find(anomaly_kind_names.begin(), anomaly_kind_names.end(), name) != anomaly_kind_names.end())
    throw std::invalid_argument(std::string(where) + ": name " + detail::quoted_input(name) +
                                " is a built-in kind; valid: a name of your own");
  auto& r = detail::kind_registry::get();
  std::unique_lock lock(r.mutex);
  for (std::size_t i = 0; i < r.user.size(); ++i)
    if (r.user[i].name == name) {
      if (r.user[i].default_severity != default_severity)
        throw std::invalid_argument(std::string(where) + ": kind '" + std::string(name) +
                                    "' is registered already with severity " +
                                    std::string(to_string(r.user[i].default_severity)));
      return anomaly_kind(static_cast<std::uint16_t>(anomaly_kind::builtin_count + i));
    }
  if (r.user.size() + anomaly_kind::builtin_count >= std::numeric_limits<std::uint16_t>::max())
    throw std::invalid_argument(std::string(where) + ": too many kinds registered; valid: at most 65000");
  r.user.push_back({std::string(name), default_severity});
  return anomaly_kind(static_cast<std::uint16_t>(anomaly_kind::builtin_count + r.user.size() - 1));
}

// Kinds known now: the built-in ones and those registered so far.
inline std::size_t anomaly_kind_count() {
  auto& r = detail::kind_registry::get();
  std::shared_lock lock(r.mutex);
  return anomaly_kind::builtin_count + r.user.size();
}

inline anomaly_kind anomaly_kind::from_id(std::uint16_t id) {
  if (id >= anomaly_kind_count())
    throw std::invalid_argument("simic::anomaly_kind::from_id: id = " + std::to_string(id) +
                                " is out of range; valid: 0.." + std::to_string(anomaly_kind_count() - 1));
  return anomaly_kind(id);
}

inline std::string_view to_string(anomaly_kind k) noexcept {
  if (k.builtin()) return anomaly_kind_names[k.id()];
  auto& r = detail::kind_registry::get();
  std::shared_lock lock(r.mutex);
  return r.user[k.id() - anomaly_kind::builtin_count].name;  // ids come only from the registry
}

inline severity default_severity(anomaly_kind k) noexcept {
  if (k.builtin()) return builtin_severities[k.id()];
  auto& r = detail::kind_registry::get();
  std::shared_lock lock(r.mutex);
  return r.user[k.id() - anomaly_kind::builtin_count].default_severity;
}

// A built-in or registered kind by name (case-insensitive), or throws naming the valid ones.
inline anomaly_kind parse_anomaly_kind(std::string_view name) {
  for (std::uint16_t i = 0; i < anomaly_kind::builtin_count; ++i)
    if (detail::iequals(name, anomaly_kind_names[i])) return anomaly_kind::from_id(i);
  auto& r = detail::kind_registry::get();
  std::string valid = detail::join_names(anomaly_kind_names);
  {
    std::shared_lock lock(r.mutex);
    for (std::size_t i = 0; i < r.user.size(); ++i) {
      if (detail::iequals(name, r.user[i].name))
        return anomaly_kind::from_id(static_cast<std::uint16_t>(anomaly_kind::builtin_count + i));
      valid += ", " + r.user[i].name;
    }
  }
  throw std::invalid_argument("simic: unknown anomaly kind " + detail::quoted_input(name) + "; valid: " + valid);
}

// The severity of each kind: its default unless overridden. Lookups are
// made only when something is reported.
class severity_table {
 public:
  severity_table& set(anomaly_kind k, severity s) {
    detail::require(static_cast<unsigned>(s) <= 1u, "simic::severity_table::set", "severity", static_cast<unsigned>(s),
                    "warning or critical");
    for (auto& o : overrides_)
      if (o.first == k) {
        o.second = s;
        return *this;
      }
    overrides_.emplace_back(k, s);
    return *this;
  }
  severity of(anomaly_kind k) const noexcept {
    for (const auto& o : overrides_)
      if (o.first == k) return o.second;
    return default_severity(k);
  }
  friend bool operator==(const severity_table&, const severity_table&) = default;

 private:
  std::vector<std::pair<anomaly_kind, severity>> overrides_;
};

inline constexpr double no_figure = std::numeric_limits<double>::quiet_NaN();

// One reported anomaly. `value` is the figure observed, `threshold` the bound
// it crossed (both NaN where the anomaly is not a comparison, e.g. a NaN in a
// loss), `baseline` the running estimate it was compared with where the
// detector keeps one. `severity` is stamped by the monitor from its config.
struct anomaly {
  anomaly_kind kind;
  std::string detail;
  double value = no_figure;
  double threshold = no_figure;
  std::optional<double> baseline{};
  simic::severity severity = default_severity(kind);

  friend bool operator==(const anomaly& a, const anomaly& b) {
    auto same = [](double x, double y) { return x == y || (std::isnan(x) && std::isnan(y)); };
    return a.kind == b.kind && a.detail == b.detail && same(a.value, b.value) && same(a.threshold, b.threshold) &&
           a.baseline.has_value() == b.baseline.has_value() && (!a.baseline || same(*a.baseline, *b.baseline)) &&
           a.severity == b.severity;
  }
};

// A condition reported at its onset that no longer holds: it held for
// `duration` observations of its signal (onset included); `value` is the
// figure that ended it.
struct anomaly_clear {
  anomaly_kind kind;
  std::uint64_t duration = 0;
  double value = no_figure;
  friend bool operator==(const anomaly_clear&, const anomaly_clear&) = default;
};

// A condition reported at an earlier check that still holds at this one:
// not an anomaly again (no event), but the response policy skips the step
// of a critical one as it skipped the onset's (core/response.hpp).
struct anomaly_hold {
  anomaly_kind kind;
  simic::severity severity = default_severity(kind);
  friend bool operator==(const anomaly_hold&, const anomaly_hold&) = default;
};

// The figures of an anomaly, for report.add.
struct figures {
  double value = no_figure;
  double threshold = no_figure;
  std::optional<double> baseline{};
};

// An ordered list of anomalies, of the conditions that still hold since an
// earlier onset, and of those that cleared on this check. An empty report
// owns no memory, so a quiet check allocates nothing.
class anomaly_report {
 public:
  using const_iterator = std::vector<anomaly>::const_iterator;

  void add(anomaly_kind kind, std::string detail, figures f = {}) {
    items_.push_back({kind, std::move(detail), f.value, f.threshold, f.baseline, default_severity(kind)});
  }
  void add(anomaly a) { items_.push_back(std::move(a)); }
  void add_clear(anomaly_kind kind, std::uint64_t duration, double value) { clears_.push_back({kind, duration, value}); }
  void add_hold(anomaly_kind kind) { holds_.push_back({kind, default_severity(kind)}); }
  void merge(const anomaly_report& other) {
    items_.insert(items_.end(), other.items_.begin(), other.items_.end());
    clears_.insert(clears_.end(), other.clears_.begin(), other.clears_.end());
    holds_.insert(holds_.end(), other.holds_.begin(), other.holds_.end());
  }
  void merge(anomaly_report&& other) {
    if (items_.empty()) {
      items_ = std::move(other.items_);
    } else {
      std::move(other.items_.begin(), other.items_.end(), std::back_inserter(items_));
    }
    clears_.insert(clears_.end(), other.clears_.begin(), other.clears_.end());
    holds_.insert(holds_.end(), other.holds_.begin(), other.holds_.end());
    other.items_.clear();
    other.clears_.clear();
    other.holds_.clear();
  }
  void clear() noexcept {
    items_.clear();
    clears_.clear();
    holds_.clear();
  }

  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }
  const anomaly& operator[](std::size_t i) const { return items_.at(i); }
  const_iterator begin() const noexcept { return items_.begin(); }
  const_iterator end() const noexcept { return items_.end(); }
  const std::vector<anomaly_clear>& clears() const noexcept { return clears_; }
  const std::vector<anomaly_hold>& holds() const noexcept { return holds_; }

  bool has(anomaly_kind k) const noexcept {
    return std::any_of(items_.begin(), items_.end(), [k](const anomaly& a) { return a.kind == k; });
  }
  bool has(severity at_least) const noexcept {
    return std::any_of(items_.begin(), items_.end(), [at_least](const anomaly& a) { return a.severity >= at_least; });
  }
  std::size_t count(anomaly_kind k) const noexcept {
    return static_cast<std::size_t>(
        std::count_if(items_.begin(), items_.end(), [k](const anomaly& a) { return a.kind == k; }));
  }
  // Every detail recorded for `k`, in insertion order.
  std::vector<std::string> details(anomaly_kind k) const {
    std::vector<std::string> out;
    for (const auto& a : items_)
      if (a.kind == k) out.push_back(a.detail);
    return out;
  }
  // Sets every anomaly's severity from `t` (the monitor does this after its detectors ran).
  void stamp(const severity_table& t) noexcept {
    for (auto& a : items_) a.severity = t.of(a.kind);
    for (auto& h : holds_) h.severity = t.of(h.kind);
  }

  friend bool operator==(const anomaly_report&, const anomaly_report&) = default;

 private:
  std::vector<anomaly> items_;
  std::vector<anomaly_clear> clears_;
  std::vector<anomaly_hold> holds_;
};

}  // namespace v0
}  // namespace simic
