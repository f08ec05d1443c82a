#!/usr/bin/env python3
"""The example trainer's events are what they were: a fixed-seed run
(--seed 3 --updates 60 --inject lr-spike@30 --level debug) writes the JSONL
kept in tests/examples/golden/, line for line, but for what may differ
between runs: "time", the memory event's byte counts, and the run's wall
time. A refactor that changes behaviour shows here; a change meant to alter
the events regenerates the file (--regenerate) and says why in its commit.

The trainer is deterministic for a LibTorch build on one machine kind; the
golden file names the LibTorch version it was made with, and another
version (pip's 2.x in the test command's second stage) skips (exit 77).

Usage: golden_events_test.py TRAINER GOLDEN.jsonl.gz LIBTORCH_VERSION [--regenerate]"""
import gzip, json, math, os, subprocess, sys, tempfile

ARGS = ["--seed", "3", "--updates", "60", "--inject", "lr-spike@30", "--level", "debug"]
trainer, golden_path, libtorch = sys.argv[1], sys.argv[2], sys.argv[3]
regenerate = "--regenerate" in sys.argv[4:]


def normalized(line):
    """An event without what differs between identical runs."""
    j = json.loads(line)
    j.pop("time", None)
    if j.get("event") == "memory":
        j = {k: v for k, v in j.items() if not k.endswith("_bytes")}
    return j


def same(a, b, path="$"):
    """Exact equality, but for floats: within 1e-12 relative (the summation
    order of a float64 mean may differ from a reference loop)."""
    if isinstance(a, float) and isinstance(b, float):
        if a == b or (math.isnan(a) and math.isnan(b)):
            return None
        return None if abs(a - b) <= 1e-12 * max(abs(a), abs(b)) else f"{path}: {a!r} != {b!r}"
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            return f"{path}: keys {list(a.keys())} != {list(b.keys())}"
        for k in a:
            d = same(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


with tempfile.TemporaryDirectory() as tmp:
    events = os.path.join(tmp, "events.jsonl")
    run = subprocess.run([trainer, *ARGS, "--events", events], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        print(f"the trainer exited {run.returncode}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
        sys.exit(1)
    got = [normalized(l) for l in open(events)]

if regenerate:
    with gzip.open(golden_path, "wt") as f:
        f.write(json.dumps({"golden": {"args": ARGS, "libtorch": libtorch}}) + "\n")
        for j in got:
            f.write(json.dumps(j, separators=(",", ":")) + "\n")
    print(f"wrote {golden_path}: {len(got)} events, LibTorch {libtorch}")
    sys.exit(0)

with gzip.open(golden_path, "rt") as f:
    header = json.loads(f.readline())["golden"]
    want = [json.loads(l) for l in f]
if header["libtorch"] != libtorch or header["args"] != ARGS:
    print(f"skipped: the golden events were made with LibTorch {header['libtorch']} and {header['args']}; "
          f"this build is LibTorch {libtorch}")
    sys.exit(77)

failures = []
if len(got) != len(want):
    failures.append(f"{len(got)} events written, {len(want)} in the golden file")
for i, (a, b) in enumerate(zip(want, got)):
    d = same(a, b)
    if d:
        failures.append(f"line {i + 1} ({a.get('event')}, update {a.get('update')}): {d}")
        if len(failures) >= 10:
            break
if failures:
    print("the events differ from tests/examples/golden:")
    print("\n".join(failures))
    sys.exit(1)
print(f"{len(got)} events as in the golden file (LibTorch {libtorch})")
