"""scripts/count_tests.py: the test command's one "N passed, M failed" line
over meson's testlog.json files and pytest's JUnit reports, counted by hand
here for small files of each kind.
    python3 count_tests_test.py SCRIPTS/count_tests.py"""
import json, os, subprocess, sys, tempfile

script = sys.argv[1]
tmp = tempfile.mkdtemp()


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def count(*paths):
    r = subprocess.run([sys.executable, script, *paths], capture_output=True, text=True)
    return r.stdout.strip(), r.returncode, r.stderr


doctest = "[doctest] test cases: 5 | 4 passed | 1 failed | 0 skipped"
meson_log = write("testlog.json", "\n".join(json.dumps(t) for t in [
    {"name": "a", "result": "FAIL", "stdout": doctest},  # its own counts: 4 + 1
    {"name": "b", "result": "OK", "stdout": ""},         # a script: one case
    {"name": "c", "result": "SKIP", "stdout": ""},       # neither
]) + "\n")
junit = write("pytest.xml", '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="4">'
              '<testcase classname="t" name="ok"/><testcase classname="t" name="bad"><failure message="x"/></testcase>'
              '<testcase classname="t" name="skipped"><skipped/></testcase>'
              '<testcase classname="t" name="broken"><error message="y"/></testcase></testsuite></testsuites>')
clean = write("clean.xml", '<testsuites><testsuite><testcase classname="t" name="ok"/>'
              '<testcase classname="t" name="ok2"/></testsuite></testsuites>')
cut = write("cut.xml", '<testsuites><testsuite><testcase classname="t"')  # pytest killed while writing

cases = [
    ((meson_log,), ("5 passed, 1 failed", 1)),
    ((junit,), ("1 passed, 2 failed", 1)),
    ((clean,), ("2 passed, 0 failed", 0)),
    ((meson_log, junit, clean), ("8 passed, 3 failed", 1)),
    ((clean, os.path.join(tmp, "absent.xml")), ("2 passed, 1 failed", 1)),  # pytest never ran: one failure
    ((clean, cut), ("2 passed, 1 failed", 1)),
    ((write("empty.xml", "<testsuites/>"),), ("0 passed, 0 failed", 1)),   # nothing ran: not a pass
]
bad = 0
for paths, want in cases:
    out, rc, err = count(*paths)
    if (out, rc) != want:
        print(f"FAIL {[os.path.basename(p) for p in paths]}: got {(out, rc)}, want {want}\n{err}")
        bad += 1
out, rc, err = count(junit)
if "skipped: t::skipped" not in err:
    print(f"FAIL a skipped pytest case is not named on stderr: {err!r}")
    bad += 1
print(f"{len(cases) + 1 - bad} of {len(cases) + 1} checks passed")
sys.exit(1 if bad else 0)
