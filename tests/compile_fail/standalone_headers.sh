#!/usr/bin/env bash
# standalone_headers.sh INCLUDE_DIR COMPILER...
# Every header that must not need LibTorch (core/, detect/ with
# detect/reference/, presets/, monitor.hpp, simic.hpp, and the LibTorch-free
# parts of archive/, reduce/, emit/, profile/ and distributed/) compiles on
# its own with only simic's include directory and the system's, and includes
# nothing of LibTorch (Debian puts ATen and c10 on the system path, so the
# list of included files is checked too).
set -u
inc=$1
shift
headers=("$inc"/simic/core/*.hpp "$inc"/simic/core/detail/*.hpp "$inc"/simic/archive/{archive_error,crc,inflate,state_checksum,torch_pickle,zip_verify}.hpp
         "$inc"/simic/reduce/{shared_code,stat_layout,gradient_summary}.hpp "$inc"/simic/reduce/cuda/{accumulate,launch_plan,kernel_source}.hpp
         "$inc"/simic/detect/*.hpp "$inc"/simic/detect/detail/*.hpp "$inc"/simic/detect/reference/*.hpp "$inc"/simic/presets/{ppo,reference}.hpp
         "$inc"/simic/monitor.hpp "$inc"/simic/simic.hpp "$inc"/simic/version.hpp
         "$inc"/simic/emit/*.hpp "$inc"/simic/profile/phase_timer.hpp "$inc"/simic/distributed/signal_exchange.hpp)
failed=0
for h in "${headers[@]}"; do
  if ! out=$(echo "#include \"$h\"" | "$@" -std=c++20 -fsyntax-only -H -I"$inc" -x c++ - 2>&1); then
    echo "FAIL: $h does not compile on its own:"; echo "$out" | grep -v '^\.' | head -5; failed=1
  elif torch=$(grep -E '^\.+ .*/(ATen|c10|torch)/' <<<"$out" | head -1) && [ -n "$torch" ]; then
    echo "FAIL: $h includes LibTorch: $torch"; failed=1
  fi
done
[ $failed -eq 0 ] && echo "${#headers[@]} headers compile on their own and include nothing of LibTorch"
exit $failed
