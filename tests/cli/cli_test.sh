#!/usr/bin/env bash
# The odyssey command's exit codes and messages for bad input and bad flags, and its
# --help. Usage: cli_test.sh <path to odyssey> <fixtures dir>
set -u
odyssey=$1
fixtures=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect <exit code> <text the output must contain> -- <arguments...>
expect() {
  local code=$1 text=$2
  shift 3
  local out rc
  out=$("$odyssey" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$code" ] || [[ "$out" != *"$text"* ]]; then
    echo "FAIL: odyssey $* -> exit $rc (want $code), output:"
    echo "$out" | sed 's/^/    /'
    echo "    (wanted it to contain: $text)"
    failures=$((failures + 1))
  else
    echo "ok:   odyssey $* -> $rc"
  fi
}

expect 0 "Subcommands:" -- --help
expect 0 "--resume" -- train --help
expect 0 "prob_0" -- predict --help
expect 2 "A subcommand is required" --
expect 2 "A subcommand is required" -- bogus
expect 2 "--epochs: Value 0 not in range" -- train --epochs 0
expect 2 "--batch-size: Value 1 not in range" -- train --batch-size 1
expect 2 "--lr: Value -1 not in range" -- train --lr -1
expect 2 "--dataset: imagenet not in" -- train --dataset imagenet
expect 2 "--schedule: linear not in" -- train --schedule linear
expect 2 "--resume needs --out" -- train --resume
expect 2 "cifar-10-binary.tar.gz" -- train --dataset cifar10 --data "$tmp/nowhere" --out "$tmp/run"
expect 2 "train-images-idx3-ubyte" -- train --data "$tmp/nowhere" --out "$tmp/run2"
expect 2 "--weights: File does not exist" -- eval --weights "$tmp/missing.safetensors"
expect 2 "INPUT: File does not exist" -- predict --weights "$fixtures/resnet18_w4.safetensors" "$tmp/none.png"

# A file that is not safetensors, a truncated one, and weights of another model.
printf 'hello' > "$tmp/short.safetensors"
expect 2 "short.safetensors" -- info --weights "$tmp/short.safetensors"
head -c 1000 "$fixtures/resnet18_w4.safetensors" > "$tmp/cut.safetensors"
expect 2 "cut.safetensors" -- eval --weights "$tmp/cut.safetensors"
expect 2 "has shape [4, 3, 3, 3] but a ResNet-18 stem is [64, C, 3, 3]" -- eval --weights "$fixtures/resnet18_w4.safetensors"
expect 0 "parameters: 44" -- info --weights "$fixtures/resnet18_w4.safetensors"

if [ "$failures" -ne 0 ]; then
  echo "$failures case(s) failed"
  exit 1
fi
echo "all cases passed"
