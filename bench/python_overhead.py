"""The Python module's cost beside C++ (issue goals: Session.step at most
10 us more than the C++ step on the same signals; the sensors within 5 % of
C++; no memory growth over 100,000 steps). Runs bench/python_overhead.cpp for
the C++ side and the same calls here, each (after an untimed repetition) the
median over repetitions of the mean per call, one thread, and prints a
markdown table.

    python bench/python_overhead.py --cpp build-bench/bench/python_overhead
        [--steps 20000] [--repetitions 7] [--rss-steps 100000]

Run with the Python that has `simic` installed (pip install .)."""
import argparse
import json
import resource
import statistics
import subprocess
import time

import torch

import simic

# (elements, tensors); 400 one-element tensors isolate the cost per tensor of the call itself.
MODELS = [(10_000, 4), (400, 400), (1_200_000, 24), (12_000_000, 400)]


def make_model(total, tensors):
    """As make_model in python_overhead.cpp: the same shapes, seed and gradients."""
    torch.manual_seed(0)
    out = []
    for i in range(tensors):
        p = torch.randn(total // tensors).requires_grad_()
        p.grad = torch.randn(total // tensors) * 1e-2
        out.append((f"p{i}", p))
    return out


def median_ns(steps, reps, f):
    means = []
    for i in range(steps):  # warm-up, untimed, as in python_overhead.cpp
        f(i)
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for i in range(steps):
            f(i)
        means.append((time.perf_counter_ns() - t0) / steps)
    return statistics.median(means)


def python_side(params, steps, reps):
    sup = simic.Session(params, preset="supervised")
    ppo = simic.Session(params, preset="ppo")
    sensor_steps = max(1, steps // 10)
    out = {
        "supervised_step": median_ns(steps, reps, lambda i: sup.step(loss=1.0 + 1e-3 * (i % 7))),
        "ppo_step": median_ns(steps, reps, lambda i: ppo.step(loss=1.0 + 1e-3 * (i % 7),
                                                            approx_kl=0.01 + 1e-4 * (i % 5),
                                                            ratio_max=1.1, ratio_min=0.9)),
        "gradient_health": median_ns(sensor_steps, reps, lambda i: simic.gradient_health(params)),
        "layer_gradients": median_ns(sensor_steps, reps, lambda i: simic.layer_gradients(params)),
        "nan_inf_scan": median_ns(sensor_steps, reps, lambda i: simic.nan_inf_scan(params)),
    }
    sup.close()
    ppo.close()
    return out


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def rss_over_steps(total_steps):
    """RSS after 10 % of the steps and at the end, on the small model, with a JSONL sink."""
    params = make_model(*MODELS[0])
    marks = {}
    with simic.Session(params, sinks=[simic.JsonlSink("/dev/null")], preset="ppo") as s:
        for i in range(1, total_steps + 1):
            s.step(loss=1.0 + 1e-3 * (i % 7), approx_kl=0.01 + 1e-4 * (i % 5), ratio_max=1.1, ratio_min=0.9,
                   user={"step_time": 0.001 * (i % 3)})
            if i in (total_steps // 10, total_steps):
                marks[i] = rss_kib()
    return marks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpp", required=True, help="the python_overhead program (bench/python_overhead.cpp)")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repetitions", type=int, default=7)
    ap.add_argument("--rss-steps", type=int, default=100000)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, simic from {simic.__file__}")
    print("| model | call | C++ | Python | Python - C++ | Python / C++ |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for total, tensors in MODELS:
        steps = a.steps if total < 1_000_000 else max(50, a.steps // 100)
        cpp = json.loads(subprocess.run([a.cpp, str(total), str(tensors), str(steps), str(a.repetitions)],
                                        check=True, capture_output=True, text=True).stdout)
        py = python_side(make_model(total, tensors), steps, a.repetitions)
        for call, ns in py.items():
            c = cpp[call]
            print(f"| {total:,} / {tensors} | {call} | {c / 1e3:.2f} us | {ns / 1e3:.2f} us | "
                  f"{(ns - c) / 1e3:+.2f} us | {ns / c:.3f} |")
    marks = rss_over_steps(a.rss_steps)
    (first, a_rss), (last, b_rss) = sorted(marks.items())
    print(f"\nRSS after {first:,} steps {a_rss:,} KiB, after {last:,} steps {b_rss:,} KiB: "
          f"{b_rss - a_rss:+,} KiB")


if __name__ == "__main__":
    main()
