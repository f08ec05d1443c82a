"""examples/python: the two example trainers, run as a user runs them (a
subprocess of this Python), judged by their JSONL events (docs/events.md).

- healthy runs of several seeds raise no anomaly at all, early training
  included, obey nothing (no skip) and learn;
- each fault the examples accept is caught: one of its expected kinds (the C++
  trainers' meanings: examples/ppo_lstm/options.hpp, docs/trainer.md,
  docs/lm_trainer.md) within a stated number of optimizer steps of the
  injection's first step, and no anomaly at all before it;
- the session's action is obeyed (a skipped step moves no weight, a stop ends
  the run with exit code 3);
- simic's wiring is at most 15 lines (`# simic`), bad arguments exit 2 naming
  the argument.

Gaps measured and reported rather than hidden are strict xfails: they fail
the suite when they stop being gaps, so the table gets updated.

The runs of each example start together in a pool of 2 processes (about 40 s
on 2 cores). Run after `pip install .` with gymnasium installed
(examples/python/requirements.txt); without gymnasium the PPO tests skip.
"""
import collections
import concurrent.futures
import io
import json
import os
import re
import runpy
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

# scripts/python_tests.sh names the checkout's examples (pytest runs outside it).
EXAMPLES = Path(os.environ.get("SIMIC_EXAMPLES", Path(__file__).resolve().parents[2] / "examples" / "python"))
PPO, SUPERVISED = EXAMPLES / "ppo_cartpole.py", EXAMPLES / "supervised.py"
WORKERS = max(1, min(2, os.cpu_count() or 1))

# ---- PPO (examples/python/ppo_cartpole.py)
# Runs are the first updates of a 100-update schedule (--planned-updates), as
# the C++ trainer's tests run 44 of 200: early training (10 %) is then updates
# 1-10, and the shift models' warm-up (24 checks) ends in update 13.
PPO_STEPS_PER_UPDATE = 8  # 4 epochs x 2 minibatches (the example's constants)
PPO_SCHEDULE = ["--planned-updates", "100"]
PPO_HEALTHY_SEEDS = (1, 2, 3)
PPO_HEALTHY_UPDATES = 30
PPO_FAULT_SEED = 1

# fault -> (--inject, kinds that count as caught, window in optimizer steps
# from the first step of the injection's update). Kinds: the C++ meanings
# (options.hpp, with docs/trainer.md's "others seen with it"); windows: the
# measured delay (3 seeds, in the report) with a little room.
PPO_FAULTS = {
    "nan-grad": ("nan-grad@16", {"numerical_instability"}, 0),
    "grad-explode": ("grad-explode@16", {"gradient_exploding", "gradient_norm_drift"}, 0),
    "grad-vanish": ("grad-vanish@16", {"gradient_vanishing"}, 0),
    # Ten updates (bench/detection's window for abrupt faults): one update's
    # ramp is missed on 2 seeds of 3 (test_ppo_grad_drift_of_one_update...).
    "grad-drift": ("grad-drift@16-25", {"gradient_norm_drift"}, 2 * PPO_STEPS_PER_UPDATE),
    # The update ratio of the first spiked step is read at the second (1).
    "lr-spike": ("lr-spike@16",
                 {"update_ratio_drift", "kl_spike", "kl_extreme", "ratio_explosion", "ratio_collapse"}, 1),
    "entropy-collapse": ("entropy-collapse@16", {"entropy_collapse"}, 0),
    "value-collapse": ("value-collapse@16", {"value_collapse"}, 0),
    # Three updates: the reward rate's median of three needs two bad rollouts.
    "reward-drop": ("reward-drop@16-18", {"performance_degradation"}, 2 * PPO_STEPS_PER_UPDATE),
    "loss-scale": ("loss-scale@16", {"loss_extreme", "gradient_exploding"}, 0),
    # Slow faults, to the end of the run. lr-ramp from 36: the rise rule
    # judges once 200 ratios are in (update 35); measured 27 to 33 updates.
    "lr-ramp": ("lr-ramp@36-", {"update_ratio_drift", "performance_degradation"}, 40 * PPO_STEPS_PER_UPDATE),
    "reward-decay": ("reward-decay@16-", {"performance_degradation"}, 10 * PPO_STEPS_PER_UPDATE),
}
PPO_LSTM_FAULTS = ("lstm-explode", "core-vanish")  # the C++ trainer's, refused by the MLP example

# ---- supervised (examples/python/supervised.py): 10 epochs of 32 steps.
SUPERVISED_SEEDS = (1, 2, 3)
SUPERVISED_STEPS = 320
SUPERVISED_FAULTS = {  # as examples/char_lm's faults (docs/lm_trainer.md)
    "nan-grad": ("nan-grad@150", {"numerical_instability"}, 0),
    "loss-scale": ("loss-scale@150", {"loss_extreme", "gradient_exploding"}, 0),
    # From step 150 to the end, as char_lm's lr-spike; found at the second
    # observation of the spiked ratio (step 152).
    "lr-spike": ("lr-spike@150", {"update_ratio_drift", "loss_spike", "loss_extreme", "loss_divergence",
                                  "gradient_norm_drift", "learning_stall"}, 2),
}

SUMMARY = re.compile(r"^(?P<name>\w+): (?:updates|steps) (?P<done>\d+)/(?P<total>\d+), .*anomalies: (?P<kinds>.*), "
                     r"skipped steps (?P<skipped>\d+), stopped (?P<stopped>yes|no)$", re.M)


class Run:
    """A finished run: exit code, output, and its events."""

    def __init__(self, args, proc, events_path):
        self.args, self.rc, self.out, self.err = args, proc.returncode, proc.stdout, proc.stderr
        self.events = []
        if events_path and Path(events_path).exists():
            self.events = [json.loads(line) for line in Path(events_path).read_text().splitlines() if line]

    def summary(self):
        m = SUMMARY.search(self.out)
        assert m, f"no summary line in {self.out!r} (stderr {self.err[-2000:]!r})"
        return m

    def checks(self):
        """The `update` event of each check (one per optimizer step), in order."""
        return [e for e in self.events if e["event"] == "update"]

    def anomalies(self):
        """(check index, update, kind, severity) of each anomaly; a check's anomalies follow its update event."""
        out, check = [], -1
        for e in self.events:
            if e["event"] == "update":
                check += 1
            elif e["event"] == "anomaly":
                out.append((check, e["update"], e["anomaly"], e["severity"]))
        return out

    def first_check_of(self, update):
        return next(i for i, e in enumerate(self.checks()) if e["update"] >= update)

    def describe(self):
        return f"args {self.args}, rc {self.rc}, out {self.out.strip()!r}, anomalies {self.anomalies()}"


def start(pool, script, args, events_path=None):
    argv = [sys.executable, str(script), *args] + (["--events", str(events_path)] if events_path else [])

    def run():
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=EXAMPLES)
        return Run(args, proc, events_path)

    return pool.submit(run)


def run_all(cases, tmp):
    """cases: key -> (script, args, with events?) -> key -> Run, WORKERS at a time."""
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {k: start(pool, s, a, tmp / f"{i}.jsonl" if ev else None) for i, (k, (s, a, ev)) in
                   enumerate(cases.items())}
        return {k: f.result() for k, f in futures.items()}


def injection_first(spec):
    return int(spec.split("@")[1].split("-")[0])


def ppo_fault_updates(spec, window):
    """Updates to run: through the window's last update, and one more."""
    return injection_first(spec) + -(-window // PPO_STEPS_PER_UPDATE) + 1


# Bad command lines: (args, what stderr must name). argparse exits 2.
PPO_BAD = {
    "updates": (["--updates", "0"], ["--updates", "[1, 100000]"]),
    "num-envs": (["--num-envs", "257"], ["--num-envs", "[1, 256]"]),
    "num-steps": (["--num-steps", "x"], ["--num-steps", "[1, 8192]"]),
    "seed": (["--seed", "-1"], ["--seed", "[0, 2147483647]"]),
    "planned": (["--updates", "30", "--planned-updates", "20"], ["--planned-updates", "--updates = 30"]),
    "unknown-fault": (["--inject", "nan-grads@3"], ["--inject", "unknown fault 'nan-grads'", "valid kinds: nan-grad"]),
    "lstm-explode": (["--inject", "lstm-explode@3"], ["--inject", "needs an LSTM", "valid kinds: nan-grad"]),
    "core-vanish": (["--inject", "core-vanish@3"], ["--inject", "needs an LSTM", "loss-scale"]),
    "no-update": (["--inject", "nan-grad"], ["--inject", "is not KIND@U"]),
    "past-end": (["--updates", "30", "--inject", "nan-grad@31"], ["--inject", "[1, --updates = 30]"]),
    "backwards": (["--inject", "nan-grad@5-3"], ["--inject", "1 <= U <= V"]),
}
SUPERVISED_BAD = {
    "epochs": (["--epochs", "0"], ["--epochs", "[1, 10000]"]),
    "unknown-fault": (["--inject", "grad-explode@3"],
                      ["--inject", "unknown fault 'grad-explode'", "nan-grad, loss-scale, lr-spike"]),
    "past-end": (["--epochs", "2", "--inject", "nan-grad@65"], ["--inject", "[1, 64]"]),
}


@pytest.fixture(scope="module")
def ppo(tmp_path_factory):
    pytest.importorskip("gymnasium", reason="examples/python/requirements.txt: gymnasium for ppo_cartpole.py")
    cases = {("healthy", s): (PPO, ["--seed", str(s), "--updates", str(PPO_HEALTHY_UPDATES), *PPO_SCHEDULE], True)
             for s in PPO_HEALTHY_SEEDS}
    for name, (spec, _, window) in PPO_FAULTS.items():
        cases[("fault", name)] = (PPO, ["--seed", str(PPO_FAULT_SEED), "--updates",
                                        str(ppo_fault_updates(spec, window)), *PPO_SCHEDULE, "--inject", spec], True)
    cases["stop"] = (PPO, ["--seed", "1", "--updates", "19", *PPO_SCHEDULE, "--inject", "nan-grad@16-17"], True)
    # The gaps (strict xfails below).
    cases["grad-drift-one-update"] = (PPO, ["--seed", "1", "--updates", "18", *PPO_SCHEDULE,
                                            "--inject", "grad-drift@16"], True)
    cases["past-1000-checks"] = (PPO, ["--num-envs", "2", "--num-steps", "8", "--updates", "126"], True)
    cases["bad"] = (PPO, PPO_BAD["lstm-explode"][0], False)  # one through the real exit path
    return run_all(cases, tmp_path_factory.mktemp("ppo"))


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    cases = {("healthy", s): (SUPERVISED, ["--seed", str(s)], True) for s in SUPERVISED_SEEDS}
    for name, (spec, _, _) in SUPERVISED_FAULTS.items():
        cases[("fault", name)] = (SUPERVISED, ["--seed", "1", "--inject", spec], True)
    cases["lr-spike-one-step"] = (SUPERVISED, ["--seed", "1", "--inject", "lr-spike@150-150"], True)
    cases["bad"] = (SUPERVISED, SUPERVISED_BAD["past-end"][0], False)
    return run_all(cases, tmp_path_factory.mktemp("supervised"))


def skips_obeyed(run):
    """After each skipped step the next check's update ratio is 0: the optimizer did not step."""
    pending = False
    for e in run.events:
        if e["event"] == "response":
            pending = True
        elif e["event"] == "update" and pending:
            assert e.get("update_ratio") == 0.0, f"a skipped step moved the weights: {e} ({run.describe()})"
            pending = False


def assert_caught(run, spec, kinds, window, first_check):
    found = [(c, u, k) for c, u, k, _ in run.anomalies() if k in kinds]
    before = [a for a in run.anomalies() if a[0] < first_check]
    assert not before, f"{spec}: anomalies before the injection: {before} ({run.describe()})"
    assert found, f"{spec}: none of {sorted(kinds)} reported ({run.describe()})"
    delay = found[0][0] - first_check
    assert delay <= window, f"{spec}: {found[0][2]} {delay} steps after it, window {window} ({run.describe()})"


def assert_summary_matches(run):
    """The summary line's anomalies by kind are the events file's."""
    m = run.summary()
    counted = collections.Counter(k for _, _, k, _ in run.anomalies())
    said = {} if m["kinds"] == "none" else {k: int(n) for k, n in (x.rsplit(" ", 1) for x in m["kinds"].split(", "))}
    assert said == dict(counted), run.describe()
    assert int(m["skipped"]) == sum(e["event"] == "response" for e in run.events), run.describe()
    return m


# ---- PPO


@pytest.mark.parametrize("seed", PPO_HEALTHY_SEEDS)
def test_ppo_healthy_seed_raises_nothing_and_learns(ppo, seed):
    run = ppo[("healthy", seed)]
    assert run.rc == 0, run.describe()
    assert run.anomalies() == [], run.describe()  # early training included
    m = assert_summary_matches(run)
    assert (m["done"], m["total"], m["skipped"], m["stopped"]) == (str(PPO_HEALTHY_UPDATES),) * 2 + ("0", "no")
    assert len(run.checks()) == PPO_HEALTHY_UPDATES * PPO_STEPS_PER_UPDATE
    # It learns: random play lasts about 22 steps.
    assert float(re.search(r"final mean return ([\d.]+)", run.out).group(1)) > 100, run.describe()


@pytest.mark.parametrize("fault", PPO_FAULTS)
def test_ppo_fault_is_caught_in_its_window_and_not_before(ppo, fault):
    spec, kinds, window = PPO_FAULTS[fault]
    run = ppo[("fault", fault)]
    assert run.rc == 0, run.describe()  # none stops: a bad update's skips are under the limit
    assert_caught(run, spec, kinds, window, run.first_check_of(injection_first(spec)))
    assert_summary_matches(run)
    skips_obeyed(run)


@pytest.mark.parametrize("fault", PPO_FAULTS)
def test_ppo_runs_are_deterministic_and_the_fault_waits_for_its_update(ppo, fault):
    # Up to the injection a fault run is the healthy run of its seed, loss for
    # loss (as far as the healthy run goes).
    first = min(injection_first(PPO_FAULTS[fault][0]), PPO_HEALTHY_UPDATES + 1)
    healthy = [e["loss"] for e in ppo[("healthy", PPO_FAULT_SEED)].checks() if e["update"] < first]
    faulty = [e["loss"] for e in ppo[("fault", fault)].checks() if e["update"] < first]
    assert len(healthy) == (first - 1) * PPO_STEPS_PER_UPDATE
    assert faulty == healthy


def test_ppo_one_bad_update_is_skipped_and_training_goes_on(ppo):
    # nan-grad@16: each of its 8 steps skipped, under the example's limit of
    # two updates' worth in a row (examples/ppo_lstm's default).
    run = ppo[("fault", "nan-grad")]
    assert run.rc == 0, run.describe()
    assert [(e["update"], e["action"]) for e in run.events if e["event"] == "response"] == [(16, "skip_step")] * 8
    assert run.summary()["stopped"] == "no" and run.checks()[-1]["update"] == ppo_fault_updates("nan-grad@16", 0)


def test_ppo_stop_ends_training_with_exit_code_3(ppo):
    # nan-grad@16-17: the 16th skip in a row, the last step of update 17, stops.
    run = ppo["stop"]
    assert run.rc == 3, run.describe()
    m = run.summary()
    assert (m["done"], m["stopped"], m["skipped"]) == ("17", "yes", "16"), run.describe()
    assert [e["action"] for e in run.events if e["event"] == "response"] == ["skip_step"] * 15 + ["stop"]
    assert len(run.checks()) == 17 * PPO_STEPS_PER_UPDATE, "a check after the stop"
    assert not [e for e in run.events if e["event"] == "epoch_summary" and e["update"] == 17]  # ended mid-epoch
    skips_obeyed(run)


def test_ppo_one_step_skip_moves_no_weight_and_training_goes_on(ppo):
    run = ppo[("fault", "loss-scale")]
    assert run.rc == 0, run.describe()
    assert [e["action"] for e in run.events if e["event"] == "response"] == ["skip_step"]
    checks = run.checks()
    i = run.first_check_of(16)
    assert checks[i + 1]["update_ratio"] == 0.0 and checks[i + 2]["update_ratio"] > 0.0


@pytest.mark.xfail(strict=True, reason="measured: grad-drift for one update (x2, x4, x8, ... over 8 steps) is missed "
                                       "on seeds 1 and 2 (seed 3: found at its 8th step); the minibatch norms' log "
                                       "spread here is about 0.45, the CUSUM stays under 6")
def test_ppo_grad_drift_of_one_update_is_caught(ppo):
    run = ppo["grad-drift-one-update"]
    assert_caught(run, "grad-drift@16", {"gradient_norm_drift"}, 2 * PPO_STEPS_PER_UPDATE, run.first_check_of(16))


def missing(run):
    return [e["detail"] for e in run.events if e["event"] == "anomaly" and e["anomaly"] == "signal_missing"]


def test_ppo_run_past_1000_checks_raises_no_signal_missing(ppo):
    # 126 updates of 8 checks (a tiny batch, to be quick): every detector of
    # the ppo_feedforward preset is fed (the ppo preset's LSTM detector would
    # be reported after its 1000th check).
    run = ppo["past-1000-checks"]
    assert run.rc == 0, run.describe()
    assert len(run.checks()) > 1000
    assert missing(run) == []


def parse_fails(script, args, capsys):
    """The example's own parse_args on `args`, in this process (a process each costs a second of imports)."""
    parse_args = runpy.run_path(str(script), run_name="example")["parse_args"]
    with pytest.raises(SystemExit) as e:
        parse_args(args)
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", PPO_BAD)
def test_ppo_bad_arguments_exit_2_naming_the_argument(case, capsys):
    pytest.importorskip("gymnasium", reason="examples/python/requirements.txt: gymnasium for ppo_cartpole.py")
    args, names = PPO_BAD[case]
    code, err = parse_fails(PPO, args, capsys)
    assert code == 2
    for name in names:
        assert name in err, f"{name!r} not in {err!r}"


def test_ppo_bad_argument_exits_2_from_the_command_line(ppo):
    run = ppo["bad"]
    assert run.rc == 2 and "argument --inject: 'lstm-explode' needs an LSTM" in run.err, run.describe()
    assert run.out == "", run.describe()  # nothing trained


# ---- supervised


@pytest.mark.parametrize("seed", SUPERVISED_SEEDS)
def test_supervised_healthy_seed_raises_nothing_and_learns(supervised, seed):
    run = supervised[("healthy", seed)]
    assert run.rc == 0, run.describe()
    assert run.anomalies() == [], run.describe()
    m = assert_summary_matches(run)
    assert (m["done"], m["total"], m["skipped"], m["stopped"]) == (str(SUPERVISED_STEPS),) * 2 + ("0", "no")
    accuracy = [e["performance"] for e in run.events if e["event"] == "epoch_summary"]
    assert len(accuracy) == 10 and accuracy[-1] > accuracy[0] + 0.05 and accuracy[-1] > 0.6, accuracy


@pytest.mark.parametrize("fault", SUPERVISED_FAULTS)
def test_supervised_fault_is_caught_in_its_window_and_not_before(supervised, fault):
    spec, kinds, window = SUPERVISED_FAULTS[fault]
    run = supervised[("fault", fault)]
    assert run.rc == 0, run.describe()
    # Without begin_update each step is an update: the event's update is the step.
    assert_caught(run, spec, kinds, window, injection_first(spec) - 1)
    assert_summary_matches(run)
    skips_obeyed(run)


def test_supervised_skipped_steps_are_not_applied(supervised):
    for fault in ("nan-grad", "loss-scale"):
        run = supervised[("fault", fault)]
        assert [(e["update"], e["action"]) for e in run.events if e["event"] == "response"] == [(150, "skip_step")]
        assert run.checks()[150]["update_ratio"] == 0.0, run.describe()  # step 151 sees no move
        assert run.summary()["skipped"] == "1"


@pytest.mark.xfail(strict=True, reason="measured: a x20 learning rate for one step (lr-spike@150-150) is missed on "
                                       "seeds 1-3: the ratio's z is about 7, under the one-step bound 8.5 "
                                       "(slack 2.5 + bound 6)")
def test_supervised_one_step_lr_spike_is_caught(supervised):
    run = supervised["lr-spike-one-step"]
    assert_caught(run, "lr-spike@150-150", SUPERVISED_FAULTS["lr-spike"][1], 2, 149)


@pytest.mark.parametrize("case", SUPERVISED_BAD)
def test_supervised_bad_arguments_exit_2_naming_the_argument(case, capsys):
    args, names = SUPERVISED_BAD[case]
    code, err = parse_fails(SUPERVISED, args, capsys)
    assert code == 2
    for name in names:
        assert name in err, f"{name!r} not in {err!r}"


def test_supervised_bad_argument_exits_2_from_the_command_line(supervised):
    run = supervised["bad"]
    assert run.rc == 2 and "argument --inject: nan-grad@65: step 65 is not in [1, 64]" in run.err, run.describe()
    assert run.out == "", run.describe()


# ---- the fault tables cover what the examples accept


def test_ppo_faults_are_the_cpp_trainers_and_each_is_tested_or_refused():
    pytest.importorskip("gymnasium", reason="examples/python/requirements.txt: gymnasium for ppo_cartpole.py")
    example = runpy.run_path(str(PPO), run_name="example")
    assert set(example["FAULTS"]) == set(PPO_FAULTS)  # every accepted fault has its test case
    assert tuple(example["LSTM_FAULTS"]) == PPO_LSTM_FAULTS
    options = EXAMPLES.parent / "ppo_lstm" / "options.hpp"  # the C++ trainer's names, where the checkout has them
    if options.exists():
        names = re.search(r"fault_names\{([^}]*)\}", options.read_text()).group(1)
        assert set(re.findall(r'"([a-z-]+)"', names)) == set(PPO_FAULTS) | set(PPO_LSTM_FAULTS)


def test_supervised_faults_are_each_tested():
    assert set(runpy.run_path(str(SUPERVISED), run_name="example")["FAULTS"]) == set(SUPERVISED_FAULTS)


# ---- the wiring budget


@pytest.mark.parametrize("script", [PPO, SUPERVISED], ids=["ppo_cartpole", "supervised"])
def test_simic_wiring_is_at_most_15_marked_lines_and_every_use_is_marked(script):
    source = script.read_text()
    lines = source.splitlines()
    marked = {i for i, line in enumerate(lines, 1) if line.rstrip().endswith("# simic")}
    assert 0 < len(marked) <= 15, f"{len(marked)} lines marked # simic"
    # The count is honest: every line of code that names simic or the session is marked.
    uses = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.NAME and tok.string in ("simic", "session")}
    assert uses <= marked, f"unmarked lines using simic: {sorted(uses - marked)}"
