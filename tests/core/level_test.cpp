#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "simic/core/level.hpp"

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
