#!/usr/bin/env bash
# Packaging: `meson install` lays out the headers and a pkg-config file that
# compile a program, and a parent Meson project uses simic as a subproject.
# Usage: packaging_test.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$1 build=$2
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
