#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <stdexcept>
#include <string>

#include "simic/core/anomaly.hpp"

using namespace simic;

TEST_CASE("every built-in kind has its reference name and round-trips") {
  const char* expected[] = {"ratio_explosion",     "ratio_collapse",        "value_collapse",
                            "numerical_instability", "entropy_collapse",     "entropy_low",
                            "kl_spike",            "kl_extreme",            "gradient_norm_drift",
                            "gradient_health_drift", "performance_degradation", "lstm_unhealthy",
                            "gradient_vanishing",  "gradient_exploding",    "update_ratio_drift",
                            "signal_missing",      "host_ratio_drift",      "loss_spike",
                            "loss_divergence",     "loss_extreme",          "learning_stall"};
  std::set<std::string> seen;
  for (unsigned i = 0; i < 21; ++i) {
    const auto k = anomaly_kind::from_id(static_cast<std::uint16_t>(i));
    CHECK(k.builtin());
    CHECK(to_string(k) == expected[i]);
    CHECK(parse_anomaly_kind(expected[i]) == k);
    seen.insert(std::string(to_string(k)));
  }
  CHECK(seen.size() == 21);
  CHECK(anomaly_kind::builtin_count == 21);
}

TEST_CASE("built-in severities: failures that corrupt training are critical, early signs are warnings") {
  for (auto k : {anomaly_kind::numerical_instability, anomaly_kind::lstm_unhealthy, anomaly_kind::kl_extreme,
                 anomaly_kind::ratio_explosion, anomaly_kind::entropy_collapse, anomaly_kind::gradient_exploding})
    CHECK(default_severity(k) == severity::critical);
  for (auto k : {anomaly_kind::kl_spike, anomaly_kind::ratio_collapse, anomaly_kind::entropy_low,
                 anomaly_kind::gradient_norm_drift, anomaly_kind::gradient_health_drift, anomaly_kind::value_collapse,
                 anomaly_kind::performance_degradation, anomaly_kind::gradient_vanishing,
                 anomaly_kind::update_ratio_drift, anomaly_kind::signal_missing})
    CHECK(default_severity(k) == severity::warning);
  CHECK(to_string(severity::warning) == "warning");
  CHECK(parse_severity("CRITICAL") == severity::critical);
  CHECK_THROWS_WITH_AS((void)parse_severity("fatal"), doctest::Contains("warning, critical"), std::invalid_argument);
  CHECK(severity::critical > severity::warning);
}

TEST_CASE("user kinds: registered once by name, with a severity, parsed and printed like built-in ones") {
  const anomaly_kind a = register_anomaly_kind("test_loss_spike", severity::warning);
  CHECK_FALSE(a.builtin());
  CHECK(a.id() >= anomaly_kind::builtin_count);
  CHECK(to_string(a) == "test_loss_spike");
  CHECK(default_severity(a) == severity::warning);
  CHECK(register_anomaly_kind("test_loss_spike", severity::warning) == a);  // idempotent
  CHECK(parse_anomaly_kind("TEST_LOSS_SPIKE") == a);
  CHECK(anomaly_kind::from_id(a.id()) == a);
  const anomaly_kind b = register_anomaly_kind("test_throughput_drop", severity::critical);
  CHECK(b != a);
  CHECK(b.id() == a.id() + 1);
  CHECK(anomaly_kind_count() >= anomaly_kind::builtin_count + 2u);
  // bad names, a built-in name, and a second severity for a name are refused
  CHECK_THROWS_WITH_AS(register_anomaly_kind("", severity::warning), doctest::Contains("a-z, 0-9 and _"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(register_anomaly_kind("Loss Spike", severity::warning), doctest::Contains("name 'Loss Spike'"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(register_anomaly_kind(std::string(65, 'a'), severity::warning),
                       doctest::Contains("1 to 64 characters"), std::invalid_argument);
  CHECK_NOTHROW(register_anomaly_kind(std::string(64, 'a'), severity::warning));
  CHECK_THROWS_WITH_AS(register_anomaly_kind("kl_spike", severity::warning), doctest::Contains("built-in"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(register_anomaly_kind("test_loss_spike", severity::critical),
                       doctest::Contains("registered already with severity warning"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((void)anomaly_kind::from_id(static_cast<std::uint16_t>(anomaly_kind_count())),
                       doctest::Contains("id"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((void)parse_anomaly_kind("test_nope"), doctest::Contains("test_loss_spike"),
                       std::invalid_argument);
}

TEST_CASE("a severity table overrides per kind; unset kinds keep their default") {
  severity_table t;
  CHECK(t.of(anomaly_kind::kl_spike) == severity::warning);
  t.set(anomaly_kind::kl_spike, severity::critical).set(anomaly_kind::lstm_unhealthy, severity::warning);
  CHECK(t.of(anomaly_kind::kl_spike) == severity::critical);
  CHECK(t.of(anomaly_kind::lstm_unhealthy) == severity::warning);
  CHECK(t.of(anomaly_kind::kl_extreme) == severity::critical);
  t.set(anomaly_kind::kl_spike, severity::warning);  // set again: replaced, not added
  CHECK(t.of(anomaly_kind::kl_spike) == severity::warning);
  anomaly_report r;
  r.add(anomaly_kind::lstm_unhealthy, "x");
  CHECK(r[0].severity == severity::critical);  // the default until stamped
  CHECK(r.has(severity::critical));
  r.stamp(t);
  CHECK(r[0].severity == severity::warning);
  CHECK_FALSE(r.has(severity::critical));
  CHECK(r.has(severity::warning));
}

TEST_CASE("anomalies carry their figures; absent figures are NaN and compare equal") {
  anomaly_report r;
  r.add(anomaly_kind::kl_spike, "approx KL 0.2 > 0.1", {0.2, 0.1});
  r.add(anomaly_kind::performance_degradation, "p", {300.0, 450.0, 500.0});
  r.add(anomaly_kind::numerical_instability, "loss is nan");
  CHECK(r[0].value == 0.2);
  CHECK(r[0].threshold == 0.1);
  CHECK_FALSE(r[0].baseline.has_value());
  CHECK(r[1].baseline == 500.0);
  CHECK(std::isnan(r[2].value));
  CHECK(std::isnan(r[2].threshold));
  anomaly_report copy = r;
  CHECK(copy == r);  // NaN figures equal each other
  anomaly_report other;
  other.add(anomaly_kind::kl_spike, "approx KL 0.2 > 0.1", {0.2, 0.2});
  CHECK_FALSE(other[0] == r[0]);
  r.add_clear(anomaly_kind::kl_spike, 4, 0.05);
  REQUIRE(r.clears().size() == 1);
  CHECK(r.clears()[0] == anomaly_clear{anomaly_kind::kl_spike, 4, 0.05});
  CHECK(r.size() == 3);  // clears are no anomalies
  r.clear();
  CHECK(r.clears().empty());
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

TEST_CASE("a refused name is quoted escaped and bounded: printable ASCII as it is, other bytes as \\xNN") {
  auto message = [](auto call) {
    try {
      call();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    FAIL("not refused");
    return std::string();
  };
  auto refused_name = [&](std::string_view name) {
    return message([&] { (void)register_anomaly_kind(name, severity::warning); });
  };
  const std::string tail = " is not valid; valid: 1 to 64 characters of a-z, 0-9 and _";
  CHECK(refused_name(std::string_view("a\nb\0c", 5)) == "simic::register_anomaly_kind: name 'a\\x0ab\\x00c'" + tail);
  CHECK(refused_name("caf\xc3\xa9") == "simic::register_anomaly_kind: name 'caf\\xc3\\xa9'" + tail);
  CHECK(refused_name("it's \\ \x7f") == "simic::register_anomaly_kind: name 'it\\x27s \\x5c \\x7f'" + tail);
  CHECK(refused_name("Loss Spike") == "simic::register_anomaly_kind: name 'Loss Spike'" + tail);
  // at most 64 bytes shown, then "..." and the length
  CHECK(refused_name(std::string(64, 'A')) == "simic::register_anomaly_kind: name '" + std::string(64, 'A') + "'" + tail);
  CHECK(refused_name(std::string(65, 'a')) ==
        "simic::register_anomaly_kind: name '" + std::string(64, 'a') + "...' (65 bytes)" + tail);
  CHECK(refused_name(std::string(100000, '\n')).size() < 400);
  CHECK(refused_name("kl_spike") == "simic::register_anomaly_kind: name 'kl_spike' is a built-in kind; valid: a name of your own");
  // parsing names refuses alike
  CHECK(message([] { (void)parse_anomaly_kind("x\r\n"); }).rfind("simic: unknown anomaly kind 'x\\x0d\\x0a'; valid: ", 0) == 0);
  CHECK(message([] { (void)parse_severity("\x1b[31mred"); }) ==
        "simic: unknown severity '\\x1b[31mred'; valid: warning, critical");
  for (const std::string& m : {refused_name(std::string_view("\0\xff\n", 3)), message([] { (void)parse_level("\t"); })})
    for (const char c : m) CHECK((c >= 0x20 && c < 0x7F));
}
