#!/usr/bin/env bash
# Packaging: `meson install` lays out the headers and a pkg-config file that
# compile a program, a parent Meson project uses simic as a subproject, and
# CMake projects use the installed CMake package (tests/packaging/cmake).
# Usage: packaging_test.sh SOURCE_ROOT BUILD_ROOT [torch|no-torch [TORCH_CMAKE_PREFIX_PATH]]
set -euo pipefail
src=$1 build=$2 torch=${3:-torch} torch_prefix=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/use.cpp" <<'CPP'
#include <simic/simic.hpp>
int main() {
  simic::default_monitor m;
  simic::signals s;
  s.approx_kl = 0.2;
  return m.check(s).report.has(simic::anomaly_kind::kl_spike) ? 0 : 1;
}
CPP

# 1. install into a staging root; headers and the .pc file must be there
meson install -C "$build" --no-rebuild --destdir "$work/stage" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
pc=$(find "$work/stage" -name simic.pc | head -n1)
[ -n "$pc" ] || { echo "FAIL: no simic.pc installed"; exit 1; }
hdr=$(find "$work/stage" -path '*/include/simic/monitor.hpp' | head -n1)
[ -n "$hdr" ] || { echo "FAIL: simic/monitor.hpp not installed"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$work/stage$prefix" --cflags simic)
c++ $flags "$work/use.cpp" -o "$work/use_installed"
"$work/use_installed" || { echo "FAIL: installed headers gave a wrong result"; exit 1; }
echo "installed headers and pkg-config file: ok ($flags)"

# 2. a parent project with simic as a subproject
mkdir -p "$work/parent/subprojects"
ln -s "$src" "$work/parent/subprojects/simic"
cp "$work/use.cpp" "$work/parent/use.cpp"
cat >"$work/parent/meson.build" <<'MESON'
project('parent', 'cpp', default_options : ['cpp_std=c++20'])
simic = subproject('simic', default_options : ['torch=disabled', 'tests=false', 'benchmarks=false', 'examples=false'])
exe = executable('use', 'use.cpp', dependencies : simic.get_variable('simic_core_dep'))
test('use', exe)
MESON
(cd "$work/parent" && meson setup b >"$work/sub.log" 2>&1 && ninja -C b >>"$work/sub.log" 2>&1 && b/use) \
  || { tail -30 "$work/sub.log"; echo "FAIL: subproject use"; exit 1; }
echo "subproject use: ok"

# 3. CMake: the package in the same staging tree, found through
# CMAKE_PREFIX_PATH; it must locate the headers relative to itself.
cfg=$(find "$work/stage" -name simicConfig.cmake | head -n1)
[ -n "$cfg" ] || { echo "FAIL: no simicConfig.cmake installed"; exit 1; }
[ -f "$(dirname "$cfg")/simicConfigVersion.cmake" ] || { echo "FAIL: no simicConfigVersion.cmake installed"; exit 1; }
stage_prefix=$work/stage$prefix
version=$(meson introspect --projectinfo "$build" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
gen=()
if command -v ninja >/dev/null; then gen=(-G Ninja); fi
cm() {  # LOG ARGS...: configure quietly into LOG
  local log=$1
  shift
  cmake "${gen[@]}" -DCMAKE_PREFIX_PATH="$stage_prefix${torch_prefix:+;$torch_prefix}" "$@" >"$log" 2>&1
}
cmdir=$src/tests/packaging/cmake

# 3a. requests the package must refuse (probe/CMakeLists.txt): versions 9.0
# and 0.0, an unknown component; and the project's version EXACT.
cm "$work/probe.log" -S "$cmdir/probe" -B "$work/probe" -DSIMIC_EXPECTED_VERSION="$version" \
  || { cat "$work/probe.log"; echo "FAIL: CMake version / component probe"; exit 1; }
sed -n 's/^-- probe: /cmake probe: /p' "$work/probe.log"
if cm "$work/unknown.log" -S "$cmdir/probe" -B "$work/unknown" -DSIMIC_EXPECTED_VERSION="$version" -DPROBE_REQUIRED_UNKNOWN=ON; then
  cat "$work/unknown.log"; echo "FAIL: REQUIRED COMPONENTS bogus configured"; exit 1
fi
grep -q "simic: unknown component 'bogus'" "$work/unknown.log" \
  || { cat "$work/unknown.log"; echo "FAIL: no clear message for an unknown component"; exit 1; }
echo "cmake probe: REQUIRED COMPONENTS bogus fails: $(grep -o "simic: unknown component.*" "$work/unknown.log")"

# 3b. core only, with every search for Torch refused: configures, builds, runs,
# and compiles against the staged headers, not some other installed simic.
{ cm "$work/core.log" -S "$cmdir/core" -B "$work/core" -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    && cmake --build "$work/core" -j2 >>"$work/core.log" 2>&1; } \
  || { tail -40 "$work/core.log"; echo "FAIL: CMake core-only consumer"; exit 1; }
grep -q -- "$stage_prefix/include" "$work/core/compile_commands.json" \
  || { cat "$work/core/compile_commands.json"; echo "FAIL: simic::core does not point into the staged prefix"; exit 1; }
"$work/core/use_core" || { echo "FAIL: CMake core-only consumer gave a wrong result"; exit 1; }
echo "cmake simic::core (COMPONENTS core, Torch disabled): ok"

# 3c. simic::simic: LibTorch through the package (one LibTorch compile).
if [ "$torch" != torch ]; then
  echo "cmake simic::simic: skipped (this build has no LibTorch)"
  exit 0
fi
{ cm "$work/torch.log" -S "$cmdir" -B "$work/torch" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    && cmake --build "$work/torch" -j2 >>"$work/torch.log" 2>&1; } \
  || { tail -40 "$work/torch.log"; echo "FAIL: CMake LibTorch consumer"; exit 1; }
# TorchConfig's TORCH_CXX_FLAGS (the libstdc++ ABI LibTorch was built with)
# must reach the consumer through the targets.
grep -q -- "-D_GLIBCXX_USE_CXX11_ABI=" "$work/torch/compile_commands.json" \
  || { cat "$work/torch/compile_commands.json"; echo "FAIL: TORCH_CXX_FLAGS did not reach the consumer"; exit 1; }
"$work/torch/consumer" || { echo "FAIL: CMake LibTorch consumer"; exit 1; }
echo "cmake simic::simic (LibTorch $(sed -n 's/^Torch_DIR:PATH=//p' "$work/torch/CMakeCache.txt")): ok"
