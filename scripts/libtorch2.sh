#!/usr/bin/env bash
# The test command's LibTorch 2.x run: builds every LibTorch test program
# (Meson's suite 'libtorch': the same tests as the ordinary build runs) against
# pip's LibTorch 2.x in ./build-libtorch2 and runs them.
#   bash scripts/libtorch2.sh [meson test arguments]
# The torch wheel (about 540 MB, from PyPI) is downloaded once; its headers and
# CPU libraries (libtorch_cpu, libc10, libgomp) are kept in
# $SIMIC_CACHE/libtorch2-<version> (default ~/.cache/simic), shared by every
# clone, and the wheel itself is deleted. SIMIC_LIBTORCH2_VERSION picks another
# release (default: scripts/torch2_version.sh). The build links only the CPU libraries
# (-Dtorch_dir, meson.build); PyPI's wheel is CUDA-enabled, and its
# libtorch_cpu needs libcudart and libcupti 13 at run time, which the CUDA
# toolkit in /usr/local/cuda provides (no GPU needed).
set -uo pipefail
cd "$(dirname "$0")/.."
version=$(bash scripts/torch2_version.sh)
cache=${SIMIC_CACHE:-$HOME/.cache/simic}/libtorch2-$version
torch=$cache/torch
B=build-libtorch2
rm -f "$B/meson-logs/testlog.json"  # a failure before the tests leaves none: counted as failed
tb_python=$(bash scripts/tensorboard_env.sh) || exit 1

if [ ! -f "$cache/complete" ]; then
  echo "simic: downloading torch==$version (pip, about 540 MB) into $cache" >&2
  rm -rf "$cache"
  mkdir -p "$cache"
  "$tb_python" -m pip download -q --disable-pip-version-check --no-deps "torch==$version" -d "$cache/wheel" >&2 ||
    { echo "simic: pip could not download torch==$version" >&2; exit 1; }
  "$tb_python" - "$cache" <<'PY' || exit 1
import glob, sys, zipfile
cache = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(cache + "/wheel/torch-*.whl")[0])
keep = ("torch/include/", "torch/version.py", "torch/lib/libtorch_cpu.so", "torch/lib/libc10.so", "torch/lib/libgomp")
wheel.extractall(cache, [n for n in wheel.namelist() if n.startswith(keep)])
PY
  rm -rf "$cache/wheel"
  touch "$cache/complete"
fi
echo "LibTorch $(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$torch/version.py") (pip, CPU libraries) in $B"

if [ ! -f "$B/build.ninja" ]; then
  # The project's default build type, as ./build; without the benchmarks (not tests).
  meson setup "$B" -Dtorch_dir="$torch" -Dbenchmarks=false \
    -Dtensorboard_python="$tb_python" >"$B-setup.log" 2>&1 || { cat "$B-setup.log"; exit 1; }
fi
# The example binaries that the trainer's tests run, and the C++ side of the
# Python module's same-events test (scripts/python_tests.sh): meson test
# builds what the test programs link, not the programs they start.
ninja -C "$B" examples/ppo_lstm examples/char_lm examples/quickstart tests/python/events_replay >"$B/last-build.log" 2>&1 || { tail -n 60 "$B/last-build.log"; exit 1; }
meson test -C "$B" --suite libtorch --print-errorlogs --num-processes 2 "$@" >"$B/last-test.log" 2>&1 ||
  { grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' "$B/last-test.log" >&2; exit 1; }
