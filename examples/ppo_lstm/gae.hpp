// Generalised advantage estimation (Schulman et al., 2016) over a rollout of
// T steps of E environments, stored time-major ([t][e], flat). No LibTorch.
#pragma once

#include <cstddef>
#include <span>

#include "simic/core/error.hpp"

namespace ppo_lstm {

struct gae_params {
  double gamma = 0.99;
  double lambda = 0.95;
  double reward_scale = 1.0;  // rewards are multiplied by this first
};

// dones[t][e] = 1 when the episode ended at step t (no bootstrap across it);
// next_values[e] is the value of the state after the last step.
inline void compute_gae(std::span<const float> rewards, std::span<const float> values, std::span<const float> dones,
                        std::span<const float> next_values, int steps, int envs, const gae_params& p,
                        std::span<float> advantages) {
  constexpr auto where = "ppo_lstm::compute_gae";
  simic::require_argument(steps >= 1, where, "steps", steps, ">= 1");
  simic::require_argument(envs >= 1, where, "envs", envs, ">= 1");
  const std::size_t n = static_cast<std::size_t>(steps) * static_cast<std::size_t>(envs);
  simic::require_argument(rewards.size() == n, where, "rewards.size()", rewards.size(), "steps * envs");
  simic::require_argument(values.size() == n, where, "values.size()", values.size(), "steps * envs");
  simic::require_argument(dones.size() == n, where, "dones.size()", dones.size(), "steps * envs");
  simic::require_argument(advantages.size() == n, where, "advantages.size()", advantages.size(), "steps * envs");
  simic::require_argument(next_values.size() == static_cast<std::size_t>(envs), where, "next_values.size()", next_values.size(),
          "envs");
  simic::require_argument(p.gamma >= 0.0 && p.gamma <= 1.0, where, "gamma", p.gamma, "[0, 1]");
  simic::require_argument(p.lambda >= 0.0 && p.lambda <= 1.0, where, "lambda", p.lambda, "[0, 1]");
  for (int e = 0; e < envs; ++e) {
    double gae = 0.0;
    for (int t = steps - 1; t >= 0; --t) {
      const std::size_t i = static_cast<std::size_t>(t) * envs + e;
      const double nonterminal = 1.0 - dones[i];
      const double v_next = t == steps - 1 ? next_values[e] : values[i + envs];
      const double delta = p.reward_scale * rewards[i] + p.gamma * v_next * nonterminal - values[i];
      gae = delta + p.gamma * p.lambda * nonterminal * gae;
      advantages[i] = static_cast<float>(gae);
    }
  }
}

}  // namespace ppo_lstm
