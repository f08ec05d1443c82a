#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and runs the
# demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh examples/synthetic_history
exec build/examples/synthetic_history
