#!/usr/bin/env bash
# The device run of the deferred check and the update guard (docs/guide.md,
# "A deferred check"; docs/recovery.md, "With a deferred check"): what the
# CPU tests could not run.
#   1. builds simic against the machine's LibTorch (pip torch, as run.sh),
#   2. runs tests/recovery/test_update_guard: its device case trains with a
#      deferred session and the guard on CUDA tensors under CUDA's sync
#      debug mode set to error (any host sync throws), a NaN gradient kept out
#      on the device; it prints the host_copy waits of 50 steps; once with
#      LibTorch's operations, once with the fused back end,
#   3. times the guard's step against the optimizer's on CUDA
#      (bench/recovery/update_guard_cost: held bytes, bytes moved, times).
# Logs go to $OUT (default .device/out). Needs .device/ from
# scripts/prepare_device.sh, as run.sh does.
#
#   run: bash bench/gpu/deferred_check.sh        carry: [".device"]
# bench/gpu/run.sh runs it too, after its own steps (one device call for both).
#
# SIMIC_GPU_SKIP_BUILD=1 reuses build-gpu/ (run.sh's build directory).
source "$(dirname "$0")/device_env.sh"  # ROOT, OUT, DEV, B, step, fail; checks .device/
TP=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))") || fail "no python3 torch"
python3 -c "import torch;print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" | tee "$OUT/machine.txt"
export PKG_CONFIG_PATH=$DEV/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$TP/lib:$DEV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
command -v pkg-config >/dev/null 2>&1 || export PKG_CONFIG=$DEV/bin/pkg-config

if [ "${SIMIC_GPU_SKIP_BUILD:-0}" != 1 ]; then
  step "configure (LibTorch at $TP)"
  if [ ! -d "$B" ]; then
    timeout 120 meson setup "$B" --buildtype=release -Dcmake_prefix_path="$TP/share/cmake" -Dtorch_lib_dir="$TP/lib" \
      -Dexamples=false -Dcudart_include_dir=/usr/local/cuda/include >"$OUT/setup.log" 2>&1 ||
      { tail -40 "$OUT/setup.log"; fail "meson setup"; }
  fi
  step "build"
  timeout 420 ninja -k 0 -C "$B" tests/recovery/test_update_guard bench/update_guard_cost >"$OUT/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$OUT/build.log" | head -30; fail "build"; }
fi

status=0
step "the deferred session and the guard on CUDA, sync debug mode: error"
timeout 240 "$B/tests/recovery/test_update_guard" --test-case="device:*" >"$OUT/test_update_guard_device.log" 2>&1 || status=1
grep -E "test cases|assertions|MESSAGE|host_copy waits|skipped|ERROR|synchroniz" "$OUT/test_update_guard_device.log" | head -20
step "the whole guard test on this build"
timeout 240 "$B/tests/recovery/test_update_guard" >"$OUT/test_update_guard.log" 2>&1 || status=1
grep -E "test cases|assertions" "$OUT/test_update_guard.log"
step "the guard's cost on CUDA"
timeout 240 "$B/bench/update_guard_cost" --steps 30 | tee "$OUT/update_guard_cost.md" || status=1
step "done (exit $status)"
exit $status
