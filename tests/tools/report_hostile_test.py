#!/usr/bin/env python3
"""simic-report on hostile input: never a signal; exit 2 and one line on
stderr, "simic-report: FILE:LINE: message" where a line applies (else
"simic-report: FILE: message"), the message at most 200 bytes; peak memory
under 500 MiB whatever the file.

Then large files within the bounds (docs/report.md, "Size and limits"):
skipped steps, onsets and dense runs of anomalies, each counted exactly
against this script's own count, with a bounded page and bounded memory.

Usage: report_hostile_test.py SIMIC_REPORT
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from report_support import page_data, finish

MAX_MESSAGE = 200
MAX_BANDS = 500
MEMORY_BOUND_KIB = 500 * 1024

# Runs argv in a fresh interpreter (a child's ru_maxrss starts from its
# parent's high-water mark) and prints exit code, peak RSS (KiB) and stderr.
MEASURE = """
import os, sys, json
r, w = os.pipe()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 2)])
os.close(w)
err = b""
while True:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    err += chunk
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"status": status, "rss": usage.ru_maxrss, "stderr": err.decode("utf-8", "replace")}))
"""


def run_measured(binary, *args):
    r = subprocess.run([sys.executable, "-c", MEASURE, binary, *args], capture_output=True, text=True, timeout=120)
    d = json.loads(r.stdout)
    status = d["status"]
    signal = os.WIFSIGNALED(status) and os.WTERMSIG(status)
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    return rc, signal, d["rss"], d["stderr"]


def bands(updates, gap, cap=MAX_BANDS):
    """The bands by their definition (lines in file order; a line within gap
    updates of the current band's range joins it), the gap doubled until at
    most cap are left: [(first, last, count)], gap."""
    while True:
        out = []
        for u in updates:
            if out and not (u > out[-1][1] + gap or out[-1][0] > u + gap):
                f, l, c = out[-1]
                out[-1] = (min(f, u), max(l, u), c + 1)
            else:
                out.append((u, u, 1))
        if len(out) <= cap:
            return out, gap
        gap = 1 if gap == 0 else gap * 2



def main():
    binary = sys.argv[1]
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    good = '{"event":"update","update":1,"loss":1.0}\n'
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="simic_report_hostile_") as tmp:
        out = os.path.join(tmp, "r.html")
        # name -> (bytes, the line the error names or None, a part of the message)
        cases = {
            "deep_open": (b"[" * 1000000 + b"\n", 1, "nested deeper than 64 levels (at byte 65)"),
            "deep_closed": (good.encode() + b'{"event":"update","update":2,"loss":' + b"[" * 1000000 + b"]" * 1000000
                            + b"}\n", 2, "nested deeper than 64 levels"),
            "huge_string": (good.encode() + b'{"event":"update","update":2,"loss":"' + b"x" * 20000000 + b'"}\n', 2,
                            "(20000002 bytes in all); valid: a number"),
            "plus_1e400": (b'{"event":"update","update":1,"loss":1e400}\n', 1, "a number out of range: 1e400"),
            "minus_1e400": (good.encode() * 3 + b'{"event":"update","update":1,"loss":-1e400}\n', 4,
                            "a number out of range: -1e400"),
            "nan_literal": (b'{"event":"update","update":1,"loss":NaN}\n', 1, "not valid JSON"),
            "invalid_utf8": (b'{"event":"update","update":1,"run_id":"\xff\xfe\xc3"}\n', 1, "not valid JSON"),
            "nul_bytes": (good.encode() + b'{"event":"upd\x00ate","update":1}\n', 2, "not valid JSON"),
            "nul_line": (b"\x00" * 5000 + b"\n", 1, "not valid JSON"),
            # A line of 100 MB without newline: more than a line may hold (64 MiB), refused before it is held.
            "line_100mb": (good.encode() + b"y" * 100000000, 2, "a line longer than 67108864 bytes"),
            "wide_line": (b'{"event":"update","update":1,"x":[' + b"0," * 1500000 + b"0]}\n", 1,
                          "more than 1000000 values"),
            "garbage": (bytes(rng.randrange(256) for _ in range(200000)), None, ""),
            "empty": (b"", None, "empty file"),
            "blank_lines": (b"\n \n\t\n", None, "no event in 3 lines"),
            "no_event": (b'{"update":1}\n', 1, "no string field 'event'"),
            "window": (b'{"event":"rollback","update":2,"window_first":18446744073709551615,"window_last":0}\n', 1,
                       "the skipped window [18446744073709551615, 0) ends before it begins"),
            "extra": (b'{"event":"update","update":2,"extra":{"stopped":"' + b"s" * 5000 + b'"}}\n', 1,
                      "field 'extra.stopped' is"),
        }
        for name, (data, line, needle) in cases.items():
            path = os.path.join(tmp, name + ".jsonl")
            with open(path, "wb") as f:
                f.write(data)
            del data
            rc, signal, rss, se = run_measured(binary, path, "-o", out)
            where = "%s:%d" % (path, line) if line else path
            prefix = "simic-report: %s: " % where
            lines = se.split("\n")
            expect(not signal, "%s: killed by signal %s" % (name, signal))
            expect(rc == 2, "%s: exit %r, want 2; %r" % (name, rc, se[:300]))
            expect(len(lines) == 2 and lines[1] == "", "%s: %d lines on stderr" % (name, len(lines) - 1))
            if name == "garbage":  # random bytes: some line, some message
                m = re.match(r"simic-report: %s:(\d+): (.*)$" % re.escape(path), lines[0])
                expect(m is not None, "garbage: %r" % lines[0][:300])
                message = m.group(2) if m else lines[0]
            else:
                expect(lines[0].startswith(prefix), "%s: %r does not start with %r" % (name, lines[0][:300], prefix))
                message = lines[0][len(prefix):]
                expect(needle in message, "%s: %r lacks %r" % (name, message, needle))
            expect(len(message.encode("utf-8", "surrogateescape")) <= MAX_MESSAGE,
                   "%s: message of %d bytes: %r" % (name, len(message), message[:300]))
            expect(rss < MEMORY_BOUND_KIB, "%s: peak memory %d KiB" % (name, rss))
            print("%-12s exit %s, %6d KiB: %s" % (name, rc, rss, lines[0][len("simic-report: "):][:150]))
            os.remove(path)

        # Files that are no events file: no line applies.
        missing = os.path.join(tmp, "missing.jsonl")
        for path, needle in [(missing, "cannot open for reading"), (tmp, "a directory; valid: an events file"),
                             (os.path.join(tmp, "a\nb.jsonl"), "cannot open for reading")]:
            rc, signal, rss, se = run_measured(binary, path, "-o", out)
            want = "simic-report: %s: %s" % (path.replace("\n", "?"), needle)
            expect(rc == 2 and not signal and se.startswith(want) and se.count("\n") == 1,
                   "%r: rc %r, %r; want %r" % (path, rc, se, want))

        # 200,000 skipped steps (an update line flagged, then its response,
        # one step an update; every 7th update not skipped; runs of them).
        path = os.path.join(tmp, "skips.jsonl")
        skipped = []
        with open(path, "w") as f:
            for u in range(1, 233335):
                if u % 7 == 0 or (u // 1000) % 5 == 4:
                    f.write('{"event":"update","update":%d,"loss":1.0}\n' % u)
                    continue
                skipped.append(u)
                f.write('{"event":"update","update":%d,"loss":1.0,"extra":{"skipped_step":1}}\n'
                        '{"event":"response","update":%d,"action":"skip_step","reason":"non-finite gradients"}\n' % (u, u))
        rc, signal, rss, se = run_measured(binary, path, "-o", out)
        expect(rc == 0, "skips: rc %r, %r" % (rc, se[:300]))
        if rc == 0:
            text, data = page_data(out)
            want_bands, gap = bands(skipped, 1)
            print("skips: %d steps skipped, %d bands (gap %d); page %d bytes, %d KiB" % (
                len(skipped), len(want_bands), gap, os.path.getsize(out), rss))
            expect(data["skip_steps"] == len(skipped), "skip_steps %r, want %d" % (data["skip_steps"], len(skipped)))
            expect(len(data["skips"]) == 200, "%d skip lines drawn, want 200" % len(data["skips"]))
            expect(data["skip_band_gap"] == gap, "skip band gap %r, want %d" % (data["skip_band_gap"], gap))
            expect([tuple(b[:3]) for b in data["skip_bands"]] == want_bands, "skip bands differ from the definition's")
            skipped_set = set(skipped)
            expect(all(s["update"] in skipped_set and s["x"] == s["update"] for s in data["skips"]),
                   "a drawn skip not at a skipped step's x")
            expect(os.path.getsize(out) < 2 * 1024 * 1024, "skips: page of %d bytes" % os.path.getsize(out))
            expect(rss < 128 * 1024, "skips: peak memory %d KiB; bound 128 MiB" % rss)

        # 100,000 onsets (each followed by its clear) of 2 kinds, and
        # 100,000 repeats in dense runs of a third kind.
        path = os.path.join(tmp, "onsets.jsonl")
        kinds = ["kl_spike", "ratio_explosion", "entropy_collapse"]
        ups = {k: [] for k in kinds}
        onsets = {k: 0 for k in kinds}
        with open(path, "w") as f:
            for i in range(100000):
                k, u = kinds[i % 2], 1 + i // 2
                f.write('{"event":"anomaly","update":%d,"anomaly":"%s","severity":"critical","value":1,"detail":"d"}\n'
                        '{"event":"anomaly_clear","update":%d,"anomaly":"%s","duration":1,"value":0}\n' % (u, k, u, k))
                ups[k].append(u)
                onsets[k] += 1
                if i % 10 < 9:  # runs of 9 updates, then a gap of 1
                    u3 = 1 + i // 2
                    f.write('{"event":"anomaly","update":%d,"anomaly":"entropy_collapse","severity":"warning"}\n' % u3)
                    ups["entropy_collapse"].append(u3)
        onsets["entropy_collapse"] = 1  # never cleared: its first line only
        rc, signal, rss, se = run_measured(binary, path, "-o", out)
        expect(rc == 0, "onsets: rc %r, %r" % (rc, se[:300]))
        if rc == 0:
            text, data = page_data(out)
            size = os.path.getsize(out)
            print("onsets: %d anomaly lines; page %d bytes, %d KiB" % (data["anomaly_lines"], size, rss))
            expect(data["anomaly_lines"] == sum(len(v) for v in ups.values()), "anomaly_lines %r" % data["anomaly_lines"])
            for k in data["kinds"]:
                want_bands, gap = bands(ups[k["kind"]], 1)
                expect(k["total"] == len(ups[k["kind"]]), "%s: total %r" % (k["kind"], k["total"]))
                expect(k["onsets"] == onsets[k["kind"]], "%s: onsets %r, want %d" % (k["kind"], k["onsets"], onsets[k["kind"]]))
                expect(k["drawn"] == 200 and k["onsets_drawn"] == min(200, onsets[k["kind"]]),
                       "%s: drawn %r, onsets drawn %r" % (k["kind"], k["drawn"], k["onsets_drawn"]))
                expect(k["band_gap"] == gap and [tuple(b[:3]) for b in k["bands"]] == want_bands,
                       "%s: bands differ from the definition's (gap %r, want %d)" % (k["kind"], k["band_gap"], gap))
                expect(sum(b[2] for b in k["bands"]) == k["total"], "%s: bands do not hold every line" % k["kind"])
            drawn_onsets = [a for a in data["anomalies"] if a["onset"]]
            expect(len(drawn_onsets) == 200 + 200 + 1, "%d onsets drawn" % len(drawn_onsets))
            expect(size < 1024 * 1024, "onsets: page of %d bytes" % size)
            expect(rss < 128 * 1024, "onsets: peak memory %d KiB; bound 128 MiB" % rss)

    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
