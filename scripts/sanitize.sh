#!/usr/bin/env bash
# The sanitizer and fuzz runs of the test suite (scripts/test.sh runs all
# three after the ordinary build; each may be run alone):
#   asan  build-asan: ASan + UBSan (float-cast-overflow included, every
#         finding fatal): the LibTorch-free tests, the sensors, the archives,
#         the run report's parser and the fuzz corpora's replays
#   tsan  build-tsan: TSan: what is shared by threads or checks them: the hub
#         (tests/emit), the phase timers, the thread check (tests/core)
#   fuzz  build-fuzz: clang + libFuzzer: every target of tests/fuzz for
#         FUZZ_SECONDS (default 60) under ASan + UBSan
# Each writes <build>/meson-logs/testlog.json, which scripts/count_tests.py reads.
set -uo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
((${#kinds[@]})) || kinds=(asan tsan fuzz)
# -O1 without debug information (a LibTorch-heavy source compiles in about
# 80% of its -O2 time); reports still name functions.
common=(--buildtype=plain -Doptimization=1 -Dbenchmarks=false -Dexamples=false)
rc=0

setup() {  # dir, compiler, meson options...
  local dir=$1 cxx=$2
  shift 2
  if [ ! -f "$dir/build.ninja" ]; then
    CXX=$cxx meson setup "$dir" "${common[@]}" "$@" >"$dir-setup.log" 2>&1 || { cat "$dir-setup.log"; return 1; }
  fi
}
build() {  # dir, targets...
  local dir=$1
  shift
  ninja -C "$dir" "$@" >"$dir/last-build.log" 2>&1 || { tail -n 60 "$dir/last-build.log"; return 1; }
}
run_tests() {  # dir, meson test arguments...
  local dir=$1
  shift
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "$@" >"$dir/last-test.log" 2>&1 ||
    { grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' "$dir/last-test.log" >&2; return 1; }
}
fuzz_targets() {  # dir, prefix: the fuzz programs meson defined
  ninja -C "$1" -t targets all | grep -oE "^tests/fuzz/$2[a-z_]+:" | tr -d : | sort -u
}

# UBSan stops at the first finding; LeakSanitizer is off because LibTorch
# keeps allocations alive until exit (its registries), which are not simic's.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

for kind in "${kinds[@]}"; do
  case $kind in
    asan)
      setup build-asan g++ -Db_sanitize=address,undefined \
        "-Dcpp_args=['-fsanitize=float-cast-overflow','-fno-sanitize-recover=all','-fno-omit-frame-pointer']" \
        "-Dcpp_link_args=['-fsanitize=float-cast-overflow']" || { rc=1; continue; }
      targets=(tests/core/test_core tests/core/test_signal_guard tests/archive/test_archive tests/reduce/test_reduce_core
               tests/detect/test_detect tests/monitor/test_monitor
               tests/emit/test_emit tests/profile/test_profile_timers tests/examples/test_ppo_lstm_parts
               tests/sensors/test_sensors tests/archive/test_torch_archive tests/tools/test_report
               tests/distributed/test_distributed_signals tests/recovery/test_training_state tests/archive/test_module_archive
               $(fuzz_targets build-asan fuzz_replay_))
      build build-asan "${targets[@]}" || { rc=1; continue; }
      names=(core core_signal_guard archive reduce_core detect monitor emit profile_timers examples_ppo_lstm_parts sensors torch_archive
             tools_report distributed_signals training_state module_archive
             $(fuzz_targets build-asan fuzz_replay_ | sed 's|tests/fuzz/||'))
      run_tests build-asan "${names[@]}" || rc=1
      ;;
    tsan)
      setup build-tsan g++ -Db_sanitize=thread -Dtorch=disabled || { rc=1; continue; }
      build build-tsan tests/emit/test_emit tests/profile/test_profile_timers tests/core/test_core || { rc=1; continue; }
      run_tests build-tsan emit profile_timers core || rc=1
      ;;
    fuzz)
      setup build-fuzz clang++ -Dfuzz=true -Dfuzz_seconds="${FUZZ_SECONDS:-60}" -Db_sanitize=address,undefined \
        -Db_lundef=false || { rc=1; continue; }
      build build-fuzz $(fuzz_targets build-fuzz fuzz_) || { rc=1; continue; }
      run_tests build-fuzz --suite fuzz || rc=1
      ;;
    *) echo "scripts/sanitize.sh: unknown kind '$kind'; valid: asan, tsan, fuzz" >&2; exit 2 ;;
  esac
done
exit $rc
