#include <doctest/doctest.h>

#include <limits>
#include <stdexcept>
#include <string>

#include "simic/core/response.hpp"

using namespace simic;

namespace {
signals with_grads(std::uint64_t nans, double norm = 1.0) {
  signals s;
  gradient_signal g;
  g.nan_count = nans;
  g.total_norm = norm;
  g.parameters = 4;
  s.gradients = g;
  return s;
}
// The report as the monitor hands it over: non-finite gradients are reported
// as numerical_instability (critical by default).
response decide(const skip_nonfinite_then_stop& p, const signals& s, response_state& st,
                severity reported = severity::critical) {
  response out;
  anomaly_report r;
  if (s.gradients && !s.gradients->finite()) {
    anomaly a{anomaly_kind::numerical_instability, "gradients"};
    a.severity = reported;
    r.add(a);
  }
  p.decide(s, r, st, out);
  return out;
}
}  // namespace

TEST_CASE("the policy acts on a reported numerical_instability at act_on severity or above") {
  response_state st;
  skip_nonfinite_then_stop p;  // acts on critical
  CHECK(p.act_on() == severity::critical);
  CHECK(decide(p, with_grads(1), st, severity::warning).act == action::proceed);  // below act_on
  CHECK(st.total_skips == 0);
  CHECK(decide(p, with_grads(1), st, severity::critical).act == action::skip_step);  // at act_on
  skip_nonfinite_then_stop any(5, severity::warning);
  CHECK(decide(any, with_grads(1), st, severity::warning).act == action::skip_step);
  // non-finite gradients that no detector reported: nothing to act on
  response out;
  anomaly_report empty;
  response_state fresh;
  p.decide(with_grads(3), empty, fresh, out);
  CHECK(out.act == action::proceed);
  // a critical anomaly of another kind with finite gradients: proceed
  anomaly_report other;
  other.add(anomaly_kind::kl_extreme, "kl");
  p.decide(with_grads(0), other, fresh, out);
  CHECK(out.act == action::proceed);
  CHECK_THROWS_WITH_AS(skip_nonfinite_then_stop(5, static_cast<severity>(2)), doctest::Contains("act_on"),
                       std::invalid_argument);
}

TEST_CASE("finite or absent gradients proceed") {
  skip_nonfinite_then_stop p;
  response_state st;
  CHECK(decide(p, signals{}, st).act == action::proceed);
  CHECK(decide(p, with_grads(0), st).act == action::proceed);
  CHECK(st.total_skips == 0);
}

TEST_CASE("non-finite gradients skip; K in a row stop, naming the cause") {
  skip_nonfinite_then_stop p(3);
  response_state st;
  response r1 = decide(p, with_grads(2), st);
  CHECK(r1.act == action::skip_step);
  CHECK(r1.reason.find("non-finite gradients (2 NaN") != std::string::npos);
  CHECK(decide(p, with_grads(0, std::numeric_limits<double>::infinity()), st).act == action::skip_step);
  CHECK(st.consecutive_skips == 2);
  response r3 = decide(p, with_grads(1), st);  // third in a row: at the limit
  CHECK(r3.act == action::stop);
  CHECK(r3.reason.find("3 consecutive updates skipped (limit 3)") != std::string::npos);
  CHECK(r3.reason.find("non-finite gradients") != std::string::npos);
  CHECK(st.total_skips == 3);
}

TEST_CASE("a finite update resets the consecutive count, not the total") {
  skip_nonfinite_then_stop p(2);
  response_state st;
  CHECK(decide(p, with_grads(1), st).act == action::skip_step);  // 1 of 2: just below
  CHECK(decide(p, with_grads(0), st).act == action::proceed);
  CHECK(st.consecutive_skips == 0);
  CHECK(decide(p, with_grads(1), st).act == action::skip_step);
  CHECK(decide(p, with_grads(1), st).act == action::stop);  // 2 of 2: at the limit
  CHECK(st.total_skips == 3);
}

TEST_CASE("max_consecutive must be at least 1") {
  CHECK_THROWS_WITH_AS(skip_nonfinite_then_stop(0), doctest::Contains("max_consecutive"), std::invalid_argument);
  skip_nonfinite_then_stop one(1);
  response_state st;
  CHECK(decide(one, with_grads(1), st).act == action::stop);
}

TEST_CASE("action names") {
  CHECK(to_string(action::proceed) == "proceed");
  CHECK(to_string(action::skip_step) == "skip_step");
  CHECK(to_string(action::stop) == "stop");
}
