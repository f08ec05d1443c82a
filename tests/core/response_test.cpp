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
response decide(const skip_then_stop& p, const signals& s, response_state& st,
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
  const skip_then_stop p = skip_nonfinite_then_stop();  // acts on critical
  CHECK(p.act_on() == severity::critical);
  CHECK(decide(p, with_grads(1), st, severity::warning).act == action::proceed);  // below act_on
  CHECK(st.total_skips == 0);
  CHECK(decide(p, with_grads(1), st, severity::critical).act == action::skip_step);  // at act_on
  const skip_then_stop any = skip_nonfinite_then_stop(5, severity::warning);
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
  const skip_then_stop p = skip_nonfinite_then_stop();
  response_state st;
  CHECK(decide(p, signals{}, st).act == action::proceed);
  CHECK(decide(p, with_grads(0), st).act == action::proceed);
  CHECK(st.total_skips == 0);
}

TEST_CASE("non-finite gradients skip; K in a row stop, naming the cause") {
  const skip_then_stop p = skip_nonfinite_then_stop(3);
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
  const skip_then_stop p = skip_nonfinite_then_stop(2);
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
  const skip_then_stop one = skip_nonfinite_then_stop(1);
  response_state st;
  CHECK(decide(one, with_grads(1), st).act == action::stop);
}

namespace {
// A report of one anomaly of `kind` at `sev`, with finite gradients.
response decide_one(const skip_then_stop& p, anomaly_kind kind, severity sev, response_state& st) {
  anomaly_report r;
  anomaly a{kind, "detail"};
  a.severity = sev;
  r.add(a);
  response out;
  p.decide(with_grads(0), r, st, out);
  return out;
}
}  // namespace

TEST_CASE("the guard: a critical anomaly of any kind skips the step; a warning does not") {
  const skip_then_stop p;  // the default: skip_rules{.critical = true}
  CHECK(p.rules().critical);
  response_state st;
  CHECK(decide_one(p, anomaly_kind::gradient_exploding, severity::warning, st).act == action::proceed);
  CHECK(st.total_skips == 0);
  const response r = decide_one(p, anomaly_kind::gradient_exploding, severity::critical, st);
  CHECK(r.act == action::skip_step);
  CHECK(r.reason == "skipping the optimizer step: gradient_exploding (detail)");
  CHECK(decide_one(p, anomaly_kind::loss_extreme, severity::critical, st).act == action::skip_step);
  CHECK(st.consecutive_skips == 2);
  // a report of clears only (a condition that ended) skips nothing
  anomaly_report clears;
  clears.add_clear(anomaly_kind::gradient_exploding, 3, 1.0);
  response out;
  p.decide(with_grads(0), clears, st, out);
  CHECK(out.act == action::proceed);
  CHECK(st.consecutive_skips == 0);
  // the fifth critical step in a row stops (the default limit 5), naming the last cause
  for (int i = 0; i < 4; ++i) CHECK(decide_one(p, anomaly_kind::kl_extreme, severity::critical, st).act == action::skip_step);
  const response stop = decide_one(p, anomaly_kind::kl_extreme, severity::critical, st);
  CHECK(stop.act == action::stop);
  CHECK(stop.reason == "stopping: 5 consecutive updates skipped (limit 5); last cause: kl_extreme (detail)");
}

TEST_CASE("the guard's rules: kinds that pass, kinds that skip at any severity, the guard off") {
  const skip_then_stop pass(5, skip_rules{.critical = true, .pass_on = {anomaly_kind::lstm_unhealthy}, .skip_on = {}});
  response_state st;
  CHECK(decide_one(pass, anomaly_kind::lstm_unhealthy, severity::critical, st).act == action::proceed);
  CHECK(decide_one(pass, anomaly_kind::ratio_explosion, severity::critical, st).act == action::skip_step);
  const skip_then_stop spikes(5, skip_rules{.critical = true, .pass_on = {}, .skip_on = {anomaly_kind::loss_spike}});
  response_state s2;
  CHECK(decide_one(spikes, anomaly_kind::loss_spike, severity::warning, s2).act == action::skip_step);
  CHECK(decide_one(spikes, anomaly_kind::loss_divergence, severity::warning, s2).act == action::proceed);
  // a kind both passed and named in skip_on: skip_on wins (it is the narrower rule)
  const skip_then_stop both(5, skip_rules{.critical = true, .pass_on = {anomaly_kind::loss_spike},
                                          .skip_on = {anomaly_kind::loss_spike}});
  response_state s3;
  CHECK(decide_one(both, anomaly_kind::loss_spike, severity::critical, s3).act == action::skip_step);
  // the guard off: the policy before it (only non-finite gradients skip)
  const skip_then_stop off = skip_nonfinite_then_stop();
  CHECK_FALSE(off.rules().critical);
  response_state s4;
  CHECK(decide_one(off, anomaly_kind::gradient_exploding, severity::critical, s4).act == action::proceed);
  CHECK(decide(off, with_grads(1), s4).act == action::skip_step);
  // non-finite gradients are named as such, before any other critical kind of the step
  anomaly_report r;
  r.add(anomaly{anomaly_kind::gradient_exploding, "norm"});  // both critical by default
  r.add(anomaly{anomaly_kind::numerical_instability, "nan"});
  response out;
  response_state s5;
  skip_then_stop{}.decide(with_grads(2), r, s5, out);
  CHECK(out.reason.find("non-finite gradients (2 NaN") != std::string::npos);
  CHECK_THROWS_WITH_AS(skip_then_stop(0), doctest::Contains("simic::skip_then_stop: max_consecutive"),
                       std::invalid_argument);
}

TEST_CASE("the guard: a critical condition that still holds after its onset skips its steps too") {
  const skip_then_stop p;
  auto held = [&](anomaly_kind kind, severity sev, response_state& st) {
    anomaly_report r;
    r.add_hold(kind);
    severity_table t;
    t.set(kind, sev);
    r.stamp(t);
    response out;
    p.decide(with_grads(0), r, st, out);
    return out;
  };
  response_state st;
  const response r = held(anomaly_kind::loss_extreme, severity::critical, st);
  CHECK(r.act == action::skip_step);
  CHECK(r.reason == "skipping the optimizer step: loss_extreme (still holds since its onset)");
  CHECK(st.consecutive_skips == 1);
  CHECK(held(anomaly_kind::loss_extreme, severity::warning, st).act == action::proceed);  // a warning: applied
  CHECK(st.consecutive_skips == 0);
  const skip_then_stop pass(5, skip_rules{.critical = true, .pass_on = {anomaly_kind::loss_extreme}, .skip_on = {}});
  anomaly_report r2;
  r2.add_hold(anomaly_kind::loss_extreme);
  response out;
  response_state s2;
  pass.decide(with_grads(0), r2, s2, out);
  CHECK(out.act == action::proceed);
  const skip_then_stop spikes(5, skip_rules{.critical = true, .pass_on = {}, .skip_on = {anomaly_kind::loss_spike}});
  anomaly_report r3;
  r3.add_hold(anomaly_kind::loss_spike);  // a warning by default, named in skip_on
  spikes.decide(with_grads(0), r3, s2, out);
  CHECK(out.act == action::skip_step);
  // an anomaly of the step itself is named before a hold
  anomaly_report r4;
  r4.add_hold(anomaly_kind::loss_extreme);
  r4.add(anomaly{anomaly_kind::kl_extreme, "kl 0.9"});
  response o4;
  response_state s4;
  p.decide(with_grads(0), r4, s4, o4);
  CHECK(o4.reason == "skipping the optimizer step: kl_extreme (kl 0.9)");
}

TEST_CASE("action names") {
  CHECK(to_string(action::proceed) == "proceed");
  CHECK(to_string(action::skip_step) == "skip_step");
  CHECK(to_string(action::stop) == "stop");
}
