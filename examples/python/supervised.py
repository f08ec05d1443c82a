#!/usr/bin/env python3
"""A supervised classifier in one file, watched by simic's "supervised" preset.

An MLP learns the labels that a random "teacher" network gives to Gaussian
inputs (generated from the seed: no download), with Adam in minibatches; each
epoch ends with the held-out accuracy as the performance. simic's wiring is
the lines marked `# simic` (tests/python/test_examples.py counts them).

--inject bends optimizer steps (1-based, as the session counts them) as
examples/char_lm's faults do: KIND@STEP acts at STEP only, but lr-spike
lasts from STEP to the end as there; KIND@STEP-LAST acts on STEP..LAST and
KIND@STEP- from STEP to the end, for any kind:

    python3 examples/python/supervised.py --events run.jsonl --inject loss-scale@150

Exit codes (as the C++ trainers'): 0 done, 2 bad command line, 3 stopped by
simic.
"""
import argparse
import collections
import sys

import torch
import torch.nn as nn

import simic  # simic

FEATURES, CLASSES, TRAIN, TEST, BATCH, LR = 16, 5, 2048, 1024, 64, 1e-3

FAULTS = {
    "nan-grad": "one step: NaN in one gradient element (the step must be skipped)",
    "loss-scale": "one step: the loss (and so its gradients) x1e6",
    "lr-spike": "from its step: the learning rate x20",
}
LASTING = ("lr-spike",)  # KIND@STEP lasts to the end (examples/char_lm's lasts())


def injection(spec):
    """KIND@S, KIND@S-T or KIND@S- -> (kind, first, last); last None: to the end."""
    valid = "valid kinds: " + ", ".join(FAULTS)
    kind, at, when = spec.partition("@")
    if not at:
        raise argparse.ArgumentTypeError(f"'{spec}' is not KIND@STEP, KIND@STEP-LAST or KIND@STEP-; {valid}")
    if kind not in FAULTS:
        raise argparse.ArgumentTypeError(f"unknown fault '{kind}'; {valid}")
    first, dash, last = when.partition("-")
    try:
        first = int(first)
        last = (None if last == "" else int(last)) if dash else (None if kind in LASTING else first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{spec}': steps must be integers >= 1 "
                                         "(KIND@STEP, KIND@STEP-LAST, KIND@STEP-)")
    if first < 1 or (last is not None and last < first):
        raise argparse.ArgumentTypeError(f"'{spec}': needs 1 <= STEP <= LAST")
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
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1, help="data and torch seed (default 1)")
    p.add_argument("--epochs", type=int_in(1, 10_000), default=10, help="passes over the training set (default 10)")
    p.add_argument("--events", metavar="PATH", help="simic's JSONL events file")
    p.add_argument("--inject", metavar="KIND@STEP", type=injection, action="append", default=[],
                   help="inject a fault at optimizer step STEP (also KIND@STEP-LAST, KIND@STEP-); repeatable; kinds: "
                        + ", ".join(FAULTS))
    a = p.parse_args(argv)
    a.steps = a.epochs * (TRAIN // BATCH)
    for kind, first, _ in a.inject:
        if first > a.steps:
            p.error(f"argument --inject: {kind}@{first}: step {first} is not in [1, {a.steps}] "
                    f"(--epochs x {TRAIN // BATCH})")
    return a


def dataset(gen):
    """Gaussian inputs labelled by a random two-layer teacher: learnable, not linearly separable."""
    w1, w2 = torch.randn(FEATURES, 32, generator=gen), torch.randn(32, CLASSES, generator=gen)
    x = torch.randn(TRAIN + TEST, FEATURES, generator=gen)
    y = (torch.tanh(x @ w1) @ w2).argmax(1)
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


def active(injections, kind, step):
    return any(k == kind and step >= first and (last is None or step <= last) for k, first, last in injections)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a small MLP: threads only add synchronisation
    x, y, x_test, y_test = dataset(torch.Generator().manual_seed(args.seed))
    model = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    anomalies, skipped, stopped, step, accuracy = collections.Counter(), 0, False, 0, None

    sinks = [simic.JsonlSink(args.events)] if args.events else []  # simic
    with simic.Session(model, sinks=sinks, preset="supervised") as session:  # simic
        for epoch in range(1, args.epochs + 1):
            model.train()
            perm = torch.randperm(TRAIN)
            for start in range(0, TRAIN - BATCH + 1, BATCH):
                step += 1
                idx = perm[start:start + BATCH]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                if active(args.inject, "loss-scale", step):
                    loss = loss * 1e6
                for group in optimizer.param_groups:
                    group["lr"] = LR * (20.0 if active(args.inject, "lr-spike", step) else 1.0)
                optimizer.zero_grad()
                loss.backward()
                if active(args.inject, "nan-grad", step):
                    with torch.no_grad():
                        model[0].weight.grad.view(-1)[0] = float("nan")
                r = session.step(loss=loss.item(), progress=(step, args.steps))  # simic
                anomalies.update(a["kind"] for a in r["anomalies"])  # simic
                if r["action"] == "proceed":  # simic
                    optimizer.step()
                skipped, stopped = skipped + (r["action"] != "proceed"), r["action"] == "stop"  # simic
                if stopped:
                    break
            if stopped:
                break
            model.eval()
            with torch.no_grad():
                accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
            session.end_epoch(performance=accuracy)  # simic

    kinds = ", ".join(f"{k} {n}" for k, n in sorted(anomalies.items())) or "none"
    acc = f"{accuracy:.3f}" if accuracy is not None else "none"
    print(f"supervised: steps {step}/{args.steps}, final accuracy {acc}, anomalies: {kinds}, skipped steps {skipped}, "
          f"stopped {'yes' if stopped else 'no'}")
    return 3 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())
