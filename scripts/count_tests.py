"""Reads meson's testlog.json and prints 'N passed, M failed' over test cases.

A doctest program contributes its own case counts; a program that printed no
doctest summary (a script, a compile-fail check, or a crash) counts as one
case, passed or failed by its result. Exit status 1 if anything failed or if
no test ran at all."""
import json, re, sys

summary = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
passed = failed = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    m = summary.findall(t.get("stdout", "") or "")
    ok = t.get("result") in ("OK", "EXPECTEDFAIL")
    if m:
        _, p, f = map(int, m[-1])
        passed += p
        failed += f
        if not ok and f == 0:
            failed += 1  # crashed or timed out after its summary
    elif ok:
        passed += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
