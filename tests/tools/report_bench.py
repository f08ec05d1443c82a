#!/usr/bin/env python3
"""simic-report on 1,000,000-line files (a benchmark, `meson test --benchmark`;
docs/report.md, "Size and limits"): for each file the report program's peak
resident memory (wait4) and time, the page's size, and the time headless
Chromium takes to load and draw the page (wall time of `--dump-dom`, and the
page's own data-render-ms). Fails only where a bound is broken: 500 MiB of
memory, a 10 MB page, a page Chromium does not finish drawing, or a count
that differs from this script's. The times are printed, not judged.

Files (written here, then removed):
  anomalies  1,000,000 anomaly lines of 4 kinds, every_check style (no
             clears): 400 dense runs a kind over 254,000 updates
  skips      1,000,000 skipped steps: an update line flagged skipped_step
             and its response, one step an update, in runs
  onsets     1,000,000 onsets: anomaly lines of 2 kinds, each followed by
             its anomaly_clear

Usage: report_bench.py --report BIN [--chromium BIN] [--keep DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_browser_test import chromium  # noqa: E402
from report_support import finish  # noqa: E402

MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def write_anomalies(path):
    kinds = ["kl_spike", "ratio_explosion", "gradient_exploding", "entropy_collapse"]
    with open(path, "w") as f:
        n = 0
        u = 1
        while n < 1000000:
            # 4 lines an update (one per kind), runs of 625 updates, then 10
            # quiet: 400 runs (bands) a kind.
            if u % 635 < 625:
                for k in kinds:
                    f.write('{"event":"anomaly","time":%d.5,"update":%d,"epoch":1,"anomaly":"%s","severity":"%s",'
                            '"value":0.25,"threshold":0.2,"detail":"approx KL 0.25 > 0.2","level_after":"DEBUG"}\n'
                            % (u, u, k, "critical" if u % 7 == 0 else "warning"))
                    n += 1
            u += 1
    return {"anomaly_lines": 1000000}


def write_skips(path):
    with open(path, "w") as f:
        n = 0
        u = 1
        while n < 1000000:
            if u % 100 < 90:
                f.write('{"event":"update","time":%d.0,"update":%d,"epoch":1,"loss":1.0,"extra":{"skipped_step":1}}\n'
                        '{"event":"response","time":%d.0,"update":%d,"epoch":1,"action":"skip_step",'
                        '"reason":"non-finite gradients","consecutive_skips":1,"total_skips":%d}\n' % (u, u, u, u, n + 1))
                n += 1
            else:
                f.write('{"event":"update","time":%d.0,"update":%d,"epoch":1,"loss":1.0}\n' % (u, u))
            u += 1
    return {"skip_steps": 1000000}


def write_onsets(path):
    with open(path, "w") as f:
        for i in range(1000000):
            k, u = ("kl_spike", "ratio_explosion")[i % 2], 1 + i // 2
            f.write('{"event":"anomaly","time":%d.0,"update":%d,"epoch":1,"anomaly":"%s","severity":"critical",'
                    '"value":0.6,"threshold":0.5,"detail":"d","level_after":"DEBUG"}\n'
                    '{"event":"anomaly_clear","time":%d.0,"update":%d,"epoch":1,"anomaly":"%s","duration":1,"value":0.1}\n'
                    % (u, u, k, u, u, k))
    return {"anomaly_lines": 1000000, "onsets": 1000000}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--report", required=True)
    p.add_argument("--chromium")
    p.add_argument("--keep", help="keep the pages in this directory")
    a = p.parse_args()
    failures = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="simic_report_bench_") as tmp:
        for name, write in [("anomalies", write_anomalies), ("skips", write_skips), ("onsets", write_onsets)]:
            events = os.path.join(tmp, name + ".jsonl")
            want = write(events)
            page = os.path.join(a.keep or tmp, name + ".html")
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-c", MEASURE, a.report, events, "-o", page],
                               capture_output=True, text=True, timeout=600)
            wall = time.monotonic() - t0
            rc, rss = (int(x) for x in r.stdout.split())
            lines = sum(1 for _ in open(events, "rb"))
            size_in = os.path.getsize(events)
            os.remove(events)
            if rc != 0:
                failures.append("%s: rc %d, %s" % (name, rc, r.stderr[:300]))
                continue
            size = os.path.getsize(page)
            with open(page, encoding="utf-8") as f:
                m = re.search(r'<script type="application/json" id="simic-data">(.*?)</script>', f.read(), re.S)
            data = json.loads(m.group(1))
            if "anomaly_lines" in want and data["anomaly_lines"] != want["anomaly_lines"]:
                failures.append("%s: anomaly_lines %r" % (name, data["anomaly_lines"]))
            if "skip_steps" in want and data["skip_steps"] != want["skip_steps"]:
                failures.append("%s: skip_steps %r" % (name, data["skip_steps"]))
            if "onsets" in want and sum(k["onsets"] for k in data["kinds"]) != want["onsets"]:
                failures.append("%s: onsets %r" % (name, [k["onsets"] for k in data["kinds"]]))
            if rss > 500 * 1024:
                failures.append("%s: peak memory %d KiB; bound 500 MiB" % (name, rss))
            if size > 10 * 1000 * 1000:
                failures.append("%s: page of %d bytes; bound 10 MB" % (name, size))
            render = "-"
            if a.chromium:
                home = os.path.join(tmp, "home")
                os.makedirs(home, exist_ok=True)
                t1 = time.monotonic()
                dom = chromium(a.chromium, home, ["--virtual-time-budget=60000", "--dump-dom", "file://" + page],
                               timeout=300)
                load = time.monotonic() - t1
                ms = re.search(r'data-render-ms="([0-9.]+)"', dom)
                if 'data-rendered="1"' not in dom or not ms:
                    failures.append("%s: Chromium did not finish drawing the page" % name)
                else:
                    render = "%.0f ms drawing, %.1f s Chromium in all" % (float(ms.group(1)), load)
            row = ("%-9s %9d lines, %7.1f MB in: %5.1f s, peak memory %6.1f MiB; page %6.0f KB, %d markers, "
                   "%d anomaly bands, %d skip lines, %d skip bands; %s" % (
                       name, lines, size_in / 1e6, wall, rss / 1024.0, size / 1e3, len(data["anomalies"]),
                       sum(len(k["bands"]) for k in data["kinds"]), len(data["skips"]), len(data["skip_bands"]), render))
            rows.append(row)
            print(row, flush=True)
    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
