// Vectorised CartPole from the classic dynamics (Barto, Sutton and Anderson,
// 1983; the constants and Euler step of the common "CartPole-v1"): a pole on
// a cart, +1 reward per step, the episode ends when the pole tilts past 12
// degrees, the cart leaves +-2.4, or after `max_steps` steps. Plain C++, no
// LibTorch: every environment resets itself when its episode ends.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "simic/core/error.hpp"

namespace ppo_lstm {

class cartpole_vec {
 public:
  static constexpr int obs_dim = 4;
  static constexpr int actions = 2;

  cartpole_vec(int envs, std::uint64_t seed, int max_steps = 500)
      : n_(envs), max_steps_(max_steps), rng_(seed), state_(static_cast<std::size_t>(envs) * obs_dim),
        steps_(envs, 0), episode_return_(envs, 0.0) {
    simic::require_argument(envs >= 1, "ppo_lstm::cartpole_vec", "envs", envs, ">= 1");
    simic::require_argument(max_steps >= 1, "ppo_lstm::cartpole_vec", "max_steps", max_steps, ">= 1");
    for (int e = 0; e < n_; ++e) reset_one(e);
  }

  int size() const noexcept { return n_; }
  // Observations, env-major: [envs][4] = x, x_dot, theta, theta_dot.
  const std::vector<float>& observations() const noexcept { return state_; }

  // Sets one environment's state and step count (tests).
  void set_state(int e, const std::array<float, obs_dim>& s, int steps = 0) {
    simic::require_argument(e >= 0 && e < n_, "ppo_lstm::cartpole_vec::set_state", "e", e, "[0, envs)");
    simic::require_argument(steps >= 0 && steps < max_steps_, "ppo_lstm::cartpole_vec::set_state", "steps", steps,
                           "[0, max_steps)");
    for (int i = 0; i < obs_dim; ++i) state_[static_cast<std::size_t>(e) * obs_dim + i] = s[i];
    steps_[e] = steps;
    episode_return_[e] = 0.0;
  }

  // Everything a continued run needs (a checkpoint keeps it): the
  // generator, the states, each episode's steps and return, the reward.
  struct saved_state {
    std::mt19937_64 rng;
    std::vector<float> state;
    std::vector<int> steps;
    std::vector<double> returns;
    double reward = 1.0;
  };
  saved_state saved() const { return {rng_, state_, steps_, episode_return_, reward_}; }
  // Throws std::invalid_argument naming what does not fit these environments.
  void check(const saved_state& s) const {
    const char* who = "ppo_lstm::cartpole_vec::restore";
    simic::require_argument(s.state.size() == state_.size(), who, "state.size()", s.state.size(), "envs * 4");
    simic::require_argument(s.steps.size() == steps_.size(), who, "steps.size()", s.steps.size(), "envs");
    simic::require_argument(s.returns.size() == episode_return_.size(), who, "returns.size()", s.returns.size(),
                            "envs");
    for (const int n : s.steps) simic::require_argument(n >= 0 && n < max_steps_, who, "steps", n, "[0, max_steps)");
  }
  void restore(saved_state s) {
    check(s);
    rng_ = s.rng;
    state_ = std::move(s.state);
    steps_ = std::move(s.steps);
    episode_return_ = std::move(s.returns);
    reward_ = s.reward;
  }

  // The reward each step pays (1 for the classic task). The reward-drop fault
  // lowers it for a while; episode returns are sums of what was paid.
  void set_reward(double r) noexcept { reward_ = r; }

  struct step_result {
    std::vector<float> reward;
    std::vector<std::uint8_t> done;        // episode ended at this step (then reset)
    std::vector<double> finished_returns;  // returns of the episodes that ended
  };

  // Applies one action per environment (0: push left, 1: push right).
  void step(const std::vector<std::int64_t>& action, step_result& out) {
    simic::require_argument(action.size() == static_cast<std::size_t>(n_), "ppo_lstm::cartpole_vec::step",
                           "action.size()", action.size(), "envs");
    for (std::int64_t a : action)
      simic::require_argument(a == 0 || a == 1, "ppo_lstm::cartpole_vec::step", "action", a, "0 or 1");
    out.reward.assign(n_, 0.0f);
    out.done.assign(n_, 0);
    out.finished_returns.clear();
    for (int e = 0; e < n_; ++e) {
      float* s = &state_[static_cast<std::size_t>(e) * obs_dim];
      const double x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
      const double force = action[e] == 1 ? force_mag : -force_mag;
      const double cos_t = std::cos(theta), sin_t = std::sin(theta);
      const double temp = (force + polemass_length * theta_dot * theta_dot * sin_t) / total_mass;
      const double theta_acc =
          (gravity * sin_t - cos_t * temp) / (length * (4.0 / 3.0 - masspole * cos_t * cos_t / total_mass));
      const double x_acc = temp - polemass_length * theta_acc * cos_t / total_mass;
      const double nx = x + tau * x_dot, nx_dot = x_dot + tau * x_acc;
      const double nt = theta + tau * theta_dot, nt_dot = theta_dot + tau * theta_acc;
      s[0] = static_cast<float>(nx);
      s[1] = static_cast<float>(nx_dot);
      s[2] = static_cast<float>(nt);
      s[3] = static_cast<float>(nt_dot);
      ++steps_[e];
      out.reward[e] = static_cast<float>(reward_);
      episode_return_[e] += reward_;
      const bool fell = nx < -x_limit || nx > x_limit || nt < -theta_limit || nt > theta_limit;
      if (fell || steps_[e] >= max_steps_) {
        out.done[e] = 1;
        out.finished_returns.push_back(episode_return_[e]);
        reset_one(e);
      }
    }
  }

  static constexpr double gravity = 9.8, masscart = 1.0, masspole = 0.1, total_mass = masscart + masspole;
  static constexpr double length = 0.5, polemass_length = masspole * length, force_mag = 10.0, tau = 0.02;
  static constexpr double x_limit = 2.4, theta_limit = 12.0 * 2.0 * 3.14159265358979323846 / 360.0;

 private:
  void reset_one(int e) {
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (int i = 0; i < obs_dim; ++i) state_[static_cast<std::size_t>(e) * obs_dim + i] = u(rng_);
    steps_[e] = 0;
    episode_return_[e] = 0.0;
  }

  int n_;
  int max_steps_;
  double reward_ = 1.0;
  std::mt19937_64 rng_;
  std::vector<float> state_;
  std::vector<int> steps_;
  std::vector<double> episode_return_;
};

}  // namespace ppo_lstm
