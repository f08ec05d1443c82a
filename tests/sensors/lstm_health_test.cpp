#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "support/reduction_reference.hpp"
#include "support/written_event.hpp"
#include "simic/sensors/lstm_health.hpp"

using namespace simic;

TEST_CASE("lstm_health: norms and max |x| against loops; healthy state") {
  auto gen = at::detail::createCPUGenerator(61);
  const at::Tensor h = at::randn({2, 64, 512}, gen) * 0.05;
  const at::Tensor c = at::randn({2, 64, 512}, gen) * 0.05;
  const auto r = lstm_health_sensor<>{}.measure(h, c);
  const auto rh = simic_test::reference(h), rc = simic_test::reference(c);
  CHECK(simic_test::close(r.h_norm, std::sqrt(rh.sumsq), 1e-5));
  CHECK(simic_test::close(r.c_norm, std::sqrt(rc.sumsq), 1e-5));
  CHECK(r.h_max_abs == rh.max_abs);
  CHECK(r.c_max_abs == rc.max_abs);
  CHECK_FALSE(r.has_nan());
  CHECK_FALSE(r.has_inf());
  CHECK(r.healthy());
  const lstm_signal s = r.signal();
  CHECK(s.h_norm == r.h_norm);
  CHECK(s.c_max_abs == r.c_max_abs);
  // async gives identical values; LibTorch ops agree
  CHECK(lstm_health_sensor<>{}.measure_async(h, c).materialize().h_norm == r.h_norm);
  const auto o = lstm_health_sensor<torch_ops_backend>{}.measure(h, c);
  CHECK(simic_test::close(o.c_norm, r.c_norm, 1e-5));
  CHECK(o.h_max_abs == r.h_max_abs);
}

TEST_CASE("lstm_health: exploding and vanishing states, bounds just below / at / above") {
  // norm of a 1-element state is |x|; default bounds 1e-6 < norm < 100
  auto one = [](double x) { return at::full({1}, x, at::kDouble); };
  const lstm_health_sensor<> s;
  CHECK(s.measure(one(1.0), one(1.0)).healthy());
  CHECK_FALSE(s.measure(one(100.0), one(1.0)).healthy());  // at the upper bound: not inside
  CHECK(s.measure(one(std::nextafter(100.0, 0.0)), one(1.0)).healthy());
  CHECK_FALSE(s.measure(one(1.0), one(std::nextafter(100.0, 200.0))).healthy());
  CHECK_FALSE(s.measure(one(1e-6), one(1.0)).healthy());
  CHECK(s.measure(one(std::nextafter(1e-6, 1.0)), one(1.0)).healthy());
  CHECK_FALSE(s.measure(one(1.0), at::zeros({4}, at::kDouble)).healthy());  // vanished cell state
  const auto exploding = s.measure(at::full({2, 8, 16}, 50.0), at::ones({2, 8, 16}));
  CHECK(exploding.h_norm == doctest::Approx(50.0 * 16.0));
  CHECK(exploding.h_max_abs == 50.0);
  CHECK_FALSE(exploding.healthy());
  CHECK(exploding.healthy(1e-6, 1000.0));  // custom bounds
}

TEST_CASE("lstm_health: NaN and Inf flags") {
  at::Tensor h = at::ones({3, 4});
  at::Tensor c = at::ones({3, 4});
  h[1][2] = std::numeric_limits<float>::quiet_NaN();
  auto r = lstm_health_sensor<>{}.measure(h, c);
  CHECK(r.h_nan == 1);
  CHECK(r.has_nan());
  CHECK_FALSE(r.has_inf());
  CHECK(r.h_max_abs == 1.0);
  CHECK_FALSE(r.healthy());
  c[0][0] = -std::numeric_limits<float>::infinity();
  r = lstm_health_sensor<>{}.measure(at::ones({3, 4}), c);
  CHECK(r.has_inf());
  CHECK(r.c_inf == 1);
  CHECK_FALSE(r.signal().has_nan);
  CHECK(r.signal().has_inf);
  CHECK_FALSE(r.healthy());
}

TEST_CASE("lstm_health: bad input names the argument") {
  const lstm_health_sensor<> s;
  CHECK_THROWS_WITH_AS(s.measure(at::Tensor(), at::ones({2})), doctest::Contains("h"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(s.measure(at::ones({2}), at::ones({2}, at::kInt)), doctest::Contains("c.dtype"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(s.measure(at::ones({2}), at::ones({2}, at::TensorOptions().device(at::kMeta))),
                       doctest::Contains("c.device"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(lstm_health_report{}.healthy(1.0, 0.5), doctest::Contains("norm_max"), std::invalid_argument);
}

TEST_CASE("lstm_health rows: one report per row of the first dimension, against loops") {
  auto gen = at::detail::createCPUGenerator(67);
  at::Tensor h = at::randn({5, 32}, gen) * 0.1;
  at::Tensor c = at::randn({5, 32}, gen);
  h[1] *= 1e4;                                           // row 1 exploding
  c[3][7] = std::numeric_limits<float>::infinity();       // row 3 Inf in c
  h[4].zero_();                                           // row 4 vanished
  const lstm_health_sensor<> s;
  const auto rows = s.measure_rows(h, c);
  REQUIRE(rows.size() == 5);
  for (std::int64_t i = 0; i < 5; ++i) {
    const auto rh = simic_test::reference(h[i]), rc = simic_test::reference(c[i]);
    CHECK(simic_test::close(rows[i].h_norm, std::sqrt(rh.sumsq), 1e-5));
    if (i != 3) CHECK(simic_test::close(rows[i].c_norm, std::sqrt(rc.sumsq), 1e-5));
    CHECK(rows[i].h_max_abs == rh.max_abs);
    CHECK(rows[i].c_max_abs == rc.max_abs);
    CHECK(rows[i].c_inf == static_cast<std::uint64_t>(rc.infs));
    // the same figures as measuring the row on its own
    const auto alone = s.measure(h[i], c[i]);
    CHECK(alone.h_norm == rows[i].h_norm);
    CHECK(alone.c_max_abs == rows[i].c_max_abs);
  }
  CHECK(rows[0].healthy());
  CHECK_FALSE(rows[1].healthy());
  CHECK(rows[2].healthy());
  CHECK_FALSE(rows[3].healthy());
  CHECK(rows[3].has_inf());
  CHECK_FALSE(rows[4].healthy());
  // async gives identical values; an empty first dimension gives no rows
  CHECK(s.measure_rows_async(h, c).materialize()[1].h_norm == rows[1].h_norm);
  CHECK(s.measure_rows(at::zeros({0, 8}), at::zeros({0, 8})).empty());
}

TEST_CASE("lstm_health rows: bad shapes are rejected naming the argument") {
  const lstm_health_sensor<> s;
  CHECK_THROWS_WITH_AS(s.measure_rows(at::ones({3, 4}), at::ones({4, 3})), doctest::Contains("c.sizes()"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(s.measure_rows(at::ones({}), at::ones({})), doctest::Contains("h.dim()"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(s.measure_rows(at::ones({2, 2}, at::kLong), at::ones({2, 2})), doctest::Contains("h.dtype"),
                       std::invalid_argument);
}

TEST_CASE("the lstm_health event: the state's figures and the monitor's verdict in JSON, norms in TensorBoard") {
  const lstm_health_event l{.lstm = {.h_norm = 1.5, .c_norm = 120.0, .h_max_abs = 0.9, .c_max_abs = 7.0,
                                     .has_nan = false, .has_inf = true, .elements = 64},
                            .healthy = false};
  const auto j = simic::test::json_of(event(0, 0, l));
  CHECK(j["event"] == "lstm_health");
  CHECK(j["h_norm"].get<double>() == 1.5);
  CHECK(j["c_norm"].get<double>() == 120.0);
  CHECK(j["h_max_abs"].get<double>() == 0.9);
  CHECK(j["c_max_abs"].get<double>() == 7.0);
  CHECK(j["has_nan"] == false);
  CHECK(j["has_inf"] == true);
  CHECK(j["healthy"] == false);
  CHECK_FALSE(j.contains("elements"));  // carried between ranks, not written
  CHECK(j.size() == 4 + 7);
  CHECK(simic::test::scalars_of(event(3, 1, l)) ==
        std::vector<tensorboard_scalar>{{"lstm/h_norm", 1.5}, {"lstm/c_norm", 120.0}, {"lstm/h_max_abs", 0.9},
                                        {"lstm/c_max_abs", 7.0}, {"lstm/healthy", 0.0}});
}
