// PPO (clipped surrogate, GAE, value loss, entropy bonus, gradient clipping
// at 1.0) with an LSTM policy trained by truncated BPTT over sequences of the
// rollout. Telemetry call sites are marked "telemetry:".
#include "ppo.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <numeric>
#include <optional>
#include <span>

#include "cartpole.hpp"
#include "gae.hpp"
#include "model.hpp"
#include "telemetry.hpp"

namespace ppo_lstm {
namespace {

constexpr double gamma_ = 0.99;
constexpr double gae_lambda = 0.95;
constexpr double clip_eps = 0.2;
constexpr double value_coef = 0.5;
constexpr double entropy_coef = 0.01;
constexpr double max_grad_norm = 1.0;
constexpr double reward_scale = 0.1;  // value targets stay O(10) on returns up to 500
constexpr std::size_t return_window = 20;
constexpr const char* head_name = "push";

// Slow faults: growth of the learning rate and decay of the reward per update.
constexpr double lr_ramp_growth = 1.05;
constexpr double reward_decay_rate = 0.99;

// The fault settings in force for one update.
struct faults {
  bool nan_grad = false, grad_explode = false, grad_vanish = false, grad_drift = false, lr_spike = false,
       entropy_collapse = false, value_collapse = false, lstm_explode = false, reward_drop = false;
  double lr_factor = 1.0;      // lr-ramp: growth^k on the k-th update of the fault
  double reward_factor = 1.0;  // reward-decay: rate^k on the k-th update of the fault
  static faults at(const std::vector<injection>& inj, std::uint64_t update) {
    faults f;
    for (const auto& i : inj) {
      if (!i.covers(update)) continue;
      const double k = static_cast<double>(update - i.first + 1);
      switch (i.kind) {
        case fault::nan_grad: f.nan_grad = true; break;
        case fault::grad_explode: f.grad_explode = true; break;
        case fault::grad_vanish: f.grad_vanish = true; break;
        case fault::grad_drift: f.grad_drift = true; break;
        case fault::lr_spike: f.lr_spike = true; break;
        case fault::entropy_collapse: f.entropy_collapse = true; break;
        case fault::value_collapse: f.value_collapse = true; break;
        case fault::lstm_explode: f.lstm_explode = true; break;
        case fault::reward_drop: f.reward_drop = true; break;
        case fault::lr_ramp: f.lr_factor *= std::pow(lr_ramp_growth, k); break;
        case fault::reward_decay: f.reward_factor *= std::pow(reward_decay_rate, k); break;
      }
    }
    return f;
  }
};
// entropy-collapse: the greedy action's logit raised by this margin, so the
// policy is near-deterministic (normalised entropy ~1e-3) while it lasts.
constexpr double logit_collapse_margin = 10.0;
constexpr double lr_spike_factor = 20.0;
constexpr double lstm_explode_factor = 1e3;
constexpr double value_noise = 50.0;  // in units of scaled return (at most 1 / (1 - gamma) * reward_scale = 10)
// grad-drift: the k-th step into the fault scales gradients by min(2^k, 8).
constexpr double drift_growth = 2.0;
constexpr double drift_cap = 8.0;

// A near-deterministic policy: the greedy logit raised by a constant margin.
torch::Tensor collapse(const torch::Tensor& logits, std::int64_t dim) {
  const auto greedy = torch::one_hot(logits.detach().argmax(dim), logits.size(dim)).to(logits.scalar_type());
  return logits + logit_collapse_margin * greedy;
}

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


template <class Monitor>
run_summary run_with(const run_options& o) {
  run_summary sum;
  sum.events_path = o.events_path;
  sum.profile_dir = o.profile_dir;
  const auto t0 = std::chrono::steady_clock::now();
  at::set_num_threads(o.threads);
  torch::manual_seed(o.seed);

  const int E = o.envs, T = o.rollout, L = o.seq_len, H = o.hidden, C = T / L, S = C * E;
  cartpole_vec env(E, o.seed);
  lstm_policy model(cartpole_vec::obs_dim, cartpole_vec::actions, H);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(o.lr).eps(1e-5));
  const auto params = model->parameters();

  telemetry<Monitor> tel(o, sum);

  auto h = torch::zeros({E, H}), c = torch::zeros({E, H});
  auto keep = torch::zeros({E});  // 0: the next step starts an episode
  std::deque<double> recent;      // the last `return_window` episode returns
  std::vector<double> epoch_returns;  // returns of the episodes ended in this epoch
  cartpole_vec::step_result sr;
  std::vector<std::int64_t> actions(E);
  std::uint64_t drift_steps = 0;  // optimizer steps into a grad-drift ramp
  const double log_actions = std::log(static_cast<double>(cartpole_vec::actions));

  for (std::uint64_t u = 1; u <= o.updates && !sum.stopped; ++u) {
    const faults f = faults::at(o.injections, u);
    tel.begin_update(u);
    env.set_reward(f.reward_drop ? 0.0 : f.reward_factor);

    // ---- rollout -----------------------------------------------------------
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
      auto rollout_timer = tel.timers().time("rollout");
      for (int t = 0; t < T; ++t) {
        if (t % L == 0) {
          h0_buf[t / L].copy_(h);
          c0_buf[t / L].copy_(c);
        }
        const auto obs = torch::from_blob(const_cast<float*>(env.observations().data()),
                                          {E, cartpole_vec::obs_dim}).clone();
        obs_buf[t].copy_(obs);
        keep_buf[t].copy_(keep);
        const auto k = keep.unsqueeze(1);
        auto [h1, c1] = model->cell(model->encode(obs), h * k, c * k);
        h = h1;
        c = c1;
        if (f.lstm_explode && t == 0) c = (c + 1.0) * lstm_explode_factor;  // fault: a blown-up cell state
        if (t % L == 0) tel.lstm_state(h, c);  // telemetry: LSTM health during the rollout
        const auto out = model->head(h, c);
        auto logits = out.logits;
        if (f.entropy_collapse) logits = collapse(logits, 1);
        const auto logp_all = torch::log_softmax(logits, 1);
        const auto a = torch::multinomial(logp_all.exp(), 1).squeeze(1);
        act_buf[t].copy_(a);
        logp_buf[t].copy_(logp_all.gather(1, a.unsqueeze(1)).squeeze(1));
        auto value = out.value;
        if (f.value_collapse) value = value + value_noise * torch::randn_like(value);  // fault: a broken critic
        val_buf[t].copy_(value);
        const auto acc = a.accessor<std::int64_t, 1>();
        for (int e = 0; e < E; ++e) actions[e] = acc[e];
        env.step(actions, sr);
        rew_buf[t].copy_(torch::from_blob(sr.reward.data(), {E}));
        auto done = torch::empty({E});
        for (int e = 0; e < E; ++e) done[e] = static_cast<float>(sr.done[e]);
        done_buf[t].copy_(done);
        keep = 1.0 - done;
        for (double r : sr.finished_returns) {
          recent.push_back(r);
          if (recent.size() > return_window) recent.pop_front();
          epoch_returns.push_back(r);
          ++sum.episodes;
        }
      }
      if (f.lstm_explode) {  // the fault ends with the rollout: start clean
        h.zero_();
        c.zero_();
      }
    }
    // Bootstrap value and GAE (gae.hpp: plain loops, T x E is small).
    torch::Tensor adv_t, ret_t;
    {
      torch::NoGradGuard ng;
      const auto obs = torch::from_blob(const_cast<float*>(env.observations().data()), {E, cartpole_vec::obs_dim});
      const auto last = model->step(obs, h, c, keep);
      const auto next_v = last.value.contiguous();
      adv_t = torch::empty({T, E});
      const auto n = static_cast<std::size_t>(T) * E;
      auto span_of = [n](const torch::Tensor& x) { return std::span<const float>(x.data_ptr<float>(), n); };
      compute_gae(span_of(rew_buf), span_of(val_buf), span_of(done_buf),
                  std::span<const float>(next_v.data_ptr<float>(), static_cast<std::size_t>(E)), T, E,
                  gae_params{gamma_, gae_lambda, reward_scale}, std::span<float>(adv_t.data_ptr<float>(), n));
      ret_t = adv_t + val_buf;
    }
    // How much of the return variance the critic explained during the rollout.
    const double rollout_ev = explained_variance(val_buf, ret_t);
    const double rollout_reward_rate = rew_buf.to(torch::kDouble).mean().item<double>();

    // ---- sequences for truncated BPTT: [L, S] with S = C * E -----------------
    auto seq = [&](const torch::Tensor& x) -> torch::Tensor {
      auto sizes = x.sizes().vec();
      std::vector<std::int64_t> v{C, L, E};
      v.insert(v.end(), sizes.begin() + 2, sizes.end());
      auto y = x.reshape(v).transpose(0, 1);  // [L, C, E, ...]
      std::vector<std::int64_t> w{L, S};
      w.insert(w.end(), sizes.begin() + 2, sizes.end());
      return y.reshape(w);
    };
    const torch::Tensor s_obs = seq(obs_buf), s_keep = seq(keep_buf), s_act = seq(act_buf), s_logp = seq(logp_buf),
               s_adv = seq(adv_t), s_ret = seq(ret_t);
    const auto s_h0 = h0_buf.reshape({S, H}), s_c0 = c0_buf.reshape({S, H});

    // ---- optimisation --------------------------------------------------------
    const double lr = (f.lr_spike ? o.lr * lr_spike_factor : o.lr) * f.lr_factor;
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    const simic::training_progress progress(u, o.schedule());
    const bool epoch_end = u % o.epoch_updates == 0 || u == o.updates;
    const int steps = o.steps_per_update();
    const int mb_size = S / o.minibatches;
    auto optimize_timer = tel.timers().time("optimize");
    // Performance: the mean return of the episodes that ended during the
    // epoch, at its end (absent if none ended); the detector compares it with
    // its rolling mean over the previous epochs.
    std::optional<double> performance;
    if (epoch_end && !epoch_returns.empty())
      performance = std::accumulate(epoch_returns.begin(), epoch_returns.end(), 0.0) /
                    static_cast<double>(epoch_returns.size());
    update_record rec;
    rec.update = u;
    int step = 0;
    for (int ep = 0; ep < o.ppo_epochs && !sum.stopped; ++ep) {
      const auto perm = torch::randperm(S, torch::kLong);
      for (int mb = 0; mb < o.minibatches && !sum.stopped; ++mb, ++step) {
        const auto idx = perm.narrow(0, static_cast<std::int64_t>(mb) * mb_size, mb_size);
        const auto obs = s_obs.index_select(1, idx), kp = s_keep.index_select(1, idx);
        auto hh = s_h0.index_select(0, idx), cc = s_c0.index_select(0, idx);
        const auto enc = model->encode(obs);
        std::vector<torch::Tensor> hs;
        hs.reserve(L);
        for (int l = 0; l < L; ++l) {
          const auto k = kp[l].unsqueeze(1);
          auto [h1, c1] = model->cell(enc[l], hh * k, cc * k);
          hh = h1;
          cc = c1;
          hs.push_back(hh);
        }
        const auto hseq = torch::stack(hs);  // [L, B, H]
        auto logits = model->actor->forward(hseq);
        if (f.entropy_collapse) logits = collapse(logits, 2);
        const auto value = model->critic->forward(hseq).squeeze(2);
        const auto ret = s_ret.index_select(1, idx);
        const auto logp_all = torch::log_softmax(logits, 2);
        const auto act = s_act.index_select(1, idx);
        const auto logp = logp_all.gather(2, act.unsqueeze(2)).squeeze(2);
        const auto entropy = -(logp_all.exp() * logp_all).sum(2);
        const auto log_ratio = logp - s_logp.index_select(1, idx);
        const auto ratio = log_ratio.exp();
        auto adv = s_adv.index_select(1, idx);
        adv = (adv - adv.mean()) / (adv.std() + 1e-8);
        const auto pg_loss = torch::max(-adv * ratio, -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)).mean();
        const auto v_loss = 0.5 * (value - ret).pow(2).mean();
        const auto ent = entropy.mean();
        const auto loss = pg_loss + value_coef * v_loss - entropy_coef * ent;

        opt.zero_grad();
        loss.backward();
        {  // faults that act on the gradients
          torch::NoGradGuard ng;
          if (f.nan_grad) model->lstm->weight_hh.grad().view({-1})[0] = std::nan("");
          if (f.grad_explode)
            for (auto& p : params) p.grad().mul_(1e3);
          if (f.grad_vanish)
            for (auto& p : params) p.grad().mul_(1e-9);
          if (f.grad_drift) {
            ++drift_steps;
            const double k = std::min(std::pow(drift_growth, static_cast<double>(drift_steps)), drift_cap);
            for (auto& p : params) p.grad().mul_(k);
          } else {
            drift_steps = 0;
          }
        }

        // telemetry: the signals of this step, gradients measured before clipping
        simic::signals sig;
        const simic::gradient_signal grads = tel.gradients(*model);
        sig.gradients = grads;
        sig.update_ratio = tel.update_ratio(*model);
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
        if (step == 0) {  // once per update: the rollout's LSTM state, critic and reward
          sig.lstm = tel.take_lstm();
          sig.reward_rate = rollout_reward_rate;
          if (!std::isnan(rollout_ev)) sig.explained_variance = rollout_ev;
        }
        if (step == steps - 1 && performance) sig.performance = performance;

        simic::update_metrics metrics{.loss = sig.loss,
                                      .policy_loss = pg_loss.item<double>(),
                                      .value_loss = v_loss.item<double>(),
                                      .entropy = heads[0].normalized,
                                      .approx_kl = sig.approx_kl,
                                      .ratio_max = sig.ratio_max,
                                      .ratio_min = sig.ratio_min,
                                      .explained_variance = sig.explained_variance,
                                      .learning_rate = lr,
                                      .extra = {{"step", static_cast<double>(step)}}};
        if (performance && sig.performance) metrics.extra.push_back({"mean_return", *performance});
        const simic::check_result& res = tel.check(sig, step, metrics);
        // telemetry: DEBUG diagnostics (each runs only while the effective level is DEBUG)
        tel.debug(*model, loss, ratio, s_logp.index_select(1, idx), logp, act, step);

        rec.grad_norm = grads.total_norm;
        rec.grad_health = grads.health;
        if (res.resp.act == simic::action::stop) {
          sum.stopped = true;
          sum.stop_reason = res.resp.reason;
          sum.exit_code = exit_stopped;
          tel.skipped(step, res.resp.reason);
          ++rec.skipped_steps;
        } else if (res.resp.act == simic::action::skip_step) {
          tel.skipped(step, res.resp.reason);
          ++rec.skipped_steps;
        } else {
          torch::nn::utils::clip_grad_norm_(params, max_grad_norm);
          opt.step();
          ++sum.optimizer_steps;
        }
      }
    }

    const double mean_ret =
        recent.empty() ? 0.0 : std::accumulate(recent.begin(), recent.end(), 0.0) / static_cast<double>(recent.size());
    sum.mean_return = mean_ret;
    sum.best_mean_return = std::max(sum.best_mean_return, mean_ret);
    rec.mean_return = mean_ret;
    rec.anomalies = tel.take_update_anomalies();
    rec.kinds = tel.take_update_kinds();
    optimize_timer.stop();
    if (epoch_end) epoch_returns.clear();
    tel.update_done();
    if (epoch_end && !sum.stopped) {  // telemetry: monitor.tick() per epoch
      const std::uint64_t in_epoch = (u - 1) % o.epoch_updates + 1;
      tel.epoch_end(performance, in_epoch);
    }
    rec.level = tel.level();
    sum.updates.push_back(rec);
    sum.updates_done = u;
    if (o.progress_lines) {
      std::string extra;
      if (rec.anomalies) extra += " (" + rec.kinds + ")";
      if (rec.skipped_steps) extra += "  skipped steps " + std::to_string(rec.skipped_steps);
      std::printf("update %5llu  return %7.1f  grad %9.4g  health %.2f  level %-7s  anomalies %zu%s\n",
                  static_cast<unsigned long long>(u), mean_ret, rec.grad_norm, rec.grad_health,
                  std::string(simic::to_string(rec.level)).c_str(), rec.anomalies, extra.c_str());
      std::fflush(stdout);
    }
  }
  tel.finish();  // every event flushed, also after a stop
  sum.weights_finite = all_finite(params);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace

run_summary run(const run_options& o) {
  o.validate();
  return o.detectors == detector_preset::reference ? run_with<reference_monitor_type>(o) : run_with<monitor_type>(o);
}

std::string describe(const run_summary& s) {
  std::string out;
  out += simic::detail::format("updates %llu, episodes %llu, mean return %.1f (best %.1f), %.1f s\n",
                               static_cast<unsigned long long>(s.updates_done),
                               static_cast<unsigned long long>(s.episodes), s.mean_return, s.best_mean_return,
                               s.seconds);
  out += simic::detail::format("optimizer steps %llu, skipped %zu, checks %llu, epochs %llu\n",
                               static_cast<unsigned long long>(s.optimizer_steps), s.skips.size(),
                               static_cast<unsigned long long>(s.checks), static_cast<unsigned long long>(s.epochs));
  out += simic::detail::format("anomalies: %zu critical, %zu warning", s.count(simic::severity::critical),
                               s.count(simic::severity::warning));
  std::vector<simic::anomaly_kind> kinds;  // in order of first report
  for (const auto& a : s.anomalies)
    if (std::find(kinds.begin(), kinds.end(), a.kind) == kinds.end()) kinds.push_back(a.kind);
  for (const simic::anomaly_kind k : kinds) {
    const auto first = std::find_if(s.anomalies.begin(), s.anomalies.end(), [k](const auto& a) { return a.kind == k; });
    out += simic::detail::format("\n  %-24s x%zu %-8s (first at update %llu)", std::string(simic::to_string(k)).c_str(),
                                 s.count(k), std::string(simic::to_string(first->severity)).c_str(),
                                 static_cast<unsigned long long>(first->update));
  }
  out += "\n";
  if (s.stopped) out += "stopped by the monitor: " + s.stop_reason + "\n";
  if (!s.events_path.empty())
    out += simic::detail::format("events: %s (%llu written, %llu dropped)\n", s.events_path.c_str(),
                                 static_cast<unsigned long long>(s.events_emitted),
                                 static_cast<unsigned long long>(s.events_dropped));
  if (!s.profile_dir.empty()) out += "profile: " + s.profile_dir + "\n";
  return out;
}

}  // namespace ppo_lstm
