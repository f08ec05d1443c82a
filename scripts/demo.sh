#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and runs the
# PPO+LSTM trainer on CartPole with one injected fault (a learning-rate spike
# at update 40): it prints one line per update, the anomaly summary, and
# where events.jsonl is. `scripts/demo.sh --synthetic` runs the LibTorch-free
# demo instead (a monitor fed a synthetic history).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--synthetic" ]; then
  bash scripts/build.sh examples/synthetic_history
  exec build/examples/synthetic_history
fi
bash scripts/build.sh examples/ppo_lstm
mkdir -p runs/demo
exec build/examples/ppo_lstm --updates 80 --inject lr-spike@40 --events runs/demo/events.jsonl "$@"
