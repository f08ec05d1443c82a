"""The same signals give the same events from Python as from C++: one
script of session calls is played through simic.Session here and through
the C++ session by events_replay (tests/python/events_replay.cpp, built by
meson beside the C++ tests, named by SIMIC_EVENTS_REPLAY), and the two
JSONL files must match line for line except for the fields measured of the
process (simic.process_measured_fields: each line's time stamp, process
byte counts).
"""
import json
import math
import os
import subprocess

import pytest
import torch

import simic

REPLAY = os.environ.get("SIMIC_EVENTS_REPLAY")


def flat(t):
    """float32 -> float: exact, and exact again back in C++; JSON has no NaN or Inf, so those go as text."""
    return [x if math.isfinite(x) else str(x) for x in t.reshape(-1).tolist()]


def make_script(preset, seed, steps):
    """A run with healthy stretches, faults and the preset's other calls."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"core.weight": [8, 4], "core.bias": [8], "head.weight": [2, 8]}
    params = [{"name": n, "shape": s, "value": flat(torch.randn(s, generator=g) * 0.3)} for n, s in shapes.items()]
    calls = []
    for k in range(1, steps + 1):
        grads = [torch.randn(s, generator=g) * 0.01 for s in shapes.values()]
        loss = 1.0 / math.sqrt(k) + 0.01 * float(torch.rand(1, generator=g))
        if k == steps // 2:
            grads[0][0, 0] = float("nan")  # numerical_instability: a skipped step
        if k == steps // 2 + 5:
            loss *= 1e6  # loss_extreme
        if k == steps // 2 + 9:
            grads = [x * 1e6 for x in grads]  # gradient_exploding
        sig = {"loss": loss, "progress": [k, steps], "user": {"tokens_per_s": 1000.0 + k, "lr": 1e-3}}
        if preset != "supervised":
            calls.append({"call": "begin_update"})
            sig.update(approx_kl=0.01 + 0.001 * float(torch.rand(1, generator=g)), ratio_max=1.1, ratio_min=0.9,
                       explained_variance=0.5, entropy={"action": 0.8, "option": 0.6}, performance=100.0 + k)
            if k == steps // 2 + 12:
                sig.update(approx_kl=5.0, ratio_max=40.0)  # kl_extreme, ratio_explosion
            if preset != "ppo_feedforward":
                h = torch.randn(2, 4, generator=g) * 0.5
                calls.append({"call": "lstm_state", "shape": [2, 4], "h": flat(h), "c": flat(h * 2)})
        calls.append({"call": "step", "grads": [flat(x) for x in grads], "signals": sig})
        if preset != "supervised" and k % 4 == 0:
            calls.append({"call": "end_rollout", "reward_rate": 0.5, "explained_variance": 0.4})
        if k % 10 == 0:
            calls.append({"call": "end_epoch", "performance": 0.1 * k})
    return {"preset": preset, "parameters": params, "calls": calls}


def tensor(values, shape):
    return torch.tensor([float(x) for x in values], dtype=torch.float32).reshape(shape)


def play_in_python(script, events):
    params = [(p["name"], tensor(p["value"], p["shape"]).requires_grad_()) for p in script["parameters"]]
    with simic.Session(params, sinks=[simic.JsonlSink(str(events))], preset=script["preset"]) as s:
        for c in script["calls"]:
            kind = c["call"]
            if kind == "begin_update":
                s.begin_update()
            elif kind == "end_epoch":
                s.end_epoch(c["performance"])
            elif kind == "end_rollout":
                s.end_rollout(reward_rate=c["reward_rate"], explained_variance=c["explained_variance"])
            elif kind == "lstm_state":
                s.lstm_state(tensor(c["h"], c["shape"]), tensor(c["c"], c["shape"]))
            else:
                for (_, p), g in zip(params, c["grads"]):
                    p.grad = tensor(g, p.shape)
                sig = dict(c["signals"])
                sig["progress"] = tuple(sig["progress"])
                s.step(**sig)


def comparable(path):
    lines = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        for f in simic.process_measured_fields:  # the C++ list: time, process bytes
            event.pop(f, None)
        lines.append(event)
    return lines


# The script's faults each preset's detectors are expected to report (the
# reference preset reads no loss; the supervised one no PPO figures).
CAUGHT = {
    "supervised": {"numerical_instability", "loss_extreme", "gradient_exploding"},
    "ppo": {"numerical_instability", "loss_extreme", "gradient_exploding", "kl_extreme", "ratio_explosion"},
    "ppo_feedforward": {"numerical_instability", "loss_extreme", "gradient_exploding", "kl_extreme", "ratio_explosion"},
    "reference": {"numerical_instability", "gradient_exploding", "kl_extreme", "ratio_explosion"},
}


@pytest.mark.skipif(not REPLAY, reason="SIMIC_EVENTS_REPLAY (the C++ events_replay program) is not set")
@pytest.mark.parametrize("preset,seed", [("supervised", 1), ("supervised", 2), ("ppo", 1), ("ppo_feedforward", 4),
                                         ("reference", 3)])
def test_python_and_cpp_write_the_same_events(tmp_path, preset, seed):
    script = make_script(preset, seed, steps=60)
    (tmp_path / "script.json").write_text(json.dumps(script))
    subprocess.run([REPLAY, str(tmp_path / "script.json"), str(tmp_path / "cpp.jsonl")], check=True, timeout=120)
    play_in_python(script, tmp_path / "py.jsonl")
    cpp, py = comparable(tmp_path / "cpp.jsonl"), comparable(tmp_path / "py.jsonl")
    kinds = {e["anomaly"] for e in cpp if e["event"] == "anomaly"}
    # The script's faults reached the detectors: the comparison covers anomaly events, not only healthy ones.
    assert CAUGHT[preset] <= kinds
    assert len(py) == len(cpp)
    for i, (a, b) in enumerate(zip(py, cpp)):
        assert a == b, f"line {i + 1}"


@pytest.mark.skipif(not REPLAY, reason="SIMIC_EVENTS_REPLAY (the C++ events_replay program) is not set")
def test_the_comparison_sees_a_one_ulp_difference(tmp_path):
    """The same-events check is not blind: one gradient one float32 ulp apart changes a line."""
    script = make_script("supervised", 1, steps=12)
    (tmp_path / "script.json").write_text(json.dumps(script))
    subprocess.run([REPLAY, str(tmp_path / "script.json"), str(tmp_path / "cpp.jsonl")], check=True, timeout=120)
    g = tensor(script["calls"][3]["grads"][2], [-1])
    g[0] = torch.nextafter(g[0], torch.tensor(float("inf")))
    script["calls"][3]["grads"][2] = flat(g)
    play_in_python(script, tmp_path / "py.jsonl")
    assert comparable(tmp_path / "py.jsonl") != comparable(tmp_path / "cpp.jsonl")
