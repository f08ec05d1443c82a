// simic::recovery: from alarm to guard. It wraps a session's step() for a
// trainer that hands it its model and optimizer, and
//
//   - keeps the last K good states in memory (recovery/training_state.hpp:
//     parameters, buffers, optimizer state, each group's learning rate, the
//     RNG, the monitor's and the sensors' state), taken every N healthy
//     checks, and optionally in the last K files of a directory
//     (recovery/snapshot_files.hpp);
//   - rolls back on what a skipped step cannot undo: non-finite weights, S
//     skips in a row, or a sustained divergence (loss_divergence,
//     learning_stall: recovery_options::rollback_on). It restores the newest
//     snapshot taken at least M checks before the trouble began, multiplies
//     every group's learning rate by a factor, and tells the trainer which
//     data window [first, last) to skip; after R rollbacks it stops;
//   - optionally replays the failing batch once from the snapshot to tell a
//     reproducible fault (the data, the model) from a transient one.
//
// A step's update is kept out of the weights by the monitor's response
// (core/response.hpp: any critical anomaly skips). docs/recovery.md has the
// contract, the defaults and how they were measured.
//
// With a deferred check (session_options::check) each verdict is the
// previous step's, judged after its update was taken: a snapshot taken at a
// healthy verdict holds weights that the next check judges, and is kept
// only when that check is healthy too; a rollback drops the session's
// pending step (taken on the weights it replaces). flush() judges the last
// step. A simic::update_guard must be reset() after a rollback.
//
//   simic::recovery guard(tel, *model, optimizer);
//   const auto& r = guard.step(batches_drawn, signals, simic::step_loss{loss});
//   if (r.resp.act == simic::action::proceed) optimizer.step(); else optimizer.zero_grad();
//   if (r.rollback) lr_schedule_scale = guard.lr_scale();  // the data window r.rollback->window is skipped
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "simic/core/detail/format.hpp"
#include "simic/core/error.hpp"
#include "simic/recovery/snapshot_files.hpp"
#include "simic/recovery/training_state.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/memory.hpp"
#include "simic/session.hpp"
#include "simic/session_state.hpp"

namespace simic {
inline namespace v0 {

namespace defaults {
// docs/recovery.md, "Defaults": chosen on the recovery matrix (bench/recovery).
inline constexpr std::uint32_t snapshot_every = 100;        // N: healthy checks between snapshots
inline constexpr std::uint32_t snapshots_kept = 2;          // K: in memory (and files, when on disk)
inline constexpr std::uint32_t rollback_margin = 0;         // M: checks between the snapshot and the onset
inline constexpr std::uint32_t skips_before_rollback = 3;   // S
inline constexpr double rollback_lr_factor = 0.5;
inline constexpr std::uint32_t max_rollbacks = 3;           // R
}  // namespace defaults

struct recovery_options {
  std::uint32_t snapshot_every = defaults::snapshot_every;
  std::uint32_t keep = defaults::snapshots_kept;
  std::uint32_t margin = defaults::rollback_margin;
  std::uint32_t skips_before_rollback = defaults::skips_before_rollback;
  double lr_factor = defaults::rollback_lr_factor;  // (0, 1]
  std::uint32_t max_rollbacks = defaults::max_rollbacks;
  // Kinds that mean the run is diverging, whatever their severity.
  std::vector<anomaly_kind> rollback_on{anomaly_kind::loss_divergence, anomaly_kind::learning_stall};
  // Also write each snapshot to this directory, keeping the last `keep` files.
  std::optional<std::filesystem::path> directory{};
  // Attribution (optional): after a rollback, run the failing batch once more
  // (forward and backward, no optimizer step) on the restored weights and
  // return the step's signals (the loss; the gradients are read here).
  std::function<signals()> replay{};
};

// Why a rollback happened.
// restart: restore_from_files() after the process ended.
enum class rollback_cause : unsigned char { consecutive_skips, nonfinite_weights, divergence, restart };
constexpr std::string_view to_string(rollback_cause c) noexcept {
  constexpr std::string_view names[] = {"consecutive_skips", "nonfinite_weights", "divergence", "restart"};
  return static_cast<unsigned>(c) < 4 ? names[static_cast<unsigned>(c)] : "invalid";
}

// Whether the replayed batch failed again. replay_failed: the replay
// callback threw (rollback_report::replay_error says what); the rollback is
// completed all the same.
enum class attribution : unsigned char { not_replayed, reproducible, transient, replay_failed };
constexpr std::string_view to_string(attribution a) noexcept {
  constexpr std::string_view names[] = {"not replayed", "reproducible", "transient", "replay failed"};
  return static_cast<unsigned>(a) < 4 ? names[static_cast<unsigned>(a)] : "invalid";
}

// What a rollback restored and what the trainer does next.
struct rollback_report {
  rollback_cause cause = rollback_cause::consecutive_skips;
  std::string reason;                  // the cause in words, with its figures
  std::uint64_t onset_update = 0;      // the session's update at which the trouble began
  std::uint64_t restored_update = 0;   // the update the restored snapshot was taken at
  std::uint64_t window_first = 0;      // skip the data in [window_first, window_last): the trainer's
  std::uint64_t window_last = 0;       //   data positions at the snapshot and now
  bool margin_met = true;              // the snapshot is at least `margin` checks before the onset
  double lr_factor = 1.0;
  double lr_scale = 1.0;               // the product of every rollback's factor
  std::uint64_t rollbacks = 0;         // this one included
  simic::attribution attribution = attribution::not_replayed;
  std::string replay_error;            // attribution::replay_failed: the callback's exception, shortened
};

// The check's result as the trainer obeys it: the session's, with a
// rollback (then the action is skip_step: the restored weights take no
// step from these gradients) or a stop after the last allowed rollback.
struct recovery_result : step_result {
  std::optional<rollback_report> rollback;
};

struct rollback_event {
  static constexpr std::string_view name = "rollback";
  rollback_report r{};
  std::string snapshot_file{};  // when restored from a file
  std::string skipped_files{};  // newer files that failed verification
  void describe(field_writer& w) const {
    constexpr std::string_view g = "recovery";
    w.text("reason", r.reason);
    w.text("cause", to_string(r.cause));
    w.count("onset_update", r.onset_update);
    w.count("restored_update", r.restored_update);
    w.count("window_first", r.window_first);
    w.count("window_last", r.window_last);
    w.flag("margin_met", r.margin_met);
    w.real("lr_factor", r.lr_factor);
    w.real("lr_scale", r.lr_scale, g);
    w.count("rollbacks", r.rollbacks, g);
    w.text("attribution", to_string(r.attribution));
    if (!r.replay_error.empty()) w.text("replay_error", r.replay_error);
    if (!snapshot_file.empty()) w.text("snapshot_file", snapshot_file);
    if (!skipped_files.empty()) w.text("skipped_files", skipped_files);
  }
};

struct snapshot_event {
  static constexpr std::string_view name = "snapshot";
  std::uint64_t data_position = 0;
  std::uint64_t bytes = 0;       // this snapshot
  std::uint64_t held = 0;        // snapshots in memory
  std::uint64_t held_bytes = 0;  // their bytes
  std::string file{};            // written to, when on disk
  std::uint64_t file_failures = 0;
  void describe(field_writer& w) const {
    constexpr std::string_view g = "recovery";
    w.count("data_position", data_position);
    w.count("bytes", bytes);
    w.count("held", held);
    w.count("held_bytes", held_bytes, g);
    if (!file.empty()) w.text("file", file);
    w.count("file_failures", file_failures);
  }
};

template <class Session>
class recovery {
 public:
  recovery(Session& s, torch::nn::Module& model, torch::optim::Optimizer& optimizer, recovery_options o = {},
           std::uint64_t data_position = 0)
      : session_(s), model_(model), optimizer_(optimizer), opts_(check(std::move(o), s)), position_(data_position) {
    if (opts_.directory) files_.emplace(snapshot_file_options{.directory = *opts_.directory, .keep = opts_.keep});
    session_.for_each_sensor([this](auto& x) {
      if constexpr (std::is_same_v<std::decay_t<decltype(x)>, memory_sensor>)
        x.count_held("snapshot_bytes", [this] { return held_bytes(); });
    });
  }
  recovery(const recovery&) = delete;
  recovery& operator=(const recovery&) = delete;
  ~recovery() {
    session_.for_each_sensor([](auto& x) {
      if constexpr (std::is_same_v<std::decay_t<decltype(x)>, memory_sensor>) x.count_held("snapshot_bytes", {});
    });
  }

  // The session's step(s, inputs...), guarded. `data_position`: where the
  // trainer's data stream is after this step's batch (batches or samples
  // drawn: any count that only grows), what a restart would go on from.
  template <class... Inputs>
  const recovery_result& step(std::uint64_t data_position, const signals& s, const Inputs&... inputs) {
    detail::require(data_position >= position_, "simic::recovery::step", "data_position", data_position,
                    ">= the previous step's (" + std::to_string(position_) + ")");
    const step_result& r = session_.step(s, inputs...);  // bad input throws here: nothing changed
    on_verdict(r, data_position);
    position_ = data_position;
    return result_;
  }
  // A deferred check: the last step's verdict (session.flush()), guarded as
  // step() guards it. Nothing judged when no step is pending.
  const recovery_result& flush() {
    on_verdict(session_.flush(), position_);
    return result_;
  }

  // The product of every rollback's learning-rate factor: a trainer that
  // sets the learning rate from a schedule each step multiplies by it.
  double lr_scale() const noexcept { return lr_scale_; }
  std::uint64_t rollbacks() const noexcept { return rollbacks_; }
  std::size_t snapshots() const noexcept { return held_.size(); }
  std::uint64_t held_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const kept& k : held_) n += k.snapshot.size_bytes();
    return n;
  }
  std::uint64_t file_failures() const noexcept { return files_ ? files_->failures() : 0; }
  // Wall time spent taking snapshots (serializing, and writing files): their cost.
  double snapshot_seconds() const noexcept { return snapshot_seconds_; }
  const std::optional<rollback_report>& last_rollback() const noexcept { return last_; }
  const recovery_options& options() const noexcept { return opts_; }

  // After a restart (the process ended; no checkpoint of the whole run):
  // restores the newest snapshot file that reads back valid, everything in
  // it (the session's counters too), passing over damaged newer files, which
  // the rollback event (cause restart) names. Throws archive_error, restoring
  // nothing, when the newest valid file does not fit the model or optimizer;
  // nullopt, nothing changed, when no file is valid or none is kept.
  std::optional<rollback_report> restore_from_files() {
    if (!files_) return std::nullopt;
    auto found = files_->newest_valid();
    if (!found) return std::nullopt;
    restore_training_state(found->snapshot, model_, optimizer_, session_extra(session_parts::all));
    std::string skipped;
    for (const auto& [file, why] : found->skipped)
      skipped += (skipped.empty() ? "" : "; ") + file.string() + ": " + why;
    rollback_report rep;
    rep.cause = rollback_cause::restart;
    rep.reason = "restored from " + found->file.string();
    rep.onset_update = rep.restored_update = found->snapshot.update;
    rep.window_first = rep.window_last = found->snapshot.data_position;
    rep.lr_factor = 1.0;
    rep.lr_scale = lr_scale_;
    rep.rollbacks = rollbacks_;
    position_ = found->snapshot.data_position;
    candidate_.reset();
    held_.clear();
    held_.push_back(kept{std::move(found->snapshot), checks_, lr_scale_});
    onset_.reset();
    healthy_run_ = 0;
    last_ = rep;
    session_.emit(rollback_event{.r = rep, .snapshot_file = found->file.string(), .skipped_files = skipped});
    return rep;
  }

  // The recovery's own state, for a resumed run: its counters, the learning
  // rate scale and the snapshots in memory (saved beside the model, the
  // optimizer and save_session()).
  void save(torch::serialize::OutputArchive& ar, const std::string& prefix = "simic.recovery") const {
    counters c = state();
    save_state(ar, c, prefix);
    for (std::size_t i = 0; i < held_.size(); ++i) {
      const std::string& b = held_[i].snapshot.bytes;
      at::Tensor t = at::empty({static_cast<std::int64_t>(b.size())}, at::kByte);
      std::memcpy(t.data_ptr<std::uint8_t>(), b.data(), b.size());
      ar.write(prefix + ".snapshot." + std::to_string(i), t);
    }
  }
  // Reads and checks everything without changing anything (archive_error);
  // returns what applies it.
  std::function<void()> stage(torch::serialize::InputArchive& ar, const std::string& prefix = "simic.recovery") {
    counters c;
    load_state(ar, c, prefix);
    if (!(c.lr_scale > 0.0 && c.lr_scale <= 1.0) || c.held != c.held_checks.size() || c.held > opts_.keep ||
        c.held_checks.size() != c.held_scales.size() || c.has_onset > 1)
      throw archive_error("simic::recovery::stage: '" + prefix + "' holds inconsistent counters (lr_scale " +
                          std::to_string(c.lr_scale) + ", " + std::to_string(c.held) + " snapshots, keep " +
                          std::to_string(opts_.keep) + ")");
    std::deque<kept> held;
    for (std::uint64_t i = 0; i < c.held; ++i) {
      const std::string key = prefix + ".snapshot." + std::to_string(i);
      at::Tensor t;
      if (!ar.try_read(key, t) || !t.defined() || t.scalar_type() != at::kByte || t.dim() != 1 ||
          t.storage().nbytes() < static_cast<std::size_t>(t.numel()))
        throw archive_error("simic::recovery::stage: archive lacks '" + key + "' (a uint8 vector)");
      const at::Tensor b = t.contiguous();
      held.push_back(kept{read_snapshot_bytes(std::string(reinterpret_cast<const char*>(b.data_ptr<std::uint8_t>()),
                                                          static_cast<std::size_t>(b.numel()))),
                          static_cast<std::uint64_t>(c.held_checks[i]), c.held_scales[i]});
    }
    return [this, c, held = std::move(held)]() mutable {
      held_ = std::move(held);
      candidate_.reset();
      checks_ = c.checks;
      healthy_run_ = c.healthy_run;
      rollbacks_ = c.rollbacks;
      lr_scale_ = c.lr_scale;
      position_ = c.position;
      onset_.reset();
      if (c.has_onset) onset_ = trouble{c.onset_check, c.onset_update};
    };
  }
  void load(torch::serialize::InputArchive& ar, const std::string& prefix = "simic.recovery") { stage(ar, prefix)(); }

 private:
  struct counters {
    std::uint64_t checks = 0, healthy_run = 0, rollbacks = 0, position = 0, has_onset = 0, onset_check = 0,
                  onset_update = 0, held = 0;
    double lr_scale = 1.0;
    std::vector<double> held_checks, held_scales;  // per snapshot in memory, oldest first
    template <class V>
    void visit(V&& v) {
      v("checks", checks);
      v("healthy_run", healthy_run);
      v("rollbacks", rollbacks);
      v("position", position);
      v("has_onset", has_onset);
      v("onset_check", onset_check);
      v("onset_update", onset_update);
      v("held", held);
      v("lr_scale", lr_scale);
      v("held_checks", held_checks);
      v("held_scales", held_scales);
    }
  };
  counters state() const {
    counters c{.checks = checks_, .healthy_run = healthy_run_, .rollbacks = rollbacks_, .position = position_,
               .has_onset = onset_.has_value(), .onset_check = onset_ ? onset_->check : 0,
               .onset_update = onset_ ? onset_->update : 0, .held = held_.size(), .lr_scale = lr_scale_,
               .held_checks = {}, .held_scales = {}};
    for (const kept& k : held_) {
      c.held_checks.push_back(static_cast<double>(k.check));  // exact below 2^53 checks
      c.held_scales.push_back(k.lr_scale);
    }
    return c;
  }

  struct trouble {
    std::uint64_t check = 0;
    std::uint64_t update = 0;
  };
  struct kept {
    training_snapshot snapshot;
    std::uint64_t check = 0;  // recovery's check count when taken
    double lr_scale = 1.0;    // lr_scale() when taken: the snapshot's rates already hold it
  };

  static recovery_options check(recovery_options o, const Session& s) {
    const char* who = "simic::recovery_options";
    detail::require(o.snapshot_every >= 1, who, "snapshot_every", o.snapshot_every, ">= 1");
    detail::require(o.keep >= 1, who, "keep", o.keep, ">= 1");
    detail::require(o.skips_before_rollback >= 1, who, "skips_before_rollback", o.skips_before_rollback, ">= 1");
    detail::require(std::isfinite(o.lr_factor) && o.lr_factor > 0.0 && o.lr_factor <= 1.0, who, "lr_factor",
                    o.lr_factor, "(0, 1]");
    detail::require(o.max_rollbacks >= 1, who, "max_rollbacks", o.max_rollbacks, ">= 1");
    if constexpr (requires { s.monitor().response_rules().max_consecutive(); }) {
      const std::uint32_t stop = s.monitor().response_rules().max_consecutive();
      detail::require(o.skips_before_rollback < stop, who, "skips_before_rollback", o.skips_before_rollback,
                      "< the response policy's max_consecutive (" + std::to_string(stop) +
                          "), so that a rollback comes before the stop");
    }
    if (o.directory) detail::require(!o.directory->empty(), who, "directory", "empty", "a directory path");
    return o;
  }

  // One verdict: counts, snapshot, rollback.
  void on_verdict(const step_result& r, std::uint64_t data_position) {
    static_cast<step_result&>(result_) = r;
    result_.rollback.reset();
    if (!r.judged) return;  // a deferred check's first step: nothing judged yet
    ++checks_;
    // Healthy: nothing reported and no condition still holding.
    const bool healthy = r.report.empty() && r.report.holds().empty() && r.resp.act == action::proceed;
    if (healthy) {
      ++healthy_run_;
      if (healthy_run_ >= opts_.snapshot_every) onset_.reset();
    } else {
      if (!onset_) onset_ = trouble{checks_, r.judged->update};
      healthy_run_ = 0;
    }
    // Deferred: the snapshot taken at the previous verdict holds the weights this check judged.
    if (candidate_) {
      if (healthy) keep(std::move(*candidate_));
      candidate_.reset();
    }
    if (const auto cause = rollback_needed(r, session_.last_signals())) {
      roll_back(cause->first, cause->second, data_position);
    } else if (healthy && snapshot_due()) {
      take_snapshot();
    }
  }

  // Deferred: a snapshot taken now is kept at the next check, which it is
  // counted at (the check that judged its weights).
  bool snapshot_due() const noexcept {
    const std::uint64_t at = checks_ + (session_.pending() ? 1 : 0);
    return held_.empty() || (healthy_run_ >= opts_.snapshot_every && at - held_.back().check >= opts_.snapshot_every);
  }

  // The state before this step's update: the weights the check judged
  // healthy (sync). Deferred: the weights after the judged step's update,
  // which the next check judges; kept only if it is healthy (keep()).
  void take_snapshot() {
    const auto t0 = std::chrono::steady_clock::now();
    kept k{capture_training_state(model_, optimizer_, session_.update(), position_, session_extra(session_parts::all)),
           checks_, lr_scale_};
    snapshot_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (session_.pending())
      candidate_ = std::move(k);
    else
      keep(std::move(k));
  }
  void keep(kept k) {
    const auto t0 = std::chrono::steady_clock::now();
    k.check = checks_;  // deferred: the check that judged its weights
    std::string file;
    if (files_ && files_->write(k.snapshot) && !files_->files().empty()) file = files_->files().back().string();
    const std::uint64_t data_position = k.snapshot.data_position;
    held_.push_back(std::move(k));
    while (held_.size() > opts_.keep) held_.pop_front();
    snapshot_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    session_.emit(snapshot_event{.data_position = data_position,
                                 .bytes = held_.back().snapshot.size_bytes(),
                                 .held = held_.size(),
                                 .held_bytes = held_bytes(),
                                 .file = file,
                                 .file_failures = file_failures()});
  }

  extra_state session_extra(session_parts parts) {
    return {.save = [this](torch::serialize::OutputArchive& ar) { detail::save_session_state(ar, session_, "simic.session"); },
            .stage = [this, parts](torch::serialize::InputArchive& ar) { return stage_session(ar, session_, parts); }};
  }

  // The first of: non-finite weights, S skips in a row, a divergence kind.
  std::optional<std::pair<rollback_cause, std::string>> rollback_needed(const check_result& r, const signals& s) {
    const bool suspect = r.report.has(anomaly_kind::numerical_instability) || (s.loss && !std::isfinite(*s.loss));
    if (suspect) {
      if (auto bad = nonfinite_parameter()) return std::pair{rollback_cause::nonfinite_weights, *bad};
    }
    const std::uint64_t skips = session_.monitor().responses().consecutive_skips;
    if (skips >= opts_.skips_before_rollback)
      return std::pair{rollback_cause::consecutive_skips,
                       detail::format("%llu consecutive updates skipped (rollback at %u); last: %s",
                                      static_cast<unsigned long long>(skips), opts_.skips_before_rollback,
                                      r.resp.reason.c_str())};
    for (const anomaly& a : r.report)
      if (std::find(opts_.rollback_on.begin(), opts_.rollback_on.end(), a.kind) != opts_.rollback_on.end()) {
        const std::string_view k = to_string(a.kind);
        return std::pair{rollback_cause::divergence,
                         detail::format("%.*s (%s)", static_cast<int>(k.size()), k.data(), a.detail.c_str())};
      }
    return std::nullopt;
  }

  std::optional<std::string> nonfinite_parameter() {
    at::NoGradGuard no_grad;
    for (const auto& p : model_.named_parameters(/*recurse=*/true))
      if (!at::isfinite(p.value()).all().template item<bool>())
        return "non-finite weights (parameter '" + p.key() + "')";
    return std::nullopt;
  }

  void roll_back(rollback_cause cause, const std::string& why, std::uint64_t data_position) {
    if (rollbacks_ >= opts_.max_rollbacks || held_.empty()) {
      if (held_.empty() && cause != rollback_cause::nonfinite_weights) return;  // the session's response stands
      stop(detail::format("stopping: %s; %s", held_.empty() ? "no snapshot to restore" :
                              detail::format("%llu rollbacks (limit %u)", static_cast<unsigned long long>(rollbacks_),
                                             opts_.max_rollbacks).c_str(), why.c_str()));
      return;
    }
    const trouble at = onset_.value_or(trouble{checks_, session_.update()});
    // The newest snapshot at least `margin` checks before the onset; else the oldest.
    auto target = held_.end();
    for (auto it = held_.begin(); it != held_.end(); ++it)
      if (it->check + opts_.margin <= at.check) target = it;
    const bool margin_met = target != held_.end();
    if (!margin_met) target = held_.begin();
    restore_training_state(target->snapshot, model_, optimizer_, session_extra(session_parts::judgement));
    if (session_.pending()) session_.discard_pending();  // deferred: this call's step was taken on the weights replaced
    candidate_.reset();
    rollback_report rep;
    rep.attribution = attribute(*target, rep.replay_error);
    ++rollbacks_;
    lr_scale_ *= opts_.lr_factor;
    std::vector<double> rates = group_learning_rates(optimizer_);
    for (double& lr : rates) lr *= lr_scale_ / target->lr_scale;
    set_group_learning_rates(optimizer_, rates);
    rep.cause = cause;
    rep.reason = why;
    rep.onset_update = at.update;
    rep.restored_update = target->snapshot.update;
    rep.window_first = target->snapshot.data_position;
    rep.window_last = data_position;
    rep.margin_met = margin_met;
    rep.lr_factor = opts_.lr_factor;
    rep.lr_scale = lr_scale_;
    rep.rollbacks = rollbacks_;
    // Taken after it: perhaps already on the way down; their files too, so
    // that a restart never prefers them.
    for (auto it = std::next(target); it != held_.end(); ++it)
      if (files_) {
        std::error_code ignored;
        std::filesystem::remove(files_->path_of(it->snapshot.update), ignored);
      }
    held_.erase(std::next(target), held_.end());
    onset_.reset();
    healthy_run_ = 0;
    result_.resp.act = action::skip_step;
    result_.resp.reason = detail::format("rolling back to update %llu: %s",
                                         static_cast<unsigned long long>(rep.restored_update), why.c_str());
    result_.rollback = rep;
    last_ = rep;
    session_.emit(rollback_event{.r = rep});
  }

  // Replays the failing batch on the restored weights and judges it with a
  // copy of the restored monitor; then restores again (the replay's
  // gradients and random draws are not kept). A replay that throws is
  // reported, not propagated: the restore must not be left half done.
  attribution attribute(const kept& k, std::string& error) {
    if (!opts_.replay) return attribution::not_replayed;
    attribution a = attribution::replay_failed;
    try {
      signals s = opts_.replay();
      auto judge = session_.monitor();
      if (!s.gradients) {
        gradient_health_sensor<> g;
        std::vector<at::Tensor> params = model_.parameters();
        s.gradients = g.measure(std::span<const at::Tensor>(params)).signal();
      }
      const check_result& r = judge.check(s);
      const bool failed = !r.report.empty() && (r.report.has(severity::critical) ||
                                                r.resp.act != action::proceed || (s.loss && !std::isfinite(*s.loss)));
      a = failed ? attribution::reproducible : attribution::transient;
    } catch (const std::exception& e) {
      // Its first line, at most 200 bytes: LibTorch's errors append a stack.
      const std::string_view w = e.what();
      error = std::string(w.substr(0, std::min({w.find('\n'), w.size(), max_replay_error})));
      if (error.empty()) error = "an exception without a message";
    } catch (...) {
      error = "a non-standard exception";
    }
    restore_training_state(k.snapshot, model_, optimizer_, session_extra(session_parts::judgement));
    return a;
  }
  static constexpr std::size_t max_replay_error = 200;  // bytes of the exception's message kept

  void stop(std::string reason) {
    result_.resp.act = action::stop;
    result_.resp.reason = std::move(reason);
    const response_state& rs = session_.monitor().responses();
    session_.emit(response_event{.act = action::stop,
                                 .reason = result_.resp.reason,
                                 .consecutive_skips = rs.consecutive_skips,
                                 .total_skips = rs.total_skips});
  }

  Session& session_;
  torch::nn::Module& model_;
  torch::optim::Optimizer& optimizer_;
  recovery_options opts_;
  std::optional<snapshot_files> files_;
  std::deque<kept> held_;
  std::optional<kept> candidate_;  // deferred: taken, waiting for the check of its weights
  recovery_result result_;
  std::optional<rollback_report> last_;
  std::optional<trouble> onset_;
  std::uint64_t position_ = 0;
  std::uint64_t checks_ = 0;
  std::uint64_t healthy_run_ = 0;
  std::uint64_t rollbacks_ = 0;
  double lr_scale_ = 1.0;
  double snapshot_seconds_ = 0.0;
};

}  // namespace v0
}  // namespace simic
