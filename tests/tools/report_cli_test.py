#!/usr/bin/env python3
"""simic-report's command line: exit 0 and a page for a good file; exit 2 and
one line naming the argument, the file or the line for each bad case.

Usage: report_cli_test.py SIMIC_REPORT
"""
import os
import subprocess
import sys
import tempfile

GOOD = ('{"event":"update","time":1.0,"update":1,"epoch":1,"loss":1.0,"approx_kl":0.01}\n'
        '{"event":"anomaly","time":1.0,"update":1,"epoch":1,"anomaly":"kl_spike","severity":"warning",'
        '"value":0.2,"threshold":0.1,"detail":"d"}\n'
        '{"event":"epoch_summary","time":1.0,"update":1,"epoch":1,"performance":3.0}\n')


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


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

        unwritable = os.path.join(tmp, "no", "dir", "r.html")
        rc, so, se = run(binary, good, "-o", unwritable)
        expect(rc == 2 and "%s: cannot open for writing" % unwritable in se, "unwritable output: rc %d, %r" % (rc, se))

    for f in failures:
        print("FAIL: " + f)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
