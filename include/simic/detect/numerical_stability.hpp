// Non-finite values anywhere in the update's signals: numerical_instability,
// one entry per offending signal so the detail says where it came from.
#pragma once

#include <cmath>
#include <optional>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"

namespace simic {
inline namespace v0 {

class numerical_stability {
 public:
  using category = cat::critical;
  static constexpr std::string_view name = "numerical_stability";
  // It checks whatever figure is there and needs none: a preset's fit to a
  // trainer is judged by its other detectors (monitor's `reads`).
  static constexpr signal_set needs{};
  static constexpr signal_set reads{signal_set::loss,        signal_set::ratio_max,          signal_set::ratio_min,
                                    signal_set::approx_kl,   signal_set::explained_variance, signal_set::performance,
                                    signal_set::entropy,     signal_set::gradients};

  // The scalar signals it reads (`reads`), by their descriptors (core/signals.hpp).
  void observe(const signals& s, anomaly_report& r) const {
    for (const scalar_signal& f : scalar_signals)
      if (reads.contains(f.field)) scalar(s.*f.member, f.name(), r);
    for (const head_entropy& h : s.entropy)
      if (!std::isfinite(h.normalized)) report_entropy(h, r);
    if (s.gradients && !s.gradients->finite()) report_gradients(*s.gradients, r);
  }

 private:
  static void scalar(const std::optional<double>& v, std::string_view name, anomaly_report& r) {
    if (v && !std::isfinite(*v)) report_scalar(name, *v, r);
  }
  SIMIC_COLD static void report_scalar(std::string_view name, double v, anomaly_report& r) {
    r.add(anomaly_kind::numerical_instability,
          detail::format("%.*s is %g", static_cast<int>(name.size()), name.data(), v), {v});
  }
  SIMIC_COLD static void report_entropy(const head_entropy& h, anomaly_report& r) {
    r.add(anomaly_kind::numerical_instability,
          detail::format("entropy of head '%.*s' is %g", static_cast<int>(h.head.size()), h.head.data(),
                         h.normalized),
          {h.normalized});
  }
  SIMIC_COLD static void report_gradients(const gradient_signal& g, anomaly_report& r) {
    r.add(anomaly_kind::numerical_instability,
          detail::format("gradients: %llu NaN, %llu Inf elements, total norm %g",
                         static_cast<unsigned long long>(g.nan_count), static_cast<unsigned long long>(g.inf_count),
                         g.total_norm),
          {g.total_norm});
  }
};

}  // namespace v0
}  // namespace simic
