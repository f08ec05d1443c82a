#!/usr/bin/env bash
# expect.sh fail|pass EXPECTED_TEXT MAX_ERRORS SOURCE INCLUDE_DIR COMPILER...
# Compiles SOURCE (syntax only); for "fail", passes when compilation fails and
# diagnostics contain EXPECTED_TEXT in at most MAX_ERRORS error lines.
set -u
mode=$1 expected=$2 max_errors=$3 src=$4 inc=$5
shift 5
out=$("$@" -std=c++20 -fsyntax-only -I"$inc" "$src" 2>&1)
rc=$?
if [ "$mode" = pass ]; then
  [ $rc -eq 0 ] && { echo "compiles, as it should"; exit 0; }
  echo "$out"; echo "FAIL: $src should compile"; exit 1
fi
if [ $rc -eq 0 ]; then echo "FAIL: $src compiled but must not"; exit 1; fi
if ! grep -qF -- "$expected" <<<"$out"; then echo "$out" | head -40; echo "FAIL: diagnostics lack: $expected"; exit 1; fi
errors=$(grep -c 'error:' <<<"$out")
echo "rejected as expected ($errors error lines): $(grep -m1 -F -- "$expected" <<<"$out")"
[ "$errors" -le "$max_errors" ] || { echo "$out" | head -40; echo "FAIL: more than $max_errors errors: not readable"; exit 1; }
