#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

using namespace simic;

TEST_CASE("training progress: episode >= 1 and total >= episode") {
  training_progress p(1, 1);
  CHECK(p.fraction() == 1.0);
  CHECK(training_progress(25, 100).fraction() == 0.25);
  CHECK_THROWS_WITH_AS(training_progress(0, 10), doctest::Contains("episode"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(training_progress(11, 10), doctest::Contains("total"), std::invalid_argument);
  CHECK_NOTHROW(training_progress(10, 10));
}

TEST_CASE("gradient_signal finiteness") {
  gradient_signal g;
  CHECK(g.finite());
  g.nan_count = 1;
  CHECK_FALSE(g.finite());
  g.nan_count = 0;
  g.inf_count = 2;
  CHECK_FALSE(g.finite());
  g.inf_count = 0;
  g.total_norm = std::numeric_limits<double>::infinity();
  CHECK_FALSE(g.finite());
}

TEST_CASE("LSTM RMS is norm / sqrt(elements); unknown elements give NaN") {
  lstm_signal l;
  l.h_norm = 8.0;
  l.c_norm = 48.0;
  CHECK(std::isnan(l.h_rms()));
  l.elements = 64;
  CHECK(l.h_rms() == 1.0);
  CHECK(l.c_rms() == 6.0);
  l.elements = 1;
  CHECK(l.c_rms() == 48.0);
}

TEST_CASE("user signals are read by name; an absent name is absent") {
  const user_signal us[] = {{"loss_spike", 2.5}, {"throughput", 1e4}};
  signals s;
  CHECK_FALSE(s.user_value("loss_spike").has_value());
  s.user = us;
  CHECK(s.user_value("loss_spike") == 2.5);
  CHECK(s.user_value("throughput") == 1e4);
  CHECK_FALSE(s.user_value("loss").has_value());
}
