#include <doctest/doctest.h>

#include "detect_support.hpp"
#include "simic/detect/kl_divergence.hpp"

using namespace simic;
using namespace simic::test;

namespace {
anomaly_report kl(double v) {
  kl_divergence d;
  signals s;
  s.approx_kl = v;
  return observe(d, s);
}
}  // namespace

TEST_CASE("kl spike strictly above 0.1, extreme strictly above 0.5, reported once") {
  CHECK(kl(below(0.1)).empty());
  CHECK(kl(0.1).empty());
  CHECK(kl(above(0.1)).has(anomaly_kind::kl_spike));
  CHECK(kl(0.5).has(anomaly_kind::kl_spike));
  CHECK_FALSE(kl(0.5).has(anomaly_kind::kl_extreme));
  const auto r = kl(above(0.5));
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::kl_extreme);
  CHECK(kl(-0.01).empty());
}

TEST_CASE("absent KL is skipped; bad bounds rejected") {
  kl_divergence d({.spike = 0.2, .extreme = 0.2});
  CHECK(observe(d, signals{}).empty());
  CHECK_THROWS_WITH_AS(kl_divergence({.spike = 0.0, .extreme = 0.5}), doctest::Contains("spike"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(kl_divergence({.spike = 0.2, .extreme = 0.1}), doctest::Contains("extreme"),
                       std::invalid_argument);
}

TEST_CASE("kl: figures; a lasting spike is reported once, a rise to extreme is a new onset; every_check repeats") {
  kl_divergence d;
  signals s;
  s.approx_kl = 0.2;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].value == 0.2);
  CHECK(r[0].threshold == 0.1);
  CHECK(observe(d, s).empty());
  s.approx_kl = 0.8;
  const auto x = observe(d, s);
  REQUIRE(x.size() == 1);
  CHECK(x[0].kind == anomaly_kind::kl_extreme);
  CHECK(x[0].threshold == 0.5);
  s.approx_kl = 0.01;
  anomaly_report cleared;
  for (int i = 0; i < 3; ++i) cleared.merge(observe(d, s));
  CHECK(cleared.clears().size() == 2);  // the spike (quiet since the rise) and the extreme
  kl_divergence every({.spike = 0.1, .extreme = 0.5, .how = reporting::every_check()});
  s.approx_kl = 0.2;
  CHECK(observe(every, s).size() == 1);
  CHECK(observe(every, s).size() == 1);
}
