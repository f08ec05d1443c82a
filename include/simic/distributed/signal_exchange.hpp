// One rank's signals as a fixed row of doubles, and the job's signals from
// every rank's row: what a data-parallel job feeds every rank's monitor, so
// that every rank makes the same decision (docs/distributed.md).
//
// A row has the same length on every rank (one all-gather moves them all);
// each field is reduced over the ranks that have it, with its own operation:
//   ratio_max: max; ratio_min: min;
//   approx_kl, explained_variance, loss, update_ratio, performance,
//   reward_rate, each entropy head, each user figure: mean;
//   gradients: the worst over ranks, field by field (largest norms and
//     counts, lowest health and smallest norm). DDP's averaged gradients are
//     equal on every rank, so the worst is that figure: nothing is summed
//     twice; a rank-local fault (a NaN after the all-reduce) still shows;
//   lstm: the whole signal of the least healthy rank (non-finite first, then
//     the largest root mean square);
//   progress: the furthest.
// Non-finite values win every max and min, so one rank's NaN is the job's.
// LibTorch-free: the collective is distributed/process_group_exchange.hpp's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "simic/core/anomaly.hpp"
#include "simic/core/detail/error.hpp"
#include "simic/core/signals.hpp"

namespace simic {
inline namespace v0 {
namespace distributed {

// Room in a row for the variable parts; equal on every rank.
struct row_capacity {
  std::size_t heads = 8;  // entropy heads
  std::size_t user = 16;  // user figures
  friend bool operator==(const row_capacity&, const row_capacity&) = default;
};

// The row's fixed part, in order (one definition: pack, reduce and the docs
// follow it).
enum row_slot : std::size_t {
  slot_present,  // bit i: signal_set field i is present
  slot_names,    // hash of the entropy head names and user figure names, in order
  slot_ratio_max, slot_ratio_min, slot_approx_kl, slot_explained_variance, slot_loss, slot_update_ratio,
  slot_performance, slot_reward_rate, slot_progress_episode, slot_progress_total,
  slot_grad_total_norm, slot_grad_health, slot_grad_min_param_norm, slot_grad_max_param_norm,
  slot_grad_parameters, slot_grad_vanishing, slot_grad_exploding, slot_grad_nan, slot_grad_inf,
  slot_lstm_h_norm, slot_lstm_c_norm, slot_lstm_h_max_abs, slot_lstm_c_max_abs, slot_lstm_has_nan,
  slot_lstm_has_inf, slot_lstm_elements,
  slot_heads,  // how many entropy heads; their values follow
  fixed_slots = slot_heads
};

inline std::size_t row_size(const row_capacity& c) noexcept { return fixed_slots + 1 + c.heads + 1 + c.user; }

namespace detail {

inline constexpr unsigned progress_bit = signal_set::field_count;  // progress is no signal_set field

// FNV-1a over the names, each ended by a zero byte; 48 bits, so that a
// double holds it exactly, and so does a float pair (encode_float_pairs).
inline double names_hash(std::span<const head_entropy> heads, std::span<const user_signal> user) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto add = [&](std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    h = (h ^ 0u) * 0x100000001b3ull;
  };
  for (const auto& x : heads) add(x.head);
  add("|");
  for (const auto& x : user) add(x.name);
  return static_cast<double>(h & ((std::uint64_t{1} << 48) - 1));
}

// Max and min where a NaN wins (the job must see one rank's NaN).
inline double worst_max(double a, double b) noexcept { return std::isnan(a) || a > b ? a : b; }
inline double worst_min(double a, double b) noexcept { return std::isnan(a) || a < b ? a : b; }
// An order for min_element in which a NaN is the least.
inline bool worst_min_less(double a, double b) noexcept { return (std::isnan(a) && !std::isnan(b)) || a < b; }

}  // namespace detail

// A row in a float32 buffer (a gradient all-reduce's, docs/distributed.md):
// each double as two floats, hi = float(x) and lo = float(x - hi), whose sum
// gives x back to 48 significant bits. Exact: every integer below 2^48 (the
// counts, the presence bits, the names' hash), zero, NaN and +-Inf.
// Magnitudes beyond float's range (3.4e38) arrive as +-Inf; below its normal
// range (1.2e-38) as float's subnormals. A sum in which every other rank adds
// +0.0 leaves each float as it is, which is what carrying a row in its own
// slot of an all-reduce needs.
inline void encode_float_pairs(std::span<const double> row, std::span<float> out) {
  simic::detail::require(out.size() == 2 * row.size(), "simic::distributed::encode_float_pairs", "out.size()",
                         out.size(), "2 x row.size() = " + std::to_string(2 * row.size()));
  for (std::size_t i = 0; i < row.size(); ++i) {
    const float hi = static_cast<float>(row[i]);
    out[2 * i] = hi;
    out[2 * i + 1] = std::isfinite(hi) ? static_cast<float>(row[i] - static_cast<double>(hi)) : 0.0f;
  }
}
inline void decode_float_pairs(std::span<const float> pairs, std::span<double> row) {
  simic::detail::require(pairs.size() == 2 * row.size(), "simic::distributed::decode_float_pairs", "pairs.size()",
                         pairs.size(), "2 x row.size() = " + std::to_string(2 * row.size()));
  for (std::size_t i = 0; i < row.size(); ++i)
    row[i] = static_cast<double>(pairs[2 * i]) + static_cast<double>(pairs[2 * i + 1]);
}

// This rank's row. Throws std::invalid_argument when the entropy heads or the
// user figures do not fit `cap` (nothing is cut off silently).
inline std::vector<double> pack_signals(const signals& s, const row_capacity& cap = {}) {
  simic::detail::require(s.entropy.size() <= cap.heads, "simic::distributed::pack_signals", "entropy heads",
                         s.entropy.size(), "<= row_capacity::heads (" + std::to_string(cap.heads) + ")");
  simic::detail::require(s.user.size() <= cap.user, "simic::distributed::pack_signals", "user figures",
                         s.user.size(), "<= row_capacity::user (" + std::to_string(cap.user) + ")");
  std::vector<double> row(row_size(cap), 0.0);
  std::uint32_t present = 0;
  auto put = [&](signal_set::field f, row_slot slot, const std::optional<double>& v) {
    if (!v) return;
    present |= 1u << f;
    row[slot] = *v;
  };
  put(signal_set::ratio_max, slot_ratio_max, s.ratio_max);
  put(signal_set::ratio_min, slot_ratio_min, s.ratio_min);
  put(signal_set::approx_kl, slot_approx_kl, s.approx_kl);
  put(signal_set::explained_variance, slot_explained_variance, s.explained_variance);
  put(signal_set::loss, slot_loss, s.loss);
  put(signal_set::update_ratio, slot_update_ratio, s.update_ratio);
  put(signal_set::performance, slot_performance, s.performance);
  put(signal_set::reward_rate, slot_reward_rate, s.reward_rate);
  if (s.progress) {
    present |= 1u << detail::progress_bit;
    row[slot_progress_episode] = static_cast<double>(s.progress->episode());
    row[slot_progress_total] = static_cast<double>(s.progress->total());
  }
  if (const auto& g = s.gradients) {
    present |= 1u << signal_set::gradients;
    row[slot_grad_total_norm] = g->total_norm;
    row[slot_grad_health] = g->health;
    row[slot_grad_min_param_norm] = g->min_param_norm;
    row[slot_grad_max_param_norm] = g->max_param_norm;
    row[slot_grad_parameters] = static_cast<double>(g->parameters);
    row[slot_grad_vanishing] = static_cast<double>(g->vanishing);
    row[slot_grad_exploding] = static_cast<double>(g->exploding);
    row[slot_grad_nan] = static_cast<double>(g->nan_count);
    row[slot_grad_inf] = static_cast<double>(g->inf_count);
  }
  if (const auto& l = s.lstm) {
    present |= 1u << signal_set::lstm;
    row[slot_lstm_h_norm] = l->h_norm;
    row[slot_lstm_c_norm] = l->c_norm;
    row[slot_lstm_h_max_abs] = l->h_max_abs;
    row[slot_lstm_c_max_abs] = l->c_max_abs;
    row[slot_lstm_has_nan] = l->has_nan ? 1.0 : 0.0;
    row[slot_lstm_has_inf] = l->has_inf ? 1.0 : 0.0;
    row[slot_lstm_elements] = static_cast<double>(l->elements);
  }
  if (!s.entropy.empty()) present |= 1u << signal_set::entropy;
  if (!s.user.empty()) present |= 1u << signal_set::user;
  row[slot_present] = static_cast<double>(present);
  row[slot_names] = detail::names_hash(s.entropy, s.user);
  row[slot_heads] = static_cast<double>(s.entropy.size());
  for (std::size_t i = 0; i < s.entropy.size(); ++i) row[slot_heads + 1 + i] = s.entropy[i].normalized;
  const std::size_t user_at = slot_heads + 1 + cap.heads;
  row[user_at] = static_cast<double>(s.user.size());
  for (std::size_t i = 0; i < s.user.size(); ++i) row[user_at + 1 + i] = s.user[i].value;
  return row;
}

// The job's signals, owning what `signals` only points at (entropy heads and
// user figures: their names are this rank's, checked equal on every rank).
// `origin` names, per signal_set field, the ranks that gave the job its
// value: the extreme ranks of a max or min, the worst ranks of a mean (the
// highest KL, loss and update ratio; the lowest explained variance,
// performance, reward rate and entropy), the rank whose LSTM state was taken.
class job_signals {
 public:
  // Movable (the vectors keep their buffers, so the spans stay valid), not copyable.
  job_signals() = default;
  job_signals(job_signals&&) noexcept = default;
  job_signals& operator=(job_signals&&) noexcept = default;
  job_signals(const job_signals&) = delete;
  job_signals& operator=(const job_signals&) = delete;

  const signals& view() const noexcept { return s_; }
  // Ranks (ascending) where `f`'s value came from; empty where no rank had it.
  const std::vector<std::int64_t>& origin(signal_set::field f) const { return origin_.at(f); }
  // The ranks an anomaly of `kind` came from: the origins of the signals its
  // detectors read (anomaly_signals()), non-finite first.
  std::vector<std::int64_t> origin_of(anomaly_kind kind) const;
  std::size_t ranks() const noexcept { return ranks_; }

  // Figures measured after the ranks synchronized (DDP's averaged gradients,
  // the parameter update they make), so equal on every rank: `local`'s
  // gradients and update ratio replace the rows'. The rows' gradients, if
  // any, are each rank's before the all-reduce; the ranks where those were
  // non-finite are the origin (a NaN on one rank makes the sum NaN on all),
  // else every rank is.
  void adopt_shared(const signals& local);

 private:
  friend job_signals reduce_signals(std::span<const double>, std::size_t, const signals&, const row_capacity&);
  signals s_{};
  std::vector<head_entropy> heads_;
  std::vector<user_signal> user_;
  std::vector<std::vector<std::int64_t>> origin_ = std::vector<std::vector<std::int64_t>>(signal_set::field_count);
  // Per field, the ranks whose value is not finite (NaN/Inf figures, counts or flags).
  std::vector<std::vector<std::int64_t>> nonfinite_ = std::vector<std::vector<std::int64_t>>(signal_set::field_count);
  std::size_t ranks_ = 0;
};

// The signals an anomaly kind is judged on (the built-in kinds; a user kind:
// the user figures).
inline signal_set anomaly_signals(anomaly_kind k) {
  using f = signal_set;
  if (k == anomaly_kind::ratio_explosion || k == anomaly_kind::ratio_collapse) return {f::ratio_max, f::ratio_min};
  if (k == anomaly_kind::value_collapse) return {f::explained_variance};
  if (k == anomaly_kind::numerical_instability)
    return {f::loss, f::ratio_max, f::ratio_min, f::approx_kl, f::gradients, f::lstm};
  if (k == anomaly_kind::entropy_collapse || k == anomaly_kind::entropy_low) return {f::entropy};
  if (k == anomaly_kind::kl_spike || k == anomaly_kind::kl_extreme) return {f::approx_kl};
  if (k == anomaly_kind::gradient_norm_drift || k == anomaly_kind::gradient_health_drift ||
      k == anomaly_kind::gradient_vanishing || k == anomaly_kind::gradient_exploding)
    return {f::gradients};
  if (k == anomaly_kind::performance_degradation) return {f::performance, f::reward_rate};
  if (k == anomaly_kind::lstm_unhealthy) return {f::lstm};
  if (k == anomaly_kind::update_ratio_drift) return {f::update_ratio};
  if (k == anomaly_kind::signal_missing) return {};
  return {f::user};
}

inline std::vector<std::int64_t> job_signals::origin_of(anomaly_kind kind) const {
  const signal_set reads = anomaly_signals(kind);
  std::vector<std::int64_t> out;
  for (const auto* from : {&nonfinite_, &origin_}) {  // ranks with non-finite figures, if any, are the cause
    for (unsigned f = 0; f < signal_set::field_count; ++f)
      if (reads.contains(static_cast<signal_set::field>(f))) out.insert(out.end(), (*from)[f].begin(), (*from)[f].end());
    if (!out.empty()) break;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

inline void job_signals::adopt_shared(const signals& local) {
  std::vector<std::int64_t> every(ranks_);
  for (std::size_t r = 0; r < ranks_; ++r) every[r] = static_cast<std::int64_t>(r);
  auto adopt = [&](signal_set::field f, auto& mine, const auto& theirs) {
    mine = theirs;
    origin_[f] = !theirs ? std::vector<std::int64_t>{} : nonfinite_[f].empty() ? every : nonfinite_[f];
  };
  adopt(signal_set::gradients, s_.gradients, local.gradients);
  adopt(signal_set::update_ratio, s_.update_ratio, local.update_ratio);
}

// Reduces `rows` (ranks x row_size(cap), rank-major, as an all-gather leaves
// them). `local` is this rank's signals: the names of its entropy heads and
// user figures label the job's. Throws std::invalid_argument naming the rank
// when the rows disagree in shape or names (the ranks run different code).
inline job_signals reduce_signals(std::span<const double> rows, std::size_t ranks, const signals& local,
                                  const row_capacity& cap = {}) {
  constexpr std::string_view where = "simic::distributed::reduce_signals";
  const std::size_t n = row_size(cap);
  simic::detail::require(ranks >= 1, where, "ranks", ranks, ">= 1");
  simic::detail::require(rows.size() == ranks * n, where, "rows.size()", rows.size(),
                         "ranks x row_size(cap) = " + std::to_string(ranks * n));
  const double names = detail::names_hash(local.entropy, local.user);
  auto row = [&](std::size_t r) { return rows.subspan(r * n, n); };
  for (std::size_t r = 0; r < ranks; ++r) {
    const auto x = row(r);
    // Every row names its figures (the hash of no names is not 0): all
    // zeros is a rank that wrote none in a carrying all-reduce.
    if (x[slot_names] == 0.0 && x[slot_present] == 0.0)
      simic::detail::throw_invalid(where, "rank " + std::to_string(r) + "'s row", "all zeros (no row carried)",
                                   "every rank carries its row in the same all-reduce (agreement::carry)");
    const bool heads_ok = x[slot_heads] == static_cast<double>(local.entropy.size());
    const bool user_ok = x[slot_heads + 1 + cap.heads] == static_cast<double>(local.user.size());
    if (x[slot_names] != names || !heads_ok || !user_ok)
      simic::detail::throw_invalid(where, "rank " + std::to_string(r) + "'s entropy heads or user figures",
                                   "other names or counts than this rank's",
                                   "every rank names the same heads and figures in the same order");
  }

  job_signals out;
  out.ranks_ = ranks;
  out.heads_.assign(local.entropy.begin(), local.entropy.end());
  out.user_.assign(local.user.begin(), local.user.end());
  signals& s = out.s_;
  auto has = [&](std::size_t r, unsigned bit) {
    return (static_cast<std::uint32_t>(row(r)[slot_present]) >> bit) & 1u;
  };
  // Which ranks hold non-finite figures, per field.
  const std::pair<signal_set::field, row_slot> scalar_slots[] = {
      {signal_set::ratio_max, slot_ratio_max},       {signal_set::ratio_min, slot_ratio_min},
      {signal_set::approx_kl, slot_approx_kl},       {signal_set::explained_variance, slot_explained_variance},
      {signal_set::loss, slot_loss},                 {signal_set::update_ratio, slot_update_ratio},
      {signal_set::performance, slot_performance},   {signal_set::reward_rate, slot_reward_rate}};
  for (std::size_t r = 0; r < ranks; ++r) {
    const auto x = row(r);
    const auto rank = static_cast<std::int64_t>(r);
    for (const auto& [f, slot] : scalar_slots)
      if (has(r, f) && !std::isfinite(x[slot])) out.nonfinite_[f].push_back(rank);
    if (has(r, signal_set::gradients) &&
        (x[slot_grad_nan] > 0 || x[slot_grad_inf] > 0 || !std::isfinite(x[slot_grad_total_norm])))
      out.nonfinite_[signal_set::gradients].push_back(rank);
    if (has(r, signal_set::lstm) && (x[slot_lstm_has_nan] != 0 || x[slot_lstm_has_inf] != 0 ||
                                     !std::isfinite(x[slot_lstm_h_norm]) || !std::isfinite(x[slot_lstm_c_norm])))
      out.nonfinite_[signal_set::lstm].push_back(rank);
    for (std::size_t i = 0; i < local.entropy.size(); ++i)
      if (has(r, signal_set::entropy) && !std::isfinite(x[slot_heads + 1 + i])) {
        out.nonfinite_[signal_set::entropy].push_back(rank);
        break;
      }
  }

  enum class op { max, min, mean_high_worst, mean_low_worst };
  // One field: its value over the ranks that have it, and its origin ranks.
  auto reduce = [&](signal_set::field f, row_slot slot, op o) -> std::optional<double> {
    std::optional<double> acc;
    double sum = 0.0;
    std::size_t count = 0;
    std::optional<double> worst;  // of a mean: the highest or lowest value
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, f)) continue;
      const double v = row(r)[slot];
      ++count;
      sum += v;
      const bool high = o == op::max || o == op::mean_high_worst;
      worst = !worst ? v : high ? detail::worst_max(*worst, v) : detail::worst_min(*worst, v);
    }
    if (count == 0) return std::nullopt;
    acc = (o == op::max || o == op::min) ? *worst : sum / static_cast<double>(count);
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, f)) continue;
      const double v = row(r)[slot];
      if (v == *worst || (std::isnan(v) && std::isnan(*worst))) out.origin_[f].push_back(static_cast<std::int64_t>(r));
    }
    return acc;
  };
  s.ratio_max = reduce(signal_set::ratio_max, slot_ratio_max, op::max);
  s.ratio_min = reduce(signal_set::ratio_min, slot_ratio_min, op::min);
  s.approx_kl = reduce(signal_set::approx_kl, slot_approx_kl, op::mean_high_worst);
  s.explained_variance = reduce(signal_set::explained_variance, slot_explained_variance, op::mean_low_worst);
  s.loss = reduce(signal_set::loss, slot_loss, op::mean_high_worst);
  s.update_ratio = reduce(signal_set::update_ratio, slot_update_ratio, op::mean_high_worst);
  s.performance = reduce(signal_set::performance, slot_performance, op::mean_low_worst);
  s.reward_rate = reduce(signal_set::reward_rate, slot_reward_rate, op::mean_low_worst);

  // progress: the furthest rank's (all ranks follow one schedule).
  for (std::size_t r = 0; r < ranks; ++r) {
    if (!has(r, detail::progress_bit)) continue;
    const auto ep = static_cast<std::uint64_t>(row(r)[slot_progress_episode]);
    const auto total = static_cast<std::uint64_t>(row(r)[slot_progress_total]);
    if (!s.progress || ep > s.progress->episode()) s.progress = training_progress(ep, total);
  }

  // gradients: the worst of each field; the origin ranks are those with the
  // largest total norm (a NaN norm is the largest).
  bool any_grads = false;
  gradient_signal g;
  for (std::size_t r = 0; r < ranks; ++r) {
    if (!has(r, signal_set::gradients)) continue;
    const auto x = row(r);
    const gradient_signal o{.total_norm = x[slot_grad_total_norm],
                            .health = x[slot_grad_health],
                            .min_param_norm = x[slot_grad_min_param_norm],
                            .max_param_norm = x[slot_grad_max_param_norm],
                            .parameters = static_cast<std::uint64_t>(x[slot_grad_parameters]),
                            .vanishing = static_cast<std::uint64_t>(x[slot_grad_vanishing]),
                            .exploding = static_cast<std::uint64_t>(x[slot_grad_exploding]),
                            .nan_count = static_cast<std::uint64_t>(x[slot_grad_nan]),
                            .inf_count = static_cast<std::uint64_t>(x[slot_grad_inf])};
    if (!any_grads) {
      g = o;
      any_grads = true;
      continue;
    }
    g.total_norm = detail::worst_max(g.total_norm, o.total_norm);
    g.health = detail::worst_min(g.health, o.health);
    g.min_param_norm = detail::worst_min(g.min_param_norm, o.min_param_norm);
    g.max_param_norm = detail::worst_max(g.max_param_norm, o.max_param_norm);
    g.parameters = std::max(g.parameters, o.parameters);
    g.vanishing = std::max(g.vanishing, o.vanishing);
    g.exploding = std::max(g.exploding, o.exploding);
    g.nan_count = std::max(g.nan_count, o.nan_count);
    g.inf_count = std::max(g.inf_count, o.inf_count);
  }
  if (any_grads) {
    s.gradients = g;
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, signal_set::gradients)) continue;
      const auto x = row(r);
      const bool bad = x[slot_grad_nan] > 0 || x[slot_grad_inf] > 0 || !std::isfinite(x[slot_grad_total_norm]);
      const bool job_bad = !g.finite();
      if (job_bad ? bad : x[slot_grad_total_norm] == g.total_norm)
        out.origin_[signal_set::gradients].push_back(static_cast<std::int64_t>(r));
    }
  }

  // lstm: the least healthy rank's whole signal.
  std::optional<std::size_t> lstm_rank;
  auto lstm_badness = [&](std::size_t r) {
    const auto x = row(r);
    if (x[slot_lstm_has_nan] != 0 || x[slot_lstm_has_inf] != 0 || !std::isfinite(x[slot_lstm_h_norm]) ||
        !std::isfinite(x[slot_lstm_c_norm]))
      return std::numeric_limits<double>::infinity();
    const double per = x[slot_lstm_elements] > 0 ? 1.0 / std::sqrt(x[slot_lstm_elements]) : 1.0;
    return std::max(x[slot_lstm_h_norm], x[slot_lstm_c_norm]) * per;
  };
  for (std::size_t r = 0; r < ranks; ++r)
    if (has(r, signal_set::lstm) && (!lstm_rank || lstm_badness(r) > lstm_badness(*lstm_rank))) lstm_rank = r;
  if (lstm_rank) {
    const auto x = row(*lstm_rank);
    s.lstm = lstm_signal{.h_norm = x[slot_lstm_h_norm],
                         .c_norm = x[slot_lstm_c_norm],
                         .h_max_abs = x[slot_lstm_h_max_abs],
                         .c_max_abs = x[slot_lstm_c_max_abs],
                         .has_nan = x[slot_lstm_has_nan] != 0,
                         .has_inf = x[slot_lstm_has_inf] != 0,
                         .elements = static_cast<std::uint64_t>(x[slot_lstm_elements])};
    out.origin_[signal_set::lstm].push_back(static_cast<std::int64_t>(*lstm_rank));
  }

  // entropy heads and user figures: the mean of each over the ranks; the
  // entropy's origin: the ranks of the lowest mean over their heads.
  auto mean_at = [&](unsigned bit, std::size_t at) {
    double sum = 0.0;
    std::size_t count = 0;
    for (std::size_t r = 0; r < ranks; ++r)
      if (has(r, bit)) sum += row(r)[at], ++count;
    return sum / static_cast<double>(count);
  };
  for (std::size_t i = 0; i < out.heads_.size(); ++i)
    out.heads_[i].normalized = mean_at(signal_set::entropy, slot_heads + 1 + i);
  if (!out.heads_.empty()) {
    std::vector<double> per_rank(ranks, std::numeric_limits<double>::infinity());
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, signal_set::entropy)) continue;
      double sum = 0.0;
      for (std::size_t i = 0; i < out.heads_.size(); ++i) sum += row(r)[slot_heads + 1 + i];
      per_rank[r] = sum / static_cast<double>(out.heads_.size());
    }
    const double low = *std::min_element(per_rank.begin(), per_rank.end(), detail::worst_min_less);
    for (std::size_t r = 0; r < ranks; ++r)
      if (has(r, signal_set::entropy) && (per_rank[r] == low || (std::isnan(low) && std::isnan(per_rank[r]))))
        out.origin_[signal_set::entropy].push_back(static_cast<std::int64_t>(r));
  }
  const std::size_t user_at = slot_heads + 1 + cap.heads;
  for (std::size_t i = 0; i < out.user_.size(); ++i) out.user_[i].value = mean_at(signal_set::user, user_at + 1 + i);
  if (!out.user_.empty())
    for (std::size_t r = 0; r < ranks; ++r)
      if (has(r, signal_set::user)) out.origin_[signal_set::user].push_back(static_cast<std::int64_t>(r));
  s.entropy = out.heads_;
  s.user = out.user_;
  return out;
}

}  // namespace distributed
}  // namespace v0
}  // namespace simic
