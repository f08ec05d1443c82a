"""Sets the fused CUDA back end's figures (bench_cuda, Google Benchmark JSON)
beside the reference pipeline's (shared/bench/anchor_ops.py --out JSONL),
measured in the same run on the same card, and prints one Markdown table:
case, sensor, simic multiple of the floor, reference multiple, extra memory,
host syncs per call, and the issue's goal.

  python3 bench/gpu/table.py anchor.jsonl bench_cuda.json [--machine machine.txt] [--out table.md]
      [--variant bench_cuda_basic8.json --variant-label "basic set at 32 registers"]

Multiples: "simic x floor" is simic's sync-path wall time (one complete call,
its wait included) over anchor_ops' floor (a float32 sum over one flat
buffer of the same bytes, with its .item()), both timed the same way; the
"device" multiple is the fused kernels' device time (events) over LibTorch's
sum timed by events in bench_cuda. For the NaN/Inf scan the floor is two
reads (weights and gradients), for simic and the reference alike.
Reference host syncs are counted from anchor_ops.py's code: collect_enhanced
1 (.tolist()), per_layer 1, numerical_scan 4 per parameter + 2.
"""
import argparse, json, sys

# sensor key -> (label, anchor fn, floor reads, reference host syncs (n -> count))
SENSORS = [
    ("gradient_health", "gradient health (all counts)", "anchor_collect_enhanced", 1, lambda n: 1),
    ("per_layer", "per-layer statistics", "anchor_per_layer_debug", 1, lambda n: 1),
    ("nan_inf_scan", "NaN/Inf scan, weights + grads", "anchor_numerical_scan", 2, lambda n: 4 * n + 2),
]
# (case, sensor key or special) -> goal text and a predicate on the row's figures:
# x (sync wall time over the floor), xd (device time over the device floor),
# ms (sync wall time), gbs (device GB/s), us (enqueue host time), syncs.
GOALS = {
    ("large_100M_fp32", "gradient_health"): (">= 3.5 TB/s (device)", lambda r: (r["gbs"] or 0) >= 3500),
    ("large_100M_bf16", "gradient_health"): (">= 3.0 TB/s (device)", lambda r: (r["gbs"] or 0) >= 3000),
    ("large_100M_fp32", "per_layer"): (">= 3.0 TB/s (device)", lambda r: (r["gbs"] or 0) >= 3000),
    ("large_100M_fp32", "nan_inf_scan"): ("<= 1.0x of both reads (device)", lambda r: r["xd"] is not None and r["xd"] <= 1.0),
    ("ppo_lstm_policy", "gradient_health"): ("<= 0.03 ms sync path", lambda r: r["ms"] <= 0.03),
    ("ppo_lstm_policy", "async_enqueue"): ("<= 20 us, 0 syncs", lambda r: r["us"] <= 20 and r["syncs"] == 0),
    ("large_100M_fp32", "async_enqueue"): ("<= 40 us, 0 syncs", lambda r: r["us"] <= 40 and r["syncs"] == 0),
}


def load_anchor(path):
    info, rows = {}, {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "fn" not in r:
                info = r
                continue
            rows[(r["case"], r["fn"])] = r
    return info, rows


def load_bench(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:  # bench_cuda did not build or run: the reference alone
        print(f"(no simic results: {e})", file=sys.stderr)
        data = {}
    out = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"]).split("/iterations:")[0]
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
        out[name] = dict(seconds=b["real_time"] * scale, extra=b.get("extra_bytes", 0.0),
                         syncs=b.get("host_syncs", 0.0), bytes=b.get("bytes", 0.0), error=b.get("error_message"))
    return data.get("context", {}), out


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("anchor")
    ap.add_argument("bench")
    ap.add_argument("--machine")
    ap.add_argument("--out")
    ap.add_argument("--variant", help="bench_cuda JSON of the same device benchmarks under other NVRTC options")
    ap.add_argument("--variant-label", default="")
    a = ap.parse_args()
    info, anchor = load_anchor(a.anchor)
    ctx, bench = load_bench(a.bench)
    cases = []
    for (case, fn) in anchor:
        if fn == "floor_one_read_sum" and case not in cases:
            cases.append(case)
    lines = []
    if a.machine:
        with open(a.machine) as f:
            lines += ["```", f.read().strip(), "```", ""]
    lines.append(f"reference: torch {info.get('torch', '?')} on {info.get('device', '?')}; "
                 f"simic: bench_cuda ({ctx.get('date', '')})")
    lines.append("")
    lines.append("| case | sensor | simic ms | simic x floor | simic device x device floor | GB/s (device) "
                 "| reference ms | reference x floor | extra MB simic / ref | host syncs simic / ref | goal |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    missed = []
    for case in cases:
        floor = anchor[(case, "floor_one_read_sum")]["median_s"]
        dev_floor = bench.get(f"{case}/floor/device", {}).get("seconds")
        n = anchor[(case, "floor_one_read_sum")].get("tensors", 0)
        for key, label, fn, reads, ref_syncs in SENSORS:
            s = bench.get(f"{case}/{key}/sync")
            d = bench.get(f"{case}/{key}/device")
            ref = anchor.get((case, fn))
            x = s["seconds"] / (reads * floor) if s else None
            xd = d["seconds"] / (reads * dev_floor) if d and dev_floor else None
            gbs = d["bytes"] / d["seconds"] / 1e9 if d and d["seconds"] > 0 else None
            rx = ref["median_s"] / (reads * floor) if ref else None
            goal_txt, ok = "", None
            if (case, key) in GOALS and s:
                goal_txt, pred = GOALS[(case, key)]
                ok = pred(dict(x=x, xd=xd, ms=s["seconds"] * 1e3, gbs=gbs))
                goal_txt += " " + ("met" if ok else "MISSED")
                if not ok:
                    missed.append(f"{case} / {label}")
            lines.append(
                f"| {case} | {label} | {fmt(s and s['seconds'] * 1e3, '.3f')} | {fmt(x, '.2f')} | {fmt(xd, '.2f')} "
                f"| {fmt(gbs, '.0f')} | {fmt(ref and ref['median_s'] * 1e3, '.3f')} | {fmt(rx, '.1f')} "
                f"| {fmt(s and s['extra'] / 1e6, '.2f')} / {fmt(ref and ref.get('peak_extra_bytes', 0) / 1e6, '.1f')} "
                f"| {fmt(s and s['syncs'], '.0f')} / {ref_syncs(n)} | {goal_txt} |")
        for what, label in (("floor", "floor: LibTorch's sum (device)"), ("ceiling", "ceiling: float4 read kernel (device)"),
                            ("ceiling_blocked", "the same reads, a range per block (device)")):
            c = bench.get(f"{case}/{what}/device")
            if c and c["seconds"] > 0:
                lines.append(f"| {case} | {label} | {c['seconds'] * 1e3:.3f} | | | {c['bytes'] / c['seconds'] / 1e9:.0f} "
                             f"| | | | | |")
        e = bench.get(f"{case}/async_enqueue")
        if e:
            us = e["seconds"] * 1e6
            goal_txt = ""
            if (case, "async_enqueue") in GOALS:
                goal_txt, pred = GOALS[(case, "async_enqueue")]
                ok = pred(dict(us=us, syncs=e["syncs"]))
                goal_txt += " " + ("met" if ok else "MISSED")
                if not ok:
                    missed.append(f"{case} / async enqueue")
            lines.append(f"| {case} | async enqueue (host time) | {us / 1e3:.4f} ({us:.1f} us) | | | | | | "
                         f"{e['extra'] / 1e6:.2f} / - | {e['syncs']:.0f} / 1+ | {goal_txt} |")
        ds = bench.get(f"{case}/gradient_health/device_summary_sync")
        if ds:
            lines.append(f"| {case} | gradient health, device-finished summary (sync) | {ds['seconds'] * 1e3:.3f} "
                         f"| {ds['seconds'] / floor:.2f} | | | | | {ds['extra'] / 1e6:.2f} / - | {ds['syncs']:.0f} / - | |")
    l = bench.get("lstm_state_2x64x512/lstm_health/sync")
    r = anchor.get(("lstm_state_2x64x512", "anchor_lstm_health"))
    if l or r:
        lines.append(f"| lstm_state_2x64x512 | LSTM health (sync) | {fmt(l and l['seconds'] * 1e3, '.3f')} | | | | "
                     f"{fmt(r and r['median_s'] * 1e3, '.3f')} | | | {fmt(l and l['syncs'], '.0f')} / 1 | |")
    if a.variant:  # the same device benchmarks under other NVRTC options (bench_cuda_basic8.json)
        _, var = load_bench(a.variant)
        lines.append("")
        lines.append(f"variant {a.variant_label}: device GB/s, default / variant")
        lines.append("")
        lines.append("| benchmark | default GB/s | variant GB/s |")
        lines.append("| --- | ---: | ---: |")
        for name, v in var.items():
            d = bench.get(name)
            g = lambda r: r["bytes"] / r["seconds"] / 1e9 if r and r["seconds"] > 0 else None
            lines.append(f"| {name} | {fmt(g(d), '.0f')} | {fmt(g(v), '.0f')} |")
    errors = [f"{k}: {v['error']}" for k, v in bench.items() if v.get("error")]
    lines.append("")
    lines.append("goals missed: " + (", ".join(missed) if missed else "none"))
    if errors:
        lines.append("benchmark errors: " + "; ".join(errors))
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
