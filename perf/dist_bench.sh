#!/usr/bin/env bash
# Data parallelism on this machine: one epoch of ResNet-18 (28x28 Fashion-MNIST, the first
# IMAGES training images, batch BATCH) as 1 process x 2 threads and as 2 MPI ranks x 1
# thread (each bound to a core), in the same run. Prints the training images/s of each (the
# epoch line), their ratio, and the share of rank 0's run spent in communication calls.
# Usage: perf/dist_bench.sh [BATCH] [IMAGES] [odyssey binary]
set -eu
batch=${1:-128}
images=${2:-2560}
odyssey=${3:-build/release/models/resnet18/odyssey}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(train --image-size 28 --train-subset "$images" --test-subset 256 --epochs 1 --batch-size "$batch" --lr 0.005
      --schedule cosine --no-augment)
ips() { tr '\r' '\n' <"$1" | sed -n 's/^.*epoch 1\/1: .* | \([0-9.]*\) img\/s .*/\1/p'; }
"$odyssey" "${args[@]}" --threads 2 --out "$tmp/one" >"$tmp/one.log" 2>&1
mpirun --bind-to core -np 2 "$odyssey" "${args[@]}" --threads 1 --out "$tmp/two" >"$tmp/two.log" 2>&1 || { cat "$tmp/two.log"; exit 1; }
one=$(ips "$tmp/one.log")
two=$(ips "$tmp/two.log")
comm=$(sed -n 's/.*rank 0 spent \([0-9.]*\) s (\([0-9.]*\)% of the run).*/\1 s, \2%/p' "$tmp/two.log")
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), batch $batch, $images images"
echo "1 process x 2 threads: $one images/s"
echo "2 ranks x 1 thread:    $two images/s ($(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.2f", a / b }')x); rank 0 in communication: $comm of the run"
