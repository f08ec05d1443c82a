// The gradient-health summary (reduce/gradient_summary.hpp), the one definition
// the CPU, LibTorch-ops and CUDA paths finish with: against a float64
// reference written out plainly, at the vanishing / exploding bounds, and on
// its edge cases (no tensors, every norm NaN, a zero norm).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "simic/reduce/gradient_summary.hpp"
#include "simic/reduce/stat_layout.hpp"
#include "simic/core/thresholds.hpp"

namespace {

namespace sd = simic::detail;
constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();

struct row_in {
  double sumsq;
  std::uint64_t numel, zeros, nans, infs;
};

std::vector<double> pack(const std::vector<row_in>& in) {
  std::vector<double> rows(in.size() * simic::stat::count, 0.0);
  for (std::size_t i = 0; i < in.size(); ++i) {
    double* r = rows.data() + i * simic::stat::count;
    r[simic::stat::sumsq] = in[i].sumsq;
    r[simic::stat::numel] = static_cast<double>(in[i].numel);
    r[simic::stat::zeros] = static_cast<double>(in[i].zeros);
    r[simic::stat::nans] = static_cast<double>(in[i].nans);
    r[simic::stat::infs] = static_cast<double>(in[i].infs);
  }
  return rows;
}

sd::gradient_summary summarize(const std::vector<row_in>& in, double vanishing, double exploding) {
  const std::vector<double> rows = pack(in);
  sd::gradient_summary s;
  sd::summary_init(s);
  for (std::size_t i = 0; i < in.size(); ++i)
    sd::summary_add_row(s, rows.data() + i * simic::stat::count, vanishing, exploding);
  sd::summary_finish(s);
  return s;
}

}  // namespace

TEST_CASE("gradient summary: agrees with a float64 reference over random rows") {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> norm(-3.0, 6.0);
  std::uniform_int_distribution<std::uint64_t> count(0, 1000);
  const double vanishing = simic::defaults::grad_vanishing, exploding = simic::defaults::grad_exploding;
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<row_in> in(1 + trial * 3);
    for (row_in& r : in) {
      const double n = norm(rng);
      r = {n * n, count(rng) + 1, 0, 0, 0};
      r.zeros = r.numel / 3;
    }
    const sd::gradient_summary s = summarize(in, vanishing, exploding);
    double total = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
    std::uint64_t v = 0, e = 0, elements = 0, zeros = 0;
    for (const row_in& r : in) {
      const double n = std::sqrt(r.sumsq);
      total += r.sumsq;
      lo = std::min(lo, n);
      hi = std::max(hi, n);
      v += n < vanishing;
      e += n > exploding;
      elements += r.numel;
      zeros += r.zeros;
    }
    CHECK(s.total_sumsq == total);  // same order of additions
    CHECK(s.min_norm == lo);
    CHECK(s.max_norm == hi);
    CHECK(s.vanishing == v);
    CHECK(s.exploding == e);
    CHECK(s.elements == elements);
    CHECK(s.zeros == zeros);
    CHECK(s.tensors == in.size());
    const double n = static_cast<double>(in.size());
    CHECK(s.health == std::clamp(1.0 - 0.5 * static_cast<double>(v) / n - 0.8 * static_cast<double>(e) / n, 0.0, 1.0));
    CHECK(s.health == simic::gradient_health(v, e, in.size()));
  }
}

TEST_CASE("gradient summary: norms below / at / above the bounds") {
  const double vanishing = 1e-7, exploding = 10.0;
  // Norms exactly representable as sqrt(sumsq): use squares of the norms and
  // compare through the same route the summary takes.
  const std::vector<double> norms{std::nextafter(vanishing, 0.0), vanishing, std::nextafter(vanishing, 1.0),
                                  std::nextafter(exploding, 0.0), exploding, std::nextafter(exploding, 100.0)};
  std::vector<row_in> in;
  std::uint64_t v = 0, e = 0;
  for (double n : norms) {
    in.push_back({n * n, 1, 0, 0, 0});
    v += std::sqrt(n * n) < vanishing;
    e += std::sqrt(n * n) > exploding;
  }
  const sd::gradient_summary s = summarize(in, vanishing, exploding);
  CHECK(s.vanishing == v);
  CHECK(s.exploding == e);
  CHECK(v >= 1);
  CHECK(v <= 2);  // at the bound is not vanishing
  CHECK(e >= 1);
  CHECK(e <= 2);  // at the bound is not exploding
  // Exactly at the bounds (norms whose squares round-trip):
  const sd::gradient_summary at = summarize({{4.0, 1, 0, 0, 0}, {0.25, 1, 0, 0, 0}}, 0.5, 2.0);
  CHECK(at.vanishing == 0);
  CHECK(at.exploding == 0);
  const sd::gradient_summary past = summarize({{4.0, 1, 0, 0, 0}, {0.25, 1, 0, 0, 0}}, 0.5000001, 1.9999999);
  CHECK(past.vanishing == 1);
  CHECK(past.exploding == 1);
  CHECK(past.health == doctest::Approx(1.0 - 0.25 - 0.4));
}

TEST_CASE("gradient summary: no tensors, every norm NaN, a zero norm") {
  const sd::gradient_summary none = summarize({}, 1e-7, 10.0);
  CHECK(none.tensors == 0);
  CHECK(none.min_norm == 0.0);
  CHECK(none.max_norm == 0.0);
  CHECK(none.total_sumsq == 0.0);
  CHECK(none.health == 1.0);

  const sd::gradient_summary all_nan = summarize({{nan_v, 3, 0, 3, 0}, {nan_v, 2, 0, 1, 0}}, 1e-7, 10.0);
  CHECK(std::isnan(all_nan.min_norm));
  CHECK(std::isnan(all_nan.max_norm));
  CHECK(std::isnan(all_nan.total_sumsq));
  CHECK(all_nan.nans == 4);
  CHECK(all_nan.vanishing == 0);  // a NaN norm is neither
  CHECK(all_nan.exploding == 0);
  CHECK(all_nan.health == 1.0);

  const sd::gradient_summary some_nan = summarize({{nan_v, 1, 0, 1, 0}, {9.0, 1, 0, 0, 0}}, 1e-7, 10.0);
  CHECK(some_nan.min_norm == 3.0);  // NaN norms are ignored by the extremes
  CHECK(some_nan.max_norm == 3.0);

  const sd::gradient_summary zero = summarize({{0.0, 4, 4, 0, 0}, {4.0, 1, 0, 0, 0}}, 1e-7, 10.0);
  CHECK(zero.min_norm == 0.0);
  CHECK(zero.max_norm == 2.0);
  CHECK(zero.vanishing == 1);
  CHECK(zero.zeros == 4);
  CHECK(zero.health == 0.75);
}

TEST_CASE("gradient summary: merging partial summaries gives the sequential result; store / load round-trip") {
  std::vector<row_in> in;
  for (int i = 0; i < 9; ++i) in.push_back({static_cast<double>(i * i) * 0.01, static_cast<std::uint64_t>(i + 1), 1, 0, 0});
  const std::vector<double> rows = pack(in);
  sd::gradient_summary a, b;
  sd::summary_init(a);
  sd::summary_init(b);
  for (std::size_t i = 0; i < in.size(); ++i)
    sd::summary_add_row(i < 4 ? a : b, rows.data() + i * simic::stat::count, 0.05, 0.5);
  sd::summary_merge(a, b);
  sd::summary_finish(a);
  const sd::gradient_summary seq = summarize(in, 0.05, 0.5);
  CHECK(a.min_norm == seq.min_norm);
  CHECK(a.max_norm == seq.max_norm);
  CHECK(a.vanishing == seq.vanishing);
  CHECK(a.exploding == seq.exploding);
  CHECK(a.elements == seq.elements);
  CHECK(a.health == seq.health);
  CHECK(a.total_sumsq == doctest::Approx(seq.total_sumsq).epsilon(1e-15));

  double row[simic::stat::count];
  sd::summary_store(seq, row);
  sd::gradient_summary back;
  sd::summary_load(row, back);
  CHECK(back.total_sumsq == seq.total_sumsq);
  CHECK(back.min_norm == seq.min_norm);
  CHECK(back.max_norm == seq.max_norm);
  CHECK(back.vanishing == seq.vanishing);
  CHECK(back.exploding == seq.exploding);
  CHECK(back.elements == seq.elements);
  CHECK(back.zeros == seq.zeros);
  CHECK(back.nans == seq.nans);
  CHECK(back.infs == seq.infs);
  CHECK(back.tensors == seq.tensors);
  CHECK(back.health == seq.health);
}

static_assert(simic::gradient_health(0, 0, 0) == 1.0);
static_assert(simic::gradient_health(1, 1, 2) == 1.0 - 0.25 - 0.4);

TEST_CASE("gradient health formula by hand, clamped to [0, 1]") {
  using simic::gradient_health;
  CHECK(gradient_health(0, 0, 0) == 1.0);
  CHECK(gradient_health(0, 0, 10) == 1.0);
  CHECK(gradient_health(2, 0, 10) == doctest::Approx(1.0 - 0.5 * 0.2));
  CHECK(gradient_health(0, 3, 10) == doctest::Approx(1.0 - 0.8 * 0.3));
  CHECK(gradient_health(4, 5, 10) == doctest::Approx(0.4));  // 1 - 0.5*0.4 - 0.8*0.5
  CHECK(gradient_health(0, 10, 8) == 0.0);                   // 1 - 1.0 = 0 exactly
  CHECK(gradient_health(10, 10, 10) == 0.0);                 // 1 - 0.5 - 0.8 < 0: clamped
}
