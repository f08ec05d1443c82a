#!/usr/bin/env python3
"""TensorBoard reads back every scalar of a trainer run.

Runs examples/ppo_lstm with --events and --tensorboard (faults injected, so
anomalies, escalation, skipped steps and NaN figures occur), reads the event
file with pip tensorboard's EventAccumulator, and compares it with the
scalars that the JSONL file of the same run implies under the table of
docs/events.md, derived here independently: every (tag, step, wall time,
float32 value) must be found, and nothing else.

Usage: tensorboard_readback_test.py PPO_LSTM_BINARY
       tensorboard_readback_test.py --writer NAMES_WRITER
(run with a Python that has pip's tensorboard; scripts/tensorboard_env.sh)
--writer: instead of the trainer, tests/emit/tensorboard_names_writer, whose
events have hostile names (invalid UTF-8, repeated metric names), is read
back the same way: TensorBoard must read every record, under the names the
JSONL file has.
"""
import collections
import glob
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

from tensorboard.backend.event_processing import event_accumulator

LEVELS = {"OFF": 0, "MINIMAL": 1, "NORMAL": 2, "DEBUG": 3}


def number(x):
    """A JSONL figure: non-finite numbers are written as strings."""
    if isinstance(x, str):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[x]
    if isinstance(x, bool):
        return 1.0 if x else 0.0
    return float(x)


def float32(x):
    """x rounded to float32 as IEEE 754 does (struct refuses values past the range)."""
    if math.isnan(x) or math.isinf(x):
        return x
    fmax = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
    if abs(x) > fmax:
        return math.copysign(math.inf if abs(x) >= fmax + 2.0**103 else fmax, x)
    return struct.unpack("<f", struct.pack("<f", x))[0]


def key(x):
    return "nan" if math.isnan(x) else x


def expected_scalars(lines):
    """(tag, step, wall_time or None, value) of every scalar the table implies."""
    out = []
    by_kind = collections.Counter()
    total = 0
    for e in lines:
        name, step, t = e["event"], e["update"], e["time"]

        def put(tag, v):
            out.append((tag, step, t, number(v)))

        def put_fields(prefix, fields, src=e):
            for f in fields:
                if f in src:
                    put(prefix + f, src[f])

        if name == "update":
            put_fields("update/", ["loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                                   "ratio_max", "ratio_min", "explained_variance", "learning_rate", "update_ratio"])
            for k, v in e.get("extra", {}).items():
                put("update/" + k, v)
        elif name == "gradient_health":
            put_fields("gradients/", ["total_norm", "health", "min_param_norm", "max_param_norm", "vanishing",
                                      "exploding", "nan_count", "inf_count", "host_module_ratio"])
        elif name == "lstm_health":
            put_fields("lstm/", ["h_norm", "c_norm", "h_max_abs", "c_max_abs", "healthy"])
        elif name == "anomaly":
            by_kind[e["anomaly"]] += 1
            total += 1
            put("anomalies/" + e["anomaly"], by_kind[e["anomaly"]])
            put("anomalies/total", total)
            put("telemetry/level", LEVELS[e["level_after"]])
        elif name in ("escalation_start", "escalation_end"):
            put("telemetry/level", LEVELS[e["to"]])
        elif name == "layer_gradients":
            for layer in e["layers"]:
                put("layers/%s/norm" % layer["name"], layer["norm"])
                put("layers/%s/health" % layer["name"], layer["health"])
        elif name == "nan_inf_scan":
            put("nan_inf_scan/offenders", len(e["offenders"]))
            put_fields("nan_inf_scan/", ["max_abs_weight", "max_abs_grad"])
        elif name == "ratio_diagnostic":
            put("ratio_diagnostic/outliers", len(e["outliers"]))
            put_fields("ratio_diagnostic/", ["max_abs_logprob_diff"])
        elif name == "response":
            put_fields("response/", ["total_skips", "consecutive_skips"])
            if e["action"] == "stop":
                put("response/stop", 1)
        elif name == "performance_degradation":
            put_fields("performance/", ["current", "rolling_mean", "drop", "threshold"])
        elif name == "memory":
            put_fields("memory/", ["rss_bytes"])
            for f in ["allocated_bytes", "reserved_bytes", "peak_allocated_bytes"]:
                if f in e:
                    put("memory/device_" + f, e[f])
        elif name == "epoch_summary":
            put_fields("epoch/", ["performance", "updates", "anomalies"])
            put("telemetry/level", LEVELS[e["level_after"]])
            for k, v in e.get("metrics", {}).items():
                put("epoch/" + k, v)
        elif name == "phase_timings":
            for phase, p in e["phases"].items():
                put("phases/%s/total_s" % phase, p["total_s"])
                put("phases/%s/mean_s" % phase, p["mean_s"])
        elif name == "hub_stats":
            for f in ["emitted", "delivered", "dropped", "failed", "undelivered"]:
                out.append(("hub/" + f, step, None, number(e[f])))  # its own clock: time not compared
    return out


def read_back(jsonl, tb_file):
    """(expected, found, lines): the JSONL's implied scalars and TensorBoard's, as Counters."""
    with open(jsonl, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    expected = collections.Counter()
    for tag, step, t, v in expected_scalars(lines):
        expected[(tag, step, t, key(float32(v)))] += 1
    acc = event_accumulator.EventAccumulator(tb_file, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    found = collections.Counter()
    for tag in acc.Tags()["scalars"]:
        for s in acc.Scalars(tag):
            t = None if tag.startswith("hub/") else s.wall_time
            found[(tag, s.step, t, key(s.value))] += 1
    return expected, found, lines


def compare(expected, found):
    missing = expected - found
    extra = found - expected
    for what, c in (("missing from TensorBoard", missing), ("not implied by the JSONL", extra)):
        for k in sorted(c, key=str)[:10]:
            print("FAIL: %s: %r x%d" % (what, k, c[k]))
    if missing or extra:
        sys.exit(1)


def names_main(writer):
    with tempfile.TemporaryDirectory() as work:
        run = subprocess.run([writer, work], capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            sys.exit("FAIL: %s exit %d\n%s%s" % (writer, run.returncode, run.stdout, run.stderr))
        files = glob.glob(os.path.join(work, "tb", "events.out.tfevents.*"))
        if len(files) != 1:
            sys.exit("FAIL: expected one event file, found %r" % files)
        expected, found, lines = read_back(os.path.join(work, "events.jsonl"), files[0])
        compare(expected, found)
        tags = {k[0] for k in found}
        print("%d scalars under %d tags read back: %s" % (sum(found.values()), len(tags), sorted(tags)))
        for need in ("update/layer\ufffd.weight", "update/ok#2", "update/ok#3", "update/lat\ufffd#2",
                     "phases/roll\ufffd#2/total_s", "epoch/acc#2", "update/loss"):
            if need not in tags:
                sys.exit("FAIL: no tag %r" % need)
        if sum(1 for e in lines if e["event"] == "update") != 2:
            sys.exit("FAIL: expected 2 update events in the JSONL")
        print("ok: every record read back; names replaced and kept apart as in the JSONL")


def main():
    if sys.argv[1] == "--writer":
        names_main(sys.argv[2])
        return
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as work:
        jsonl = os.path.join(work, "events.jsonl")
        tb = os.path.join(work, "tb")
        cmd = [binary, "--updates", "16", "--quiet", "--events", jsonl, "--tensorboard", tb,
               "--profile", os.path.join(work, "profile"),
               "--inject", "lr-spike@6", "--inject", "nan-grad@11", "--inject", "lstm-explode@13"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        if run.returncode not in (0, 3):
            sys.exit("FAIL: trainer exit %d\n%s%s" % (run.returncode, run.stdout, run.stderr))
        files = glob.glob(os.path.join(tb, "events.out.tfevents.*"))
        if len(files) != 1:
            sys.exit("FAIL: expected one event file in %s, found %r" % (tb, files))
        if ("tensorboard: " + files[0]) not in run.stdout:
            sys.exit("FAIL: the trainer did not print the event file's path\n" + run.stdout)

        expected, found, lines = read_back(jsonl, files[0])
        n = sum(expected.values())
        kinds = {e["event"] for e in lines}
        print("%d scalars under %d tags from %d events (%s); TensorBoard read back %d"
              % (n, len({k[0] for k in expected}), len(lines), ", ".join(sorted(kinds)), sum(found.values())))
        compare(expected, found)
        # The run must have exercised what the table covers.
        need = {"anomaly", "escalation_start", "response", "layer_gradients", "nan_inf_scan", "phase_timings",
                "epoch_summary", "lstm_health", "gradient_health", "update", "memory", "hub_stats"}
        if not need <= kinds:
            sys.exit("FAIL: the run gave no %s events" % sorted(need - kinds))
        if not any(math.isnan(k[3]) if isinstance(k[3], float) else k[3] == "nan" for k in expected):
            sys.exit("FAIL: no NaN figure was written; the nan-grad fault did not show")
        print("ok: 100% of the scalars read back, values exact to float32")


if __name__ == "__main__":
    main()
