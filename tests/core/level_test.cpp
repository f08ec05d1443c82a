#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "simic/core/anomaly.hpp"
#include "simic/core/config.hpp"
#include "simic/core/level.hpp"
#include "simic/core/response.hpp"

using namespace simic;

TEST_CASE("levels are ordered OFF < MINIMAL < NORMAL < DEBUG") {
  CHECK(level::off < level::minimal);
  CHECK(level::minimal < level::normal);
  CHECK(level::normal < level::debug);
}

TEST_CASE("level names round-trip and parse in any case") {
  for (level l : {level::off, level::minimal, level::normal, level::debug}) CHECK(parse_level(to_string(l)) == l);
  CHECK(parse_level("debug") == level::debug);
  CHECK(parse_level("Normal") == level::normal);
  CHECK(to_string(level::minimal) == "MINIMAL");
}

TEST_CASE("an unknown level name is rejected with the list of valid names") {
  try {
    (void)parse_level("verbose");
    FAIL("parse_level accepted 'verbose'");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    CHECK(what.find("'verbose'") != std::string::npos);
    CHECK(what.find("OFF, MINIMAL, NORMAL, DEBUG") != std::string::npos);
  }
  CHECK_THROWS_AS((void)parse_level(""), std::invalid_argument);
  CHECK_THROWS_AS((void)parse_level("DEBUG "), std::invalid_argument);
}

TEST_CASE("categories: tags carry their level, strings parse or list valid names") {
  static_assert(Category<cat::ops_normal> && Category<cat::debug> && Category<cat::critical> && Category<cat::memory>);
  static_assert(!Category<int>);
  CHECK(cat::debug::min_level == level::debug);
  CHECK(cat::ops_normal::min_level == level::normal);
  CHECK(cat::critical::min_level == level::minimal);
  for (auto c : {category_id::critical, category_id::ops_normal, category_id::memory, category_id::debug})
    CHECK(parse_category(to_string(c)) == c);
  CHECK(min_level(category_id::debug) == cat::debug::min_level);
  CHECK(min_level(category_id::ops_normal) == cat::ops_normal::min_level);
  try {
    (void)parse_category("ops_nromal");
    FAIL("misspelt category accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("critical, ops_normal, memory, debug") != std::string::npos);
  }
}

TEST_CASE("an enum value past the last name (a cast of a bad number) reads as \"invalid\", never past the table") {
  // below / at / above the end of each table
  CHECK(to_string(static_cast<level>(0)) == "OFF");
  CHECK(to_string(static_cast<level>(3)) == "DEBUG");
  CHECK(to_string(static_cast<level>(4)) == "invalid");
  CHECK(to_string(static_cast<level>(9)) == "invalid");
  CHECK(to_string(static_cast<level>(255)) == "invalid");
  CHECK(to_string(static_cast<category_id>(3)) == "debug");
  CHECK(to_string(static_cast<category_id>(4)) == "invalid");
  CHECK(to_string(static_cast<category_id>(255)) == "invalid");
  CHECK(to_string(static_cast<severity>(1)) == "critical");
  CHECK(to_string(static_cast<severity>(2)) == "invalid");
  CHECK(to_string(static_cast<action>(2)) == "stop");
  CHECK(to_string(static_cast<action>(3)) == "invalid");
  static_assert(to_string(static_cast<level>(9)) == "invalid");  // still a constant expression
}

TEST_CASE("a category_id past the last crossing an API is refused, naming the argument and the valid range") {
  CHECK(min_level(static_cast<category_id>(3)) == level::debug);  // at the end: valid
  CHECK_THROWS_WITH_AS(min_level(static_cast<category_id>(4)),
                       "simic::min_level: category = 4 is out of range; valid: critical, ops_normal, memory or debug (0..3)",
                       std::invalid_argument);
  const config c;
  CHECK(c.should_collect(category_id::critical));
  CHECK_THROWS_WITH_AS(static_cast<void>(c.should_collect(static_cast<category_id>(9))), doctest::Contains("category = 9"),
                       std::invalid_argument);
}

TEST_CASE("a severity past the last is refused where it enters: the severity table and kind registration") {
  severity_table t;
  CHECK_NOTHROW(t.set(anomaly_kind::kl_spike, static_cast<severity>(1)));  // critical: the last valid
  CHECK(t.of(anomaly_kind::kl_spike) == severity::critical);
  CHECK_THROWS_WITH_AS(t.set(anomaly_kind::kl_spike, static_cast<severity>(2)),
                       "simic::severity_table::set: severity = 2 is out of range; valid: warning or critical",
                       std::invalid_argument);
  CHECK(t.of(anomaly_kind::kl_spike) == severity::critical);  // unchanged
  CHECK_THROWS_WITH_AS(t.set(anomaly_kind::entropy_low, static_cast<severity>(7)), doctest::Contains("severity = 7"),
                       std::invalid_argument);
  CHECK(t.of(anomaly_kind::entropy_low) == severity::warning);  // no override was added
  CHECK_THROWS_WITH_AS(register_anomaly_kind("test_bad_severity", static_cast<severity>(2)),
                       doctest::Contains("default_severity = 2"), std::invalid_argument);
  CHECK_THROWS_AS(parse_anomaly_kind("test_bad_severity"), std::invalid_argument);  // not registered
}
