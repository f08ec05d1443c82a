#!/usr/bin/env bash
# Prints the path of a Python that has pip's tensorboard, for the test that
# reads the TensorBoard sink's files back with TensorBoard itself. The virtual
# environment lives outside the checkout (default ~/.cache/simic, or
# $SIMIC_CACHE), so a fresh clone reuses it; the first run installs
# tensorboard from PyPI (about 30 MB with numpy, grpcio and protobuf).
set -euo pipefail
venv=${SIMIC_CACHE:-$HOME/.cache/simic}/tensorboard-venv
py=$venv/bin/python
if ! "$py" -c 'import tensorboard.backend.event_processing.event_accumulator' >/dev/null 2>&1; then
  echo "simic: installing tensorboard (pip) into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check tensorboard >&2
fi
echo "$py"
