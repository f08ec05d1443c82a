#include <doctest/doctest.h>

#include <array>
#include <limits>

#include "detect_support.hpp"
#include "simic/detect/numerical_stability.hpp"

using namespace simic;
using namespace simic::test;

namespace {
constexpr double qnan = std::numeric_limits<double>::quiet_NaN();
constexpr double pinf = std::numeric_limits<double>::infinity();
}  // namespace

TEST_CASE("finite signals are quiet, including extreme finite values") {
  numerical_stability d;
  signals s;
  s.loss = std::numeric_limits<double>::max();
  s.ratio_max = 1e300;
  s.approx_kl = 0.0;
  s.gradients = grads(1e30, 1.0, 1e30);
  CHECK(observe(d, s).empty());
}

TEST_CASE("each non-finite signal is reported once, naming it") {
  numerical_stability d;
  const std::array<head_entropy, 2> heads{{{"move", 0.5}, {"fire", qnan}}};
  signals s;
  s.loss = qnan;
  s.ratio_max = pinf;
  s.ratio_min = 1.0;
  s.approx_kl = -pinf;
  s.explained_variance = qnan;
  s.performance = qnan;
  s.entropy = heads;
  auto g = grads(1.0, 0.1, 1.0);
  g.nan_count = 3;
  s.gradients = g;
  const auto r = observe(d, s);
  REQUIRE(r.size() == 7);
  CHECK(r.count(anomaly_kind::numerical_instability) == 7);
  CHECK(r[0].detail == "loss is nan");
  CHECK(r[1].detail == "ratio_max is inf");
  CHECK(r[2].detail == "approx_kl is -inf");
  CHECK(r[3].detail == "explained_variance is nan");
  CHECK(r[4].detail == "performance is nan");
  CHECK(r[5].detail.find("head 'fire'") != std::string::npos);
  CHECK(r[6].detail.find("3 NaN, 0 Inf") != std::string::npos);
}

TEST_CASE("gradients: Inf elements or a non-finite norm alone are enough") {
  numerical_stability d;
  signals s;
  auto g = grads(1.0, 0.1, 1.0);
  g.inf_count = 1;
  s.gradients = g;
  CHECK(observe(d, s).size() == 1);
  g.inf_count = 0;
  g.total_norm = pinf;
  s.gradients = g;
  CHECK(observe(d, s).size() == 1);
}
