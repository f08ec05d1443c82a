"""The Python module's cost beside C++ (issue goals: Session.step at most
10 us more than the C++ step on the same signals; the sensors within 5 % of
C++; no memory growth over 100,000 steps). Loads bench/python_overhead.cpp
(a shared library, through ctypes) into this process for the C++ side, and
alternates rounds: a round of C++ calls, then a round of the same calls from
Python, each the mean of `calls` calls, after one untimed round each. Per
call it prints the medians over the rounds and the median of the rounds'
Python / C++ ratios with its quartiles, as a markdown table. The C++ side
reads this script's tensors (views of their memory), so both read the same
bytes at the same addresses.

    python bench/python_overhead.py --cpp build-bench/bench/python_overhead.so
        [--calls 2000] [--rounds 21] [--rss-steps 100000]

Run with the Python that has `simic` installed (pip install .) and whose
torch is the LibTorch the library links (Debian's python3-torch with the
Debian build; the script refuses another major.minor)."""
import argparse
import ctypes
import re
import resource
import statistics
import subprocess
import sys
import time

import torch

import simic

# (elements, tensors); 400 one-element tensors isolate the cost per tensor of the call itself.
MODELS = [(10_000, 4), (400, 400), (1_200_000, 24), (12_000_000, 400)]
CALLS = ["supervised_step", "ppo_step", "gradient_health", "layer_gradients", "nan_inf_scan"]


def make_model(total, tensors):
    """`tensors` float32 parameters of `total // tensors` elements, with gradients (seed 0)."""
    torch.manual_seed(0)
    out = []
    for i in range(tensors):
        p = torch.randn(total // tensors).requires_grad_()
        p.grad = torch.randn(total // tensors) * 1e-2
        out.append((f"p{i}", p))
    return out


def load_cpp(path):
    # Loaded beside another LibTorch the library can crash the process as it
    # loads, before it can be asked its version: ask in a child first.
    probe = ("import ctypes, torch; lib = ctypes.CDLL(%r); lib.simic_bench_torch_version.restype = ctypes.c_char_p; "
             "print(lib.simic_bench_torch_version().decode())" % path)
    child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"{path} does not load beside torch {torch.__version__} (exit {child.returncode}): "
                         f"it links another LibTorch. {child.stderr.strip()[-300:]}")
    lib = ctypes.CDLL(path)
    lib.simic_bench_open.restype = ctypes.c_void_p
    lib.simic_bench_open.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_void_p)]
    lib.simic_bench_round.restype = ctypes.c_double
    lib.simic_bench_round.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.simic_bench_close.argtypes = [ctypes.c_void_p]
    lib.simic_bench_torch_version.restype = ctypes.c_char_p
    linked = lib.simic_bench_torch_version().decode()
    if not torch.__version__.startswith(linked + "."):
        raise SystemExit(f"{path} links LibTorch {linked}, this Python imports torch {torch.__version__}: "
                         "run it with the Python whose torch is that LibTorch")
    with open("/proc/self/maps") as f:  # one LibTorch in the process: the library must reuse torch's
        copies = {line.split()[-1] for line in f if re.search(r"/libtorch_cpu\.so[.0-9]*$", line.strip())}
    if len(copies) != 1:
        raise SystemExit(f"two LibTorch copies in this process: {sorted(copies)}")
    return lib


class PythonSide:
    """The same calls from Python, on the script's own model and sessions."""

    def __init__(self, params):
        self.params = params
        self.sup = simic.Session(params, preset="supervised")
        self.ppo = simic.Session(params, preset="ppo")
        self.i = 0

    def round(self, call, calls):
        params, sup, ppo = self.params, self.sup, self.ppo
        i0 = self.i
        self.i += calls
        t0 = time.perf_counter_ns()
        if call == "supervised_step":
            for i in range(i0, i0 + calls):
                sup.step(loss=1.0 + 1e-3 * (i % 7))
        elif call == "ppo_step":
            for i in range(i0, i0 + calls):
                ppo.step(loss=1.0 + 1e-3 * (i % 7), approx_kl=0.01 + 1e-4 * (i % 5), ratio_max=1.1, ratio_min=0.9)
        elif call == "gradient_health":
            for _ in range(calls):
                simic.gradient_health(params)
        elif call == "layer_gradients":
            for _ in range(calls):
                simic.layer_gradients(params)
        else:
            for _ in range(calls):
                simic.nan_inf_scan(params)
        return (time.perf_counter_ns() - t0) / calls

    def close(self):
        self.sup.close()
        self.ppo.close()


def compare(lib, total, tensors, calls, rounds):
    """{call: (C++ median ns, Python median ns, ratio median, q1, q3)} over alternating rounds."""
    params = make_model(total, tensors)
    pointers = ctypes.c_void_p * tensors
    cpp = lib.simic_bench_open(tensors, total // tensors, pointers(*[p.data_ptr() for _, p in params]),
                               pointers(*[p.grad.data_ptr() for _, p in params]))
    if not cpp:
        raise SystemExit(f"simic_bench_open refused {tensors} tensors of {total // tensors} elements")
    py = PythonSide(params)
    out = {}
    for call in CALLS:
        n = calls if call.endswith("_step") else max(1, calls // 10)
        lib.simic_bench_round(cpp, call.encode(), n)  # untimed: first calls take copies and fill caches
        py.round(call, n)
        c, p = [], []
        for _ in range(rounds):
            c.append(lib.simic_bench_round(cpp, call.encode(), n))
            p.append(py.round(call, n))
        ratios = [b / a for a, b in zip(c, p)]
        q1, _, q3 = statistics.quantiles(ratios)
        out[call] = (statistics.median(c), statistics.median(p), statistics.median(ratios), q1, q3)
    py.close()
    lib.simic_bench_close(cpp)
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
    ap.add_argument("--cpp", required=True, help="the python_overhead library (bench/python_overhead.cpp)")
    ap.add_argument("--calls", type=int, default=2000, help="calls a round on the small models (/100 on large ones)")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--rss-steps", type=int, default=100000)
    a = ap.parse_args()
    torch.set_num_threads(1)
    lib = load_cpp(a.cpp)
    print(f"torch {torch.__version__}, simic from {simic.__file__}")
    print("| model | call | C++ | Python | Python - C++ | Python / C++ (quartiles) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for total, tensors in MODELS:
        calls = a.calls if total < 1_000_000 else max(20, a.calls // 100)
        for call, (c, p, r, q1, q3) in compare(lib, total, tensors, calls, a.rounds).items():
            print(f"| {total:,} / {tensors} | {call} | {c / 1e3:.2f} us | {p / 1e3:.2f} us | "
                  f"{(p - c) / 1e3:+.2f} us | {r:.3f} ({q1:.3f}-{q3:.3f}) |", flush=True)
    marks = rss_over_steps(a.rss_steps)
    (first, a_rss), (last, b_rss) = sorted(marks.items())
    print(f"\nRSS after {first:,} steps {a_rss:,} KiB, after {last:,} steps {b_rss:,} KiB: "
          f"{b_rss - a_rss:+,} KiB")


if __name__ == "__main__":
    main()
