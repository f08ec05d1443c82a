"""Reads meson's testlog.json files and pytest's JUnit reports (*.xml) and
prints 'N passed, M failed' over test cases.

A doctest program contributes its own case counts; a program that printed no
doctest summary (a script, a compile-fail check, or a crash) counts as one
case, passed or failed by its result; one that skipped itself (exit 77, a
check that does not apply to this build) counts as neither, and is named on
stderr; so does a skipped pytest case. Exit status 1 if anything failed or if
no test ran at all. A log that is missing (its build failed) counts as one
failed case."""
import json, re, sys
import xml.etree.ElementTree as ElementTree

summary = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
passed = failed = 0
def results(path):
    global failed
    try:
        with open(path) as f:
            return [json.loads(line) for line in f]
    except FileNotFoundError:
        print(f"{path}: missing (its build or run failed)", file=sys.stderr)
        failed += 1
        return []

def pytest_results(path):
    """Each <testcase> of a JUnit report as a meson-like result."""
    global failed
    try:
        cases = ElementTree.parse(path).getroot().iter("testcase")
    except (FileNotFoundError, ElementTree.ParseError):
        print(f"{path}: missing or unreadable (pytest did not finish)", file=sys.stderr)
        failed += 1
        return []
    out = []
    for c in cases:
        name = f"{c.get('classname')}::{c.get('name')}"
        bad = c.find("failure") is not None or c.find("error") is not None
        out.append({"name": name, "result": "SKIP" if c.find("skipped") is not None else "FAIL" if bad else "OK"})
    return out

for t in (t for path in sys.argv[1:] for t in (pytest_results(path) if path.endswith(".xml") else results(path))):
    if t.get("result") == "SKIP":
        print(f"skipped: {t.get('name')}", file=sys.stderr)
        continue
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
