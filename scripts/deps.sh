#!/usr/bin/env bash
# Installs the Debian packages simic's build, tests and demo need, if any is
# missing. Quiet and quick when everything is in place.
set -euo pipefail
need=(g++ meson ninja-build pkg-config cmake libtorch-dev doctest-dev libbenchmark-dev nlohmann-json3-dev python3
      clang libclang-rt-14-dev  # clang and its runtime: the fuzz targets (libFuzzer)
      libgloo-dev               # Gloo's headers: c10d process groups (distributed tests)
      python3-venv              # the tests' tensorboard (scripts/tensorboard_env.sh)
      python3-dev python3-torch python3-mesonpy pybind11-dev python3-pytest  # the Python module and its tests
      chromium                  # renders the HTML run report in its test (tests/tools)
      fortunes)                 # the texts the example language model trains on (examples/char_lm)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "simic: installing ${missing[*]} (apt-get)" >&2
  if [ "$(id -u)" -ne 0 ]; then echo "simic: run as root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
