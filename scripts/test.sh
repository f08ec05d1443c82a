#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every
# test program, and ends with one line "N passed, M failed" counting test
# cases (doctest cases, and each compile-fail or script test as one case).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh || { echo "0 passed, 1 failed"; exit 1; }
meson test -C build --print-errorlogs --num-processes 2 "$@" >build/last-test.log 2>&1
rc=$?
python3 scripts/count_tests.py build/meson-logs/testlog.json
counted=$?
[ $rc -eq 0 ] && [ $counted -eq 0 ] || { grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' build/last-test.log >&2; exit 1; }
