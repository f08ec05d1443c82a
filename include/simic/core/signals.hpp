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
#include <type_traits>

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

// Whether a check at `progress` falls in the first `early` fraction of
// training, which the detectors that build a model of a signal do not judge
// (defaults::shift_early); without progress, never.
inline bool in_early_training(const std::optional<training_progress>& progress, double early) noexcept {
  return progress && progress->fraction() < early;
}

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
  // the host network's share of the gradient against the module's, per
  // parameter element (sensors/gradient_ratio.hpp): what a guest module
  // (an LSTM core under its heads, an adapter) gets of the learning signal
  std::optional<double> host_module_ratio;
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
    gradients, lstm, performance, reward_rate, user, host_module_ratio, field_count
  };
  // Each field's name (signal_fields below): "approx_kl".
  static constexpr std::string_view name(field f) noexcept;

  constexpr signal_set() noexcept = default;
  constexpr signal_set(std::initializer_list<field> fields) noexcept {
    for (field f : fields) bits_ |= 1u << f;
  }

  static signal_set of(const signals& s) noexcept;

  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr bool contains(field f) const noexcept { return (bits_ >> f) & 1u; }
  constexpr bool intersects(signal_set o) const noexcept { return (bits_ & o.bits_) != 0; }
  friend constexpr bool operator==(signal_set, signal_set) = default;
  friend constexpr signal_set operator|(signal_set a, signal_set b) noexcept { return from_bits(a.bits_ | b.bits_); }
  // The fields of this set that `o` lacks.
  constexpr signal_set without(signal_set o) const noexcept { return from_bits(bits_ & ~o.bits_); }
  // "lstm", "performance or reward_rate" (`separator` between names).
  std::string describe(std::string_view separator = " or ") const {
    std::string out;
    for (unsigned f = 0; f < field_count; ++f)
      if (contains(static_cast<field>(f))) out.append(out.empty() ? "" : separator).append(name(static_cast<field>(f)));
    return out;
  }

 private:
  constexpr void set(field f, bool on) noexcept { bits_ |= static_cast<std::uint32_t>(on) << f; }
  static constexpr signal_set from_bits(std::uint32_t bits) noexcept {
    signal_set s;
    s.bits_ = bits;
    return s;
  }
  std::uint32_t bits_ = 0;
};

// ---- Signal descriptors: every fact about a signal field, defined once ----
//
// A field's name is its signal_set name, its JSON key (in the step's
// "update" event, or in its sensor's event), the TensorBoard tag's last part
// and the report's series; `merge` says how a data-parallel job makes one
// figure of every rank's (distributed/signal_exchange.hpp); `chart` names the
// report's chart that draws it (tools/report). Packing, reduction, the
// writers and the report loop over these tables.

// How a data-parallel job merges a figure over the ranks that have it. The
// origin ranks (those an anomaly names) are the extreme ranks.
enum class rank_merge : unsigned char {
  max,              // the largest; a NaN wins
  min,              // the smallest; a NaN wins
  mean_high_worst,  // the mean; the ranks with the highest value are its origin
  mean_low_worst,   // the mean; the ranks with the lowest value are its origin
  count_max,        // a count: the largest
  whole,            // the whole structured signal of one rank (the LSTM state's least healthy)
};

// What a field's value is, for the writers: a real number (NaN and Inf are
// written as strings), an exact count, or a flag.
enum class value_kind : unsigned char { real, count, flag };

// The name of every signal_set field, in field order.
struct signal_field_name {
  signal_set::field field;
  std::string_view name;
};
inline constexpr signal_field_name signal_fields[signal_set::field_count] = {
    {signal_set::ratio_max, "ratio_max"},
    {signal_set::ratio_min, "ratio_min"},
    {signal_set::approx_kl, "approx_kl"},
    {signal_set::explained_variance, "explained_variance"},
    {signal_set::loss, "loss"},
    {signal_set::update_ratio, "update_ratio"},
    {signal_set::entropy, "entropy"},
    {signal_set::gradients, "gradients"},
    {signal_set::lstm, "lstm"},
    {signal_set::performance, "performance"},
    {signal_set::reward_rate, "reward_rate"},
    {signal_set::user, "user"},
    {signal_set::host_module_ratio, "host_module_ratio"},
};
namespace detail {
constexpr bool fields_in_order() {
  for (unsigned i = 0; i < signal_set::field_count; ++i)
    if (signal_fields[i].field != i || signal_fields[i].name.empty()) return false;
  return true;
}
}  // namespace detail
static_assert(detail::fields_in_order(), "signal_fields lists every signal_set field once, in field order");

constexpr std::string_view signal_set::name(field f) noexcept { return signal_fields[f].name; }

// A scalar signal: one optional number of `signals`. The table's order is the
// order numerical_stability reports non-finite figures in, and the order of
// the scalars in a data-parallel row.
struct scalar_signal {
  signal_set::field field;
  std::optional<double> signals::*member;
  rank_merge merge;
  bool step_record;        // also written in the step's "update" event (and TensorBoard's update/<name>)
  // Measured from the gradients or the weights after a data-parallel job's
  // gradient all-reduce, so equal on every rank: not carried, each rank's own
  // (distributed::job_signals::adopt_shared), as the gradients are.
  bool after_sync;
  std::string_view chart;  // the report's chart of the step record (tools/report); empty: not drawn
  std::string_view color;  // its series' colour there
  constexpr std::string_view name() const noexcept { return signal_set::name(field); }
};
inline constexpr scalar_signal scalar_signals[] = {
    {signal_set::loss, &signals::loss, rank_merge::mean_high_worst, true, false, "loss", "#ff7f0e"},
    {signal_set::ratio_max, &signals::ratio_max, rank_merge::max, true, false, "ratio", "#d62728"},
    {signal_set::ratio_min, &signals::ratio_min, rank_merge::min, true, false, "ratio", "#1f77b4"},
    {signal_set::approx_kl, &signals::approx_kl, rank_merge::mean_high_worst, true, false, "kl", "#9467bd"},
    {signal_set::explained_variance, &signals::explained_variance, rank_merge::mean_low_worst, true, false, "policy",
     "#7f7f7f"},
    {signal_set::update_ratio, &signals::update_ratio, rank_merge::mean_high_worst, true, true, "update",
     "#2ca02c"},
    {signal_set::performance, &signals::performance, rank_merge::mean_low_worst, false, false, "", ""},
    {signal_set::reward_rate, &signals::reward_rate, rank_merge::mean_low_worst, false, false, "", ""},
    {signal_set::host_module_ratio, &signals::host_module_ratio, rank_merge::mean_high_worst, false, true, "", ""},
};

// One field of a structured signal (gradient_signal, lstm_signal).
template <class S>
struct signal_member {
  std::string_view name;
  double (*get)(const S&) noexcept;
  void (*set)(S&, double) noexcept;
  value_kind kind;
  rank_merge merge;
  bool in_event;     // written in its sensor's event
  bool tensorboard;  // and as a TensorBoard scalar, <group>/<name>
  std::string_view chart;  // the report's chart of its event (tools/report); empty: not drawn
  std::string_view color;  // its series' colour there
};

namespace detail {
// Accessors of a member, as plain functions (a table can hold them).
template <auto M>
constexpr double member_get(const auto& s) noexcept {
  return static_cast<double>(s.*M);
}
template <auto M>
constexpr void member_set(auto& s, double v) noexcept {
  using T = std::remove_cvref_t<decltype(s.*M)>;
  if constexpr (std::is_same_v<T, bool>)
    s.*M = v != 0.0;
  else
    s.*M = static_cast<T>(v);
}
template <class S, auto M>
constexpr signal_member<S> member(std::string_view name, value_kind kind, rank_merge merge, bool in_event,
                                  bool tensorboard, std::string_view chart = {}, std::string_view color = {}) {
  return {name, +[](const S& s) noexcept { return member_get<M>(s); }, +[](S& s, double v) noexcept { member_set<M>(s, v); },
          kind, merge, in_event, tensorboard, chart, color};
}
}  // namespace detail

// The gradient figures, in the order of the gradient_health event; a
// data-parallel job takes the worst of each over the ranks.
inline constexpr signal_member<gradient_signal> gradient_members[] = {
    detail::member<gradient_signal, &gradient_signal::total_norm>("total_norm", value_kind::real, rank_merge::max, true,
                                                                  true, "gradient", "#2ca02c"),
    detail::member<gradient_signal, &gradient_signal::health>("health", value_kind::real, rank_merge::min, true, true,
                                                              "health", "#17becf"),
    detail::member<gradient_signal, &gradient_signal::min_param_norm>("min_param_norm", value_kind::real,
                                                                      rank_merge::min, true, true),
    detail::member<gradient_signal, &gradient_signal::max_param_norm>("max_param_norm", value_kind::real,
                                                                      rank_merge::max, true, true),
    detail::member<gradient_signal, &gradient_signal::parameters>("parameters", value_kind::count,
                                                                  rank_merge::count_max, true, false),
    detail::member<gradient_signal, &gradient_signal::vanishing>("vanishing", value_kind::count, rank_merge::count_max,
                                                                 true, true),
    detail::member<gradient_signal, &gradient_signal::exploding>("exploding", value_kind::count, rank_merge::count_max,
                                                                 true, true),
    detail::member<gradient_signal, &gradient_signal::nan_count>("nan_count", value_kind::count, rank_merge::count_max,
                                                                 true, true),
    detail::member<gradient_signal, &gradient_signal::inf_count>("inf_count", value_kind::count, rank_merge::count_max,
                                                                 true, true),
};

// The LSTM state's figures, in the order of the lstm_health event; a
// data-parallel job takes the least healthy rank's whole signal.
inline constexpr signal_member<lstm_signal> lstm_members[] = {
    detail::member<lstm_signal, &lstm_signal::h_norm>("h_norm", value_kind::real, rank_merge::whole, true, true,
                                                      "lstm", "#1f77b4"),
    detail::member<lstm_signal, &lstm_signal::c_norm>("c_norm", value_kind::real, rank_merge::whole, true, true,
                                                      "lstm", "#ff7f0e"),
    detail::member<lstm_signal, &lstm_signal::h_max_abs>("h_max_abs", value_kind::real, rank_merge::whole, true, true,
                                                         "lstm", "#2ca02c"),
    detail::member<lstm_signal, &lstm_signal::c_max_abs>("c_max_abs", value_kind::real, rank_merge::whole, true, true,
                                                         "lstm", "#d62728"),
    detail::member<lstm_signal, &lstm_signal::has_nan>("has_nan", value_kind::flag, rank_merge::whole, true, false),
    detail::member<lstm_signal, &lstm_signal::has_inf>("has_inf", value_kind::flag, rank_merge::whole, true, false),
    detail::member<lstm_signal, &lstm_signal::elements>("elements", value_kind::count, rank_merge::whole, false, false),
};

inline signal_set signal_set::of(const signals& s) noexcept {
  signal_set p;
  for (const scalar_signal& f : scalar_signals) p.set(f.field, (s.*f.member).has_value());
  p.set(entropy, !s.entropy.empty());
  p.set(gradients, s.gradients.has_value());
  p.set(lstm, s.lstm.has_value());
  p.set(user, !s.user.empty());
  return p;
}

// The scalar signal of a field, or nullptr (a structured one).
constexpr const scalar_signal* scalar_signal_of(signal_set::field f) noexcept {
  for (const scalar_signal& d : scalar_signals)
    if (d.field == f) return &d;
  return nullptr;
}

}  // namespace v0
}  // namespace simic
