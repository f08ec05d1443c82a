// The trainer's plain-C++ parts against hand-computed references: one
// CartPole step, its termination bounds and time limit, and GAE.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "cartpole.hpp"
#include "gae.hpp"

using namespace ppo_lstm;

TEST_CASE("cartpole: one Euler step matches the classic equations computed by hand") {
  cartpole_vec env(1, 7);
  env.set_state(0, {0.1f, -0.2f, 0.05f, 0.3f});
  cartpole_vec::step_result r;
  env.step({1}, r);
  // Barto, Sutton & Anderson (1983) with m_c = 1, m_p = 0.1, l = 0.5, F = +10, tau = 0.02, in double.
  const double x = 0.1, xd = -0.2, th = 0.05, thd = 0.3, F = 10.0, g = 9.8, mp = 0.1, M = 1.1, l = 0.5;
  const double temp = (F + mp * l * thd * thd * std::sin(th)) / M;
  const double tha = (g * std::sin(th) - std::cos(th) * temp) / (l * (4.0 / 3.0 - mp * std::cos(th) * std::cos(th) / M));
  const double xa = temp - mp * l * tha * std::cos(th) / M;
  const auto& s = env.observations();
  CHECK(s[0] == doctest::Approx(x + 0.02 * xd).epsilon(1e-6));
  CHECK(s[1] == doctest::Approx(xd + 0.02 * xa).epsilon(1e-6));
  CHECK(s[2] == doctest::Approx(th + 0.02 * thd).epsilon(1e-6));
  CHECK(s[3] == doctest::Approx(thd + 0.02 * tha).epsilon(1e-6));
  CHECK(r.reward[0] == 1.0f);
  CHECK(r.done[0] == 0);
  CHECK(r.finished_returns.empty());
  // Pushing right accelerates the cart to the right and the pole to the left.
  CHECK(xa > 0.0);
  CHECK(tha < 0.0);
}

TEST_CASE("cartpole: the episode ends just past 2.4 m, not just before; then resets") {
  cartpole_vec env(2, 3);
  // x' = x + 0.02 * x_dot: 2.3 + 0.02 * 4.9 = 2.398 (inside), 2.3 + 0.02 * 5.1 = 2.402 (outside).
  env.set_state(0, {2.3f, 4.9f, 0.0f, 0.0f});
  env.set_state(1, {2.3f, 5.1f, 0.0f, 0.0f});
  cartpole_vec::step_result r;
  env.step({0, 0}, r);
  CHECK(r.done[0] == 0);
  CHECK(r.done[1] == 1);
  REQUIRE(r.finished_returns.size() == 1);
  CHECK(r.finished_returns[0] == 1.0);
  const auto& s = env.observations();
  for (int i = 4; i < 8; ++i) CHECK(std::abs(s[i]) <= 0.05f);  // reset to U(-0.05, 0.05)
}

TEST_CASE("cartpole: the pole angle limit is 12 degrees") {
  const double limit = 12.0 * 3.14159265358979323846 / 180.0;
  cartpole_vec env(2, 3);
  // theta' = theta + 0.02 * theta_dot; put it 1e-4 rad inside and outside.
  env.set_state(0, {0.0f, 0.0f, static_cast<float>(limit - 1e-4), 0.0f});
  env.set_state(1, {0.0f, 0.0f, static_cast<float>(limit - 0.02), 1.0f + 0.005f});
  cartpole_vec::step_result r;
  env.step({1, 1}, r);
  CHECK(r.done[0] == 0);
  CHECK(r.done[1] == 1);
}

TEST_CASE("cartpole: the time limit ends an episode at max_steps; the reward fault lowers returns") {
  cartpole_vec env(1, 11, 3);
  env.set_state(0, {0.0f, 0.0f, 0.0f, 0.0f});
  cartpole_vec::step_result r;
  env.step({0}, r);
  env.step({1}, r);
  CHECK(r.done[0] == 0);
  env.set_reward(0.0);
  env.step({0}, r);
  CHECK(r.done[0] == 1);
  REQUIRE(r.finished_returns.size() == 1);
  CHECK(r.finished_returns[0] == 2.0);  // 1 + 1 + 0
}

TEST_CASE("cartpole: bad arguments are rejected, naming them") {
  CHECK_THROWS_WITH_AS(cartpole_vec(0, 1), doctest::Contains("envs"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cartpole_vec(1, 1, 0), doctest::Contains("max_steps"), std::invalid_argument);
  cartpole_vec env(2, 1);
  cartpole_vec::step_result r;
  CHECK_THROWS_WITH_AS(env.step({0}, r), doctest::Contains("action.size()"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(env.step({0, 2}, r), doctest::Contains("0 or 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(env.set_state(2, {}), doctest::Contains("[0, envs)"), std::invalid_argument);
}

TEST_CASE("gae: three steps with an episode end, by hand") {
  // gamma 0.9, lambda 0.8; rewards 1, values 0.5 0.4 0.3, episode ends at t = 1, V(next) = 0.2.
  // t=2: delta = 1 + 0.9*0.2 - 0.3 = 0.88;               A = 0.88
  // t=1: delta = 1 - 0.4 = 0.6 (no bootstrap);           A = 0.6
  // t=0: delta = 1 + 0.9*0.4 - 0.5 = 0.86; A = 0.86 + 0.72*0.6 = 1.292
  const std::vector<float> rew{1, 1, 1}, val{0.5f, 0.4f, 0.3f}, done{0, 1, 0}, next{0.2f};
  std::vector<float> adv(3);
  compute_gae(rew, val, done, next, 3, 1, {0.9, 0.8, 1.0}, adv);
  CHECK(adv[0] == doctest::Approx(1.292).epsilon(1e-6));
  CHECK(adv[1] == doctest::Approx(0.6).epsilon(1e-6));
  CHECK(adv[2] == doctest::Approx(0.88).epsilon(1e-6));
}

TEST_CASE("gae: lambda 1 gives the discounted return minus the value; environments are independent") {
  // Two environments, time-major. With lambda = 1 and no episode end,
  // A_t + V_t = sum_k gamma^k s r_{t+k} + gamma^(T-t) V_next (a different method: a direct sum).
  const int T = 5, E = 2;
  const double gamma = 0.97, scale = 0.1;
  std::vector<float> rew(T * E), val(T * E), done(T * E, 0.0f), next{1.5f, -0.5f}, adv(T * E);
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e) {
      rew[t * E + e] = static_cast<float>(1 + t + 10 * e);
      val[t * E + e] = static_cast<float>(0.1 * t - e);
    }
  compute_gae(rew, val, done, next, T, E, {gamma, 1.0, scale}, adv);
  for (int e = 0; e < E; ++e)
    for (int t = 0; t < T; ++t) {
      double ret = std::pow(gamma, T - t) * next[e];
      for (int k = t; k < T; ++k) ret += std::pow(gamma, k - t) * scale * rew[k * E + e];
      INFO("t " << t << " e " << e);
      CHECK(adv[t * E + e] + val[t * E + e] == doctest::Approx(ret).epsilon(1e-5));
    }
  // lambda 0: the one-step TD error.
  compute_gae(rew, val, done, next, T, E, {gamma, 0.0, scale}, adv);
  CHECK(adv[0] == doctest::Approx(scale * rew[0] + gamma * val[2] - val[0]).epsilon(1e-6));
}

TEST_CASE("gae: bad sizes and parameters are rejected, naming them, and nothing is written") {
  const std::vector<float> three(3, 1.0f), two(2, 1.0f), one(1, 0.0f);
  std::vector<float> adv(3, 42.0f);
  CHECK_THROWS_WITH_AS(compute_gae(two, three, three, one, 3, 1, {}, adv), doctest::Contains("rewards.size()"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(compute_gae(three, three, three, two, 3, 1, {}, adv), doctest::Contains("next_values.size()"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(compute_gae(three, three, three, one, 3, 1, {1.01, 0.9, 1.0}, adv), doctest::Contains("gamma"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(compute_gae(three, three, three, one, 3, 1, {0.9, -0.01, 1.0}, adv),
                       doctest::Contains("lambda"), std::invalid_argument);
  CHECK_NOTHROW(compute_gae(three, three, three, one, 3, 1, {1.0, 1.0, 1.0}, adv));  // the bounds themselves
  std::vector<float> untouched(3, 42.0f);
  CHECK_THROWS_AS(compute_gae(three, three, three, one, 3, 0, {}, untouched), std::invalid_argument);
  for (float v : untouched) CHECK(v == 42.0f);
}

// ---- the memory estimate and its limit (options.cpp; no LibTorch)

#include "options.hpp"

TEST_CASE("memory estimate: the defaults, by hand; the limit refuses above it, accepts at and below") {
  run_options o;  // T 128, E 8, H 64, L 16, 2 minibatches
  // Float32 units: rollout buffers 23*T*E = 23552; h0/c0 2*(T/L)*E*H = 8192;
  // parameters (4H+H) + (8H^2+8H) + (2H+2) + (H+1) = 33795, times 4 = 135180;
  // activations 32*(T*E/2)*H = 1048576. Sum 1215500 floats = 4862000 bytes.
  CHECK(o.estimated_memory_bytes() == 4862000.0);
  o.memory_budget = 4862000;  // at
  CHECK_NOTHROW(o.validate());
  o.memory_budget = 4862001;  // above the estimate
  CHECK_NOTHROW(o.validate());
  o.memory_budget = 4861999;  // one byte short
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("--envs 8 --rollout 128 --hidden 64"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("4862000 bytes"), std::invalid_argument);
  o.memory_budget = 0;
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("memory_budget"), std::invalid_argument);
}

TEST_CASE("memory estimate: the in-range giant is refused under the default 8 GiB, naming the options") {
  run_options o;
  o.envs = 4096;
  o.rollout = 65536;
  o.hidden = 4096;
  // Activations alone: 32 * (65536*4096/2) * 4096 floats * 4 bytes = 7.04e13 bytes (65536 GiB).
  CHECK(o.estimated_memory_bytes() > 7.0e13);
  CHECK(o.memory_budget == 8ull << 30);
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("--envs 4096 --rollout 65536 --hidden 4096"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("GiB"), std::invalid_argument);
  // Doubling the minibatches halves the activations: the estimate is linear in 1/minibatches there.
  run_options a, b;
  b.minibatches = 4;
  CHECK(a.estimated_memory_bytes() - b.estimated_memory_bytes() == 4.0 * 32 * (128 * 8 / 4) * 64);
}
