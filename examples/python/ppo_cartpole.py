#!/usr/bin/env python3
"""PPO on gymnasium's CartPole-v1 in one file (CleanRL-style), watched by simic.

An MLP actor-critic, SyncVectorEnv environments, GAE, the clipped surrogate,
a value loss, an entropy bonus, Adam and minibatch epochs. simic's wiring is
the lines marked `# simic` (tests/python/test_examples.py counts them): a
Session with the "ppo_feedforward" preset (the PPO detectors less the LSTM one), begin_update() per update, the rollout's
figures, step() per optimizer step (its action obeyed: "skip" leaves the
step out, "stop" ends training) and end_epoch() per update. The policy is an
MLP: the C++ trainer's LSTM faults (lstm-explode, core-vanish) are refused.

--inject bends training as examples/ppo_lstm does (same names, factors and
updates; faults.hpp there), so that each detector has something to find:

    python3 examples/python/ppo_cartpole.py --events run.jsonl --inject lr-spike@12

Exit codes (as the C++ trainers'): 0 done, 2 bad command line, 3 stopped by
simic. Needs gymnasium (examples/python/requirements.txt) and simic's module.
"""
import argparse
import collections
import math
import sys

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

import simic  # simic

# Hyperparameters: CleanRL's ppo.py for CartPole but examples/ppo_lstm's
# batch shape and rate (8 environments x 128 steps, 4 epochs x 2 minibatches,
# Adam at a constant 1e-3) and value targets scaled by 0.1 as there, so that
# the faults mean the same. CleanRL's 4 x 128 steps in 4 minibatches at 2.5e-4
# gave every healthy seed gradient_norm_drift warnings (noisier norms of
# 128-sample minibatches); an annealed rate falls to 0 at the end, which the
# update-ratio detector rightly calls a collapse.
LR, GAMMA, GAE_LAMBDA, CLIP, ENT_COEF, VF_COEF, MAX_GRAD_NORM = 1e-3, 0.99, 0.95, 0.2, 0.01, 0.5, 0.5
UPDATE_EPOCHS, MINIBATCHES, REWARD_SCALE, RETURN_WINDOW = 4, 2, 0.1, 20
STEPS_PER_UPDATE = UPDATE_EPOCHS * MINIBATCHES

# The faults of examples/ppo_lstm/options.hpp, with the same meaning here.
FAULTS = {
    "nan-grad": "NaN in one gradient element on every step of the update",
    "grad-explode": "every gradient x1e3 (before clipping)",
    "grad-vanish": "every gradient x1e-9",
    "grad-drift": "gradients x2, x4, x8, x8, ... step by step",
    "lr-spike": "learning rate x20 for the update",
    "entropy-collapse": "greedy logit +10 in rollout and training",
    "value-collapse": "critic's rollout estimates + N(0, 50^2)",
    "reward-drop": "the environment pays reward 0",
    "lr-ramp": "learning rate x1.05 per update while the fault lasts",
    "reward-decay": "reward x0.99 per update while the fault lasts",
    "loss-scale": "loss x1e6 at the update's first optimizer step",
}
# The C++ trainer's LSTM faults: this policy is an MLP, with no LSTM state or core to bend.
LSTM_FAULTS = ("lstm-explode", "core-vanish")


def injection(spec):
    """KIND@U, KIND@U-V or KIND@U- -> (kind, first, last); last None: to the end."""
    valid = "valid kinds: " + ", ".join(FAULTS)
    kind, at, when = spec.partition("@")
    if not at:
        raise argparse.ArgumentTypeError(f"'{spec}' is not KIND@U, KIND@U-V or KIND@U-; {valid}")
    if kind in LSTM_FAULTS:
        raise argparse.ArgumentTypeError(f"'{kind}' needs an LSTM, and this MLP policy has none; {valid}")
    if kind not in FAULTS:
        raise argparse.ArgumentTypeError(f"unknown fault '{kind}'; {valid}")
    first, dash, last = when.partition("-")
    try:
        first = int(first)
        last = (None if last == "" else int(last)) if dash else first
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{spec}': updates must be integers >= 1 (KIND@U, KIND@U-V, KIND@U-)")
    if first < 1 or (last is not None and last < first):
        raise argparse.ArgumentTypeError(f"'{spec}': needs 1 <= U <= V")
    return kind, first, last


def int_in(lo, hi):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer in [{lo}, {hi}]")
        return v
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1, help="torch and environment seed (default 1)")
    p.add_argument("--updates", type=int_in(1, 100_000), default=100, help="PPO updates (default 100)")
    p.add_argument("--planned-updates", type=int_in(1, 100_000), metavar="N",
                   help="the schedule's length, which progress is measured against (default: --updates); a larger "
                        "N runs the first --updates of a longer schedule, as examples/ppo_lstm's option does")
    p.add_argument("--num-envs", type=int_in(1, 256), default=8, help="parallel environments (default 8)")
    p.add_argument("--num-steps", type=int_in(1, 8192), default=128,
                   help="steps per environment per update (default 128)")
    p.add_argument("--events", metavar="PATH", help="simic's JSONL events file")
    p.add_argument("--inject", metavar="KIND@U", type=injection, action="append", default=[],
                   help="inject a fault at update U (also KIND@U-V, KIND@U-); repeatable; kinds: " + ", ".join(FAULTS))
    a = p.parse_args(argv)
    if a.num_envs * a.num_steps < 2 * MINIBATCHES:  # a minibatch's advantages need 2 samples to be normalised
        p.error(f"argument --num-steps: --num-envs x --num-steps = {a.num_envs * a.num_steps} must be >= "
                f"{2 * MINIBATCHES} (two samples per minibatch, {MINIBATCHES} minibatches)")
    a.planned_updates = a.planned_updates or a.updates
    if a.planned_updates < a.updates:
        p.error(f"argument --planned-updates: {a.planned_updates} is not in [--updates = {a.updates}, 100000]")
    for kind, first, last in a.inject:
        if first > a.updates:
            p.error(f"argument --inject: {kind}@{first}: update {first} is not in [1, --updates = {a.updates}]")
    return a


class Faults:
    """The faults in force in one update (examples/ppo_lstm/faults.hpp)."""

    def __init__(self, injections, update):
        self.on, self.lr_factor, self.reward_factor = set(), 1.0, 1.0
        for kind, first, last in injections:
            if update < first or (last is not None and update > last):
                continue
            k = update - first + 1  # the k-th update of the fault
            if kind == "lr-ramp":
                self.lr_factor *= 1.05 ** k
            elif kind == "reward-decay":
                self.reward_factor *= 0.99 ** k
            else:
                self.on.add(kind)

    def reward(self):
        return 0.0 if "reward-drop" in self.on else self.reward_factor

    def learning_rate(self):
        return LR * (20.0 if "lr-spike" in self.on else 1.0) * self.lr_factor

    def loss(self, loss, step):
        return loss * 1e6 if "loss-scale" in self.on and step == 0 else loss

    def logits(self, logits):
        if "entropy-collapse" not in self.on:
            return logits
        return logits + 10.0 * nn.functional.one_hot(logits.detach().argmax(-1), logits.shape[-1]).to(logits.dtype)

    def value(self, v):
        return v + 50.0 * torch.randn_like(v) if "value-collapse" in self.on else v


class GradientFaults:
    """Faults on the gradients after backward(); grad-drift counts its steps across updates."""

    def __init__(self):
        self.drift_steps = 0

    @torch.no_grad()
    def apply(self, f, agent):
        params = [p for p in agent.parameters() if p.grad is not None]
        if "nan-grad" in f.on:
            params[0].grad.view(-1)[0] = float("nan")
        scale = (1e3 if "grad-explode" in f.on else 1.0) * (1e-9 if "grad-vanish" in f.on else 1.0)
        if "grad-drift" in f.on:
            self.drift_steps += 1
            scale *= min(2.0 ** self.drift_steps, 8.0)
        else:
            self.drift_steps = 0
        if scale != 1.0:
            for p in params:
                p.grad.mul_(scale)


def layer(n_in, n_out, std=np.sqrt(2)):
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.zeros_(lin.bias)
    return lin


class Agent(nn.Module):
    def __init__(self, obs_dim, actions):
        super().__init__()
        self.critic = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, std=1.0))
        self.actor = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(),
                                   layer(64, actions, std=0.01))  # near-uniform at the start


def explained_variance(pred, target):
    def var(x):
        return (x - x.mean()).pow(2).mean().item()
    return None if not var(target) > 0 else 1.0 - var(target - pred) / var(target)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a 64-unit MLP: threads only add synchronisation
    E, T = args.num_envs, args.num_steps
    B = E * T
    mb_size = B // MINIBATCHES
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * E,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    agent = Agent(envs.single_observation_space.shape[0], envs.single_action_space.n)
    optimizer = torch.optim.Adam(agent.parameters(), lr=LR, eps=1e-5)
    grad_faults = GradientFaults()

    obs = torch.zeros((T, E) + envs.single_observation_space.shape)
    actions, logprobs, rewards, dones, values = (torch.zeros((T, E)) for _ in range(5))
    next_obs = torch.as_tensor(envs.reset(seed=args.seed)[0], dtype=torch.float32)
    next_done = torch.zeros(E)
    episode_return = np.zeros(E)
    recent = collections.deque(maxlen=RETURN_WINDOW)
    anomalies, skipped, stopped, update = collections.Counter(), 0, False, 0

    sinks = [simic.JsonlSink(args.events)] if args.events else []  # simic
    # Two updates' worth of skips in a row stop training (examples/ppo_lstm's default): one bad update passes.
    with simic.Session(agent, sinks=sinks, preset="ppo_feedforward",  # simic
                       max_consecutive_skips=2 * STEPS_PER_UPDATE) as session:  # simic
        for update in range(1, args.updates + 1):
            f = Faults(args.inject, update)
            session.begin_update()  # simic
            finished = []
            # Rollout.
            with torch.no_grad():
                for t in range(T):
                    obs[t], dones[t] = next_obs, next_done
                    dist = torch.distributions.Categorical(logits=f.logits(agent.actor(next_obs)))
                    action = dist.sample()
                    actions[t], logprobs[t] = action, dist.log_prob(action)
                    values[t] = f.value(agent.critic(next_obs).squeeze(1))
                    o, reward, term, trunc, _ = envs.step(action.numpy())
                    reward = reward * f.reward()  # reward-drop, reward-decay: the environment pays less
                    rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
                    episode_return += reward
                    done = np.logical_or(term, trunc)
                    finished += episode_return[done].tolist()
                    episode_return[done] = 0.0
                    next_obs = torch.as_tensor(o, dtype=torch.float32)
                    next_done = torch.as_tensor(done, dtype=torch.float32)
                # GAE on rewards x REWARD_SCALE; a done at t + 1 cuts the bootstrap.
                next_value = agent.critic(next_obs).squeeze(1)
                advantages = torch.zeros((T, E))
                last = torch.zeros(E)
                for t in reversed(range(T)):
                    nonterminal = 1.0 - (next_done if t == T - 1 else dones[t + 1])
                    v_next = next_value if t == T - 1 else values[t + 1]
                    delta = REWARD_SCALE * rewards[t] + GAMMA * v_next * nonterminal - values[t]
                    advantages[t] = last = delta + GAMMA * GAE_LAMBDA * nonterminal * last
                returns = advantages + values
            recent.extend(finished)
            performance = float(np.mean(finished)) if finished else None  # this update's episodes
            ev = explained_variance(values, returns)  # of the critic during the rollout
            session.end_rollout(reward_rate=rewards.mean().item(), explained_variance=ev)  # simic

            b_obs, b_act, b_logp = obs.reshape(B, -1), actions.reshape(B), logprobs.reshape(B)
            b_adv, b_ret = advantages.reshape(B), returns.reshape(B)
            step = 0
            for _ in range(UPDATE_EPOCHS):
                perm = torch.randperm(B)
                for start in range(0, mb_size * MINIBATCHES, mb_size):
                    idx = perm[start:start + mb_size]
                    dist = torch.distributions.Categorical(logits=f.logits(agent.actor(b_obs[idx])))
                    logratio = dist.log_prob(b_act[idx]) - b_logp[idx]
                    ratio = logratio.exp()
                    adv = b_adv[idx]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
                    v_loss = 0.5 * (agent.critic(b_obs[idx]).squeeze(1) - b_ret[idx]).pow(2).mean()
                    entropy = dist.entropy().mean()
                    loss = f.loss(pg_loss - ENT_COEF * entropy + VF_COEF * v_loss, step)
                    for group in optimizer.param_groups:
                        group["lr"] = f.learning_rate()
                    optimizer.zero_grad()
                    loss.backward()
                    grad_faults.apply(f, agent)
                    with torch.no_grad():
                        approx_kl = ((ratio - 1) - logratio).mean().item()
                    last_step = step == STEPS_PER_UPDATE - 1
                    r = session.step(loss=loss.item(), approx_kl=approx_kl, ratio_max=ratio.max().item(),  # simic
                                     ratio_min=ratio.min().item(), progress=(update, args.planned_updates),  # simic
                                     entropy={"push": entropy.item() / math.log(envs.single_action_space.n)},  # simic
                                     performance=performance if last_step else None)  # simic
                    anomalies.update(a["kind"] for a in r["anomalies"])  # simic
                    if r["action"] == "proceed":  # simic
                        nn.utils.clip_grad_norm_(agent.parameters(), MAX_GRAD_NORM)
                        optimizer.step()
                    skipped, stopped = skipped + (r["action"] != "proceed"), r["action"] == "stop"  # simic
                    step += 1
                    if stopped:
                        break
                if stopped:
                    break
            if stopped:  # training ends here, its epoch unfinished
                break
            session.end_epoch(performance=performance)  # simic
    envs.close()

    mean_return = f"{np.mean(recent):.1f}" if recent else "none"
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(anomalies.items())) or "none"
    print(f"ppo_cartpole: updates {update}/{args.updates}, final mean return {mean_return} (last {len(recent)} "
          f"episodes), anomalies: {kinds}, skipped steps {skipped}, stopped {'yes' if stopped else 'no'}")
    return 3 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())
