// The float64 reference every reduction test compares with: plain loops over
// the values widened to double, no LibTorch, no SIMD, no shared code with
// the back ends under test.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace simic::test {

struct float64_stats {
  double sumsq = 0, sum = 0, max_abs = 0;
  double min = std::numeric_limits<double>::infinity();   // over non-NaN values; +inf when none
  double max = -std::numeric_limits<double>::infinity();  // over non-NaN values; -inf when none
  double m2 = 0;  // sum of (x - mean)^2, two-pass over every value (non-finite values propagate)
  std::uint64_t zeros = 0, nans = 0, infs = 0, small = 0, large = 0, n = 0;
};

inline float64_stats float64_reference(const std::vector<double>& x, double small, double large) {
  float64_stats r;
  r.n = x.size();
  for (double v : x) {
    r.sumsq += v * v;
    r.sum += v;
    if (v == 0) ++r.zeros;
    if (std::isnan(v)) {
      ++r.nans;
      continue;
    }
    if (std::isinf(v)) ++r.infs;
    r.max_abs = std::max(r.max_abs, std::fabs(v));
    r.min = std::min(r.min, v);
    r.max = std::max(r.max, v);
    if (std::fabs(v) < small) ++r.small;
    if (std::fabs(v) > large) ++r.large;
  }
  if (r.n > 0) {
    const double mean = r.sum / static_cast<double>(r.n);
    for (double v : x) r.m2 += (v - mean) * (v - mean);
  }
  return r;
}

}  // namespace simic::test
