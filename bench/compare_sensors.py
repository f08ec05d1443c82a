#!/usr/bin/env python3
"""Runs bench_sensors beside the reference pipeline (shared/bench/anchor_ops.py)
on the same machine and prints one table: sensor, simic multiple of the
one-read floor, reference multiple of its floor (each measured in its own run
against a floor timed in that same run).

  python3 bench/compare_sensors.py [--build build] [--device cpu]
      [--anchor /work/shared/bench/anchor_ops.py] [--python /usr/bin/python3]
      [--simic-jsonl F] [--anchor-jsonl F]   (reuse earlier results instead of running)
"""
import argparse, json, os, subprocess, sys, tempfile

# sensor label, simic fn, reference fn, goal (x floor, on mid_25M) or None
ROWS = [
    ("gradient health (norms, counts, health)", "simic_gradient_health", "anchor_collect_enhanced", 2.0),
    ("gradient health, basic figures only", "simic_gradient_health", "anchor_collect_basic", None),
    ("gradient health, LibTorch-ops back end", "simic_gradient_health_torch_ops", None, None),
    ("total norm (fp32 accumulation)", "simic_total_norm", "anchor_grad_norm_surrogate", None),
    ("per-layer statistics", "simic_layer_gradients", "anchor_per_layer_debug", 3.0),
    ("NaN/Inf scan, weights + gradients", "simic_nan_inf_scan", "anchor_numerical_scan", 2.0),
    ("relative update size (weights vs their copy)", "simic_parameter_update", None, None),
]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return {(r["case"], r["fn"]): r for r in rows if "case" in r and "fn" in r}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(here, "..", "build"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--anchor", default="/work/shared/bench/anchor_ops.py")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--simic-jsonl")
    ap.add_argument("--anchor-jsonl")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="simic-bench-")
    simic_path = a.simic_jsonl or os.path.join(tmp, "simic.jsonl")
    anchor_path = a.anchor_jsonl or os.path.join(tmp, "anchor.jsonl")
    if not a.simic_jsonl:
        exe = os.path.join(a.build, "bench", "bench_sensors")
        subprocess.run([exe, f"--device={a.device}", f"--out={simic_path}"], check=True, stdout=sys.stderr)
    if not a.anchor_jsonl:
        subprocess.run([a.python, a.anchor, "--device", a.device, "--out", anchor_path], check=True, stdout=sys.stderr)
    simic, anchor = load(simic_path), load(anchor_path)

    def xfloor(table, case, fn, floor_fn):
        r, f = table.get((case, fn)), table.get((case, floor_fn))
        return None if r is None or f is None else r["median_s"] / f["median_s"]

    cases = sorted({c for (c, _) in simic}, key=lambda c: [k for (k, _) in simic].index(c))
    print("| case | sensor | simic (x floor) | reference (x floor) | goal |")
    print("| --- | --- | ---: | ---: | --- |")
    for case in cases:
        if case.startswith("lstm"):
            continue
        for label, sfn, afn, goal in ROWS:
            s = xfloor(simic, case, sfn, "floor_one_read_sum")
            r = xfloor(anchor, case, afn, "floor_one_read_sum") if afn else None
            g = ""
            if goal is not None and case == "mid_25M" and s is not None:
                g = f"<= {goal:g}x: {'met' if s <= goal else 'MISSED'}"
            fmt = lambda v: "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.0f}")
            print(f"| {case} | {label} | {fmt(s)} | {fmt(r)} | {g} |")
        fs, fa = simic.get((case, "floor_one_read_sum")), anchor.get((case, "floor_one_read_sum"))
        if fs and fa:
            print(f"| {case} | floor (ms) | {fs['median_s'] * 1e3:.3f} ms | {fa['median_s'] * 1e3:.3f} ms | |")
    ls = simic.get(("lstm_state_2x64x512", "simic_lstm_health"))
    la = anchor.get(("lstm_state_2x64x512", "anchor_lstm_health"))
    if ls or la:
        fmt = lambda r: "-" if r is None else f"{r['median_s'] * 1e3:.3f} ms"
        print(f"| lstm_state_2x64x512 | LSTM health (absolute) | {fmt(ls)} | {fmt(la)} | |")


if __name__ == "__main__":
    main()
