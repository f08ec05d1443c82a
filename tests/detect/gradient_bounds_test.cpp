#include <doctest/doctest.h>

#include "detect_support.hpp"
#include "simic/detect/gradient_bounds.hpp"

using namespace simic;
using namespace simic::test;

TEST_CASE("vanishing: smallest parameter norm strictly below 1e-7") {
  gradient_bounds d;
  signals s;
  s.gradients = grads(1.0, 1e-7, 1.0);
  CHECK(observe(d, s).empty());
  s.gradients = grads(1.0, above(1e-7), 1.0);
  CHECK(observe(d, s).empty());
  auto g = grads(1.0, below(1e-7), 1.0, 8);
  g.vanishing = 2;
  s.gradients = g;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::gradient_vanishing);
  CHECK(r[0].detail.find("2 of 8 parameters vanishing") != std::string::npos);
}

TEST_CASE("exploding: largest parameter norm strictly above 10") {
  gradient_bounds d;
  signals s;
  s.gradients = grads(10.0, 1.0, 10.0);
  CHECK(observe(d, s).empty());
  s.gradients = grads(10.0, 1.0, below(10.0));
  CHECK(observe(d, s).empty());
  s.gradients = grads(11.0, 1.0, above(10.0));
  CHECK(observe(d, s).has(anomaly_kind::gradient_exploding));
}

TEST_CASE("both at once; absent or empty gradients are skipped; custom and bad bounds") {
  gradient_bounds d({.vanishing = 1e-3, .exploding = 2.0});
  signals s;
  CHECK(observe(d, s).empty());
  s.gradients = grads(0.0, 0.0, 0.0, 0);  // no parameters: nothing to judge
  CHECK(observe(d, s).empty());
  s.gradients = grads(3.0, 1e-4, 3.0);
  const auto r = observe(d, s);
  REQUIRE(r.size() == 2);
  CHECK(r[0].kind == anomaly_kind::gradient_vanishing);
  CHECK(r[1].kind == anomaly_kind::gradient_exploding);
  CHECK_THROWS_WITH_AS(gradient_bounds({.vanishing = -1.0, .exploding = 10.0}), doctest::Contains("vanishing"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gradient_bounds({.vanishing = 1.0, .exploding = 1.0}), doctest::Contains("exploding"),
                       std::invalid_argument);
}

TEST_CASE("gradient bounds: figures, onset and clear") {
  gradient_bounds d;
  signals s;
  s.gradients = grads(50.0, 1e-3, 40.0);
  const auto r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::gradient_exploding);
  CHECK(r[0].value == 40.0);
  CHECK(r[0].threshold == 10.0);
  CHECK(observe(d, s).empty());
  s.gradients = grads(1.0, 1e-3, 0.5);
  anomaly_report cleared;
  for (int i = 0; i < 3; ++i) cleared.merge(observe(d, s));
  REQUIRE(cleared.clears().size() == 1);
  CHECK(cleared.clears()[0].duration == 2);
  gradient_bounds every({.vanishing = 1e-7, .exploding = 10.0, .how = reporting::every_check()});
  s.gradients = grads(50.0, 1e-9, 40.0);
  CHECK(observe(every, s).size() == 2);
  CHECK(observe(every, s).size() == 2);
}
