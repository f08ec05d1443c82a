# What the device scripts share (run.sh, deferred_check.sh), sourced by each:
# the repository root as the working folder, $OUT for logs (the device
# tool's output folder; default .device/out), .device/ from
# scripts/prepare_device.sh, the build folder, and the step/fail lines.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/.device/out}
mkdir -p "$OUT"
DEV=$ROOT/.device
B=build-gpu
T0=$(date +%s)
step() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }
fail() { echo "FAILED: $*"; echo "logs in $OUT"; exit 1; }

[ -d "$DEV/include/doctest" ] || fail ".device/ is missing or empty: run scripts/prepare_device.sh here and carry .device"
