#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, and runs the
# PPO+LSTM trainer on CartPole with one injected fault (a learning-rate spike
# at update 40), guarded by simic::recovery (--recover: snapshots of the last
# good state, a rollback where skipping steps is not enough; docs/trainer.md,
# "Recovery and resume"): it prints one line per update, the anomaly and
# recovery summary, and where events.jsonl and the TensorBoard file are
# (`tensorboard --logdir runs/demo`), then writes the run's HTML report
# (runs/demo/report.html, tools/report). `scripts/demo.sh --synthetic` runs
# the LibTorch-free demo instead (a monitor fed a synthetic history).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--synthetic" ]; then
  bash scripts/build.sh examples/synthetic_history
  exec build/examples/synthetic_history
fi
bash scripts/build.sh examples/ppo_lstm tools/simic-report
mkdir -p runs/demo
# One run per TensorBoard directory: an earlier demo's file would be drawn as part of this one.
rm -f runs/demo/events.out.tfevents.*
# The trainer's exit code is the demo's (3 where the monitor stopped it). The
# report is written whenever this run wrote events (a stopped run is the one
# to look at), not from an older file left by a run before.
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
rc=0
build/examples/ppo_lstm --updates 80 --inject lr-spike@40 --recover --events runs/demo/events.jsonl --tensorboard runs/demo "$@" \
  || rc=$?
if [ runs/demo/events.jsonl -nt "$stamp" ]; then
  if build/tools/simic-report runs/demo/events.jsonl -o runs/demo/report.html; then
    echo "report: runs/demo/report.html"
  elif [ "$rc" -eq 0 ]; then
    rc=2
  fi
fi
exit "$rc"
