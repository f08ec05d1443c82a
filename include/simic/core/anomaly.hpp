// Anomaly kinds and the ordered report the detectors append to.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "simic/core/level.hpp"

namespace simic {
inline namespace v0 {

// Names kept from the reference telemetry so that dashboards keep working;
// the last three are simic's own.
enum class anomaly_kind : unsigned char {
  ratio_explosion,
  ratio_collapse,
  value_collapse,
  numerical_instability,
  entropy_collapse,
  entropy_low,
  kl_spike,
  kl_extreme,
  gradient_norm_drift,
  gradient_health_drift,
  performance_degradation,
  lstm_unhealthy,
  gradient_vanishing,
  gradient_exploding,
};

inline constexpr std::array<std::string_view, 14> anomaly_kind_names{
    "ratio_explosion",     "ratio_collapse",       "value_collapse",        "numerical_instability",
    "entropy_collapse",    "entropy_low",          "kl_spike",              "kl_extreme",
    "gradient_norm_drift", "gradient_health_drift", "performance_degradation", "lstm_unhealthy",
    "gradient_vanishing",  "gradient_exploding"};

constexpr std::string_view to_string(anomaly_kind k) noexcept { return anomaly_kind_names[static_cast<unsigned>(k)]; }

inline anomaly_kind parse_anomaly_kind(std::string_view name) {
  // Kind names are exact identifiers; accept them case-insensitively like levels.
  return static_cast<anomaly_kind>(detail::parse_name(name, anomaly_kind_names, "anomaly kind"));
}

struct anomaly {
  anomaly_kind kind;
  std::string detail;
  friend bool operator==(const anomaly&, const anomaly&) = default;
};

// An ordered list of (kind, detail). Adding a kind twice keeps both details.
// An empty report owns no memory, so a check without anomalies allocates nothing.
class anomaly_report {
 public:
  using const_iterator = std::vector<anomaly>::const_iterator;

  void add(anomaly_kind kind, std::string detail) { items_.push_back({kind, std::move(detail)}); }
  void merge(const anomaly_report& other) { items_.insert(items_.end(), other.items_.begin(), other.items_.end()); }
  void merge(anomaly_report&& other) {
    if (items_.empty()) {
      items_ = std::move(other.items_);
    } else {
      std::move(other.items_.begin(), other.items_.end(), std::back_inserter(items_));
    }
    other.items_.clear();
  }
  void clear() noexcept { items_.clear(); }

  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }
  const anomaly& operator[](std::size_t i) const { return items_.at(i); }
  const_iterator begin() const noexcept { return items_.begin(); }
  const_iterator end() const noexcept { return items_.end(); }

  bool has(anomaly_kind k) const noexcept {
    return std::any_of(items_.begin(), items_.end(), [k](const anomaly& a) { return a.kind == k; });
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

  friend bool operator==(const anomaly_report&, const anomaly_report&) = default;

 private:
  std::vector<anomaly> items_;
};

}  // namespace v0
}  // namespace simic
