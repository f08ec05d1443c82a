#!/usr/bin/env python3
"""simic-report's command line: exit 0 and a page for a good file; exit 2 and
one line naming the argument, the file or the line for each bad case; hostile
input (deep nesting, a 20 MB value, a number out of range) is one bounded
line, never a crash; a large anomaly file makes a bounded page in bounded
memory with exact counts.

Usage: report_cli_test.py SIMIC_REPORT
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from report_support import page_data, finish

GOOD = ('{"event":"update","time":1.0,"update":1,"epoch":1,"loss":1.0,"approx_kl":0.01}\n'
        '{"event":"anomaly","time":1.0,"update":1,"epoch":1,"anomaly":"kl_spike","severity":"warning",'
        '"value":0.2,"threshold":0.1,"detail":"d"}\n'
        '{"event":"epoch_summary","time":1.0,"update":1,"epoch":1,"performance":3.0}\n')


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


# Runs argv and prints its exit code and peak resident memory (KiB, from
# wait4). A fresh interpreter: a child's ru_maxrss starts from its parent's
# high-water mark (it survives fork and exec), and this script's own peak is
# the 20 MB lines above.
MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def run_measured(binary, tmp, *args):
    """Like run, with the child's own peak resident memory (KiB) and wall time."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", MEASURE, binary, *args], capture_output=True, text=True, timeout=60)
    wall = time.monotonic() - t0
    rc, rss = (int(x) for x in r.stdout.split())
    return rc, r.stderr, rss, wall



def main():
    binary = sys.argv[1]
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="simic_report_cli_") as tmp:
        good = os.path.join(tmp, "good.jsonl")
        with open(good, "w") as f:
            f.write(GOOD)
        out = os.path.join(tmp, "good.html")

        rc, so, se = run(binary, good, "-o", out, "--title", "T & <b>")
        expect(rc == 0 and os.path.getsize(out) > 10000, "good file: rc %d, %s" % (rc, se))
        with open(out, encoding="utf-8") as f:
            expect("<title>T &amp; &lt;b&gt;</title>" in f.read(), "--title not escaped into <title>")

        rc, so, se = run(binary, "--help")
        expect(rc == 0 and "usage: simic-report" in so, "--help")

        for args, needle in [((), "no input file"), ((good,), "no output file"), ((good, "-o"), "-o: needs"),
                             ((good, "-o", out, "--bogus"), "unknown option '--bogus'"),
                             ((good, good, "-o", out), "one input file only"),
                             ((good, "-o", out, "--max-points", "3"), "--max-points: '3' is not an integer from 4"),
                             ((good, "-o", out, "--max-points", "x"), "--max-points: 'x'")]:
            rc, so, se = run(binary, *args)
            expect(rc == 2 and needle in se and "usage:" in se, "usage error %r: rc %d, %r" % (args, rc, se))

        missing = os.path.join(tmp, "missing.jsonl")
        rc, so, se = run(binary, missing, "-o", out)
        expect(rc == 2 and se.strip() == "simic-report: %s: cannot open for reading" % missing,
               "missing file: rc %d, %r" % (rc, se))

        bad = os.path.join(tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write(GOOD + "{not json}\n" + GOOD)
        rc, so, se = run(binary, bad, "-o", out)
        expect(rc == 2 and se.startswith("simic-report: %s:4: not valid JSON" % bad) and se.count("\n") == 1,
               "malformed line: rc %d, %r" % (rc, se))

        empty = os.path.join(tmp, "empty.jsonl")
        open(empty, "w").close()
        rc, so, se = run(binary, empty, "-o", out)
        expect(rc == 2 and "%s: empty file" % empty in se, "empty file: rc %d, %r" % (rc, se))

        # --max-anomalies: 1 to 1000000.
        for v in ("0", "1000001", "x", "-1", "2.5"):
            rc, so, se = run(binary, good, "-o", out, "--max-anomalies", v)
            expect(rc == 2 and ("--max-anomalies: '%s' is not an integer from 1 to 1000000" % v) in se and "usage:" in se,
                   "--max-anomalies %s: rc %d, %r" % (v, rc, se))
        for v in ("1", "1000000"):
            rc, so, se = run(binary, good, "-o", out, "--max-anomalies", v)
            expect(rc == 0, "--max-anomalies %s: rc %d, %r" % (v, rc, se))
        # --band-gap: 0 to 1000000000; a long bad value quoted cut.
        for v in ("-1", "1000000001", "x", "1.5", "9" * 100):
            rc, so, se = run(binary, good, "-o", out, "--band-gap", v)
            shown = v if len(v) <= 60 else v[:60] + "... (%d bytes)" % len(v)
            expect(rc == 2 and ("--band-gap: '%s' is not an integer from 0 to 1000000000" % shown) in se and "usage:" in se,
                   "--band-gap %s: rc %d, %r" % (v[:20], rc, se[:300]))
        for v in ("0", "1000000000"):
            rc, so, se = run(binary, good, "-o", out, "--band-gap", v)
            expect(rc == 0, "--band-gap %s: rc %d, %r" % (v, rc, se))

        # Hostile lines: each one bounded line on stderr naming the file and
        # the line, exit 2, never a signal (a negative rc).
        n = 100000
        deep = "[" * n + "]" * n
        huge = "x" * 20000000
        hostile = [
            ("deep_field", '{"event":"update","update":2,"loss":%s}' % deep, ":2: nested deeper than 64 levels"),
            ("deep_run_id", '{"event":"update","update":2,"run_id":%s}' % deep, ":2: nested deeper than 64 levels"),
            ("deep_detail", '{"event":"anomaly","update":2,"anomaly":"kl_spike","detail":%s}' % deep,
             ":2: nested deeper than 64 levels"),
            ("huge_value", '{"event":"update","update":2,"loss":"%s"}' % huge,
             ":2: field 'loss' is \"" + "x" * 59 + "... (20000002 bytes in all); valid: a number"),
            ("overflow", '{"event":"update","update":2,"loss":1e400}', ":2: a number out of range: 1e400; valid:"),
            ("overflow_update", '{"event":"update","update":1e400}', ":2: a number out of range: 1e400"),
            ("rollback_field", '{"event":"rollback","update":2,"restored_update":"ten"}',
             ":2: field 'restored_update' is \"ten\"; valid: an unsigned integer"),
            ("rollback_order", '{"event":"rollback","update":2,"restored_update":3}',
             ":2: field 'restored_update' is 3, after the rollback's own update 2"),
        ]
        first = GOOD.splitlines()[0]
        for name, line, needle in hostile:
            path = os.path.join(tmp, name + ".jsonl")
            with open(path, "w") as f:
                f.write(first + "\n" + line + "\n" + first + "\n")
            rc, so, se = run(binary, path, "-o", out)
            prefix = "simic-report: %s:2: " % path
            expect(rc == 2 and se.startswith("simic-report: " + path + needle) and se.count("\n") == 1
                   and len(se.rstrip("\n")) - len(prefix) <= 200, "%s: rc %d, stderr %d bytes: %r" % (name, rc, len(se), se[:300]))

        # A large file: 100,000 anomaly lines of 3 kinds (about 17 MB). It held
        # every line (about 280 MB) and wrote every marker (a 16 MB page).
        kinds = ["kl_spike", "loss_spike", "constructor"]
        want = {k: {"warning": 0, "critical": 0} for k in kinds}
        large = os.path.join(tmp, "large.jsonl")
        with open(large, "w") as f:
            for i in range(100000):
                k, sev = kinds[i % 3], "critical" if i % 7 == 0 else "warning"
                want[k][sev] += 1
                f.write('{"event":"anomaly","time":%d.0,"update":%d,"epoch":1,"anomaly":"%s","severity":"%s",'
                        '"value":0.25,"threshold":0.2,"detail":"approx KL 0.25 > 0.2 (line %d)","level_after":"DEBUG"}\n'
                        % (i, 1 + i // 100, k, sev, i + 1))
        page = os.path.join(tmp, "large.html")
        rc, se, rss_kib, wall = run_measured(binary, tmp, large, "-o", page)
        expect(rc == 0, "large file: rc %d, %r" % (rc, se[:300]))
        if rc == 0:
            size = os.path.getsize(page)
            expect(size < 400 * 1024, "large file: page of %d bytes; bound 400 KiB" % size)
            expect(rss_kib < 64 * 1024, "large file: peak memory %d KiB; bound 64 MiB" % rss_kib)
            print("large file: %d bytes read, page %d bytes, peak memory %d KiB, %.2f s" % (
                os.path.getsize(large), size, rss_kib, wall))
            expect(wall < 10, "large file: %.1f s" % wall)
            text, data = page_data(page)
            expect(data.get("anomaly_lines") == 100000, "anomaly_lines %r" % data.get("anomaly_lines"))
            expect(len(data["anomalies"]) == 3 * 200, "%d anomalies drawn; bound 3 x 200" % len(data["anomalies"]))
            drawn = {k: sum(1 for a in data["anomalies"] if a["kind"] == k) for k in kinds}
            expect(drawn == {k: 200 for k in kinds}, "drawn per kind %r" % drawn)
            for k in kinds:
                # One onset (no clears); a line on every update: one band.
                row = "%s</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>200</td><td>1 (1)</td><td>1</td></tr>" % (
                    k, {"kl_spike": "kl", "loss_spike": "loss", "constructor": "performance"}[k],
                    want[k]["warning"], want[k]["critical"], want[k]["warning"] + want[k]["critical"])
                expect(row in text, "no exact row for %s: %s" % (k, row))
            expect("<th>anomalies</th><td>100000 (600 drawn, 99400 not drawn: at most 200 markers per kind, 4000 in all)</td>" in text,
                   "the summary does not say how many were drawn")
            # A drawn marker is a real line of its kind (its detail names the line), each line once.
            lines = [int(re.fullmatch(r"approx KL 0\.25 > 0\.2 \(line (\d+)\)", a["detail"]).group(1))
                     for a in data["anomalies"]]
            expect(all(a["kind"] == kinds[(n - 1) % 3] and a["update"] == 1 + (n - 1) // 100
                       for a, n in zip(data["anomalies"], lines)), "a drawn anomaly is not the file's line")
            expect(len(set(lines)) == len(lines), "a line drawn twice")
        # With --max-anomalies 7: 7 per kind.
        rc, se, rss_kib, wall = run_measured(binary, tmp, large, "-o", page, "--max-anomalies", "7")
        if rc == 0:
            text, data = page_data(page)
            expect(len(data["anomalies"]) == 21 and "21 of 100000 anomaly lines drawn (99979 not drawn)" in text,
                   "--max-anomalies 7: %d drawn" % len(data["anomalies"]))
        else:
            expect(False, "--max-anomalies 7: rc %d, %r" % (rc, se[:300]))

        unwritable = os.path.join(tmp, "no", "dir", "r.html")
        rc, so, se = run(binary, good, "-o", unwritable)
        expect(rc == 2 and "%s: cannot open for writing" % unwritable in se, "unwritable output: rc %d, %r" % (rc, se))

    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
