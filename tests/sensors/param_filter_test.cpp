#include <doctest/doctest.h>

#include <string>

#include "simic/sensors/param_filter.hpp"

using simic::glob_match;
using simic::param_filter;

TEST_CASE("glob_match: '*' spans any run (dots included), '?' one character, the whole name must match") {
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "lstm.weight_ih_l0"));
  CHECK(glob_match("lstm.*", "lstm.weight_ih_l0"));
  CHECK_FALSE(glob_match("lstm.*", "head.lstm.weight"));
  CHECK(glob_match("*.bias", "encoder.layers.0.bias"));
  CHECK_FALSE(glob_match("*.bias", "encoder.layers.0.bias_hh"));
  CHECK(glob_match("layer?.w", "layer1.w"));
  CHECK_FALSE(glob_match("layer?.w", "layer10.w"));
  CHECK(glob_match("a*b*c", "axxbyyc"));
  CHECK_FALSE(glob_match("a*b*c", "axxbyy"));
  CHECK(glob_match("", ""));
  CHECK_FALSE(glob_match("", "x"));
  CHECK_FALSE(glob_match("abc", "ab"));
  CHECK(glob_match("**a", "bba"));
}

TEST_CASE("param_filter: include, exclude and predicate combine as documented") {
  const param_filter all;
  CHECK(all("anything"));
  param_filter f;
  f.include({"policy.*", "value.*"}).exclude("*.bias");
  CHECK(f("policy.fc.weight"));
  CHECK(f("value.out.weight"));
  CHECK_FALSE(f("policy.fc.bias"));
  CHECK_FALSE(f("encoder.weight"));
  CHECK(f.includes().size() == 2);
  CHECK(f.excludes().size() == 1);
  param_filter p([](std::string_view n) { return n.size() < 10; });
  p.exclude("x*");
  CHECK(p("short"));
  CHECK_FALSE(p("much.longer.name"));
  CHECK_FALSE(p("xshort"));
}
