#include <doctest/doctest.h>

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

TEST_CASE("gradient health formula by hand, clamped to [0, 1]") {
  CHECK(gradient_health(0, 0, 0) == 1.0);
  CHECK(gradient_health(0, 0, 10) == 1.0);
  CHECK(gradient_health(2, 0, 10) == doctest::Approx(1.0 - 0.5 * 0.2));
  CHECK(gradient_health(0, 3, 10) == doctest::Approx(1.0 - 0.8 * 0.3));
  CHECK(gradient_health(4, 5, 10) == doctest::Approx(0.4));  // 1 - 0.5*0.4 - 0.8*0.5
  CHECK(gradient_health(0, 10, 8) == 0.0);                   // 1 - 1.0 = 0 exactly
  CHECK(gradient_health(10, 10, 10) == 0.0);                 // 1 - 0.5 - 0.8 < 0: clamped
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
