#!/usr/bin/env bash
# Runs `odyssey train` once per line of a recipe file and prints a markdown row per run:
# name, test accuracy, wall time, command. A tool for people (docs/accuracy.md), not a test:
# each run takes minutes. Accuracy does not depend on the thread count (runs are bitwise
# reproducible per SIMD target), so --threads 1 runs can go two at a time on a 2-core machine;
# the wall time is only meaningful for runs on an otherwise idle machine.
#
#   scripts/ablation.sh RECIPES [ODYSSEY] [OUT_DIR]
#
# RECIPES: lines "name: train arguments..." ('#' starts a comment). ODYSSEY defaults to
# build/release/models/resnet18/odyssey, OUT_DIR to runs/ablation.
set -eu
recipes=${1:?usage: scripts/ablation.sh RECIPES [ODYSSEY] [OUT_DIR]}
odyssey=${2:-build/release/models/resnet18/odyssey}
out=${3:-runs/ablation}
mkdir -p "$out"
echo "| run | test accuracy | wall time | command |"
echo "|---|---|---|---|"
grep -v '^\s*\(#\|$\)' "$recipes" | while IFS= read -r line; do
  name=${line%%:*}
  args=${line#*:}
  rm -rf "${out:?}/$name"
  start=$(date +%s)
  # shellcheck disable=SC2086  # the arguments are meant to split
  if "$odyssey" train $args --out "$out/$name" --quiet > "$out/$name.log" 2>&1; then
    acc=$(grep -o 'test accuracy [0-9.]*%' "$out/$name.log" | grep -o '[0-9.]*%')
  else
    acc="failed (exit $?; see $out/$name.log)"
  fi
  secs=$(( $(date +%s) - start ))
  printf '| %s | %s | %d:%02d | `odyssey train%s` |\n' "$name" "$acc" $((secs / 60)) $((secs % 60)) "$args"
done
