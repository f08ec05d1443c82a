#include <doctest/doctest.h>

#include <set>
#include <stdexcept>
#include <string>

#include "simic/core/anomaly.hpp"

using namespace simic;

TEST_CASE("every kind has the DESIGN.md name and round-trips") {
  const char* expected[] = {"ratio_explosion",     "ratio_collapse",        "value_collapse",
                            "numerical_instability", "entropy_collapse",     "entropy_low",
                            "kl_spike",            "kl_extreme",            "gradient_norm_drift",
                            "gradient_health_drift", "performance_degradation", "lstm_unhealthy",
                            "gradient_vanishing",  "gradient_exploding"};
  std::set<std::string> seen;
  for (unsigned i = 0; i < 14; ++i) {
    const auto k = static_cast<anomaly_kind>(i);
    CHECK(to_string(k) == expected[i]);
    CHECK(parse_anomaly_kind(expected[i]) == k);
    seen.insert(std::string(to_string(k)));
  }
  CHECK(seen.size() == 14);
}

TEST_CASE("an unknown kind name lists the valid ones") {
  CHECK_THROWS_WITH_AS((void)parse_anomaly_kind("gradient_explosion"),
                       doctest::Contains("ratio_explosion, ratio_collapse"), std::invalid_argument);
}

TEST_CASE("a report keeps order and every detail of a repeated kind") {
  anomaly_report r;
  CHECK(r.empty());
  r.add(anomaly_kind::kl_spike, "first");
  r.add(anomaly_kind::ratio_explosion, "ratio");
  r.add(anomaly_kind::kl_spike, "second");
  REQUIRE(r.size() == 3);
  CHECK(r[0].kind == anomaly_kind::kl_spike);
  CHECK(r[1].kind == anomaly_kind::ratio_explosion);
  CHECK(r[2].detail == "second");
  CHECK(r.count(anomaly_kind::kl_spike) == 2);
  CHECK(r.count(anomaly_kind::value_collapse) == 0);
  CHECK(r.has(anomaly_kind::ratio_explosion));
  CHECK_FALSE(r.has(anomaly_kind::kl_extreme));
  const auto d = r.details(anomaly_kind::kl_spike);
  REQUIRE(d.size() == 2);
  CHECK(d[0] == "first");
  CHECK(d[1] == "second");
  CHECK_THROWS_AS((void)r[3], std::out_of_range);
}

TEST_CASE("reports merge in order, from copies and by move") {
  anomaly_report a, b, c;
  a.add(anomaly_kind::kl_spike, "a");
  b.add(anomaly_kind::kl_spike, "b");
  b.add(anomaly_kind::entropy_low, "b2");
  a.merge(b);
  REQUIRE(a.size() == 3);
  CHECK(a[1].detail == "b");
  CHECK(b.size() == 2);  // the copy merge leaves the source
  c.merge(std::move(b));
  CHECK(c.size() == 2);
  CHECK(b.empty());
  a.merge(std::move(c));
  CHECK(a.size() == 5);
  CHECK(a.details(anomaly_kind::kl_spike) == std::vector<std::string>{"a", "b", "b"});
  a.clear();
  CHECK(a.empty());
}
