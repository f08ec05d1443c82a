// Test-side references: statistics computed by plain loops in float64 over
// a float64 copy of the tensor, independent of the back ends under test.
#pragma once

#include "support/torch_doctest.hpp"
#include "simic/reduce/backend.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "support/float64_reference.hpp"

namespace simic_test {

inline const float nan_f = std::numeric_limits<float>::quiet_NaN();
inline const float inf_f = std::numeric_limits<float>::infinity();

struct ref_stats {
  double sumsq = 0, max_abs = 0, sum = 0, min = 0, max = 0, mean = 0, std = 0;
  std::int64_t zeros = 0, nans = 0, infs = 0, small = 0, large = 0, numel = 0;
};

inline std::vector<double> values(const at::Tensor& t) {
  at::Tensor d = t.detach().to(at::kCPU).to(at::kDouble).contiguous();
  const double* p = d.data_ptr<double>();
  return std::vector<double>(p, p + d.numel());
}

inline ref_stats reference(const at::Tensor& t, double small = 1e-6, double large = 10.0) {
  const simic::test::float64_stats f = simic::test::float64_reference(values(t), small, large);
  ref_stats r;
  r.sumsq = f.sumsq;
  r.max_abs = f.max_abs;
  r.sum = f.sum;
  r.zeros = static_cast<std::int64_t>(f.zeros);
  r.nans = static_cast<std::int64_t>(f.nans);
  r.infs = static_cast<std::int64_t>(f.infs);
  r.small = static_cast<std::int64_t>(f.small);
  r.large = static_cast<std::int64_t>(f.large);
  r.numel = static_cast<std::int64_t>(f.n);
  if (f.n == 0) return r;
  r.min = f.min;
  r.max = f.max;
  r.mean = f.sum / static_cast<double>(f.n);
  r.std = std::sqrt(f.m2 / static_cast<double>(f.n));
  return r;
}

// Relative closeness, with an absolute floor for values near zero.
inline bool close(double a, double b, double rel = 1e-5, double abs = 1e-12) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(a - b) <= abs + rel * std::max(std::fabs(a), std::fabs(b));
}

// Gradients of mixed shapes from a seeded generator, N(0, scale).
inline std::vector<at::Tensor> mixed_tensors(std::uint64_t seed, at::ScalarType dtype, double scale = 1e-2) {
  auto gen = at::detail::createCPUGenerator(seed);
  const std::vector<std::vector<std::int64_t>> shapes = {{1}, {7}, {3, 5}, {64, 33}, {2, 3, 4, 5}, {40000}, {17}, {1000, 3}};
  std::vector<at::Tensor> out;
  for (const auto& s : shapes) out.push_back((at::randn(s, gen) * scale).to(dtype));
  return out;
}

// Checks one back-end row (full set unless basic_only) against the reference.
inline void check_row(const simic::tensor_stats& s, const ref_stats& r, bool basic_only, double rel = 1e-5) {
  CHECK(s.numel() == static_cast<std::uint64_t>(r.numel));
  CHECK(close(s.sum_of_squares(), r.sumsq, rel));
  CHECK(close(s.max_abs(), r.max_abs, rel));
  CHECK(s.zeros() == static_cast<std::uint64_t>(r.zeros));
  CHECK(s.nans() == static_cast<std::uint64_t>(r.nans));
  CHECK(s.infs() == static_cast<std::uint64_t>(r.infs));
  if (basic_only) return;
  // The sum can cancel to ~0: compare it on the scale of the norm.
  CHECK(close(s.sum(), r.sum, rel, rel * std::sqrt(r.sumsq) * 10));
  CHECK(close(s.mean(), r.mean, rel, rel * std::sqrt(r.sumsq / std::max<double>(1, r.numel)) * 10));
  CHECK(close(s.population_std(), r.std, 1e-4));
  if (r.nans < r.numel) {
    CHECK(close(s.min(), r.min, rel));
    CHECK(close(s.max(), r.max, rel));
  }
  CHECK(s.small() == static_cast<std::uint64_t>(r.small));
  CHECK(s.large() == static_cast<std::uint64_t>(r.large));
}

// A back end's result for `ts`, copied to the host.
template <class Backend>
simic::stats_table run(const Backend& b, const std::vector<at::Tensor>& ts, simic::stat_set set,
                       double small = 1e-6, double large = 10.0) {
  at::Tensor out = b.reduce(simic::reduce_request{ts, set, small, large});
  REQUIRE(out.dim() == 2);
  REQUIRE(out.size(0) == static_cast<std::int64_t>(ts.size()));
  REQUIRE(out.size(1) == simic::stat::count);
  return simic::stats_table(out.to(at::kCPU).contiguous());
}

}  // namespace simic_test
