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
expect 2 "'10x' is neither a number of steps (e.g. 500) nor of minutes (e.g. 15m) (--checkpoint-every)" -- \
  train --checkpoint-every 10x --out "$tmp/every"
expect 0 "--checkpoint-every" -- train --help
expect 2 "cifar-10-binary.tar.gz" -- train --dataset cifar10 --data "$tmp/nowhere" --out "$tmp/run"
expect 2 "train-images-idx3-ubyte" -- train --data "$tmp/nowhere" --out "$tmp/run2"
expect 2 "--weights: File does not exist" -- eval --weights "$tmp/missing.safetensors"
expect 2 "INPUT: File does not exist" -- predict --weights "$fixtures/resnet18_w4.safetensors" "$tmp/none.png"

# A file that is not safetensors, a truncated one, and weights of another model.
printf 'hello' > "$tmp/short.safetensors"
expect 2 "short.safetensors" -- info --weights "$tmp/short.safetensors"
head -c 1000 "$fixtures/resnet18_w4.safetensors" > "$tmp/cut.safetensors"
expect 2 "cut.safetensors" -- eval --weights "$tmp/cut.safetensors"
expect 2 "has shape [4, 3, 3, 3] but the models' stem is [64, C, 3, 3]" -- eval --weights "$fixtures/resnet18_w4.safetensors"
expect 0 "parameters: 44" -- info --weights "$fixtures/resnet18_w4.safetensors"
expect 0 "model: none of odyssey's" -- info --weights "$fixtures/resnet34_w4.safetensors"

# Models, optimizers and image sizes.
expect 2 "--model: resnet50 not in" -- train --model resnet50
expect 2 "--optimizer: rmsprop not in" -- train --optimizer rmsprop
expect 2 "--image-size: 30 not in" -- train --image-size 30
expect 2 "CIFAR-10 images are 32x32, not 28x28" -- train --dataset cifar10 --image-size 28 --out "$tmp/run3"
expect 0 "test accuracy" -- train --model preact-resnet18 --image-size 28 --optimizer adamw --train-subset 64 \
  --test-subset 64 --batch-size 32 --epochs 1 --quiet --out "$tmp/preact"
expect 0 "model: preact-resnet18, input 1x28x28" -- info --weights "$tmp/preact/weights.safetensors"
expect 0 "optimizer.exp_avg_sq.layer4.1.conv2.weight" -- info --weights "$tmp/preact/checkpoint-epoch-0001.safetensors"
expect 2 "input: the run has \"Shape<1,28,28>\", now \"Shape<1,32,32>\"" -- train --model preact-resnet18 \
  --optimizer adamw --train-subset 64 --test-subset 64 --batch-size 32 --epochs 1 --quiet --out "$tmp/preact" --resume
# A small Fashion-MNIST folder: the first 64 test images and labels, as test and training set.
"$(dirname "$0")/small_fashion_mnist.sh" "$tmp/small" 64
# The recipe options: a weight average (evaluated and saved, the last weights beside it), flip
# test-time augmentation, erasing, translation, alternating flips, batch-norm re-estimation.
expect 0 "weights-last.safetensors (the last weights)" -- train --image-size 28 --data "$tmp/small" \
  --batch-size 32 --epochs 1 --quiet --ema 0.9 --tta flip --erase 0.5 --translate 2 --flip alternate \
  --bn-recalibrate 2 --norm-lr-scale 2 --out "$tmp/recipe"
expect 0 "\"ema\":0.9" -- info --weights "$tmp/recipe/weights.safetensors"
expect 0 "(64 images, flip test-time augmentation)" -- eval --weights "$tmp/recipe/weights.safetensors" --tta flip --data "$tmp/small"
expect 0 "63,"  -- predict --weights "$tmp/recipe/weights.safetensors" --tta flip "$tmp/small/t10k-images-idx3-ubyte"
# Fine-tuning from those weights, the classifier reset; the start is recorded in the settings.
expect 0 "test accuracy" -- train --image-size 28 --data "$tmp/small" --batch-size 32 --epochs 1 --quiet \
  --init-weights "$tmp/recipe/weights.safetensors" --reset-classifier --out "$tmp/finetune"
expect 0 "\"reset_classifier\":true" -- info --weights "$tmp/finetune/weights.safetensors"
expect 2 "--reset-classifier needs --init-weights" -- train --reset-classifier --out "$tmp/reset"

if [ "$failures" -ne 0 ]; then
  echo "$failures case(s) failed"
  exit 1
fi
echo "all cases passed"
