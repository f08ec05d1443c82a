// Helpers shared by the detector tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "simic/core/anomaly.hpp"
#include "simic/core/log_shift.hpp"
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

// Bias-corrected EMA by its definition: sum of (1 - m) m^(t - i) x_i over the weights' sum.
inline double weighted(const std::vector<double>& xs, double m) {
  double w = 0.0, s = 0.0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double wi = std::pow(m, static_cast<double>(xs.size() - 1 - i));
    w += wi;
    s += wi * xs[i];
  }
  return s / w;
}

// An independent float64 model of core/log_shift.hpp (gradient_shift's norm
// rule, update_shift's ratio rule): weighted sums kept explicitly (not as
// bias-corrected EMAs), the CUSUM as written in the header comment. Returns,
// per observation, whether the condition holds.
struct reference_shift {
  log_shift_options o;
  std::vector<double> absorbed;  // values absorbed so far (clipped)
  std::vector<double> raw;       // every log value, for the rise rule's fast mean
  double up = 0.0, down = 0.0, last_mean = 0.0, fast = 0.0, level = 0.0;
  bool rising = false;
  bool step(double value) {
    const double x = std::log(value);
    raw.push_back(x);
    if (absorbed.size() < o.warmup) {
      absorbed.push_back(x);
      return false;
    }
    double w = 0.0, s = 0.0, q = 0.0;
    const std::size_t n = absorbed.size();
    for (std::size_t i = 0; i < n; ++i) {
      const double wi = std::pow(o.momentum, static_cast<double>(n - 1 - i));
      w += wi;
      s += wi * absorbed[i];
      q += wi * absorbed[i] * absorbed[i];
    }
    const double mean = s / w, var = std::max(0.0, q / w - mean * mean);
    last_mean = mean;
    const double spread = std::sqrt(var + o.floor * o.floor);
    const double z = (x - mean) / spread;
    up = std::max(0.0, up + z - o.slack);
    down = std::max(0.0, down - z - o.slack);
    absorbed.push_back(std::clamp(x, mean - o.clip * spread, mean + o.clip * spread));
    // the rise rule, once the running mean spans 1 / (1 - momentum) values
    fast = weighted(raw, o.rise_momentum);
    level = weighted(absorbed, o.momentum);
    rising = static_cast<double>(absorbed.size()) >= std::max<double>(o.warmup, std::ceil(1.0 / (1.0 - o.momentum))) &&
             fast - level > o.rise;
    return up > o.bound || down > o.bound || rising;
  }
};
}  // namespace simic::test
