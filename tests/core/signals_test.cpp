#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <string_view>
#include <vector>

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

TEST_CASE("signal descriptors: every field named once, in field order; the tables cover the struct") {
  std::set<std::string_view> names;
  for (unsigned f = 0; f < signal_set::field_count; ++f) {
    const auto field = static_cast<signal_set::field>(f);
    CHECK(signal_fields[f].field == field);
    CHECK_FALSE(signal_set::name(field).empty());
    names.insert(signal_set::name(field));
  }
  CHECK(names.size() == signal_set::field_count);
  CHECK(signal_set::name(signal_set::approx_kl) == "approx_kl");
  CHECK(signal_set{signal_set::lstm, signal_set::loss}.describe() == "loss or lstm");  // field order
  // Every scalar field is in scalar_signals once, its member the field's own.
  std::set<unsigned> scalar;
  for (const scalar_signal& d : scalar_signals) {
    CHECK(scalar.insert(d.field).second);
    CHECK(scalar_signal_of(d.field) == &d);
    signals s;
    s.*d.member = 1.5;  // setting the member sets exactly that field
    CHECK(signal_set::of(s) == signal_set{d.field});
  }
  for (auto structured : {signal_set::entropy, signal_set::gradients, signal_set::lstm, signal_set::user})
    CHECK(scalar_signal_of(structured) == nullptr);
  CHECK(scalar.size() + 4 == signal_set::field_count);
}

TEST_CASE("signal descriptors: the structured signals' members read and write their fields, by hand") {
  gradient_signal g{.total_norm = 2.5, .health = 0.75, .min_param_norm = 0.1, .max_param_norm = 2.0, .parameters = 4,
                    .vanishing = 1, .exploding = 0, .nan_count = 3, .inf_count = 5};
  const std::vector<double> want{2.5, 0.75, 0.1, 2.0, 4, 1, 0, 3, 5};  // in descriptor order
  REQUIRE(std::size(gradient_members) == want.size());
  gradient_signal back{};
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(gradient_members[i].get(g) == want[i]);
    gradient_members[i].set(back, want[i]);
  }
  CHECK(back.total_norm == 2.5);
  CHECK(back.inf_count == 5);
  CHECK(back.parameters == 4);
  lstm_signal l{.h_norm = 1, .c_norm = 2, .h_max_abs = 3, .c_max_abs = 4, .has_nan = true, .has_inf = false,
                .elements = 64};
  lstm_signal lb{};
  for (const auto& m : lstm_members) m.set(lb, m.get(l));
  CHECK(lb.h_norm == 1);
  CHECK(lb.c_max_abs == 4);
  CHECK(lb.has_nan);
  CHECK_FALSE(lb.has_inf);
  CHECK(lb.elements == 64);
  // What the events carry: every gradient figure; the LSTM's but its element count.
  for (const auto& m : gradient_members) CHECK(m.in_event);
  for (const auto& m : lstm_members) CHECK(m.in_event == (m.name != "elements"));
}
