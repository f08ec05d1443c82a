#!/usr/bin/env bash
# The GPU check of the fused CUDA back end, in one run (docs/cuda.md):
#   1. builds simic against the machine's LibTorch (pip torch; no nvcc used),
#   2. runs the CUDA tests: the shared logic and NVRTC compile check, then the
#      sensors on CUDA tensors against float64 references (fresh random
#      inputs, poisoned outputs, NaN never passes),
#   3. times every case of shared/bench/anchor_ops.py with simic's fused back
#      end (bench_cuda, Google Benchmark) and anchor_ops.py itself, in the
#      same run, and prints one table (bench/gpu/table.py).
# Logs and raw results go to $OUT (the device tool's output folder; default
# .device/out), packed at the end into $OUT/gpu_logs.tgz beside table.md.
# Needs .device/ from scripts/prepare_device.sh.
#
#   run: bash bench/gpu/run.sh        carry: [".device"]
#
# Environment: SIMIC_GPU_SKIP_BUILD=1 reuses build-gpu/; SIMIC_GPU_DRY=1
# stops after configuring, SIMIC_TORCH_DIR=<LibTorch folder> replaces the
# python3 torch lookup and SIMIC_GPU_PC_STANDIN=1 forces the pkg-config
# stand-in (for checking the script on a machine without a GPU).
source "$(dirname "$0")/device_env.sh"  # ROOT, OUT, DEV, B, step, fail; checks .device/

step "machine"
{ date -u; uname -a; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true; } | tee "$OUT/machine.txt"
if [ -n "${SIMIC_TORCH_DIR:-}" ]; then
  TP=$SIMIC_TORCH_DIR  # a LibTorch folder with share/cmake and lib (dry runs)
else
  TP=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))") || fail "no python3 torch"
  python3 -c "import torch;print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" | tee -a "$OUT/machine.txt"
fi

export PKG_CONFIG_PATH=$DEV/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$TP/lib:$DEV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ! command -v pkg-config >/dev/null 2>&1 || [ "${SIMIC_GPU_PC_STANDIN:-0}" = 1 ]; then
  export PKG_CONFIG=$DEV/bin/pkg-config  # stand-in from prepare_device.sh
fi

if [ "${SIMIC_GPU_SKIP_BUILD:-0}" != 1 ]; then
  step "configure (LibTorch at $TP)"
  rm -rf "$B"
  timeout 120 meson setup "$B" --buildtype=release -Dcmake_prefix_path="$TP/share/cmake" -Dtorch_lib_dir="$TP/lib" \
    -Dexamples=false -Dcudart_include_dir=/usr/local/cuda/include >"$OUT/setup.log" 2>&1 ||
    { tail -40 "$OUT/setup.log"; fail "meson setup"; }
  grep -E "Run-time dependency|Library (torch|c10)" "$OUT/setup.log" | tee -a "$OUT/machine.txt"
  if ! grep -q "Library torch_cuda found: YES" "$OUT/setup.log"; then
    [ "${SIMIC_GPU_DRY:-0}" = 1 ] || fail "torch_cuda not found: the fused back end would be compiled out"
    echo "(dry run: no torch_cuda here; the CUDA targets are not defined)"
  fi
  [ "${SIMIC_GPU_DRY:-0}" = 1 ] && { step "dry run: configured"; exit 0; }
  step "build"
  # -k 0: one target that fails to compile does not stop the others (their checks still run).
  if ! timeout 300 ninja -k 0 -C "$B" tests/reduce/cuda/test_cuda_logic tests/reduce/cuda/test_cuda_nvrtc tests/reduce/cuda/test_cuda_device \
    tests/profile/test_profile bench/gpu/bench_cuda >"$OUT/build.log" 2>&1; then
    echo "BUILD ERRORS (continuing with what was built):"
    grep -E "error|FAILED" "$OUT/build.log" | head -30
    status_build=1
  fi
fi

status=${status_build:-0}
# Data-parallel on CUDA tensors: Gloo, 3 ranks sharing the one GPU, against
# the same job on the CPU (tests/distributed/agreement_test.cpp). Built only
# where LibTorch ships Gloo's headers.
[ "${SIMIC_GPU_SKIP_BUILD:-0}" = 1 ] || timeout 300 ninja -C "$B" tests/distributed/test_distributed_agreement \
  >"$OUT/build_distributed.log" 2>&1 || echo "(distributed test not built: see build_distributed.log)"

step "tests: shared logic, NVRTC compile check, fused back end on CUDA tensors, the profiler (Kineto, CUDA), data-parallel on CUDA"
for path in reduce/cuda/test_cuda_logic reduce/cuda/test_cuda_nvrtc reduce/cuda/test_cuda_device profile/test_profile \
            distributed/test_distributed_agreement; do
  t=$(basename "$path")
  if [ ! -x "$B/tests/$path" ]; then
    echo "$t: NOT BUILT"
    [ "$t" = test_distributed_agreement ] || status=1  # optional: needs Gloo's headers
    continue
  fi
  timeout 240 "$B/tests/$path" >"$OUT/$t.log" 2>&1
  rc=$?
  echo "$t: exit $rc; $(grep -E '^\[doctest\] (test cases|assertions)' "$OUT/$t.log" | tr -s ' ' | tr '\n' ' ')"
  grep -E "skipped:|MESSAGE" "$OUT/$t.log" | head -5
  if [ $rc -ne 0 ]; then status=1; grep -B2 -A6 "ERROR" "$OUT/$t.log" | head -40; fi
  # A crash (signal): where, from the debugger, the whole program again (on
  # 2026-12-04 the profiler's children exited cleanly and the test program
  # itself died at exit). Plain gdb first: cuda-gdb subscribes to CUPTI, which
  # turns Kineto's CUDA tracing off and so hides a CUPTI fault.
  if [ $rc -ge 128 ] || grep -q "killed by signal" "$OUT/$t.log"; then
    gdb=$(command -v gdb || command -v cuda-gdb)
    [ -n "$gdb" ] && timeout 240 "$gdb" -batch -ex run -ex "thread apply all bt 30" --args "$B/tests/$path" \
      >"$OUT/$t.gdb.txt" 2>&1
    grep -E "^#|signal|SIG|Thread .* \(LWP" "$OUT/$t.gdb.txt" | head -80
  fi
done

# The one-launch kernel's completion counters and shared-memory counters
# under compute-sanitizer (memcheck: out-of-bounds and misaligned accesses;
# racecheck: shared-memory hazards), on the cases that exercise them. Skipped
# where the tool cannot attach (docs/cuda.md).
step "compute-sanitizer: memcheck and racecheck of the stats kernels"
if command -v compute-sanitizer >/dev/null 2>&1 && [ -x "$B/tests/reduce/cuda/test_cuda_device" ]; then
  for tool in memcheck racecheck; do
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 3 "$B/tests/reduce/cuda/test_cuda_device" \
      "--test-case=one launch*,every row is written*" >"$OUT/sanitizer_$tool.log" 2>&1
    echo "compute-sanitizer $tool: exit $? ($(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer_$tool.log" | tr '\n' ' '))"
  done
else
  echo "compute-sanitizer: not available here"
fi

step "benchmarks: simic (bench_cuda)"
[ -x "$B/bench/gpu/bench_cuda" ] || echo "bench_cuda: NOT BUILT"
[ -x "$B/bench/gpu/bench_cuda" ] && timeout 200 "$B/bench/gpu/bench_cuda" --benchmark_out="$OUT/bench_cuda.json" --benchmark_out_format=json \
  >"$OUT/bench_cuda.txt" 2>&1 || { status=1; tail -20 "$OUT/bench_cuda.txt"; }

# The basic set's register budget: the default (docs/cuda.md) against full
# occupancy (32 registers, a few bytes spilled in the block merge), device time only.
step "benchmarks: basic set at 8 blocks per SM (32 registers)"
[ -x "$B/bench/gpu/bench_cuda" ] && SIMIC_CUDA_NVRTC_OPTIONS=-DSIMIC_BASIC_BLOCKS_PER_SM=8 timeout 120 \
  "$B/bench/gpu/bench_cuda" --benchmark_filter='(gradient_health|nan_inf_scan)/device' \
  --benchmark_out="$OUT/bench_cuda_basic8.json" --benchmark_out_format=json >"$OUT/bench_cuda_basic8.txt" 2>&1 &&
  grep -E "_median" "$OUT/bench_cuda_basic8.txt" | sed 's/\x1b\[[0-9;]*m//g'

# Where the device time goes: Nsight Compute on the 100M float32 case (DRAM
# throughput against peak, achieved occupancy, registers, duration), clocks
# left alone. Four launches of each stats kernel after the warm-up calls.
step "Nsight Compute: the stats kernels, 100M float32"
if command -v ncu >/dev/null 2>&1 && [ -x "$B/bench/gpu/bench_cuda" ]; then
  for what in gradient_health per_layer; do  # after the benchmark's 4 warm-up calls
    timeout 120 ncu --clock-control none -k regex:simic_stats --launch-skip 4 --launch-count 2 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__occupancy_limit_registers \
      "$B/bench/gpu/bench_cuda" --benchmark_filter="large_100M_fp32/$what/device" >"$OUT/ncu_$what.txt" 2>&1
    echo "ncu $what: exit $?"
    grep -E "simic_stats|gpu__time|dram__|sm__warps|launch__" "$OUT/ncu_$what.txt" | head -16
  done
else
  echo "ncu: not available here"
fi

# Why the basic kernel is where it is: one launch with every section
# (stall reasons, memory workload, scheduler), printed, and per-instruction
# samples (SASS) kept as CSV for reading on a CPU machine.
step "Nsight Compute: full report of one basic launch, 100M float32"
if command -v ncu >/dev/null 2>&1 && [ -x "$B/bench/gpu/bench_cuda" ]; then
  timeout 150 ncu --clock-control none --set full --import-source no -k regex:simic_stats_basic --launch-skip 4 --launch-count 1 \
    -f -o "$OUT/ncu_basic_full" "$B/bench/gpu/bench_cuda" --benchmark_filter="large_100M_fp32/gradient_health/device" \
    >"$OUT/ncu_basic_full.log" 2>&1
  echo "ncu full: exit $?"
  ncu -i "$OUT/ncu_basic_full.ncu-rep" --page details --print-details all >"$OUT/ncu_basic_full.txt" 2>&1
  ncu -i "$OUT/ncu_basic_full.ncu-rep" --page source --csv --print-source sass >"$OUT/ncu_basic_sass.csv" 2>&1
  grep -E "Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Issue Slots Busy|No Eligible|Stall|L1/TEX Hit|L2 Hit|Warp Cycles Per Issued" \
    "$OUT/ncu_basic_full.txt" | head -30
else
  echo "ncu: not available here"
fi

step "benchmarks: reference pipeline (anchor_ops.py)"
ANCHOR=""
for a in shared/bench/anchor_ops.py ../shared/bench/anchor_ops.py "$DEV/anchor_ops.py"; do
  [ -f "$a" ] && { ANCHOR=$a; break; }
done
[ -n "$ANCHOR" ] || fail "anchor_ops.py not found (prepare_device.sh copies it into .device/)"
timeout 200 python3 "$ANCHOR" --device cuda --out "$OUT/anchor.jsonl" >"$OUT/anchor.txt" 2>&1 ||
  { status=1; tail -20 "$OUT/anchor.txt"; }

step "the deferred check and the update guard on CUDA (bench/gpu/deferred_check.sh; logs in deferred/)"
OUT=$OUT/deferred bash bench/gpu/deferred_check.sh || status=1

step "table"
variant=()
[ -s "$OUT/bench_cuda_basic8.json" ] && variant=(--variant "$OUT/bench_cuda_basic8.json" --variant-label "basic set at 32 registers (8 blocks/SM)")
python3 bench/gpu/table.py "$OUT/anchor.jsonl" "$OUT/bench_cuda.json" --machine "$OUT/machine.txt" \
  --out "$OUT/table.md" "${variant[@]}" || status=1
cat "$OUT/table.md" 2>/dev/null
# The device tool brings back at most 8 files: everything but the table in one archive.
( cd "$OUT" && tar czf /tmp/simic_gpu_logs.tgz --exclude=table.md . && find . -mindepth 1 ! -name table.md -delete &&
  mv /tmp/simic_gpu_logs.tgz gpu_logs.tgz ) || echo "(logs left unpacked in $OUT)"
step "done (exit $status)"
exit $status
