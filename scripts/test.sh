#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every
# test program, then the sanitizer builds and the fuzz targets
# (scripts/sanitize.sh), and ends with one line "N passed, M failed" counting
# test cases (doctest cases, pytest cases, and each compile-fail, script or
# fuzz test as one case) over all of them. The Python module's pytest tests
# run against Debian's torch 1.13 after the ordinary tests, and against pip's
# torch 2.x after every LibTorch test program is built and run again against
# pip's LibTorch 2.x (scripts/libtorch2.sh, scripts/python_tests.sh).
# SIMIC_SANITIZE=0 skips the sanitizer and fuzz runs, SIMIC_LIBTORCH2=0 the
# 2.x stage, SIMIC_PYTHON=0 the Python tests (quicker local checks; CI runs
# everything).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh || { echo "0 passed, 1 failed"; exit 1; }
# TensorBoard itself reads the TensorBoard sink's files back (pip's tensorboard).
tb_python=$(bash scripts/tensorboard_env.sh) && meson configure build -Dtensorboard_python="$tb_python" >/dev/null \
  || { echo "0 passed, 1 failed"; exit 1; }
logs=(build/meson-logs/testlog.json)
rm -f "${logs[0]}"
meson test -C build --print-errorlogs --num-processes 2 "$@" >build/last-test.log 2>&1
rc=$?
[ $rc -eq 0 ] || grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' build/last-test.log >&2
python_tests() {  # $1: the stage; its JUnit report is counted
  logs+=("$2/pytest.xml")
  bash scripts/python_tests.sh "$1" >"$2/last-python.log" 2>&1 ||
    { rc=1; echo "Python tests ($1) failed:" >&2; tail -n 40 "$2/last-python.log" >&2; }
}
[ "${SIMIC_PYTHON:-1}" != 0 ] && python_tests debian build
# Every LibTorch test program again, built against pip's LibTorch 2.x
# (scripts/libtorch2.sh; the wheel is downloaded once and kept).
if [ "${SIMIC_LIBTORCH2:-1}" != 0 ]; then
  logs+=(build-libtorch2/meson-logs/testlog.json)
  bash scripts/libtorch2.sh >build/last-libtorch2.log 2>&1 || { rc=1; echo "LibTorch 2.x run failed:" >&2; tail -n 40 build/last-libtorch2.log >&2; }
  [ "${SIMIC_PYTHON:-1}" != 0 ] && python_tests torch2 build-libtorch2
fi
if [ "${SIMIC_SANITIZE:-1}" != 0 ]; then
  sanitizer_logs=(build-asan/meson-logs/testlog.json build-tsan/meson-logs/testlog.json build-fuzz/meson-logs/testlog.json)
  rm -f "${sanitizer_logs[@]}"
  logs+=("${sanitizer_logs[@]}")
  bash scripts/sanitize.sh asan tsan fuzz >build/last-sanitize.log 2>&1 || { rc=1; cat build/last-sanitize.log >&2; }
fi
python3 scripts/count_tests.py "${logs[@]}"
counted=$?
[ $rc -eq 0 ] && [ $counted -eq 0 ]
