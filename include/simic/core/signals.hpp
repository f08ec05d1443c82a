// Signals: what one update produced, as plain host values. Sensors fill it,
// detectors read it. Every field is optional: a detector skips what is absent
// this step. Signals does not own the entropy head list (a span), so building
// one per update allocates nothing.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "simic/core/error.hpp"

namespace simic {
inline namespace v0 {

// Training progress, e.g. episode (or update) `episode` of `total`. Required by
// the checks whose thresholds depend on the phase of training.
class training_progress {
 public:
  training_progress(std::uint64_t episode, std::uint64_t total) : episode_(episode), total_(total) {
    detail::require(episode >= 1, "simic::training_progress", "episode", episode, ">= 1");
    detail::require(total >= episode, "simic::training_progress", "total", total, ">= episode");
  }
  std::uint64_t episode() const noexcept { return episode_; }
  std::uint64_t total() const noexcept { return total_; }
  double fraction() const noexcept { return static_cast<double>(episode_) / static_cast<double>(total_); }

 private:
  std::uint64_t episode_;
  std::uint64_t total_;
};

// Gradient figures of one update (from sensors/gradient_health.hpp or by hand).
struct gradient_signal {
  double total_norm = 0.0;       // sqrt(sum of squares), as clip_grad_norm_
  double health = 1.0;           // gradient_health(vanishing, exploding, parameters)
  double min_param_norm = 0.0;   // smallest per-parameter L2 norm
  double max_param_norm = 0.0;   // largest per-parameter L2 norm
  std::uint64_t parameters = 0;  // parameters with a gradient
  std::uint64_t vanishing = 0;   // per-parameter norm below the sensor's vanishing bound
  std::uint64_t exploding = 0;   // per-parameter norm above the sensor's exploding bound
  std::uint64_t nan_count = 0;   // NaN elements
  std::uint64_t inf_count = 0;   // +-Inf elements
  bool finite() const noexcept { return nan_count == 0 && inf_count == 0 && std::isfinite(total_norm); }
};

struct lstm_signal {
  double h_norm = 0.0;
  double c_norm = 0.0;
  double h_max_abs = 0.0;
  double c_max_abs = 0.0;
  bool has_nan = false;
  bool has_inf = false;
  std::uint64_t elements = 0;  // elements of h (and of c) the norms are over; 0: unknown
  // Root mean square per element, norm / sqrt(elements): independent of the
  // state's width and of how many environments were measured together. NaN
  // when `elements` is unknown.
  double h_rms() const noexcept { return rms(h_norm); }
  double c_rms() const noexcept { return rms(c_norm); }

 private:
  double rms(double norm) const noexcept {
    return elements == 0 ? std::nan("") : norm / std::sqrt(static_cast<double>(elements));
  }
};

// A figure of the user's own (a loss-spike score, a throughput), for a user
// detector to read by name: signals::user_value("loss_spike").
struct user_signal {
  std::string_view name;
  double value;
};

// Entropy of one named action head, normalised to 0..1 (entropy / log(actions)).
struct head_entropy {
  std::string_view head;
  double normalized;
};

struct signals {
  // PPO update
  std::optional<double> ratio_max;           // largest importance ratio in the batch
  std::optional<double> ratio_min;           // smallest importance ratio in the batch
  std::optional<double> approx_kl;           // approximate KL(old || new)
  std::optional<double> explained_variance;  // of the value function on the batch
  std::optional<double> loss;                // total loss of the update
  // relative size of the latest parameter update, ||delta theta|| / ||theta||
  // (sensors/parameter_update.hpp): follows the learning rate step by step
  std::optional<double> update_ratio;
  std::span<const head_entropy> entropy;     // per action head; empty: absent
  // gradients, LSTM state
  std::optional<gradient_signal> gradients;
  std::optional<lstm_signal> lstm;
  // performance (higher is better: accuracy, mean return), usually per epoch
  std::optional<double> performance;
  // mean reward per environment step of the latest rollout (higher is
  // better): a faster, noisier view than the return of finished episodes,
  // which lags by up to an episode
  std::optional<double> reward_rate;
  // where training is; required with explained_variance, performance and
  // reward_rate
  std::optional<training_progress> progress;
  // the user's own figures, by name (not owned, like entropy)
  std::span<const user_signal> user;

  std::optional<double> user_value(std::string_view name) const noexcept {
    for (const user_signal& u : user)
      if (u.name == name) return u.value;
    return std::nullopt;
  }
};

}  // namespace v0
}  // namespace simic
