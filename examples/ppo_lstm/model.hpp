// The policy: observation -> Linear+tanh -> LSTM cell -> actor logits and a
// critic value. One LSTM cell stepped by hand, so that an episode boundary
// inside a training sequence resets the state exactly where the rollout did.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <utility>

namespace ppo_lstm {

struct policy_step {
  torch::Tensor logits;  // [B, actions]
  torch::Tensor value;   // [B]
  torch::Tensor h, c;    // [B, hidden]
};

class lstm_policyImpl : public torch::nn::Module {
 public:
  lstm_policyImpl(int obs_dim, int actions, int hidden)
      : encoder(register_module("encoder", torch::nn::Linear(obs_dim, hidden))),
        lstm(register_module("lstm", torch::nn::LSTMCell(hidden, hidden))),
        actor(register_module("actor", torch::nn::Linear(hidden, actions))),
        critic(register_module("critic", torch::nn::Linear(hidden, 1))),
        hidden_(hidden) {
    torch::NoGradGuard ng;
    // Orthogonal weights, zero biases; a small actor gain starts near uniform
    // (the usual PPO initialisation).
    torch::nn::init::orthogonal_(encoder->weight, std::sqrt(2.0));
    torch::nn::init::zeros_(encoder->bias);
    torch::nn::init::orthogonal_(lstm->weight_ih);
    torch::nn::init::orthogonal_(lstm->weight_hh);
    torch::nn::init::zeros_(lstm->bias_ih);
    torch::nn::init::zeros_(lstm->bias_hh);
    // Forget-gate bias 1 (gates are ordered i, f, g, o): keeps memory at start.
    lstm->bias_ih.narrow(0, hidden, hidden).fill_(1.0);
    torch::nn::init::orthogonal_(actor->weight, 0.01);
    torch::nn::init::zeros_(actor->bias);
    torch::nn::init::orthogonal_(critic->weight, 1.0);
    torch::nn::init::zeros_(critic->bias);
  }

  // One step. `keep` [B] is 0 where an episode starts here (state reset), else 1.
  policy_step step(const torch::Tensor& obs, const torch::Tensor& h, const torch::Tensor& c,
                   const torch::Tensor& keep) {
    const auto k = keep.unsqueeze(1);
    auto [h1, c1] = cell(torch::tanh(encoder->forward(obs)), h * k, c * k);
    return head(h1, c1);
  }

  // The LSTM cell alone, so that a fault can reach the state between the two.
  std::pair<torch::Tensor, torch::Tensor> cell(const torch::Tensor& x, const torch::Tensor& h,
                                               const torch::Tensor& c) {
    auto hc = lstm->forward(x, std::make_tuple(h, c));
    return {std::get<0>(hc), std::get<1>(hc)};
  }
  policy_step head(const torch::Tensor& h, const torch::Tensor& c) {
    return {actor->forward(h), critic->forward(h).squeeze(1), h, c};
  }
  torch::Tensor encode(const torch::Tensor& obs) { return torch::tanh(encoder->forward(obs)); }

  int hidden() const noexcept { return hidden_; }

  torch::nn::Linear encoder;
  torch::nn::LSTMCell lstm;
  torch::nn::Linear actor;
  torch::nn::Linear critic;

 private:
  int hidden_;
};
TORCH_MODULE(lstm_policy);

}  // namespace ppo_lstm
