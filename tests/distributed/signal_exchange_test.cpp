// The job's signals from every rank's row, against values worked out by hand.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "simic/distributed/signal_exchange.hpp"

using namespace simic;
using namespace simic::distributed;

namespace {

std::vector<double> gather(const std::vector<signals>& ranks, const row_capacity& cap = {}) {
  std::vector<double> rows;
  for (const auto& s : ranks) {
    const auto r = pack_signals(s, cap);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  return rows;
}
job_signals reduce(const std::vector<signals>& ranks, std::size_t local = 0) {
  return reduce_signals(gather(ranks), ranks.size(), ranks[local]);
}
using ranks_t = std::vector<std::int64_t>;

}  // namespace

TEST_CASE("one rank: the job's signals are its own") {
  const head_entropy heads[] = {{"move", 0.4}, {"fire", 0.9}};
  const user_signal user[] = {{"loss_spike", 2.5}};
  signals s;
  s.ratio_max = 1.3;
  s.ratio_min = 0.7;
  s.approx_kl = 0.01;
  s.explained_variance = 0.5;
  s.loss = 1.25;
  s.update_ratio = 1e-3;
  s.performance = 200;
  s.reward_rate = 0.9;
  s.progress = training_progress(3, 10);
  s.gradients = gradient_signal{.total_norm = 2, .health = 0.9, .min_param_norm = 0.1, .max_param_norm = 1.5,
                                .parameters = 6, .vanishing = 1, .exploding = 0, .nan_count = 0, .inf_count = 0};
  s.lstm = lstm_signal{.h_norm = 3, .c_norm = 4, .h_max_abs = 0.5, .c_max_abs = 0.8, .elements = 64};
  s.entropy = heads;
  s.user = user;
  const job_signals j = reduce({s});
  const signals& v = j.view();
  CHECK(v.ratio_max == 1.3);
  CHECK(v.ratio_min == 0.7);
  CHECK(v.approx_kl == 0.01);
  CHECK(v.explained_variance == 0.5);
  CHECK(v.loss == 1.25);
  CHECK(v.update_ratio == 1e-3);
  CHECK(v.performance == 200);
  CHECK(v.reward_rate == 0.9);
  REQUIRE(v.progress);
  CHECK(v.progress->episode() == 3);
  CHECK(v.progress->total() == 10);
  REQUIRE(v.gradients);
  CHECK(v.gradients->total_norm == 2);
  CHECK(v.gradients->vanishing == 1);
  CHECK(v.gradients->parameters == 6);
  REQUIRE(v.lstm);
  CHECK(v.lstm->c_norm == 4);
  CHECK(v.lstm->elements == 64);
  REQUIRE(v.entropy.size() == 2);
  CHECK(v.entropy[1].head == "fire");
  CHECK(v.entropy[1].normalized == 0.9);
  CHECK(v.user_value("loss_spike") == 2.5);
  CHECK(signal_set::of(v) == signal_set::of(s));
  CHECK(j.origin(signal_set::approx_kl) == ranks_t{0});
}

TEST_CASE("each field is reduced with its own operation over the ranks that have it") {
  std::vector<signals> r(3);
  r[0].ratio_max = 1.2, r[1].ratio_max = 3.5, r[2].ratio_max = 1.1;
  r[0].ratio_min = 0.9, r[1].ratio_min = 0.8, r[2].ratio_min = 0.2;
  r[0].approx_kl = 0.01, r[1].approx_kl = 0.04, r[2].approx_kl = 0.01;  // mean 0.02
  r[0].explained_variance = 0.6, r[2].explained_variance = 0.2;          // rank 1 has none: mean of two, 0.4
  r[1].performance = 100;                                                // only rank 1
  r[0].reward_rate = 1, r[1].reward_rate = 2, r[2].reward_rate = 3;
  r[0].progress = training_progress(4, 10), r[2].progress = training_progress(5, 10);
  const job_signals j = reduce(r);
  const signals& v = j.view();
  CHECK(v.ratio_max == 3.5);
  CHECK(v.ratio_min == 0.2);
  CHECK(*v.approx_kl == doctest::Approx(0.02).epsilon(1e-15));
  CHECK(*v.explained_variance == doctest::Approx(0.4).epsilon(1e-15));
  CHECK(v.performance == 100);
  CHECK(v.reward_rate == 2);
  CHECK(v.progress->episode() == 5);
  CHECK_FALSE(v.loss);
  CHECK_FALSE(v.gradients);
  CHECK_FALSE(v.lstm);
  CHECK(j.origin(signal_set::ratio_max) == ranks_t{1});
  CHECK(j.origin(signal_set::ratio_min) == ranks_t{2});
  CHECK(j.origin(signal_set::approx_kl) == ranks_t{1});           // the highest KL
  CHECK(j.origin(signal_set::explained_variance) == ranks_t{2});  // the lowest
  CHECK(j.origin(signal_set::reward_rate) == ranks_t{0});
  CHECK(j.origin(signal_set::loss).empty());
  CHECK(j.origin_of(anomaly_kind::ratio_explosion) == ranks_t{1, 2});
  CHECK(j.origin_of(anomaly_kind::kl_spike) == ranks_t{1});
  CHECK(j.origin_of(anomaly_kind::performance_degradation) == ranks_t{0, 1});
  // Every rank reduces the same rows to the same figures.
  const job_signals other = reduce(r, 2);
  CHECK(other.view().approx_kl == v.approx_kl);
  CHECK(other.view().explained_variance == v.explained_variance);
}

TEST_CASE("gradients: equal (DDP) figures stay as they are; one rank's NaN is the job's and names it") {
  const gradient_signal same{.total_norm = 1.5, .health = 1, .min_param_norm = 0.1, .max_param_norm = 1,
                             .parameters = 4, .vanishing = 0, .exploding = 0, .nan_count = 0, .inf_count = 0};
  std::vector<signals> r(4);
  for (auto& s : r) s.gradients = same;
  const job_signals ok = reduce(r);
  CHECK(ok.view().gradients->total_norm == 1.5);  // not summed, not averaged: the figure itself
  CHECK(ok.view().gradients->parameters == 4);
  CHECK(ok.origin(signal_set::gradients) == ranks_t{0, 1, 2, 3});
  r[2].gradients->nan_count = 3;
  r[2].gradients->total_norm = std::nan("");
  r[2].gradients->health = 0.5;
  const job_signals bad = reduce(r);
  const gradient_signal& g = *bad.view().gradients;
  CHECK(std::isnan(g.total_norm));
  CHECK(g.nan_count == 3);
  CHECK(g.health == 0.5);
  CHECK_FALSE(g.finite());
  CHECK(bad.origin(signal_set::gradients) == ranks_t{2});
  CHECK(bad.origin_of(anomaly_kind::numerical_instability) == ranks_t{2});
  // Order does not matter: the NaN wins wherever it is.
  std::swap(r[0], r[2]);
  CHECK(std::isnan(reduce(r).view().gradients->total_norm));
  CHECK(reduce(r).origin(signal_set::gradients) == ranks_t{0});
}

TEST_CASE("lstm: the least healthy rank's whole signal, by root mean square; non-finite first") {
  std::vector<signals> r(3);
  r[0].lstm = lstm_signal{.h_norm = 8, .c_norm = 8, .elements = 64};    // rms 1
  r[1].lstm = lstm_signal{.h_norm = 4, .c_norm = 12, .elements = 16};   // rms 3
  r[2].lstm = lstm_signal{.h_norm = 20, .c_norm = 20, .elements = 256}; // rms 1.25
  const job_signals j = reduce(r);
  CHECK(j.view().lstm->c_norm == 12);
  CHECK(j.view().lstm->elements == 16);
  CHECK(j.origin(signal_set::lstm) == ranks_t{1});
  r[0].lstm->has_inf = true;
  CHECK(reduce(r).view().lstm->has_inf);
  CHECK(reduce(r).origin_of(anomaly_kind::lstm_unhealthy) == ranks_t{0});
}

TEST_CASE("entropy heads and user figures: the mean of each, names kept") {
  const head_entropy h0[] = {{"a", 0.8}, {"b", 0.2}}, h1[] = {{"a", 0.4}, {"b", 0.4}};
  const user_signal u0[] = {{"x", 1}}, u1[] = {{"x", 3}};
  std::vector<signals> r(2);
  r[0].entropy = h0, r[1].entropy = h1;
  r[0].user = u0, r[1].user = u1;
  const job_signals j = reduce(r, 1);
  CHECK(j.view().entropy[0].head == "a");
  CHECK(j.view().entropy[0].normalized == doctest::Approx(0.6).epsilon(1e-15));
  CHECK(j.view().entropy[1].normalized == doctest::Approx(0.3).epsilon(1e-15));
  CHECK(j.view().user_value("x") == 2);
  CHECK(j.origin(signal_set::entropy) == ranks_t{1});  // mean entropy 0.4 against rank 0's 0.5
  CHECK(j.origin_of(anomaly_kind::entropy_collapse) == ranks_t{1});
  CHECK(j.origin(signal_set::user) == ranks_t{0, 1});
}

TEST_CASE("bad input: too many heads, rows of another shape, ranks naming other figures") {
  std::vector<head_entropy> many(9, head_entropy{"h", 0.5});
  signals s;
  s.entropy = many;
  CHECK_THROWS_WITH_AS(pack_signals(s), doctest::Contains("entropy heads"), std::invalid_argument);
  CHECK(pack_signals(s, {.heads = 9, .user = 0}).size() == row_size({.heads = 9, .user = 0}));
  signals plain;
  const auto row = pack_signals(plain);
  CHECK_THROWS_WITH_AS(reduce_signals(row, 2, plain), doctest::Contains("rows.size()"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(reduce_signals({}, 0, plain), doctest::Contains("ranks"), std::invalid_argument);
  const user_signal ux[] = {{"x", 1}}, uy[] = {{"y", 1}};
  std::vector<signals> r(2);
  r[0].user = ux, r[1].user = uy;
  CHECK_THROWS_WITH_AS(reduce(r), doctest::Contains("rank 1"), std::invalid_argument);
  // A rank that carried no row (its slot of the all-reduce left at zeros).
  std::vector<double> two = gather({plain, plain});
  std::fill(two.begin() + static_cast<std::ptrdiff_t>(row.size()), two.end(), 0.0);
  CHECK_THROWS_WITH_AS(reduce_signals(two, 2, plain), doctest::Contains("rank 1's row = all zeros (no row carried)"),
                       std::invalid_argument);
  CHECK(distributed::detail::names_hash({}, {}) != 0.0);  // so an empty row is never all zeros
}

TEST_CASE("an anomaly's origin: the ranks with non-finite figures where any, else the worst ranks") {
  std::vector<signals> r(3);
  for (int i = 0; i < 3; ++i) {
    r[i].loss = 1.0 + i;  // rank 2 the highest loss
    r[i].ratio_max = 1.1;
    r[i].gradients = gradient_signal{.total_norm = 1, .health = 1, .parameters = 2};
  }
  CHECK(reduce(r).origin_of(anomaly_kind::numerical_instability) == ranks_t{0, 1, 2});  // ratio_max ties
  r[1].gradients->inf_count = 1;
  CHECK(reduce(r).origin_of(anomaly_kind::numerical_instability) == ranks_t{1});
  r[0].loss = std::numeric_limits<double>::infinity();
  CHECK(reduce(r).origin_of(anomaly_kind::numerical_instability) == ranks_t{0, 1});
  CHECK(reduce(r).origin_of(anomaly_kind::signal_missing).empty());
}

TEST_CASE("float pairs: doubles to 48 bits, integers below 2^48, zero, NaN and Inf exactly; a zero sum changes nothing") {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> row{0.0,  1.0,   -2.5,       0.1,     1.0 / 3.0, 123456.789e-9, 1e30, -7e-30,
                                inf,  -inf,  std::nan(""), 281474976710655.0 /* 2^48 - 1 */, 12345678901.0,
                                3e38, 1e39, -1e39};
  std::vector<float> pairs(2 * row.size());
  encode_float_pairs(row, pairs);
  // Every other rank adds +0.0 to each float (an all-reduce's sum of slots).
  for (float& f : pairs) f = f + 0.0f + 0.0f + 0.0f;
  std::vector<double> back(row.size());
  decode_float_pairs(pairs, back);
  for (std::size_t i = 0; i < 8; ++i) {
    INFO(i << ": " << row[i]);
    CHECK(std::abs(back[i] - row[i]) <= std::abs(row[i]) * 0x1p-47);
  }
  CHECK(back[0] == 0.0);
  CHECK(back[1] == 1.0);
  CHECK(back[2] == -2.5);
  CHECK(back[8] == inf);
  CHECK(back[9] == -inf);
  CHECK(std::isnan(back[10]));
  CHECK(back[11] == row[11]);  // 48-bit integers (counts, presence bits, the names' hash) exact
  CHECK(back[12] == row[12]);
  CHECK(std::abs(back[13] - 3e38) <= 3e38 * 0x1p-47);  // below float's largest: kept
  CHECK(back[14] == inf);   // beyond float's range: infinite, as documented
  CHECK(back[15] == -inf);
  // A whole row, its names' hash included, reduces as the doubles do.
  signals s;
  s.loss = 0.3;
  s.approx_kl = 2e-4;
  const head_entropy heads[] = {{"policy", 0.7}};
  s.entropy = heads;
  const std::vector<double> r = pack_signals(s);
  std::vector<float> p(2 * r.size());
  encode_float_pairs(r, p);
  std::vector<double> rb(r.size());
  decode_float_pairs(p, rb);
  const job_signals job = reduce_signals(rb, 1, s);
  CHECK(*job.view().loss == doctest::Approx(0.3).epsilon(1e-14));
  CHECK(job.view().entropy[0].normalized == doctest::Approx(0.7).epsilon(1e-14));
  // bad input: sizes that do not match
  std::vector<float> small(3);
  CHECK_THROWS_WITH_AS(encode_float_pairs(row, small), doctest::Contains("out.size() = 3"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(decode_float_pairs(small, back), doctest::Contains("pairs.size() = 3"), std::invalid_argument);
}

TEST_CASE("adopt_shared: gradients, update ratio and host/module ratio measured after the all-reduce are the job's; origin") {
  // The rows carry each rank's gradients before the sum only as non-finite
  // counts (gradient_all_reduce); the figures after it are this rank's.
  std::vector<signals> r(3);
  for (auto& s : r) s.loss = 1.0;
  r[1].gradients = gradient_signal{.total_norm = std::nan(""), .nan_count = 2};
  r[0].gradients = gradient_signal{};
  r[2].gradients = gradient_signal{};
  signals local;
  local.loss = 1.0;
  local.gradients = gradient_signal{.total_norm = std::nan(""), .parameters = 4, .nan_count = 8};
  local.update_ratio = 1e-3;
  local.host_module_ratio = 0.25;  // of the averaged gradients: every rank's alike
  job_signals job = reduce(r);
  job.adopt_shared(local);
  CHECK(job.view().gradients->nan_count == 8);  // the summed gradients' count, not a row's
  CHECK(job.view().gradients->parameters == 4);
  CHECK(*job.view().update_ratio == 1e-3);
  CHECK(*job.view().host_module_ratio == 0.25);
  CHECK(job.origin(signal_set::host_module_ratio) == ranks_t{0, 1, 2});
  CHECK_FALSE(job.view().approx_kl.has_value());  // a figure the ranks carry is not adopted
  CHECK(job.origin(signal_set::gradients) == ranks_t{1});  // non-finite before the sum
  CHECK(job.origin_of(anomaly_kind::numerical_instability) == ranks_t{1});
  CHECK(job.origin(signal_set::update_ratio) == ranks_t{0, 1, 2});
  // All finite before the sum: every rank is the origin of the shared figures.
  r[1].gradients = gradient_signal{};
  job_signals fine = reduce(r);
  local.gradients = gradient_signal{.total_norm = 2.0, .health = 1.0, .parameters = 4};
  fine.adopt_shared(local);
  CHECK(fine.view().gradients->total_norm == 2.0);
  CHECK(fine.origin(signal_set::gradients) == ranks_t{0, 1, 2});
  // Not measured this step: no gradients in the job either.
  job_signals none = reduce(r);
  none.adopt_shared(signals{});
  CHECK_FALSE(none.view().gradients.has_value());
  CHECK(none.origin(signal_set::gradients).empty());
}
