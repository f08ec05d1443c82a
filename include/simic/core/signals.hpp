// Signals: what one update produced, as plain host values. Sensors fill it,
// detectors read it. Every field is optional: a detector skips what is absent
// this step. Signals does not own the entropy head list (a span), so building
// one per update allocates nothing.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "simic/core/detail/error.hpp"

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


// A set of signals fields: what one check carried (signal_set::of), and what
// a detector reads (its `static constexpr signal_set reads`), for the
// monitor's missing-signal guard.
class signal_set {
 public:
  enum field : unsigned {
    ratio_max, ratio_min, approx_kl, explained_variance, loss, update_ratio, entropy,
    gradients, lstm, performance, reward_rate, user, field_count
  };
  static constexpr std::array<std::string_view, field_count> names{
      "ratio_max", "ratio_min", "approx_kl", "explained_variance", "loss",        "update_ratio",
      "entropy",   "gradients", "lstm",      "performance",        "reward_rate", "user"};

  constexpr signal_set() noexcept = default;
  constexpr signal_set(std::initializer_list<field> fields) noexcept {
    for (field f : fields) bits_ |= 1u << f;
  }

  static signal_set of(const signals& s) noexcept {
    signal_set p;
    p.set(ratio_max, s.ratio_max.has_value());
    p.set(ratio_min, s.ratio_min.has_value());
    p.set(approx_kl, s.approx_kl.has_value());
    p.set(explained_variance, s.explained_variance.has_value());
    p.set(loss, s.loss.has_value());
    p.set(update_ratio, s.update_ratio.has_value());
    p.set(entropy, !s.entropy.empty());
    p.set(gradients, s.gradients.has_value());
    p.set(lstm, s.lstm.has_value());
    p.set(performance, s.performance.has_value());
    p.set(reward_rate, s.reward_rate.has_value());
    p.set(user, !s.user.empty());
    return p;
  }

  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr bool contains(field f) const noexcept { return (bits_ >> f) & 1u; }
  constexpr bool intersects(signal_set o) const noexcept { return (bits_ & o.bits_) != 0; }
  friend constexpr bool operator==(signal_set, signal_set) = default;
  // "lstm", "performance or reward_rate".
  std::string describe() const {
    std::string out;
    for (unsigned f = 0; f < field_count; ++f)
      if (contains(static_cast<field>(f))) out.append(out.empty() ? "" : " or ").append(names[f]);
    return out;
  }

 private:
  constexpr void set(field f, bool on) noexcept { bits_ |= static_cast<std::uint32_t>(on) << f; }
  std::uint32_t bits_ = 0;
};

}  // namespace v0
}  // namespace simic
