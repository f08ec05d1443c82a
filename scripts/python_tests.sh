#!/usr/bin/env bash
# The Python module's tests (tests/python, pytest) in one of the test
# command's two stages:
#   bash scripts/python_tests.sh debian   Debian 12's python3-torch 1.13; the
#                                         C++ side of the same-events test from ./build
#   bash scripts/python_tests.sh torch2   pip's torch 2.x (scripts/torch2_version.sh);
#                                         C++ side from ./build-libtorch2
# Each stage installs this checkout with `pip install .` into its own venv,
# kept outside the checkout ($SIMIC_CACHE, default ~/.cache/simic) so a fresh
# clone reuses what was downloaded; the examples' pinned packages
# (examples/python/requirements.txt) come from PyPI, as pip's torch does
# (about 3 GB with its CUDA libraries, which import torch loads even without
# a GPU). pytest's JUnit report goes to <build dir>/pytest.xml, which
# scripts/count_tests.py counts.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${SIMIC_CACHE:-$HOME/.cache/simic}
pip_q=(-q --disable-pip-version-check)
case "${1:-}" in
  debian)
    venv=$cache/python-debian
    build=build
    make_venv() { /usr/bin/python3 -m venv --system-site-packages "$venv"; }
    ;;
  torch2)
    version=$(bash scripts/torch2_version.sh)
    venv=$cache/python-torch2-$version
    build=build-libtorch2
    make_venv() {
      /usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install "${pip_q[@]}" "torch==$version" numpy meson-python ninja pytest
    }
    ;;
  *) echo "usage: bash scripts/python_tests.sh debian|torch2" >&2; exit 2 ;;
esac
report=$root/$build/pytest.xml
rm -f "$report"  # a failure before pytest leaves none: counted as failed
if [ ! -f "$venv/complete" ]; then
  echo "simic: making the Python venv $venv" >&2
  rm -rf "$venv"
  make_venv >&2 || { echo "simic: could not make $venv" >&2; exit 1; }
  touch "$venv/complete"
fi
"$venv/bin/pip" install "${pip_q[@]}" -r examples/python/requirements.txt >&2 ||
  { echo "simic: pip could not install examples/python/requirements.txt" >&2; exit 1; }
"$venv/bin/python" -c 'import torch; print("Python module against torch", torch.__version__)'
# The module, built from this checkout against the venv's torch.
"$venv/bin/pip" install "${pip_q[@]}" --no-build-isolation --no-index --force-reinstall --no-deps . \
  >"$build/python-install.log" 2>&1 || { tail -n 60 "$build/python-install.log" >&2; exit 1; }
# From outside the checkout, so `import simic` is the installed package.
cd "$(mktemp -d)" &&
  SIMIC_EVENTS_REPLAY=$root/$build/tests/python/events_replay SIMIC_EXAMPLES=$root/examples/python \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$report" "$root/tests/python"
