#include <doctest/doctest.h>

#include "detect_support.hpp"
#include "simic/detect/reference/lstm_bounds.hpp"

using namespace simic;
using namespace simic::test;
using simic::reference::lstm_bounds;

namespace {
lstm_signal state(double h, double c) {
  lstm_signal l;
  l.h_norm = h;
  l.c_norm = c;
  return l;
}
}  // namespace

TEST_CASE("healthy strictly inside (1e-6, 100) for both norms") {
  lstm_bounds d;
  CHECK(d.healthy(state(1.0, 1.0)));
  CHECK(d.healthy(state(above(1e-6), below(100.0))));
  CHECK_FALSE(d.healthy(state(1e-6, 1.0)));
  CHECK_FALSE(d.healthy(state(1.0, 100.0)));
  CHECK_FALSE(d.healthy(state(below(1e-6), 1.0)));
  CHECK_FALSE(d.healthy(state(1.0, above(100.0))));
}

TEST_CASE("unhealthy state is one anomaly listing every reason") {
  lstm_bounds d;
  signals s;
  s.lstm = state(1.0, 2.0);
  CHECK(observe(d, s).empty());
  auto l = state(1e-9, 500.0);
  l.has_nan = true;
  s.lstm = l;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].kind == anomaly_kind::lstm_unhealthy);
  CHECK(r[0].detail.find("NaN in state") != std::string::npos);
  CHECK(r[0].detail.find("norm(h) 1e-09") != std::string::npos);
  CHECK(r[0].detail.find("norm(c) 500") != std::string::npos);
  l = state(1.0, 1.0);
  l.has_inf = true;
  s.lstm = l;
  CHECK(observe(d, s)[0].detail == "Inf in state");
}

TEST_CASE("absent LSTM signal is skipped; bad bounds rejected") {
  lstm_bounds d;
  CHECK(observe(d, signals{}).empty());
  CHECK_THROWS_WITH_AS(lstm_bounds({.norm_min = -1.0, .norm_max = 100.0}), doctest::Contains("norm_min"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(lstm_bounds({.norm_min = 1.0, .norm_max = 1.0}), doctest::Contains("norm_max"),
                       std::invalid_argument);
}
