#!/usr/bin/env bash
# Configures (once) and builds simic into ./build. Extra arguments go to ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# The build type is the project's default (meson.build: -O2, no -g).
if [ ! -f build/build.ninja ]; then
  meson setup build >build-setup.log 2>&1 || { cat build-setup.log; exit 1; }
fi
ninja -C build "$@" >build/last-build.log 2>&1 || { tail -n 80 build/last-build.log; exit 1; }
