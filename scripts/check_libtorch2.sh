#!/usr/bin/env bash
# Builds and runs simic's LibTorch tests against a pip LibTorch 2.x on this
# CPU machine (not part of CI: it downloads the ~540 MB torch wheel from PyPI).
# Only libtorch_cpu and libc10 are linked, so the wheel's CUDA dependencies
# are not needed; the CUDA host code is compile-checked with SIMIC_CUDA=1
# against 2.x's c10/cuda headers and /usr/local/cuda's runtime headers.
#   bash scripts/check_libtorch2.sh [WORK_DIR]     (default /tmp/simic-libtorch2)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/simic-libtorch2}
mkdir -p "$WORK/obj"
if [ ! -d "$WORK/x/torch/include" ]; then
  pip download --no-deps torch -d "$WORK" >"$WORK/download.log" 2>&1 || { cat "$WORK/download.log"; exit 1; }
  python3 - "$WORK" <<'PY'
import glob, sys, zipfile
work = sys.argv[1]
z = zipfile.ZipFile(sorted(glob.glob(work + "/torch-*.whl"))[-1])
z.extractall(work + "/x", [n for n in z.namelist()
                           if n.startswith(("torch/include/", "torch/lib/", "torch/version.py"))])
PY
fi
TP=$WORK/x/torch
echo "LibTorch $(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$TP/version.py")"
INC="-isystem $TP/include -isystem $TP/include/torch/csrc/api/include -I$SRC/include -I$SRC/tests -I$SRC/bench"
FLAGS="-std=c++20 -O2 -D_GLIBCXX_USE_CXX11_ABI=1"
LIBS="-L$TP/lib -Wl,-rpath,$TP/lib -ltorch_cpu -lc10 -lpthread -ldl"
failed=0
g++ $FLAGS -c "$SRC/tests/doctest_main.cpp" -o "$WORK/obj/main.o" || exit 1
build_and_run() {  # NAME SOURCES...
  local name=$1 objs=() s o
  shift
  for s in "$@"; do
    o=$WORK/obj/$(basename "$s" .cpp).o
    g++ $FLAGS -DSIMIC_CUDA=0 $INC -c "$SRC/$s" -o "$o" 2>"$o.err" || { echo "FAIL: $s does not compile"; head -20 "$o.err"; return 1; }
    objs+=("$o")
  done
  g++ "${objs[@]}" "$WORK/obj/main.o" $LIBS -o "$WORK/$name" 2>"$WORK/$name.err" || { echo "FAIL: $name does not link"; head -20 "$WORK/$name.err"; return 1; }
  (cd "$WORK" && "./$name" 2>&1 | grep -E '^\[doctest\] (test cases|Status)')
  "$WORK/$name" >/dev/null 2>&1
}
cd "$SRC"
build_and_run test_torch_archive tests/torch/archive_test.cpp || failed=1
build_and_run test_sensors tests/sensors/*_test.cpp || failed=1
build_and_run test_cuda_backend tests/cuda/fused_backend_test.cpp || failed=1
build_and_run test_profile tests/profile/profiler_test.cpp || failed=1
for s in tests/cuda/device_test.cpp bench/gpu/cuda_bench.cpp; do
  g++ $FLAGS -DSIMIC_CUDA=1 $INC -isystem /usr/local/cuda/include -fsyntax-only "$s" 2>"$WORK/obj/syntax.err" \
    && echo "$s compiles with SIMIC_CUDA=1" || { echo "FAIL: $s (SIMIC_CUDA=1)"; head -20 "$WORK/obj/syntax.err"; failed=1; }
done
exit $failed
