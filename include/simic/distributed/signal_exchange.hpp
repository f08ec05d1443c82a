// One rank's signals as a fixed row of doubles, and the job's signals from
// every rank's row: what a data-parallel job feeds every rank's monitor, so
// that every rank makes the same decision (docs/distributed.md).
//
// A row has the same length on every rank (one all-gather moves them all);
// each field is reduced over the ranks that have it by its descriptor's
// rank_merge (core/signals.hpp: scalar_signals, gradient_members,
// lstm_members):
//   max / min: the extreme, a NaN wins (the ratio bounds);
//   mean_high_worst / mean_low_worst: the mean, the highest / lowest rank
//     its origin (KL, loss, update ratio, explained variance, performance,
//     reward rate, host/module ratio); each entropy head and user figure:
//     the mean;
//   gradients: the worst over ranks, field by field (largest norms and
//     counts, lowest health and smallest norm). DDP's averaged gradients are
//     equal on every rank, so the worst is that figure: nothing is summed
//     twice; a rank-local fault (a NaN after the all-reduce) still shows;
//   lstm (whole): the whole signal of the least healthy rank (non-finite
//     first, then the largest root mean square);
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
#include "simic/core/error.hpp"
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

// The row's fixed part, in order: presence bits, the names' hash, the
// scalar signals (scalar_signals order), progress (episode, total), the
// gradient figures (gradient_members order), the LSTM figures (lstm_members
// order); then the entropy heads (a count, then `heads` values) and the user
// figures (a count, then `user` values). One definition: pack, reduce and
// the docs follow the descriptor tables.
namespace row_layout {
inline constexpr std::size_t present = 0;  // bit i: signal_set field i is present; bit field_count: progress
inline constexpr std::size_t names = 1;    // hash of the entropy head names and user figure names, in order
inline constexpr std::size_t scalars = 2;
inline constexpr std::size_t progress = scalars + std::size(scalar_signals);  // episode, total
inline constexpr std::size_t gradients = progress + 2;
inline constexpr std::size_t lstm = gradients + std::size(gradient_members);
inline constexpr std::size_t heads = lstm + std::size(lstm_members);  // how many entropy heads; their values follow
}  // namespace row_layout
inline constexpr std::size_t fixed_slots = row_layout::heads;

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
  namespace L = row_layout;
  std::vector<double> row(row_size(cap), 0.0);
  std::uint32_t present = 0;
  for (std::size_t i = 0; i < std::size(scalar_signals); ++i) {
    const scalar_signal& f = scalar_signals[i];
    if (const auto& v = s.*f.member) {
      present |= 1u << f.field;
      row[L::scalars + i] = *v;
    }
  }
  if (s.progress) {
    present |= 1u << detail::progress_bit;
    row[L::progress] = static_cast<double>(s.progress->episode());
    row[L::progress + 1] = static_cast<double>(s.progress->total());
  }
  if (const auto& g = s.gradients) {
    present |= 1u << signal_set::gradients;
    for (std::size_t i = 0; i < std::size(gradient_members); ++i) row[L::gradients + i] = gradient_members[i].get(*g);
  }
  if (const auto& l = s.lstm) {
    present |= 1u << signal_set::lstm;
    for (std::size_t i = 0; i < std::size(lstm_members); ++i) row[L::lstm + i] = lstm_members[i].get(*l);
  }
  if (!s.entropy.empty()) present |= 1u << signal_set::entropy;
  if (!s.user.empty()) present |= 1u << signal_set::user;
  row[L::present] = static_cast<double>(present);
  row[L::names] = detail::names_hash(s.entropy, s.user);
  row[L::heads] = static_cast<double>(s.entropy.size());
  for (std::size_t i = 0; i < s.entropy.size(); ++i) row[L::heads + 1 + i] = s.entropy[i].normalized;
  const std::size_t user_at = L::heads + 1 + cap.heads;
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
  // the parameter update they make, the host/module ratio of those
  // gradients; the scalars with after_sync, core/signals.hpp), so equal on
  // every rank: `local`'s replace the rows'. The rows' gradients, if
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
  if (k == anomaly_kind::host_ratio_drift) return {f::host_module_ratio};
  if (k == anomaly_kind::loss_spike || k == anomaly_kind::loss_divergence || k == anomaly_kind::loss_extreme)
    return {f::loss};
  if (k == anomaly_kind::learning_stall) return {f::loss, f::performance};
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
  for (const scalar_signal& f : scalar_signals)
    if (f.after_sync) adopt(f.field, s_.*f.member, local.*f.member);
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
  namespace L = row_layout;
  for (std::size_t r = 0; r < ranks; ++r) {
    const auto x = row(r);
    // Every row names its figures (the hash of no names is not 0): all
    // zeros is a rank that wrote none in a carrying all-reduce.
    if (x[L::names] == 0.0 && x[L::present] == 0.0)
      simic::detail::throw_invalid(where, "rank " + std::to_string(r) + "'s row", "all zeros (no row carried)",
                                   "every rank carries its row in the same all-reduce (agreement::carry)");
    const bool heads_ok = x[L::heads] == static_cast<double>(local.entropy.size());
    const bool user_ok = x[L::heads + 1 + cap.heads] == static_cast<double>(local.user.size());
    if (x[L::names] != names || !heads_ok || !user_ok)
      simic::detail::throw_invalid(where, "rank " + std::to_string(r) + "'s entropy heads or user figures",
                                   "other names or counts than this rank's",
                                   "every rank names the same heads and figures in the same order");
  }

  job_signals out;
  out.ranks_ = ranks;
  out.heads_.assign(local.entropy.begin(), local.entropy.end());
  out.user_.assign(local.user.begin(), local.user.end());
  signals& s = out.s_;
  auto has = [&](std::size_t r, unsigned bit) { return (static_cast<std::uint32_t>(row(r)[L::present]) >> bit) & 1u; };
  auto rank_of = [](std::size_t r) { return static_cast<std::int64_t>(r); };
  // Each rank's structured figures, read back through their descriptors.
  auto gradients_of = [&](std::size_t r) {
    gradient_signal g;
    for (std::size_t i = 0; i < std::size(gradient_members); ++i) gradient_members[i].set(g, row(r)[L::gradients + i]);
    return g;
  };
  auto lstm_of = [&](std::size_t r) {
    lstm_signal l;
    for (std::size_t i = 0; i < std::size(lstm_members); ++i) lstm_members[i].set(l, row(r)[L::lstm + i]);
    return l;
  };
  auto lstm_finite = [](const lstm_signal& l) {
    return !l.has_nan && !l.has_inf && std::isfinite(l.h_norm) && std::isfinite(l.c_norm);
  };
  // Which ranks hold non-finite figures, per field.
  for (std::size_t r = 0; r < ranks; ++r) {
    const auto x = row(r);
    for (std::size_t i = 0; i < std::size(scalar_signals); ++i)
      if (has(r, scalar_signals[i].field) && !std::isfinite(x[L::scalars + i]))
        out.nonfinite_[scalar_signals[i].field].push_back(rank_of(r));
    if (has(r, signal_set::gradients) && !gradients_of(r).finite())
      out.nonfinite_[signal_set::gradients].push_back(rank_of(r));
    if (has(r, signal_set::lstm) && !lstm_finite(lstm_of(r))) out.nonfinite_[signal_set::lstm].push_back(rank_of(r));
    for (std::size_t i = 0; i < local.entropy.size(); ++i)
      if (has(r, signal_set::entropy) && !std::isfinite(x[L::heads + 1 + i])) {
        out.nonfinite_[signal_set::entropy].push_back(rank_of(r));
        break;
      }
  }

  // The scalar signals: each by its rank_merge, its origin the extreme ranks.
  for (std::size_t i = 0; i < std::size(scalar_signals); ++i) {
    const scalar_signal& f = scalar_signals[i];
    const bool high = f.merge == rank_merge::max || f.merge == rank_merge::mean_high_worst;
    const bool mean = f.merge == rank_merge::mean_high_worst || f.merge == rank_merge::mean_low_worst;
    double sum = 0.0;
    std::size_t count = 0;
    std::optional<double> worst;  // the highest or lowest value
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, f.field)) continue;
      const double v = row(r)[L::scalars + i];
      ++count;
      sum += v;
      worst = !worst ? v : high ? detail::worst_max(*worst, v) : detail::worst_min(*worst, v);
    }
    if (count == 0) continue;
    s.*f.member = mean ? sum / static_cast<double>(count) : *worst;
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, f.field)) continue;
      const double v = row(r)[L::scalars + i];
      if (v == *worst || (std::isnan(v) && std::isnan(*worst))) out.origin_[f.field].push_back(rank_of(r));
    }
  }

  // progress: the furthest rank's (all ranks follow one schedule).
  for (std::size_t r = 0; r < ranks; ++r) {
    if (!has(r, detail::progress_bit)) continue;
    const auto ep = static_cast<std::uint64_t>(row(r)[L::progress]);
    const auto total = static_cast<std::uint64_t>(row(r)[L::progress + 1]);
    if (!s.progress || ep > s.progress->episode()) s.progress = training_progress(ep, total);
  }

  // gradients: the worst of each field by its rank_merge; the origin ranks
  // are those with the largest total norm (a NaN norm is the largest), or
  // those with non-finite figures when the job's are.
  std::optional<gradient_signal> g;
  for (std::size_t r = 0; r < ranks; ++r) {
    if (!has(r, signal_set::gradients)) continue;
    const gradient_signal o = gradients_of(r);
    if (!g) {
      g = o;
      continue;
    }
    for (const auto& m : gradient_members) {
      const double a = m.get(*g), b = m.get(o);
      m.set(*g, m.merge == rank_merge::min ? detail::worst_min(a, b) : detail::worst_max(a, b));
    }
  }
  if (g) {
    s.gradients = g;
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, signal_set::gradients)) continue;
      const gradient_signal o = gradients_of(r);
      if (g->finite() ? o.total_norm == g->total_norm : !o.finite())
        out.origin_[signal_set::gradients].push_back(rank_of(r));
    }
  }

  // lstm: the least healthy rank's whole signal.
  std::optional<std::size_t> lstm_rank;
  auto lstm_badness = [&](std::size_t r) {
    const lstm_signal l = lstm_of(r);
    if (!lstm_finite(l)) return std::numeric_limits<double>::infinity();
    const double per = l.elements > 0 ? 1.0 / std::sqrt(static_cast<double>(l.elements)) : 1.0;
    return std::max(l.h_norm, l.c_norm) * per;
  };
  for (std::size_t r = 0; r < ranks; ++r)
    if (has(r, signal_set::lstm) && (!lstm_rank || lstm_badness(r) > lstm_badness(*lstm_rank))) lstm_rank = r;
  if (lstm_rank) {
    s.lstm = lstm_of(*lstm_rank);
    out.origin_[signal_set::lstm].push_back(rank_of(*lstm_rank));
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
    out.heads_[i].normalized = mean_at(signal_set::entropy, L::heads + 1 + i);
  if (!out.heads_.empty()) {
    std::vector<double> per_rank(ranks, std::numeric_limits<double>::infinity());
    for (std::size_t r = 0; r < ranks; ++r) {
      if (!has(r, signal_set::entropy)) continue;
      double sum = 0.0;
      for (std::size_t i = 0; i < out.heads_.size(); ++i) sum += row(r)[L::heads + 1 + i];
      per_rank[r] = sum / static_cast<double>(out.heads_.size());
    }
    const double low = *std::min_element(per_rank.begin(), per_rank.end(), detail::worst_min_less);
    for (std::size_t r = 0; r < ranks; ++r)
      if (has(r, signal_set::entropy) && (per_rank[r] == low || (std::isnan(low) && std::isnan(per_rank[r]))))
        out.origin_[signal_set::entropy].push_back(rank_of(r));
  }
  const std::size_t user_at = L::heads + 1 + cap.heads;
  for (std::size_t i = 0; i < out.user_.size(); ++i) out.user_[i].value = mean_at(signal_set::user, user_at + 1 + i);
  if (!out.user_.empty())
    for (std::size_t r = 0; r < ranks; ++r)
      if (has(r, signal_set::user)) out.origin_[signal_set::user].push_back(rank_of(r));
  s.entropy = out.heads_;
  s.user = out.user_;
  return out;
}

}  // namespace distributed
}  // namespace v0
}  // namespace simic
