// PPO (clipped surrogate, GAE, value loss, entropy bonus, gradient clipping
// at 1.0) with an LSTM policy trained by truncated BPTT over sequences of the
// rollout. An update is rollout() -> optimize() -> end_epoch() at an epoch's
// end; telemetry call sites (simic::session, telemetry.hpp) are marked
// "telemetry:", fault injection (faults.hpp) "fault", recovery and resume
// (--recover, --checkpoint-every, --resume; docs/trainer.md) "recovery:".
#include "ppo.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <deque>
#include <map>
#include <memory>
#include <limits>
#include <numeric>
#include <optional>
#include <span>

#include "cartpole.hpp"
#include "evaluate.hpp"
#include "gae.hpp"
#include "model.hpp"
#include "faults.hpp"
#include "../common/checkpoint.hpp"
#include "../common/recovery_guard.hpp"
#include "../common/summary.hpp"
#include "../common/text.hpp"
#include "simic/core/signal_guard.hpp"
#include "simic/emit/sink_callback.hpp"
#include "simic/profile/phase_timer.hpp"
#include "simic/profile/profiler.hpp"
#include "simic/recovery.hpp"
#include "simic/session_state.hpp"
#include "data_parallel.hpp"
#include "telemetry.hpp"

namespace ppo_lstm {
namespace {

using examples_common::first_line;
using examples_common::format;

constexpr double gamma_ = 0.99;
constexpr double gae_lambda = 0.95;
constexpr double clip_eps = 0.2;
constexpr double value_coef = 0.5;
constexpr double entropy_coef = 0.01;
constexpr double max_grad_norm = 1.0;
constexpr double reward_scale = 0.1;  // value targets stay O(10) on returns up to 500
constexpr std::size_t return_window = 20;
constexpr const char* head_name = "push";

double explained_variance(const torch::Tensor& pred, const torch::Tensor& target) {
  const double var_t = target.to(torch::kDouble).var(false).item<double>();
  if (!(var_t > 0.0)) return std::numeric_limits<double>::quiet_NaN();
  return 1.0 - (target - pred).to(torch::kDouble).var(false).item<double>() / var_t;
}

bool all_finite(const std::vector<torch::Tensor>& ps) {
  for (const auto& p : ps)
    if (!torch::isfinite(p.detach()).all().item<bool>()) return false;
  return true;
}

// One rollout, arranged as sequences for truncated BPTT: [L, S] with S = C * E.
struct rollout_batch {
  torch::Tensor obs, keep, act, logp, adv, ret;  // [L, S, ...]
  torch::Tensor h0, c0;                          // [S, H]: the state at each sequence start
  std::optional<double> explained_variance;      // of the critic during the rollout
  double reward_rate = 0.0;                      // mean reward per environment step
};

// A stop was requested by SIGTERM or SIGINT (main.cpp installs the
// simic::signal_guard; in-process callers that install none never see one).
bool stop_requested() noexcept { return simic::signal_guard::requested(); }

// Thrown out of a rollout cut short by a signal: its batch is not trained on.
struct interrupted_rollout {};

template <class Monitor>
class trainer {
 public:
  trainer(const run_options& o, std::shared_ptr<simic::jsonl_sink> events,
          std::shared_ptr<simic::tensorboard_sink> tensorboard, std::unique_ptr<data_parallel> dp,
          examples_common::continuity c)
      : o_(o),
        seeded_(seed(o)),
        env_(o.envs, o.seed + static_cast<std::uint64_t>(o.parallel.rank)),  // each rank its own environments
        model_(cartpole_vec::obs_dim, cartpole_vec::actions, o.hidden),
        opt_(model_->parameters(), torch::optim::AdamOptions(o.lr).eps(1e-5)),
        params_(model_->parameters()),
        event_counts_(std::make_shared<std::map<std::string, std::uint64_t>>()),
        events_(events),
        dp_(std::move(dp)),
        tel_(make_telemetry<Monitor>(o, *model_, {examples_common::counting_sink(event_counts_)},
                                     dp_ ? dp_->agreement : nullptr)),
        profiler_(simic::profiler_options{.enabled = !o.profile_dir.empty(),
                                          .dir = o.profile_dir.empty() ? "profile" : o.profile_dir}),
        timers_(!o.profile_dir.empty()),
        h_(torch::zeros({o.envs, o.hidden})),
        c_(torch::zeros({o.envs, o.hidden})),
        keep_(torch::zeros({o.envs})),
        actions_(static_cast<std::size_t>(o.envs)) {
    sum_.events_path = o.rank_events_path();
    sum_.rank = o.parallel.rank;
    sum_.ranks = o.parallel.ranks;
    // Every rank starts from the same weights (seeded above, as DDP
    // broadcasts rank 0's); then each samples its own actions and minibatches.
    if (o.parallel.rank > 0) torch::manual_seed(o.seed + 1'000'003ull * static_cast<std::uint64_t>(o.parallel.rank));
    sum_.profile_dir = o.profile_dir;
    if (tensorboard) sum_.tensorboard_file = tensorboard->path().string();
    // recovery: the guard wraps the session's step (no replay: a PPO
    // minibatch is judged against the policy that collected it)
    sum_.recovery.on = o.recovery.recover;
    if (o.recovery.recover) guard_.emplace(*tel_, *model_, opt_, examples_common::guard_options(o.recovery, {}));
    checkpoint_path_ = std::move(c.checkpoint_path);
    definition_ = std::move(c.definition);
    events_file_ = examples_common::absolute_path(o.rank_events_path());
    sum_.checkpoints.path = checkpoint_path_;
    if (c.resume) restore(*c.resume);
    // The files last (the events file first): a checkpoint refused above
    // leaves them as they were.
    if (events) tel_->events().add_sink(std::move(events));
    if (tensorboard) tel_->events().add_sink(std::move(tensorboard));
  }

  run_summary run() {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t u = done_ + 1; u <= o_.updates && !sum_.stopped && !stop_requested(); ++u) {
      const faults f = faults::at(injections_here(), u, o_.lr_spike_factor, o_.lr_spike_steps);
      tel_->begin_update();
      update_record rec;
      rec.update = u;
      rollout_batch b;
      try {
        b = rollout(f);
      } catch (const interrupted_rollout&) {
        break;
      }
      const bool epoch_end = u % o_.epoch_updates == 0 || u == o_.updates;
      // Performance: the mean return of the episodes that ended during the
      // epoch, at its end (absent if none ended), judged at the update's
      // last check; the detector compares it with its previous epochs.
      std::optional<double> performance;
      if (epoch_end && !epoch_returns_.empty())
        performance = std::accumulate(epoch_returns_.begin(), epoch_returns_.end(), 0.0) /
                      static_cast<double>(epoch_returns_.size());
      optimize(u, f, b, performance, rec);
      if (epoch_end) epoch_returns_.clear();
      if (auto trace = profiler_.step()) tel_->emit(*trace);
      if (epoch_end && !sum_.stopped) end_epoch(u, performance);
      end_update(rec);
      done_ = u;
      // recovery: a whole-run checkpoint at the end of a whole update (not
      // of one a signal cut short)
      if (!checkpoint_path_.empty() && u % o_.recovery.checkpoint_every == 0 && !sum_.stopped && !stop_requested())
        write_checkpoint(u);
    }
    examples_common::note_interruption(sum_);
    finish();
    // The first that applies: signal, events lost, stopped by the monitor.
    examples_common::settle_exit_code(sum_);
    sum_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(sum_);
  }

 private:
  // --inject applies on --fault-rank only, if given.
  const std::vector<injection>& injections_here() const {
    static const std::vector<injection> none;
    const int fr = o_.parallel.fault_rank;
    return fr < 0 || fr == o_.parallel.rank ? o_.injections : none;
  }

  // Before the model is built: its initial weights come from the seed.
  static bool seed(const run_options& o) {
    at::set_num_threads(o.threads);
    torch::manual_seed(o.seed);
    return true;
  }

  // ---- rollout: T steps of E environments; LSTM state read at each sequence start
  rollout_batch rollout(const faults& f) {
    const int E = o_.envs, T = o_.rollout, L = o_.seq_len, H = o_.hidden, C = T / L;
    env_.set_reward(f.reward_scale());
    auto obs_buf = torch::empty({T, E, cartpole_vec::obs_dim});
    auto keep_buf = torch::empty({T, E});
    auto act_buf = torch::empty({T, E}, torch::kLong);
    auto logp_buf = torch::empty({T, E});
    auto val_buf = torch::empty({T, E});
    auto rew_buf = torch::empty({T, E});
    auto done_buf = torch::empty({T, E});
    auto h0_buf = torch::empty({C, E, H}), c0_buf = torch::empty({C, E, H});
    {
      torch::NoGradGuard ng;
      auto rollout_timer = timers_.time("rollout");
      for (int t = 0; t < T; ++t) {
        if (stop_requested()) throw interrupted_rollout{};  // a long rollout is not waited out
        if (t % L == 0) {
          h0_buf[t / L].copy_(h_);
          c0_buf[t / L].copy_(c_);
        }
        const auto obs = torch::from_blob(const_cast<float*>(env_.observations().data()),
                                          {E, cartpole_vec::obs_dim}).clone();
        obs_buf[t].copy_(obs);
        keep_buf[t].copy_(keep_);
        const auto k = keep_.unsqueeze(1);
        auto [h1, c1] = model_->cell(model_->encode(obs), h_ * k, c_ * k);
        h_ = h1;
        c_ = f.cell(c1, t);
        if (t % L == 0) tel_->feed(simic::lstm_state{h_, c_});  // telemetry: LSTM health during the rollout
        const auto out = model_->head(h_, c_);
        const auto logp_all = torch::log_softmax(f.logits(out.logits, 1), 1);
        const auto a = torch::multinomial(logp_all.exp(), 1).squeeze(1);
        act_buf[t].copy_(a);
        logp_buf[t].copy_(logp_all.gather(1, a.unsqueeze(1)).squeeze(1));
        val_buf[t].copy_(f.value(out.value));
        const auto acc = a.accessor<std::int64_t, 1>();
        for (int e = 0; e < E; ++e) actions_[e] = acc[e];
        env_.step(actions_, sr_);
        rew_buf[t].copy_(torch::from_blob(sr_.reward.data(), {E}));
        auto done = torch::empty({E});
        for (int e = 0; e < E; ++e) done[e] = static_cast<float>(sr_.done[e]);
        done_buf[t].copy_(done);
        keep_ = 1.0 - done;
        for (double r : sr_.finished_returns) {
          recent_.push_back(r);
          if (recent_.size() > return_window) recent_.pop_front();
          epoch_returns_.push_back(r);
          ++sum_.episodes;
        }
      }
      if (f.lstm_explode) {  // the fault ends with the rollout: start clean
        h_.zero_();
        c_.zero_();
      }
    }
    // Bootstrap value and GAE (gae.hpp: plain loops, T x E is small).
    torch::Tensor adv_t, ret_t;
    {
      torch::NoGradGuard ng;
      const auto obs = torch::from_blob(const_cast<float*>(env_.observations().data()), {E, cartpole_vec::obs_dim});
      const auto last = model_->step(obs, h_, c_, keep_);
      const auto next_v = last.value.contiguous();
      adv_t = torch::empty({T, E});
      const auto n = static_cast<std::size_t>(T) * E;
      auto span_of = [n](const torch::Tensor& x) { return std::span<const float>(x.data_ptr<float>(), n); };
      compute_gae(span_of(rew_buf), span_of(val_buf), span_of(done_buf),
                  std::span<const float>(next_v.data_ptr<float>(), static_cast<std::size_t>(E)), T, E,
                  gae_params{gamma_, gae_lambda, reward_scale}, std::span<float>(adv_t.data_ptr<float>(), n));
      ret_t = adv_t + val_buf;
    }
    rollout_batch b;
    const double ev = explained_variance(val_buf, ret_t);
    if (!std::isnan(ev)) b.explained_variance = ev;
    b.reward_rate = rew_buf.to(torch::kDouble).mean().item<double>();
    // telemetry: the rollout's figures go to the update's first check
    tel_->end_rollout({.reward_rate = b.reward_rate, .explained_variance = b.explained_variance});
    const int S = C * E;
    auto seq = [&](const torch::Tensor& x) -> torch::Tensor {
      auto sizes = x.sizes().vec();
      std::vector<std::int64_t> v{C, L, E};
      v.insert(v.end(), sizes.begin() + 2, sizes.end());
      auto y = x.reshape(v).transpose(0, 1);  // [L, C, E, ...]
      std::vector<std::int64_t> w{L, S};
      w.insert(w.end(), sizes.begin() + 2, sizes.end());
      return y.reshape(w);
    };
    b.obs = seq(obs_buf);
    b.keep = seq(keep_buf);
    b.act = seq(act_buf);
    b.logp = seq(logp_buf);
    b.adv = seq(adv_t);
    b.ret = seq(ret_t);
    b.h0 = h0_buf.reshape({S, H});
    b.c0 = c0_buf.reshape({S, H});
    return b;
  }

  // ---- optimisation: ppo_epochs passes of `minibatches` steps, each checked
  void optimize(std::uint64_t u, const faults& f, const rollout_batch& b, std::optional<double> performance,
                update_record& rec) {
    const int L = o_.seq_len, S = (o_.rollout / L) * o_.envs;
    const simic::training_progress progress(u, o_.schedule());
    const int steps = o_.steps_per_update();
    const int mb_size = S / o_.minibatches;
    const double log_actions = std::log(static_cast<double>(cartpole_vec::actions));
    auto optimize_timer = timers_.time("optimize");
    int step = 0;
    for (int ep = 0; ep < o_.ppo_epochs && !sum_.stopped && !rec.rollback && !stop_requested(); ++ep) {
      const auto perm = torch::randperm(S, torch::kLong);
      for (int mb = 0; mb < o_.minibatches && !sum_.stopped && !rec.rollback && !stop_requested(); ++mb, ++step) {
        const auto idx = perm.narrow(0, static_cast<std::int64_t>(mb) * mb_size, mb_size);
        const auto obs = b.obs.index_select(1, idx), kp = b.keep.index_select(1, idx);
        auto hh = b.h0.index_select(0, idx), cc = b.c0.index_select(0, idx);
        const auto enc = model_->encode(obs);
        std::vector<torch::Tensor> hs;
        hs.reserve(L);
        for (int l = 0; l < L; ++l) {
          const auto k = kp[l].unsqueeze(1);
          auto [h1, c1] = model_->cell(enc[l], hh * k, cc * k);
          hh = h1;
          cc = c1;
          hs.push_back(hh);
        }
        const auto hseq = torch::stack(hs);  // [L, B, H]
        const auto logits = f.logits(model_->actor->forward(hseq), 2);
        const auto value = model_->critic->forward(hseq).squeeze(2);
        const auto ret = b.ret.index_select(1, idx);
        const auto logp_all = torch::log_softmax(logits, 2);
        const auto act = b.act.index_select(1, idx);
        const auto logp = logp_all.gather(2, act.unsqueeze(2)).squeeze(2);
        const auto entropy = -(logp_all.exp() * logp_all).sum(2);
        const auto old_logp = b.logp.index_select(1, idx);
        const auto log_ratio = logp - old_logp;
        const auto ratio = log_ratio.exp();
        auto adv = b.adv.index_select(1, idx);
        adv = (adv - adv.mean()) / (adv.std() + 1e-8);
        const auto pg_loss = torch::max(-adv * ratio, -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)).mean();
        const auto v_loss = 0.5 * (value - ret).pow(2).mean();
        const auto ent = entropy.mean();
        const auto loss = f.loss(pg_loss + value_coef * v_loss - entropy_coef * ent, step);  // fault: loss-scale

        // recovery: x the rollbacks' scale (1 without any); fault: lr-spike, lr-ramp
        const double lr = f.learning_rate(o_.lr * lr_scale(), step);
        for (auto& g : opt_.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
        opt_.zero_grad();
        loss.backward();
        grad_faults_.apply(f, *model_, *model_->lstm, model_->lstm->weight_hh);  // fault injection

        // telemetry: this step's PPO statistics; the session reads the
        // gradients (before clipping; in a data-parallel job the averaged
        // ones), runs the check and emits the events
        simic::signals sig;
        {
          torch::NoGradGuard ng;
          sig.ratio_max = ratio.max().item<double>();
          sig.ratio_min = ratio.min().item<double>();
          sig.approx_kl = ((ratio - 1.0) - log_ratio).mean().item<double>();
          sig.loss = loss.item<double>();
        }
        const simic::head_entropy heads[] = {{head_name, ent.item<double>() / log_actions}};
        sig.entropy = heads;
        sig.progress = progress;
        if (step == steps - 1) sig.performance = performance;
        if (dp_) {
          // data-parallel: the gradients averaged over the ranks, as DDP
          // does, in one all-reduce that also carries this rank's signals
          // for the check (simic's agreement: no collective of its own)
          const simic::signals held = tel_->held_signals(sig);
          (*dp_->all_reduce)(params_, &held);
        }
        const simic::level before = tel_->level();
        const simic::update_metrics metrics{
            .policy_loss = pg_loss.item<double>(), .value_loss = v_loss.item<double>(), .learning_rate = lr};
        const simic::ratio_batch ratios{.ratio = ratio, .old_log_prob = old_logp, .new_log_prob = logp, .actions = act};
        const simic::check_result* checked = nullptr;
        if (guard_) {
          // recovery: the guarded step; data position = rollouts collected so far
          const simic::recovery_result& g = guard_->step(u, sig, metrics, simic::step_loss{loss}, ratios);
          if (g.rollback) rolled_back(u, *g.rollback, rec);
          sum_.recovery.snapshot_bytes = std::max(sum_.recovery.snapshot_bytes, guard_->held_bytes());
          checked = &g;
        } else {
          checked = &tel_->step(sig, metrics, simic::step_loss{loss}, ratios);
        }
        const simic::check_result& res = *checked;
        record(res, step, before, rec);
        if (res.resp.act == simic::action::proceed) {
          torch::nn::utils::clip_grad_norm_(params_, max_grad_norm);
          opt_.step();
          ++sum_.optimizer_steps;
        } else {
          sum_.skips.push_back({u, step, res.resp.reason});
          ++rec.skipped_steps;
          if (res.resp.act == simic::action::stop) {
            sum_.stopped = true;
            sum_.stop_reason = res.resp.reason;
            sum_.exit_code = exit_stopped;
          }
        }
      }
    }
  }

  double lr_scale() const noexcept { return guard_ ? guard_->lr_scale() : 1.0; }

  // recovery: the guard restored an earlier state (its learning rates x the
  // factor). The rest of this update is not trained (its rollout came from
  // the discarded policy), the recurrent state carried to the next rollout
  // starts again from zero (the discarded weights made it), and the rollouts
  // of the window are not replayed: the next update collects fresh experience.
  void rolled_back(std::uint64_t u, const simic::rollback_report& r, update_record& rec) {
    rec.rollback = true;
    sum_.recovery.rollbacks.push_back(examples_common::record_of(u, r));
    {
      torch::NoGradGuard ng;
      h_.zero_();
      c_.zero_();
    }
    if (o_.progress_lines) {
      std::printf("update %5llu  rollback (%s): restored update %llu, rollouts [%llu, %llu) not replayed, lr scale "
                  "%g; %s\n",
                  static_cast<unsigned long long>(u), std::string(simic::to_string(r.cause)).c_str(),
                  static_cast<unsigned long long>(r.restored_update), static_cast<unsigned long long>(r.window_first),
                  static_cast<unsigned long long>(r.window_last), r.lr_scale, r.reason.c_str());
      std::fflush(stdout);
    }
  }

  // recovery: everything the rest of the run depends on, at the end of
  // update `u`, into the checkpoint file (PATH.tmp, then renamed). A failure
  // keeps the previous file, is counted and printed; training goes on.
  void write_checkpoint(std::uint64_t u) {
    const examples_common::checkpoint_header h{.trainer = "ppo_lstm",
                                               .position = u,
                                               .events_before = tel_->events().counts().emitted,
                                               .events_file = events_file_,
                                               .definition = definition_};
    examples_common::write_run_checkpoint(sum_.checkpoints, checkpoint_path_, "update", h, u, *model_, opt_, *tel_,
                                          guard_, [&](examples_common::state_writer& w) {
                                            own o = own_now();
                                            own_state(w, o, sum_);
                                          });
  }

  // The trainer's own state in a checkpoint: the environments, the LSTM
  // state carried to the next rollout, the returns and the gradient fault's
  // ramp (`own`), and the records of the summary `s` (written from this
  // run's, read into a copy of it: restore()).
  struct own {
    std::uint64_t done = 0, drift_steps = 0;
    cartpole_vec::saved_state env;
    torch::Tensor h, c, keep;
    std::deque<double> recent;
    std::vector<double> epoch_returns;
  };
  own own_now() const {
    return {.done = done_,
            .drift_steps = grad_faults_.drift_steps(),
            .env = env_.saved(),
            .h = h_,
            .c = c_,
            .keep = keep_,
            .recent = recent_,
            .epoch_returns = epoch_returns_};
  }
  template <class V>
  static void own_state(V& v, own& o, run_summary& s) {
    v("update", o.done);
    v("drift_steps", o.drift_steps);
    v("env.rng", o.env.rng);
    v("env.state", o.env.state);
    v("env.steps", o.env.steps);
    v("env.returns", o.env.returns);
    v("env.reward", o.env.reward);
    v("lstm.h", o.h);
    v("lstm.c", o.c);
    v("lstm.keep", o.keep);
    v("recent_returns", o.recent);
    v("epoch_returns", o.epoch_returns);
    v("updates_done", s.updates_done);
    v("mean_return", s.mean_return);
    v("best_mean_return", s.best_mean_return);
    v("episodes", s.episodes);
    v("optimizer_steps", s.optimizer_steps);
    v("epochs", s.epochs);
    v.records("updates", s.updates, [](auto& f, update_record& r) {
      f("update", r.update);
      f("mean_return", r.mean_return);
      f("grad_norm", r.grad_norm);
      f("grad_health", r.grad_health);
      f("level", r.level);
      f("anomalies", r.anomalies);
      f("kinds", r.kinds);
      f("skipped_steps", r.skipped_steps);
      f("rollback", r.rollback);
    });
    v.records("anomalies", s.anomalies, [](auto& f, anomaly_record& r) {
      f("update", r.update);
      f("step", r.step);
      examples_common::anomaly_fields(f, r);
    });
    v.records("clears", s.clears, [](auto& f, clear_record& r) {
      f("update", r.update);
      f("step", r.step);
      f("kind", r.kind);
      f("duration", r.duration);
    });
    v.records("level_changes", s.level_changes, [](auto& f, level_change& r) {
      f("update", r.update);
      f("from", r.from);
      f("to", r.to);
    });
    v.records("debug", s.debug, [](auto& f, debug_record& r) {
      f("update", r.update);
      f("step", r.step);
      f("what", r.what);
      f("detail", r.detail);
    });
    v.records("skips", s.skips, [](auto& f, skip_record& r) {
      f("update", r.update);
      f("step", r.step);
      f("reason", r.reason);
    });
    v.records("rollbacks", s.recovery.rollbacks,
              [](auto& f, examples_common::rollback_record& r) { examples_common::rollback_fields(f, r); });
  }

  // recovery: --resume (a checkpoint that does not fit changes nothing; the
  // environments are checked too). The summary is read into a copy of this
  // one, so that what a checkpoint does not hold (the files, the options)
  // stays as this run set it.
  void restore(const examples_common::loaded_checkpoint& c) {
    const auto stage_own = [&](examples_common::state_reader& r) {
      struct staged {
        own o;
        run_summary sum;
      };
      auto st = std::make_shared<staged>();
      st->sum = sum_;
      own_state(r, st->o, st->sum);
      const own& o = st->o;
      const auto fits = [](const torch::Tensor& t, std::vector<std::int64_t> shape) {
        return t.scalar_type() == torch::kFloat && t.sizes() == torch::IntArrayRef(shape);
      };
      if (o.done != c.header.position || o.done > o_.updates || st->sum.updates.size() != o.done)
        throw simic::archive_error("the trainer's state is at update " + std::to_string(o.done) + " with " +
                                   std::to_string(st->sum.updates.size()) +
                                   " update records; the checkpoint says update " + std::to_string(c.header.position) +
                                   " of " + std::to_string(o_.updates));
      if (!fits(o.h, {o_.envs, o_.hidden}) || !fits(o.c, {o_.envs, o_.hidden}) || !fits(o.keep, {o_.envs}))
        throw simic::archive_error("'trainer.lstm.*' do not have the shapes of " + std::to_string(o_.envs) +
                                   " environments x " + std::to_string(o_.hidden) + " (float)");
      try {
        env_.check(o.env);
      } catch (const std::invalid_argument& e) {
        throw simic::archive_error(std::string("'trainer.env.*': ") + e.what());
      }
      return std::function<void()>([this, st] {
        own& o = st->o;
        done_ = o.done;
        grad_faults_.set_drift_steps(o.drift_steps);
        env_.restore(std::move(o.env));
        h_ = o.h;
        c_ = o.c;
        keep_ = o.keep;
        recent_ = std::move(o.recent);
        epoch_returns_ = std::move(o.epoch_returns);
        sum_ = std::move(st->sum);
      });
    };
    examples_common::restore_run(c, *model_, opt_, *tel_, guard_, stage_own, sum_.checkpoints, "update",
                                 o_.progress_lines);
  }

  // ---- epoch end: the session ticks and emits the epoch summary
  void end_epoch(std::uint64_t u, std::optional<double> performance) {
    const simic::level before = tel_->level();
    tel_->end_epoch(performance);
    if (tel_->level() != before) sum_.level_changes.push_back({u, before, tel_->level()});
    ++sum_.epochs;
  }

  // What one check said, into the run's summary (the events are the session's).
  void record(const simic::check_result& r, int step, simic::level before, update_record& rec) {
    const std::uint64_t u = tel_->update();
    if (o_.record_signals) {
      recorded_signals s;
      s.base = tel_->last_signals();
      s.heads.assign(s.base.entropy.begin(), s.base.entropy.end());
      s.base.entropy = {};
      sum_.signals.push_back(std::move(s));
    }
    for (const auto& c : r.report.clears()) sum_.clears.push_back({u, step, c.kind, c.duration});
    for (const auto& a : r.report) {
      sum_.anomalies.push_back({u, step, a.kind, a.detail, a.severity, a.value, a.threshold});
      ++rec.anomalies;
      const std::string_view k = simic::to_string(a.kind);
      if (rec.kinds.find(k) == std::string::npos) rec.kinds.append(rec.kinds.empty() ? "" : ",").append(k);
    }
    if (tel_->level() != before) sum_.level_changes.push_back({u, before, tel_->level()});
    if (const auto& layers = tel_->template sensor<simic::layer_gradient_sensor<>>().last()) {
      std::string s;
      for (const auto& l : layers->layers) s += format("%s norm %.4g; ", l.name.c_str(), l.norm);
      sum_.debug.push_back({u, step, "layer_gradients", s});
    }
    if (const auto& scan = tel_->template sensor<simic::nan_inf_scanner<>>().last()) {
      std::string s;
      for (const auto& p : scan->offenders)
        s += p.name + (p.weight_nan || p.weight_inf ? " (weights)" : "") + (p.grad_nan || p.grad_inf ? " (gradient)" : "") +
             "; ";
      sum_.debug.push_back({u, step, "nan_inf_scan", s.empty() ? "clean" : s});
    }
    if (const auto& ratio = tel_->template sensor<simic::ratio_diagnostic_sensor>().last())
      sum_.debug.push_back({u, step, "ratio_diagnostic",
                            format("%llu outliers of %llu; max |log-prob diff| %.4g",
                                   static_cast<unsigned long long>(ratio->outlier_count()),
                                   static_cast<unsigned long long>(ratio->batch_size), ratio->max_abs_logprob_diff)});
    if (const auto& g = tel_->template sensor<simic::gradient_health_sensor<>>().last()) {
      rec.grad_norm = g->total_norm;
      rec.grad_health = g->health;
    }
  }

  void end_update(update_record& rec) {
    const double mean_ret = recent_.empty() ? 0.0
                                            : std::accumulate(recent_.begin(), recent_.end(), 0.0) /
                                                  static_cast<double>(recent_.size());
    sum_.mean_return = mean_ret;
    sum_.best_mean_return = std::max(sum_.best_mean_return, mean_ret);
    rec.mean_return = mean_ret;
    rec.level = tel_->level();
    sum_.updates_done = rec.update;
    if (o_.progress_lines) {
      std::string extra;
      if (rec.anomalies) extra += " (" + rec.kinds + ")";
      if (rec.skipped_steps) extra += "  skipped steps " + std::to_string(rec.skipped_steps);
      if (rec.rollback) extra += "  rolled back (lr scale " + format("%g", lr_scale()) + ")";
      std::printf("update %5llu  return %7.1f  grad %9.4g  health %.2f  level %-7s  anomalies %zu%s\n",
                  static_cast<unsigned long long>(rec.update), mean_ret, rec.grad_norm, rec.grad_health,
                  std::string(simic::to_string(rec.level)).c_str(), rec.anomalies, extra.c_str());
      std::fflush(stdout);
    }
    sum_.updates.push_back(std::move(rec));
  }

  // Every event flushed (also after a stop), the summary's counts filled.
  void finish() {
    {
      torch::NoGradGuard ng;
      double sum = 0.0, squares = 0.0;
      for (const auto& p : params_) {
        const auto d = p.detach().to(torch::kFloat64);
        sum += d.sum().item<double>();
        squares += d.pow(2).sum().item<double>();
      }
      sum_.weights_checksum = {sum, squares};
      sum_.weights_digest = examples_common::weights_digest(params_);
    }
    if (o_.eval_episodes > 0) sum_.eval_return = greedy_return(model_, o_.eval_episodes, evaluation_seed);
    examples_common::note_guard(sum_.recovery, guard_);
    if (auto trace = profiler_.close()) tel_->emit(*trace);
    if (!o_.profile_dir.empty()) tel_->emit(timers_.take());
    examples_common::note_close(sum_, *tel_, events_, *event_counts_);
    sum_.weights_finite = all_finite(params_);
    if (dp_) {
      sum_.all_reduces = dp_->all_reduce->collectives();
      sum_.agreement_collectives = dp_->agreement->collectives();
    }
  }

  const run_options& o_;
  bool seeded_;
  run_summary sum_;
  cartpole_vec env_;
  lstm_policy model_;
  torch::optim::Adam opt_;
  std::vector<torch::Tensor> params_;
  std::shared_ptr<std::map<std::string, std::uint64_t>> event_counts_;
  std::shared_ptr<simic::jsonl_sink> events_;  // the --events file (null: none)
  std::unique_ptr<data_parallel> dp_;           // null: a single process
  std::unique_ptr<telemetry<Monitor>> tel_;
  std::optional<simic::recovery<telemetry<Monitor>>> guard_;  // --recover (after tel_: destroyed before it)
  examples_common::run_definition definition_;
  std::string checkpoint_path_;  // "" : no checkpoints
  std::string events_file_;      // the --events file, absolute (recorded in checkpoints)
  std::uint64_t done_ = 0;       // updates done (a resumed run starts after its checkpoint's)
  simic::profiler profiler_;
  simic::phase_timers timers_;
  gradient_faults grad_faults_;
  torch::Tensor h_, c_, keep_;  // recurrent state and "0: the next step starts an episode"
  std::deque<double> recent_;   // the last `return_window` episode returns
  std::vector<double> epoch_returns_;  // returns of the episodes ended in this epoch
  cartpole_vec::step_result sr_;
  std::vector<std::int64_t> actions_;
};

template <class Monitor>
run_summary run_with(const run_options& o, std::shared_ptr<simic::jsonl_sink> events,
                     std::shared_ptr<simic::tensorboard_sink> tensorboard, std::unique_ptr<data_parallel> dp,
                     examples_common::continuity c) {
  trainer<Monitor> t(o, std::move(events), std::move(tensorboard), std::move(dp), std::move(c));
  return t.run();
}

// --profile DIR must take files: checked before anything runs (a usage error).
void check_profile_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::invalid_argument("--profile: cannot create directory '" + dir + "': " + ec.message());
  const std::filesystem::path probe = std::filesystem::path(dir) / ".ppo_lstm_write_check";
  std::FILE* f = std::fopen(probe.c_str(), "w");
  if (!f) throw std::invalid_argument("--profile: cannot write in '" + dir + "': " + std::strerror(errno));
  std::fclose(f);
  std::filesystem::remove(probe, ec);
}

}  // namespace

run_summary run(const run_options& o) {
  // Everything that can be refused is refused before a file is touched.
  o.validate();
  if (o.parallel.launcher())
    throw std::invalid_argument("ppo_lstm::run: ranks = " + std::to_string(o.parallel.ranks) +
                                " needs master_port (launch_job starts the ranks)");
  run_options mine = o;
  if (o.parallel.member()) {
    mine.progress_lines = o.progress_lines && o.parallel.rank == 0;  // one rank prints progress
    if (!o.profile_dir.empty()) mine.profile_dir = o.profile_dir + "/rank" + std::to_string(o.parallel.rank);
  }
  examples_common::continuity c =
      examples_common::open_continuity(o.recovery, "ppo_lstm", o.definition(), o.events_path);
  check_profile_dir(mine.profile_dir);
  std::shared_ptr<simic::jsonl_sink> events = open_events(mine);
  std::shared_ptr<simic::tensorboard_sink> tensorboard = open_tensorboard(mine);
  try {
    std::unique_ptr<data_parallel> dp = join_job(mine);
    return mine.detectors == detector_preset::reference
               ? run_with<reference_monitor_type>(mine, std::move(events), std::move(tensorboard), std::move(dp),
                                                  std::move(c))
               : run_with<monitor_type>(mine, std::move(events), std::move(tensorboard), std::move(dp), std::move(c));
  } catch (const c10::Error& e) {
    // what() carries a backtrace: one line is enough (e.g. an allocation that failed).
    throw std::runtime_error("LibTorch: " + first_line(e.what_without_backtrace()));
  }
}

std::string describe(const run_summary& s) {
  using ull = unsigned long long;
  std::string out;
  if (s.ranks > 1)
    out += format("rank %d of %d: %llu gradient all-reduces carrying simic's agreement (%llu "
                                 "collectives of its own)\n",
                                 s.rank, s.ranks, static_cast<ull>(s.all_reduces),
                                 static_cast<ull>(s.agreement_collectives));
  out += format("updates %llu, episodes %llu, mean return %.1f (best %.1f), %.1f s\n",
                               static_cast<unsigned long long>(s.updates_done),
                               static_cast<unsigned long long>(s.episodes), s.mean_return, s.best_mean_return,
                               s.seconds);
  out += format("optimizer steps %llu, skipped %zu, checks %llu, epochs %llu\n",
                               static_cast<unsigned long long>(s.optimizer_steps), s.skips.size(),
                               static_cast<unsigned long long>(s.checks), static_cast<unsigned long long>(s.epochs));
  if (!std::isnan(s.eval_return)) out += format("greedy evaluation: mean return %.1f\n", s.eval_return);
  out += examples_common::describe_anomalies(s, "update", [](const anomaly_record& a) { return a.update; });
  out += "\n";
  out += examples_common::describe_recovery(s.recovery, s.checkpoints, "update");
  out += format("weights digest %s (FNV-1a 64 of the parameters' bytes)\n",
                examples_common::hex_digest(s.weights_digest).c_str());
  out += examples_common::describe_ending(s);
  if (!s.profile_dir.empty()) out += "profile: " + s.profile_dir + "\n";
  return out;
}

}  // namespace ppo_lstm
