"""simic.Session from Python: the C++ session's verdicts and events, and
bad input as Python exceptions naming the argument.

Run after `pip install --no-build-isolation .`: `python3 -m pytest tests/python`.
"""
import json
import math

import pytest
import torch

import simic


def backward_pass(model):
    """A backward pass, so that the session's gradient sensors have gradients to read."""
    model.zero_grad()
    model(torch.ones(4, 3)).sum().backward()


@pytest.fixture
def model():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def test_a_finite_loss_proceeds_a_nan_loss_is_skipped_naming_the_kind(model):
    with simic.Session(model, preset="supervised") as s:
        backward_pass(model)
        r = s.step(loss=1.0)
        assert r["action"] == "proceed"
        assert r["anomalies"] == []
        assert r["level"] == "NORMAL"
        backward_pass(model)
        r = s.step(loss=float("nan"))
        assert r["action"] == "skip"
        kinds = {a["kind"]: a for a in r["anomalies"]}
        assert "numerical_instability" in kinds
        assert kinds["numerical_instability"]["severity"] == "critical"


def test_the_fifth_skip_in_a_row_stops_the_fourth_does_not(model):
    # session_options::max_consecutive_skips = 5 (the C++ default).
    with simic.Session(model, preset="supervised") as s:
        actions = []
        for _ in range(5):
            backward_pass(model)
            actions.append(s.step(loss=float("inf"))["action"])
        assert actions == ["skip", "skip", "skip", "skip", "stop"]


def test_the_events_file_holds_each_step_with_the_loss_given(tmp_path, model):
    path = tmp_path / "events.jsonl"
    losses = [2.0, 1.5, 1.25]
    with simic.Session(model, sinks=[simic.JsonlSink(str(path))], preset="supervised") as s:
        for loss in losses:
            backward_pass(model)
            s.step(loss=loss)
    events = [json.loads(line) for line in path.read_text().splitlines() if line]
    steps = [e for e in events if e["event"] == "update"]
    assert [e["loss"] for e in steps] == losses
    assert [e["update"] for e in steps] == [1, 2, 3]


def test_gradient_health_reads_the_gradients_by_hand(tmp_path, model):
    # Linear(3, 2) on ones(4, 3), output summed: every weight's gradient is
    # 4 (six of them) and every bias's 4 (two): norms sqrt(96), sqrt(32), and
    # sqrt(128) over both.
    path = tmp_path / "events.jsonl"
    with simic.Session(model, sinks=[simic.JsonlSink(str(path))], preset="supervised") as s:
        backward_pass(model)
        s.step(loss=1.0)
    events = [json.loads(line) for line in path.read_text().splitlines() if line]
    (health,) = [e for e in events if e["event"] == "gradient_health"]
    assert math.isclose(health["total_norm"], math.sqrt(128.0), rel_tol=1e-12)
    assert math.isclose(health["max_param_norm"], math.sqrt(96.0), rel_tol=1e-12)
    assert math.isclose(health["min_param_norm"], math.sqrt(32.0), rel_tol=1e-12)
    assert health["parameters"] == 2
    assert health["nan_count"] == 0


def test_named_parameters_work_as_the_module_does(model):
    with simic.Session(list(model.named_parameters()), preset="ppo") as s:
        backward_pass(model)
        assert s.step(approx_kl=0.01, ratio_max=1.1, ratio_min=0.9, loss=0.5)["action"] == "proceed"


def test_bad_input_is_a_python_exception_naming_the_argument(model):
    with pytest.raises(ValueError, match="preset: 'ppox' is not one of 'ppo', 'ppo_feedforward', 'supervised', "
                                         "'reference'"):
        simic.Session(model, preset="ppox")
    s = simic.Session(model, preset="supervised")
    with pytest.raises(TypeError, match="unknown argument 'lossx'"):
        s.step(lossx=1.0)
    with pytest.raises(TypeError, match="loss must be a number, not str"):
        s.step(loss="1.0")
    with pytest.raises(TypeError, match="approx_kl must be a number, not bool"):
        s.step(approx_kl=True)
    with pytest.raises(TypeError, match=r"user\['acc'\] must be a number"):
        s.step(loss=1.0, user={"acc": None})
    with pytest.raises(TypeError, match="items must be \\(name, tensor\\)"):
        simic.Session([("w", torch.ones(1), 3)], preset="supervised")
    # The refused steps changed nothing: the next good one proceeds.
    backward_pass(model)
    assert s.step(loss=1.0)["action"] == "proceed"
    s.close()
    with pytest.raises(ValueError, match="the session is closed"):
        s.step(loss=1.0)
    s.close()  # a second close is harmless


def test_performance_needs_progress_which_is_checked_at_its_bounds(model):
    with simic.Session(model, preset="supervised") as s:
        backward_pass(model)
        with pytest.raises(ValueError, match="progress is required with performance"):
            s.step(loss=1.0, performance=0.5)
        with pytest.raises(ValueError, match="episode"):
            s.step(loss=1.0, performance=0.5, progress=(0, 10))
        with pytest.raises(ValueError, match="total"):
            s.step(loss=1.0, performance=0.5, progress=(11, 10))
        for bad in ((1, 2, 3), [1, 10], (-1, 10), (1.0, 10), (True, 10)):
            with pytest.raises(TypeError, match=r"progress must be \(step, total\), two integers >= 0"):
                s.step(loss=1.0, progress=bad)
        with pytest.raises(TypeError, match="user must be a dict"):
            s.step(loss=1.0, user=[("acc", 1.0)])
        with pytest.raises(TypeError, match="user's names must be str"):
            s.step(loss=1.0, user={1: 1.0})
        for at in (1, 10):  # both ends of [1, total]
            backward_pass(model)
            assert s.step(loss=1.0, performance=0.5, progress=(at, 10))["action"] == "proceed"


def events_of(path, kind):
    return [e for e in (json.loads(line) for line in path.read_text().splitlines() if line) if e["event"] == kind]


PPO_SIGNALS = dict(loss=2.0, approx_kl=0.01, ratio_max=1.1, ratio_min=0.9)


def test_updates_epochs_rollouts_and_lstm_state_reach_the_events(tmp_path, model):
    path = tmp_path / "events.jsonl"
    with simic.Session(model, sinks=[simic.JsonlSink(str(path))], preset="ppo") as s:
        s.begin_update()
        # Two sequences of 4 units: h = 0.5 and c = 2 everywhere, so each
        # row's norm is sqrt(4 x 0.25) = 1 and sqrt(4 x 4) = 4 (by hand).
        s.lstm_state(torch.full((2, 4), 0.5), torch.full((2, 4), 2.0))
        s.end_rollout(reward_rate=0.9, explained_variance=0.3)
        for _ in range(2):
            backward_pass(model)
            s.step(progress=(1, 10), **PPO_SIGNALS)
        s.end_epoch(performance=0.7)
        s.begin_update()
        backward_pass(model)
        s.step(progress=(2, 10), **PPO_SIGNALS)
    (lstm,) = events_of(path, "lstm_health")
    assert (lstm["h_norm"], lstm["c_norm"], lstm["h_max_abs"], lstm["c_max_abs"]) == (1.0, 4.0, 0.5, 2.0)
    updates = events_of(path, "update")
    assert [(u["update"], u["epoch"], u["extra"]["step"]) for u in updates] == [(1, 1, 0.0), (1, 1, 1.0), (2, 2, 0.0)]
    assert updates[0]["explained_variance"] == 0.3  # the rollout's figure goes to the next check only
    assert "explained_variance" not in updates[1]
    (epoch,) = events_of(path, "epoch_summary")
    assert epoch["performance"] == 0.7
    assert epoch["updates"] == 1


def test_the_other_calls_refuse_bad_input_and_a_closed_session(model):
    with simic.Session(model, preset="supervised") as s:
        with pytest.raises(ValueError, match="no LSTM detector"):
            s.lstm_state(torch.zeros(1, 2), torch.zeros(1, 2))
        with pytest.raises(TypeError, match="performance must be a number, not str"):
            s.end_epoch(performance="0.7")
        with pytest.raises(TypeError, match="reward_rate must be a number"):
            s.end_rollout(reward_rate=[1.0])
    for call in (lambda: s.begin_update(), lambda: s.end_epoch(), lambda: s.end_rollout(),
                 lambda: s.lstm_state(torch.zeros(1, 2), torch.zeros(1, 2))):
        with pytest.raises(ValueError, match="the session is closed"):
            call()


def test_tensorboard_sink_writes_an_event_file_with_the_run_tags(tmp_path, model):
    with simic.Session(model, sinks=[simic.TensorBoardSink(str(tmp_path))], preset="supervised") as s:
        backward_pass(model)
        s.step(loss=1.0)
    (f,) = list(tmp_path.glob("events.out.tfevents.*"))
    data = f.read_bytes()
    assert b"brain.Event:2" in data  # TensorBoard's file version record, first in every event file
    assert b"loss" in data
    with pytest.raises(TypeError, match="None is not a sink"):
        simic.Session(model, sinks=[None], preset="supervised")


def test_report_draws_the_run_and_names_a_bad_events_file(tmp_path, model):
    events, html = tmp_path / "events.jsonl", tmp_path / "report.html"
    with simic.Session(model, sinks=[simic.JsonlSink(str(events))], preset="supervised") as s:
        for loss in (1.0, float("nan")):
            backward_pass(model)
            s.step(loss=loss)
    simic.report(str(events), str(html))
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lstrip().lower().startswith("<!doctype html>")
    assert "numerical_instability" in page
    with pytest.raises(ValueError, match="simic.report: .*missing.jsonl"):
        simic.report(str(tmp_path / "missing.jsonl"), str(html))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event":"update","update":1}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        simic.report(str(bad), str(html))


def test_the_type_stubs_name_what_the_module_has():
    import ast
    import pathlib

    stub = pathlib.Path(simic.__file__).with_name("__init__.pyi")
    tree = ast.parse(stub.read_text())
    top = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    top |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    assert set(simic.__all__) <= top
    (session,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Session"]
    stubbed = {f.name for f in session.body if isinstance(f, ast.FunctionDef)}
    public = {n for n in dir(simic.Session) if not n.startswith("_")} | {"__init__", "__enter__", "__exit__"}
    assert stubbed == public


def test_options_set_the_cpp_session_options_at_their_bounds(tmp_path, model):
    # max_consecutive_skips: 1 is the least; with 2 the second skip in a row stops.
    for most, want in ((1, ["stop"]), (2, ["skip", "stop"]), (3, ["skip", "skip", "stop"])):
        with simic.Session(model, preset="supervised", max_consecutive_skips=most) as s:
            actions = []
            for _ in range(most):
                backward_pass(model)
                actions.append(s.step(loss=float("inf"))["action"])
            assert actions == want
    # pass_on lets a critical kind through; skip_critical=False lets every critical one through.
    with simic.Session(model, preset="supervised", pass_on=["numerical_instability"]) as s:
        backward_pass(model)
        r = s.step(loss=float("nan"))
        assert r["action"] == "proceed" and r["anomalies"][0]["kind"] == "numerical_instability"
    with simic.Session(model, preset="supervised", skip_critical=False) as s:
        backward_pass(model)
        assert s.step(loss=float("nan"))["action"] == "proceed"
    # skip_on: test_skip_on_skips_a_warning_kind_that_would_otherwise_proceed.
    # watch/ignore: the sensors read only the parameters the globs select
    # (weight's gradient norm sqrt(96), bias's sqrt(32), by hand above).
    for i, (globs, norm) in enumerate(((dict(ignore=["bias"]), 96.0), (dict(watch=["b*"]), 32.0))):
        path = tmp_path / f"events{i}.jsonl"
        with simic.Session(model, sinks=[simic.JsonlSink(str(path))], preset="supervised", **globs) as s:
            backward_pass(model)
            s.step(loss=1.0)
        (health,) = events_of(path, "gradient_health")
        assert health["parameters"] == 1 and math.isclose(health["total_norm"], math.sqrt(norm), rel_tol=1e-12)
    # level="OFF": no check runs, no anomaly is reported, every step proceeds.
    with simic.Session(model, preset="supervised", level="off") as s:
        backward_pass(model)
        assert s.step(loss=float("nan")) == {"action": "proceed", "anomalies": [], "level": "OFF"}


def test_skip_on_skips_a_warning_kind_that_would_otherwise_proceed(model):
    def kl_spike_action(**options):
        with simic.Session(model, preset="ppo", **options) as s:
            r = None
            for k in range(1, 41):  # a steady KL, then one far above its noise
                backward_pass(model)
                kl = 0.01 + 0.0005 * (k % 3) if k < 40 else 0.2
                r = s.step(loss=1.0, approx_kl=kl, ratio_max=1.1, ratio_min=0.9)
            kinds = {a["kind"]: a["severity"] for a in r["anomalies"]}
            assert kinds.get("kl_spike") == "warning", kinds
            return r["action"]
    assert kl_spike_action() == "proceed"
    assert kl_spike_action(skip_on=["kl_spike"]) == "skip"
    assert kl_spike_action(skip_on=["KL_SPIKE"], pass_on=[]) == "skip"  # kind names in any case, as in C++


def test_bad_options_name_the_option_and_the_valid_range(model):
    cases = [
        (dict(bogus=1), TypeError, "unknown option 'bogus'; valid: level, "),
        (dict(level="LOUD"), ValueError, "unknown level 'LOUD'; valid: OFF, MINIMAL, NORMAL, DEBUG"),
        (dict(level=2), TypeError, "level must be a str"),
        (dict(max_consecutive_skips=0), ValueError, r"max_consecutive_skips = 0 is out of range; valid: \[1, "),
        (dict(max_consecutive_skips=2**32), ValueError, r"max_consecutive_skips = 4294967296 is out of range"),
        (dict(max_consecutive_skips=1.5), TypeError, "max_consecutive_skips must be an integer"),
        (dict(max_consecutive_skips=True), TypeError, "max_consecutive_skips must be an integer"),
        (dict(queue_capacity=0), ValueError, r"queue_capacity = 0 is out of range; valid: \[1, "),
        (dict(escalation_epochs=-1), ValueError, r"escalation_epochs = -1 is out of range; valid: \[0, "),
        (dict(close_deadline_ms=-1), ValueError, r"close_deadline_ms = -1 is out of range; valid: \[0, "),
        (dict(skip_on=["nope"]), ValueError, "skip_on: .*unknown anomaly kind 'nope'; valid: ratio_explosion"),
        (dict(pass_on="loss_spike"), TypeError, "pass_on must be a list of str"),
        (dict(watch=[1]), TypeError, "watch must be a list of str"),
        (dict(auto_escalate=1), TypeError, "auto_escalate must be True or False"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            simic.Session(model, preset="supervised", **options)
    for options in (dict(max_consecutive_skips=1), dict(queue_capacity=1), dict(escalation_epochs=0),
                    dict(close_deadline_ms=0), dict(max_consecutive_skips=2**32 - 1)):
        simic.Session(model, preset="supervised", **options).close()  # the bounds themselves are valid


def test_bad_tensors_and_none_name_the_argument_like_the_cpp_checks(model):
    with pytest.raises(TypeError, match="model_or_named_parameters must be a torch.nn.Module or a list of "
                                        r"\(name, tensor\), not NoneType"):
        simic.Session(None)
    with pytest.raises(TypeError, match=r"items must be \(name, tensor\), not \('w', None\)"):
        simic.Session([("w", None)])
    with pytest.raises(ValueError, match="'steps' has dtype Long; valid: a floating-point dtype"):
        simic.Session([("steps", torch.ones(3, dtype=torch.long))])
    with pytest.raises(ValueError, match="'w' is on device meta; valid: cpu or cuda"):
        simic.Session([("w", torch.ones(3, device="meta"))])
    for sensor in (simic.gradient_health, simic.layer_gradients, simic.nan_inf_scan):
        with pytest.raises(ValueError, match="'w' is on device meta"):
            sensor([("w", torch.ones(3, device="meta"))])
        with pytest.raises(TypeError, match="not NoneType"):
            sensor(None)
    with simic.Session(model, preset="ppo") as s:
        with pytest.raises(TypeError, match="lstm_state: h must be a torch.Tensor, not NoneType"):
            s.lstm_state(None, torch.ones(2, 4))
        with pytest.raises(TypeError, match="lstm_state: c must be a torch.Tensor, not float"):
            s.lstm_state(torch.ones(2, 4), 1.0)
        # The C++ sensor's own checks (tests/sensors/lstm_health_test.cpp): dtype, device, shape.
        with pytest.raises(ValueError, match="h.dtype = Long is out of range; valid: a floating-point type"):
            s.lstm_state(torch.ones(2, 4, dtype=torch.long), torch.ones(2, 4))
        with pytest.raises(ValueError, match=r"c.device = cpu is out of range; valid: the device of h \(meta\)"):
            s.lstm_state(torch.ones(2, 4, device="meta"), torch.ones(2, 4))
        with pytest.raises(ValueError, match="c.sizes()"):
            s.lstm_state(torch.ones(3, 4), torch.ones(4, 3))
        with pytest.raises(TypeError, match="entropy must be a dict"):
            s.step(entropy=0.5)
        with pytest.raises(TypeError, match=r"entropy\['policy'\] must be a number, not str"):
            s.step(entropy={"policy": "high"})
        # Nothing refused reached the session: a good step proceeds.
        backward_pass(model)
        assert s.step(**PPO_SIGNALS)["action"] == "proceed"


def test_entropy_and_update_ratio_reach_the_detectors_and_events(tmp_path, model):
    path = tmp_path / "events.jsonl"
    with simic.Session(model, sinks=[simic.JsonlSink(str(path))], preset="ppo") as s:
        backward_pass(model)
        r = s.step(entropy={"action": float("nan")}, update_ratio=0.002, host_module_ratio=0.5, **PPO_SIGNALS)
        assert r["action"] == "skip"
        assert [a["detail"] for a in r["anomalies"]] == ["entropy of head 'action' is nan"]
        backward_pass(model)
        assert s.step(entropy={"action": 0.7}, update_ratio=0.002, **PPO_SIGNALS)["action"] == "proceed"
    update = events_of(path, "update")[1]
    assert update["update_ratio"] == 0.002
    assert update["entropy"] == 0.7  # one head: its normalised entropy (docs/events.md)


def test_every_public_name_has_a_docstring():
    assert simic.process_measured_fields[0] == "time" and "rss_bytes" in simic.process_measured_fields
    for name in set(simic.__all__) - {"process_measured_fields"}:  # a tuple, described in the stubs
        assert (getattr(simic, name).__doc__ or "").strip(), name
    for name in ("step", "begin_update", "end_rollout", "lstm_state", "end_epoch", "close"):
        assert len(getattr(simic.Session, name).__doc__.strip()) > len(name) + 20, name


def test_the_feedforward_ppo_preset_has_no_lstm_detector_and_reads_the_rest(model):
    with simic.Session(model, preset="ppo_feedforward", missing_signal_checks=3) as s:
        with pytest.raises(ValueError, match="no LSTM detector"):
            s.lstm_state(torch.zeros(1, 2), torch.zeros(1, 2))
        kinds = []
        for _ in range(6):  # past the guard's 3 checks with every PPO signal but the LSTM state
            backward_pass(model)
            r = s.step(entropy={"action": 0.7}, update_ratio=0.002, progress=(1, 10), explained_variance=0.5,
                       performance=1.0, **PPO_SIGNALS)
            kinds += [a["kind"] for a in r["anomalies"]]
        assert kinds == []
        backward_pass(model)
        assert s.step(approx_kl=5.0, ratio_max=1.1, ratio_min=0.9, loss=2.0)["anomalies"][0]["kind"] == "kl_extreme"
    with simic.Session(model, preset="ppo", missing_signal_checks=3) as s:  # the LSTM detector starves by the 3rd
        kinds = []
        for _ in range(3):
            backward_pass(model)
            kinds += [a["kind"] for a in s.step(entropy={"action": 0.7}, update_ratio=0.002, progress=(1, 10),
                                                explained_variance=0.5, performance=1.0, **PPO_SIGNALS)["anomalies"]]
        assert kinds == ["signal_missing"]
