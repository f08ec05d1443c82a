// Helpers shared by the detector tests.
#pragma once

#include <cmath>
#include <limits>

#include "simic/core/anomaly.hpp"
#include "simic/core/signals.hpp"

namespace simic::test {

inline double above(double x) { return std::nextafter(x, std::numeric_limits<double>::infinity()); }
inline double below(double x) { return std::nextafter(x, -std::numeric_limits<double>::infinity()); }

template <class D>
anomaly_report observe(D& d, const signals& s) {
  anomaly_report r;
  d.observe(s, r);
  return r;
}

inline gradient_signal grads(double total, double min_norm, double max_norm, std::uint64_t params = 4) {
  gradient_signal g;
  g.total_norm = total;
  g.min_param_norm = min_norm;
  g.max_param_norm = max_norm;
  g.parameters = params;
  g.health = 1.0;
  return g;
}

}  // namespace simic::test
