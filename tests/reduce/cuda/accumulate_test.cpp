// The fused kernels' per-element logic (simic/reduce/cuda/accumulate.hpp), run on
// the CPU through the same functions the kernels run, against float64
// references computed here by plain loops.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "support/float64_reference.hpp"
#include "reduce/cuda/emulate.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/reduce/cuda/accumulate.hpp"
#include "simic/reduce/cuda/kernel_source.hpp"
#include "simic/reduce/cuda/launch_plan.hpp"

namespace cd = simic::cuda::detail;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// IEEE binary16 decoded arithmetically (not by bit placement).
double ref_half(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31) v = m ? std::numeric_limits<double>::quiet_NaN() : inf;
  else if (e == 0) v = std::ldexp(static_cast<double>(m), -24);
  else v = std::ldexp(static_cast<double>(1024 + m), e - 25);
  return s ? -v : v;
}
double ref_bf16(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
  double v;
  if (e == 255) v = m ? std::numeric_limits<double>::quiet_NaN() : inf;
  else if (e == 0) v = std::ldexp(static_cast<double>(m), -133);
  else v = std::ldexp(static_cast<double>(128 + m), e - 134);
  return s ? -v : v;
}

// The smallest float b' with (x < b') == (x < b) for every float x.
float bound_less(double b) {
  float f = static_cast<float>(b);
  if (static_cast<double>(f) < b) f = std::nextafterf(f, INFINITY);
  return f;
}
float bound_greater(double b) {
  float f = static_cast<float>(b);
  if (static_cast<double>(f) > b) f = std::nextafterf(f, -INFINITY);
  return f;
}

cd::launch_params params(bool full, double small = 1e-6, double large = 10.0, double vanish = 1e-7,
                         double explode = 10.0) {
  cd::launch_params p{};
  p.small = small;
  p.large = large;
  p.small_f = bound_less(small);
  p.large_f = bound_greater(large);
  p.vanishing = vanish;
  p.exploding = explode;
  p.full = full ? 1 : 0;
  return p;
}

// Float64 reference statistics of one tensor's (widened) values; the kernels
// report no spread for a tensor holding NaN or Inf.
using reference = simic::test::float64_stats;
reference ref_stats(const std::vector<double>& x, double small, double large) {
  reference r = simic::test::float64_reference(x, small, large);
  if (r.nans + r.infs > 0) r.m2 = std::numeric_limits<double>::quiet_NaN();
  return r;
}

bool same_or_both_nan(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
bool close(double got, double want, double rel, double abs_tol = 0.0) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::fabs(got - want) <= rel * std::fabs(want) + abs_tol;
}

// Checks one packed row against the reference. `spread_scale` bounds the
// rounding of sum / m2 (float32 groups of <= 64 elements, float64 beyond).
void check_row(const double* row, const reference& r, bool full, double sum_abs) {
  CHECK(row[simic::stat::numel] == static_cast<double>(r.n));
  CHECK(row[simic::stat::zeros] == static_cast<double>(r.zeros));
  CHECK(row[simic::stat::nans] == static_cast<double>(r.nans));
  CHECK(row[simic::stat::infs] == static_cast<double>(r.infs));
  CHECK(row[simic::stat::max_abs] == r.max_abs);
  CHECK(close(row[simic::stat::sumsq], r.sumsq, 1e-5));
  if (full) {
    CHECK(row[simic::stat::min] == r.min);
    CHECK(row[simic::stat::max] == r.max);
    CHECK(row[simic::stat::small] == static_cast<double>(r.small));
    CHECK(row[simic::stat::large] == static_cast<double>(r.large));
    if (r.nans + r.infs == 0) CHECK(close(row[simic::stat::sum], r.sum, 1e-6, 1e-6 * sum_abs));
    else CHECK(!std::isfinite(row[simic::stat::sum]));
    CHECK(close(row[simic::stat::m2], r.m2, 1e-4, 1e-6 * r.sumsq));
  } else {
    for (int c : {simic::stat::sum, simic::stat::min, simic::stat::max, simic::stat::m2, simic::stat::small, simic::stat::large}) CHECK(row[c] == 0.0);
  }
}

std::vector<float> random_floats(std::mt19937_64& rng, std::size_t n, bool specials) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_real_distribution<double> logscale(-8, 3);
  std::vector<float> v(n);
  for (auto& x : v) {
    const double k = u(rng);
    x = nd(rng) * static_cast<float>(std::pow(10.0, logscale(rng)));
    if (k < 0.08) x = 0.0f;
    else if (specials && k < 0.085) x = std::numeric_limits<float>::quiet_NaN();
    else if (specials && k < 0.09) x = (k < 0.0875 ? 1.f : -1.f) * std::numeric_limits<float>::infinity();
    else if (k < 0.095) x = nd(rng) * 1e25f;  // its square overflows float32
    else if (k < 0.097) x = 1e-40f;           // subnormal
  }
  return v;
}

}  // namespace

TEST_CASE("float16 and bfloat16 decode exactly for all 65536 bit patterns") {
  int mismatches = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    if (!same_or_both_nan(static_cast<double>(cd::half_to_f32(h)), ref_half(static_cast<std::uint16_t>(h)))) ++mismatches;
    if (!same_or_both_nan(static_cast<double>(cd::bf16_to_f32(h)), ref_bf16(static_cast<std::uint16_t>(h)))) ++mismatches;
  }
  CHECK(mismatches == 0);
  CHECK(cd::half_to_f32(0x3c00) == 1.0f);
  CHECK(cd::half_to_f32(0x7bff) == 65504.0f);
  CHECK(std::signbit(cd::half_to_f32(0x8000)));
  CHECK(cd::bf16_to_f32(0x3f80) == 1.0f);
  // Only the low 16 bits are read.
  CHECK(cd::bf16_to_f32(0xffff3f80u) == 1.0f);
  CHECK(cd::half_to_f32(0xffff3c00u) == 1.0f);
}

TEST_CASE("one group: counts, extremes and sums of mixed values against float64") {
  const cd::launch_params p = params(true);
  const float below_small = std::nextafterf(static_cast<float>(1e-6), 0.f);
  const std::vector<float> xs{0.0f, -0.0f, 1.5f, -2.0f, below_small, p.small_f, 10.0f, std::nextafterf(10.0f, 11.0f),
                              -1e30f, 3.0f, std::numeric_limits<float>::quiet_NaN(), INFINITY};
  cd::accumulator a;
  cd::acc_init(a);
  cd::group g;
  cd::group_init(g);
  const float shift = cd::shift_of(xs[0]);
  for (float x : xs) cd::add_narrow<1>(g, a, x, shift, cd::shift_is_wide(shift), p);
  cd::fold<1>(a, g);
  double row[simic::stat::count];
  cd::finish_row(a, static_cast<std::int64_t>(xs.size()), shift, 1, row);
  CHECK(row[simic::stat::zeros] == 2);
  CHECK(row[simic::stat::nans] == 1);
  CHECK(row[simic::stat::infs] == 1);
  CHECK(row[simic::stat::max_abs] == inf);
  CHECK(row[simic::stat::min] == -1e30f);
  CHECK(row[simic::stat::max] == inf);
  // |x| < 1e-6: the zeros and the float just below 1e-6; p.small_f is the
  // first float >= 1e-6, so it is not small.
  CHECK(row[simic::stat::small] == 3);
  // |x| > 10: 10 itself is not large; its successor, 1e30 and Inf are (NaN is not).
  CHECK(row[simic::stat::large] == 3);
  CHECK(std::isnan(row[simic::stat::sumsq]));  // NaN (and Inf) propagate, as in float64
  CHECK(std::isnan(row[simic::stat::sum]));
}

TEST_CASE("large finite values take the float64 route: no float32 overflow") {
  const cd::launch_params p = params(true);
  std::vector<float> xs(64, 3e19f);  // squares 9e38 > float32 max
  xs[5] = -2e20f;
  xs[6] = std::ldexp(1.0f, 60);              // at the wide bound: float64 route
  xs[7] = std::nextafterf(std::ldexp(1.0f, 60), 0.f);  // just below it: float32 route
  std::vector<double> xd(xs.begin(), xs.end());
  const reference r = ref_stats(xd, p.small, p.large);
  cd::launch_plan plan = cd::make_launch_plan(
      std::vector<cd::plan_input>{{reinterpret_cast<std::uint64_t>(xs.data()), 64, cd::dtype_f32}}, {});
  const std::vector<double> rows = simic_test::emulate(plan, p, 32);
  CHECK(std::isfinite(rows[simic::stat::sumsq]));
  check_row(rows.data(), r, true, 64 * 2e20);
}

TEST_CASE("a huge first element (the spread's shift) keeps the spread finite") {
  const cd::launch_params p = params(true);
  std::vector<float> xs{3e38f, -3e38f, 1.0f, 2.0f};
  std::vector<double> xd(xs.begin(), xs.end());
  const reference r = ref_stats(xd, p.small, p.large);
  cd::launch_plan plan = cd::make_launch_plan(
      std::vector<cd::plan_input>{{reinterpret_cast<std::uint64_t>(xs.data()), 4, cd::dtype_f32}}, {});
  const std::vector<double> rows = simic_test::emulate(plan, p, 32);
  CHECK(cd::shift_is_wide(cd::shift_of(3e38)));
  CHECK(std::isfinite(rows[simic::stat::m2]));
  // The exact sum is 3; any float64 method loses it beside 3e38: the error
  // is bounded by the rounding of the magnitudes involved.
  CHECK(std::fabs(rows[simic::stat::sum] - r.sum) <= 1e-15 * 6e38);
  CHECK(std::fabs(rows[simic::stat::m2] - r.m2) <= 1e-15 * r.sumsq);
}

TEST_CASE("float32 tensors through the kernel's control flow match float64 plain loops") {
  std::mt19937_64 rng(20261127);
  for (bool specials : {false, true}) {
    for (bool full : {false, true}) {
      CAPTURE(specials);
      CAPTURE(full);
      // Sizes around the vector width, the four-vector group and the block.
      const std::vector<std::int64_t> sizes{0, 1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 4097, 100003};
      std::vector<std::vector<float>> data;
      std::vector<cd::plan_input> in;
      for (auto n : sizes) data.push_back(random_floats(rng, static_cast<std::size_t>(n) + 3, specials));
      for (std::size_t t = 0; t < sizes.size(); ++t) {
        // Start 0..3 elements past the vector boundary: exercises the scalar head.
        const std::size_t off = t % 4;
        in.push_back({reinterpret_cast<std::uint64_t>(data[t].data() + off), sizes[t], cd::dtype_f32});
      }
      const cd::launch_params p = params(full);
      for (int blocks : {1, 7, 64}) {
        for (int threads : {32, 256}) {
          CAPTURE(blocks);
          CAPTURE(threads);
          cd::plan_options o;
          o.max_blocks = blocks;
          o.min_block_bytes = 256;
          const cd::launch_plan plan = cd::make_launch_plan(in, o);
          const std::vector<double> rows = simic_test::emulate(plan, p, threads);
          for (std::size_t t = 0; t < sizes.size(); ++t) {
            CAPTURE(t);
            std::vector<double> x(data[t].begin() + static_cast<std::ptrdiff_t>(t % 4),
                                  data[t].begin() + static_cast<std::ptrdiff_t>(t % 4 + sizes[t]));
            double sum_abs = 0;
            for (double v : x) sum_abs += std::isfinite(v) ? std::fabs(v) : 0.0;
            check_row(rows.data() + t * simic::stat::count, ref_stats(x, p.small, p.large), full, sum_abs);
          }
        }
      }
    }
  }
}

TEST_CASE("float16, bfloat16 and float64 tensors match float64 plain loops") {
  std::mt19937_64 rng(7);
  for (int dtype : {cd::dtype_f16, cd::dtype_bf16, cd::dtype_f64}) {
    for (bool full : {false, true}) {
      CAPTURE(dtype);
      CAPTURE(full);
      const std::vector<std::int64_t> sizes{0, 1, 7, 8, 9, 31, 32, 33, 257, 5000};
      std::vector<std::vector<unsigned char>> bytes;
      std::vector<std::vector<double>> values;
      std::vector<cd::plan_input> in;
      for (auto n : sizes) {
        std::vector<float> f = random_floats(rng, static_cast<std::size_t>(n), true);
        std::vector<unsigned char> b(static_cast<std::size_t>(n) * (dtype == cd::dtype_f64 ? 8 : 2) + 16);
        std::vector<double> v;
        for (std::int64_t i = 0; i < n; ++i) {
          if (dtype == cd::dtype_f64) {
            const double d = static_cast<double>(f[static_cast<std::size_t>(i)]) * (1.0 + 1e-12);
            std::memcpy(b.data() + i * 8, &d, 8);
            v.push_back(d);
          } else {
            // Any 16-bit pattern: random values, plus every kind of special.
            std::uint16_t h = static_cast<std::uint16_t>(rng());
            if (i % 5 == 0) h = 0;
            std::memcpy(b.data() + i * 2, &h, 2);
            v.push_back(dtype == cd::dtype_f16 ? ref_half(h) : ref_bf16(h));
          }
        }
        bytes.push_back(std::move(b));
        values.push_back(std::move(v));
      }
      for (std::size_t t = 0; t < sizes.size(); ++t)
        in.push_back({reinterpret_cast<std::uint64_t>(bytes[t].data()), sizes[t], dtype});
      const cd::launch_params p = params(full);
      cd::plan_options o;
      o.max_blocks = 5;
      o.min_block_bytes = 128;
      const std::vector<double> rows = simic_test::emulate(cd::make_launch_plan(in, o), p, 64);
      for (std::size_t t = 0; t < sizes.size(); ++t) {
        CAPTURE(t);
        double sum_abs = 0;
        for (double v : values[t]) sum_abs += std::isfinite(v) ? std::fabs(v) : 0.0;
        check_row(rows.data() + t * simic::stat::count, ref_stats(values[t], p.small, p.large), full, sum_abs);
      }
    }
  }
}

TEST_CASE("merging partials in any order gives the same counts and extremes, sums within rounding") {
  std::mt19937_64 rng(3);
  const cd::launch_params p = params(true);
  const std::vector<float> xs = random_floats(rng, 10000, true);
  // Partials of 37 slices, each reduced alone.
  std::vector<cd::accumulator> parts;
  for (std::size_t lo = 0; lo < xs.size(); lo += 271) {
    cd::accumulator a;
    cd::acc_init(a);
    cd::group g;
    cd::group_init(g);
    int in_group = 0;
    for (std::size_t i = lo; i < std::min(xs.size(), lo + 271); ++i) {
      cd::add_narrow<1>(g, a, xs[i], 0.0f, false, p);
      if (++in_group == 64) {
        cd::fold<1>(a, g);
        cd::group_init(g);
        in_group = 0;
      }
    }
    cd::fold<1>(a, g);
    parts.push_back(a);
  }
  auto merged = [&](const std::vector<std::size_t>& order) {
    cd::accumulator a;
    cd::acc_init(a);
    for (std::size_t i : order) cd::merge(a, parts[i]);
    return a;
  };
  std::vector<std::size_t> fwd(parts.size());
  std::iota(fwd.begin(), fwd.end(), 0);
  std::vector<std::size_t> rev(fwd.rbegin(), fwd.rend());
  std::vector<std::size_t> shuffled = fwd;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  // Tree order, as the warp shuffles merge.
  std::vector<cd::accumulator> level = parts;
  while (level.size() > 1) {
    std::vector<cd::accumulator> next;
    for (std::size_t i = 0; i < level.size(); i += 2) {
      cd::accumulator a = level[i];
      if (i + 1 < level.size()) cd::merge(a, level[i + 1]);
      next.push_back(a);
    }
    level = next;
  }
  const cd::accumulator a = merged(fwd);
  for (const cd::accumulator& b : {merged(rev), merged(shuffled), level[0]}) {
    CHECK(b.zeros == a.zeros);
    CHECK(b.nans == a.nans);
    CHECK(b.infs == a.infs);
    CHECK(b.small == a.small);
    CHECK(b.large == a.large);
    CHECK(b.min == a.min);
    CHECK(b.max == a.max);
    CHECK(b.max_abs == a.max_abs);
    CHECK(same_or_both_nan(b.sumsq, a.sumsq));  // Inf/NaN present: identical non-finite
  }
  std::vector<double> xd(xs.begin(), xs.end());
  const reference r = ref_stats(xd, p.small, p.large);
  CHECK(a.zeros == r.zeros);
  CHECK(a.nans == r.nans);
  CHECK(a.infs == r.infs);
  CHECK(a.small == r.small);
  CHECK(a.large == r.large);
  CHECK(a.min == r.min);
  CHECK(a.max == r.max);
}

TEST_CASE("finish_row: an empty tensor and the basic set") {
  cd::accumulator a;
  cd::acc_init(a);
  double row[simic::stat::count];
  cd::finish_row(a, 0, 0.0, 1, row);
  CHECK(row[simic::stat::numel] == 0);
  CHECK(row[simic::stat::sumsq] == 0);
  CHECK(row[simic::stat::sum] == 0);
  CHECK(row[simic::stat::m2] == 0);
  CHECK(row[simic::stat::min] == inf);
  CHECK(row[simic::stat::max] == -inf);
  CHECK(row[simic::stat::max_abs] == 0);
  for (double& v : row) v = 42;
  cd::finish_row(a, 0, 0.0, 0, row);
  for (double v : row) CHECK(v == 0.0);  // every column written
}

TEST_CASE("summary: totals, norm extremes, vanishing / exploding at their bounds, health") {
  const double vanish = 1e-7, explode = 10.0;
  const cd::launch_params p = params(false, 1e-6, 10.0, vanish, explode);
  // Per-tensor norms: just below / at / just above each bound, a NaN norm.
  const std::vector<double> norms{std::nextafter(vanish, 0.0), vanish, std::nextafter(vanish, 1.0), 1.0,
                                  std::nextafter(explode, 0.0), explode, std::nextafter(explode, 100.0),
                                  std::numeric_limits<double>::quiet_NaN()};
  std::vector<double> rows((norms.size() + 1) * simic::stat::count, 0.0);
  simic::detail::gradient_summary s;
  simic::detail::summary_init(s);
  double total = 0;
  for (std::size_t i = 0; i < norms.size(); ++i) {
    double* row = rows.data() + i * simic::stat::count;
    row[simic::stat::sumsq] = norms[i] * norms[i];
    row[simic::stat::numel] = static_cast<double>(i + 1);
    row[simic::stat::zeros] = 1;
    row[simic::stat::nans] = i == 7 ? 2 : 0;
    total += row[simic::stat::sumsq];
    // Merge half of the rows through a second summary, as warps do.
    if (i % 2 == 0) {
      simic::detail::summary_add_row(s, row, p.vanishing, p.exploding);
    } else {
      simic::detail::gradient_summary o;
      simic::detail::summary_init(o);
      simic::detail::summary_add_row(o, row, p.vanishing, p.exploding);
      simic::detail::summary_merge(s, o);
    }
  }
  double out[simic::stat::count];
  simic::detail::summary_finish(s);
  simic::detail::summary_store(s, out);
  CHECK(std::isnan(out[simic::detail::summary_col::total_sumsq]));  // a NaN norm makes the total NaN, as on the host
  CHECK(out[simic::detail::summary_col::tensors] == 8);
  // sqrt(x^2) can differ from x by rounding: compare through the same route.
  CHECK(out[simic::detail::summary_col::min_norm] == std::sqrt(norms[0] * norms[0]));
  CHECK(out[simic::detail::summary_col::max_norm] == std::sqrt(norms[6] * norms[6]));
  CHECK(out[simic::detail::summary_col::elements] == 36);
  CHECK(out[simic::detail::summary_col::zeros] == 8);
  CHECK(out[simic::detail::summary_col::nans] == 2);
  std::uint64_t v = 0, e = 0;
  for (double n : norms) {
    const double r = std::sqrt(n * n);
    v += r < vanish;
    e += r > explode;
  }
  CHECK(out[simic::detail::summary_col::vanishing] == static_cast<double>(v));
  CHECK(out[simic::detail::summary_col::exploding] == static_cast<double>(e));
  CHECK(v >= 1);
  CHECK(e >= 1);
  CHECK(out[simic::detail::summary_col::health] == simic::gradient_health(v, e, 8));
  (void)total;

  simic::detail::gradient_summary empty;
  simic::detail::summary_init(empty);
  simic::detail::summary_finish(empty);
  simic::detail::summary_store(empty, out);
  CHECK(out[simic::detail::summary_col::min_norm] == 0);
  CHECK(out[simic::detail::summary_col::max_norm] == 0);
  CHECK(out[simic::detail::summary_col::health] == 1.0);
  CHECK(out[simic::detail::summary_col::tensors] == 0);
}

TEST_CASE("the shared code's text is what the host compiled, and all of it goes to NVRTC") {
  const std::string acc = cd::shared_code::accumulate;
  for (const char* name : {"add_narrow", "add_double", "fold", "merge", "finish_row", "struct plan_piece",
                           "struct launch_params"})
    CHECK(acc.find(name) != std::string::npos);
  CHECK(acc.find("SIMIC_SHARED_FN") != std::string::npos);  // left for the device prelude to define
  const std::string summary = simic::detail::shared_code::gradient_summary;
  for (const char* name : {"struct gradient_summary", "summary_add_row", "summary_finish", "summary_store",
                           "gradient_health_score"})
    CHECK(summary.find(name) != std::string::npos);
  const std::string layout = simic::shared_code::stat_layout;
  CHECK(layout.find("namespace stat") != std::string::npos);
  const std::string source = cd::kernel_source();
  for (const std::string& code : {layout, summary, acc}) CHECK(source.find(code) != std::string::npos);
}

TEST_CASE("signaling NaNs are counted as NaN and ignored by max / min, like quiet ones") {
  const cd::launch_params p = params(true);
  const float snan = cd::bits_to_f32(0x7f800001u);
  REQUIRE(std::isnan(snan));
  const std::vector<float> xs{cd::half_to_f32(0x7c01), 2.0f, snan, cd::bf16_to_f32(0xff81), -3.0f};
  cd::accumulator a;
  cd::acc_init(a);
  cd::group g;
  cd::group_init(g);
  for (float x : xs) cd::add_narrow<1>(g, a, x, 0.0f, false, p);
  cd::fold<1>(a, g);
  CHECK(a.nans == 3);
  CHECK(a.max_abs == 3.0);
  CHECK(a.max == 2.0);
  CHECK(a.min == -3.0);
  CHECK(cd::max_f32(1.0f, snan) == 1.0f);
  CHECK(cd::min_f32(snan, 1.0f) == 1.0f);
  CHECK(cd::max_f64(-1.0, std::numeric_limits<double>::quiet_NaN()) == -1.0);
}

TEST_CASE("fast path: clean groups stay on it; NaN, Inf or float32 overflow send a group to the careful path") {
  const cd::launch_params p = params(true);
  std::mt19937_64 rng(5);
  std::vector<float> clean = random_floats(rng, 4096, false);
  for (float& x : clean)
    if (std::fabs(x) > 1e18f) x = 1.0f;  // no overflow anywhere
  auto run = [&](const std::vector<float>& xs) {
    const cd::launch_plan plan = cd::make_launch_plan(
        std::vector<cd::plan_input>{{reinterpret_cast<std::uint64_t>(xs.data()), static_cast<std::int64_t>(xs.size()),
                                     cd::dtype_f32}},
        {});
    return simic_test::emulate(plan, p, 1);  // one thread: every group of 16 goes through the fast path
  };
  const std::uint64_t before = simic_test::careful_groups();
  std::vector<double> rows = run(clean);
  CHECK(simic_test::careful_groups() == before);
  std::vector<double> xd(clean.begin(), clean.end());
  check_row(rows.data(), ref_stats(xd, p.small, p.large), true, 1e3);

  for (float special : {std::numeric_limits<float>::quiet_NaN(), INFINITY, 3e19f}) {
    CAPTURE(special);
    std::vector<float> xs = clean;
    xs[1000] = special;
    xs[1001] = special;  // same group of 16 (elements 992..1007)
    xs[2000] = special;  // another group
    const std::uint64_t b = simic_test::careful_groups();
    rows = run(xs);
    CHECK(simic_test::careful_groups() - b == 2);
    std::vector<double> v(xs.begin(), xs.end());
    check_row(rows.data(), ref_stats(v, p.small, p.large), true, 1e3 + 3 * 3e19);
  }
  // needs_careful on its own.
  cd::group g;
  cd::group_init(g);
  cd::add_fast<0>(g, 1e19f, 0.0f, p);
  CHECK_FALSE(cd::needs_careful<0>(g));  // 1e38 still fits
  cd::add_fast<0>(g, 2e19f, 0.0f, p);
  CHECK(cd::needs_careful<0>(g));  // 5e38 does not
  cd::group_init(g);
  cd::add_fast<1>(g, 1.0f, -2e19f, p);  // (x - shift)^2 = 4e38 overflows
  CHECK_FALSE(cd::needs_careful<0>(g));
  CHECK(cd::needs_careful<1>(g));
  // The sum of squares alone detects NaN and Inf (the fast path has no
  // per-element test): whatever shares the group (zeros, values whose
  // squares flush to 0, the largest finite float, -Inf), wherever it sits.
  const float nan = std::numeric_limits<float>::quiet_NaN(), snan = std::numeric_limits<float>::signaling_NaN();
  const float fill[] = {0.0f, -0.0f, 1e-30f, 1.0f, -3.5f, 1.8e19f};
  for (float special : {nan, -nan, snan, INFINITY, -INFINITY}) {
    for (float other : fill) {
      for (int at = 0; at < 32; ++at) {
        for (int full = 0; full < 2; ++full) {
          cd::group_init(g);
          for (int k = 0; k < 32; ++k) {
            const float x = k == at ? special : other;
            if (full) cd::add_fast<1>(g, x, 0.5f, p); else cd::add_fast<0>(g, x, 0.0f, p);
          }
          CAPTURE(special);
          CAPTURE(other);
          CAPTURE(at);
          CHECK((full ? cd::needs_careful<1>(g) : cd::needs_careful<0>(g)));
        }
      }
    }
  }
  // Finite values only: clean until the float32 sum of squares passes
  // FLT_MAX (3.40e38): 37 x (3e18)^2 = 3.33e38 is below, 38 x = 3.42e38 above.
  cd::group_init(g);
  for (int k = 0; k < 37; ++k) cd::add_fast<0>(g, 3e18f, 0.0f, p);
  CHECK_FALSE(cd::needs_careful<0>(g));
  CHECK(static_cast<double>(g.sumsq) == doctest::Approx(37 * 9e36).epsilon(1e-6));
  cd::add_fast<0>(g, 3e18f, 0.0f, p);
  CHECK(cd::needs_careful<0>(g));
}
