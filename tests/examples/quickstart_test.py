#!/usr/bin/env python3
"""examples/quickstart.cpp: it runs, its events are complete, and
docs/guide.md quotes its simic lines exactly (the guide opens with them).
Usage: quickstart_test.py SOURCE_ROOT QUICKSTART_BINARY"""
import json, os, subprocess, sys, tempfile

root, binary = sys.argv[1], sys.argv[2]
failures = []

def check(ok, what):
    if not ok:
        failures.append(what)

def marked_lines(text):
    """The lines between '// simic: begin' and '// simic: end', dedented per block."""
    out, inside, block = [], False, []
    for line in text.splitlines():
        if line.strip() == "// simic: begin":
            inside, block = True, []
        elif line.strip() == "// simic: end":
            inside = False
            indent = min((len(l) - len(l.lstrip()) for l in block if l.strip()), default=0)
            out += [l[indent:] for l in block]
        elif inside:
            block.append(line)
    return out

source = open(os.path.join(root, "examples", "quickstart.cpp")).read()
guide = open(os.path.join(root, "docs", "guide.md")).read()
quoted = marked_lines(source)
check(len(quoted) > 5, "quickstart.cpp has its simic: markers")
# The guide's first C++ block is the quoted lines, in order.
start = guide.find("```cpp\n")
end = guide.find("```", start + 7)
check(start != -1 and start < guide.find("\n## "), "the guide opens with a C++ block before its first section")
block = guide[start + 7:end].rstrip("\n").splitlines()
check(block == quoted, "docs/guide.md's first C++ block equals examples/quickstart.cpp's marked lines:\n" +
      "\n".join(block) + "\n--- vs ---\n" + "\n".join(quoted))
simic_lines = [l for l in quoted if "simic" in l or l.strip().startswith("tel.")]
check(len(simic_lines) <= 15, "at most 15 lines of simic (%d)" % len(simic_lines))

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "run.jsonl")
    p = subprocess.run([binary, path], capture_output=True, text=True, timeout=240)
    check(p.returncode == 0, "quickstart exits 0 (%d): %s" % (p.returncode, p.stderr))
    events = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
    names = [e["event"] for e in events]
    check(names.count("update") == 20 * 16, "one update event per check (%d)" % names.count("update"))
    check(names.count("gradient_health") == 20 * 16, "gradient health every check")
    check(names.count("epoch_summary") == 20, "one epoch summary per epoch")
    check(names.count("memory") >= 1, "memory statistics")
    # the supervised preset fits the trainer: nothing it reads is missing, nothing fed goes unread
    kinds = [e.get("anomaly") for e in events if e["event"] == "anomaly"]
    check("signal_missing" not in kinds, "no signal_missing warning (%s)" % kinds)
    check(names.count("unread_signals") == 0, "no unread_signals event")
    check(all("update_ratio" in e for e in events if e["event"] == "update")
          or sum("update_ratio" in e for e in events if e["event"] == "update") == 20 * 16 - 1,
          "the update ratio in every step record after the first")
    check(names and names[-1] == "hub_stats", "closed by hub_stats")
    if names and names[-1] == "hub_stats":
        check(events[-1]["emitted"] == len(events) - 1 and events[-1]["dropped"] == 0, "every event written")

for f in failures:
    print("FAILED:", f)
print("quickstart: %d checks failed" % len(failures))
sys.exit(1 if failures else 0)
