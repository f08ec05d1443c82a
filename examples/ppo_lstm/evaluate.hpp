// Greedy evaluation of a policy: one CartPole episode in each of `episodes`
// environments of a generator of its own, every action the policy's most
// likely; the mean return. It measures the policy that training ended with,
// apart from the exploration noise and the trajectory of training's own
// returns (a rolling mean over episodes played by several past policies).
// The recovery matrix scores PPO on it (bench/recovery, docs/recovery.md).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "cartpole.hpp"
#include "model.hpp"
#include "simic/core/error.hpp"

namespace ppo_lstm {

// The evaluation's generator: the same start states for every training seed,
// so that a run and its healthy twin are scored on the same episodes.
inline constexpr std::uint64_t evaluation_seed = 0x65'76'61'6c;  // "eval"

inline double greedy_return(lstm_policy& model, int episodes, std::uint64_t seed, int max_steps = 500) {
  constexpr const char* who = "ppo_lstm::greedy_return";
  simic::require_argument(episodes >= 1 && episodes <= 4096, who, "episodes", episodes, "[1, 4096]");
  simic::require_argument(max_steps >= 1, who, "max_steps", max_steps, ">= 1");
  torch::NoGradGuard ng;
  cartpole_vec env(episodes, seed, max_steps);
  const int hidden = model->hidden();
  auto h = torch::zeros({episodes, hidden}), c = torch::zeros({episodes, hidden});
  const auto keep = torch::ones({episodes});
  std::vector<std::int64_t> actions(static_cast<std::size_t>(episodes), 0);
  std::vector<std::uint8_t> counted(static_cast<std::size_t>(episodes), 0);
  cartpole_vec::step_result r;
  double sum = 0.0;
  int open = episodes;
  // Every first episode ends within max_steps; the environments that finished
  // go on stepping (their later episodes are not counted) so the batch stays whole.
  while (open > 0) {
    const auto obs = torch::from_blob(const_cast<float*>(env.observations().data()),
                                      {episodes, cartpole_vec::obs_dim}).clone();
    const policy_step out = model->step(obs, h, c, keep);
    h = out.h;
    c = out.c;
    const auto a = out.logits.argmax(1);
    const auto acc = a.accessor<std::int64_t, 1>();
    for (int e = 0; e < episodes; ++e) actions[static_cast<std::size_t>(e)] = acc[e];
    env.step(actions, r);
    // finished_returns holds the ended episodes' returns in environment order.
    std::size_t next = 0;
    for (int e = 0; e < episodes; ++e) {
      if (!r.done[static_cast<std::size_t>(e)]) continue;
      const double ret = r.finished_returns[next++];
      if (counted[static_cast<std::size_t>(e)]) continue;
      counted[static_cast<std::size_t>(e)] = 1;
      sum += ret;
      --open;
    }
  }
  return sum / episodes;
}

}  // namespace ppo_lstm
