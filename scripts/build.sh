#!/usr/bin/env bash
# Configures (once) and builds simic into ./build. Extra arguments go to ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# -O2 without debug information: LibTorch-heavy sources compile in about 60%
# of the time they take with -g (docs/decisions.md); for a debugger:
# meson configure build -Ddebug=true.
if [ ! -f build/build.ninja ]; then
  meson setup build -Doptimization=2 -Ddebug=false >build-setup.log 2>&1 || { cat build-setup.log; exit 1; }
fi
ninja -C build "$@" >build/last-build.log 2>&1 || { tail -n 80 build/last-build.log; exit 1; }
