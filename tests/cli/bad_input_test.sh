#!/usr/bin/env bash
# Every kind of bad input a user can hand odyssey, and the one message they get (exit code 2).
# Each row of docs/bad-input.md is a case here; `bad_input_test.sh ODYSSEY FIXTURES --table`
# prints the table from the messages odyssey gives today.
# Usage: bad_input_test.sh <path to odyssey> <fixtures dir> [--table]
set -u
odyssey=$1
fixtures=$2
table=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fmnist=/usr/share/datasets/fashion-mnist
failures=0
[ -n "$table" ] && { echo "| bad input | command | message (exit code 2) |"; echo "|---|---|---|"; }

# row <description> <text the message must contain> -- <arguments...>
row() {
  local what=$1 text=$2
  shift 3
  local out rc
  out=$("$odyssey" "$@" 2>&1 >/dev/null)
  rc=$?
  out=${out//$tmp/TMP}
  out=${out//$'\n'/ }
  if [ -n "$table" ]; then
    local args="$*"
    echo "| $what | \`odyssey ${args//$tmp/TMP}\` | ${out//|/\\|} |"
  fi
  if [ "$rc" -ne 2 ] || [[ "$out" != *"$text"* ]]; then
    echo "FAIL: $what: odyssey $* -> exit $rc, message: $out (wanted exit 2 and: $text)" >&2
    failures=$((failures + 1))
  elif [ -z "$table" ]; then
    echo "ok:   $what"
  fi
}

be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
le64() { local n=$1 i; for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((n >> (8 * i)) & 255)))"; done; }
# safetensors <file> <json>: a header of that JSON followed by 16 zero bytes of data
safetensors() { { le64 ${#2}; printf '%s' "$2"; head -c 16 /dev/zero; } > "$1"; }
# A Fashion-MNIST folder $2: the real test set and labels, training images from command $1.
fmnist_dir() {
  mkdir -p "$tmp/$2"
  cp "$fmnist"/t10k-* "$tmp/$2/"
  cp "$fmnist"/train-labels-idx1-ubyte.gz "$tmp/$2/"
  eval "$1" > "$tmp/$2/train-images-idx3-ubyte"
}

# ---- dataset files
row "missing dataset file" "cannot find the Fashion-MNIST images" -- train --data "$tmp/nothing-here" --out "$tmp/r1"
fmnist_dir "zcat $fmnist/train-images-idx3-ubyte.gz | head -c 1000000" truncated
row "truncated IDX file" "truncated" -- train --data "$tmp/truncated" --out "$tmp/r2"
fmnist_dir "zcat $fmnist/train-labels-idx1-ubyte.gz" magic
row "wrong magic number (labels given as images)" "magic number 0x00000801" -- train --data "$tmp/magic" --out "$tmp/r3"
mkdir -p "$tmp/labels"; cp "$fmnist"/train-images-idx3-ubyte.gz "$fmnist"/t10k-* "$tmp/labels/"
{ be32 2049; be32 60000; head -c 59999 /dev/zero; printf '\x0a'; } > "$tmp/labels/train-labels-idx1-ubyte"
row "label out of range (IDX)" "label" -- train --data "$tmp/labels" --out "$tmp/r4"
mkdir -p "$tmp/count"; cp "$fmnist"/train-images-idx3-ubyte.gz "$fmnist"/t10k-* "$tmp/count/"
{ be32 2049; be32 59000; head -c 59000 /dev/zero; } > "$tmp/count/train-labels-idx1-ubyte"
row "image and label counts differ" "59000" -- train --data "$tmp/count" --out "$tmp/r5"
mkdir -p "$tmp/cifar"
for i in 1 2 3 4 5; do head -c $((3073 * 4)) /dev/zero > "$tmp/cifar/data_batch_$i.bin"; done
head -c 3000 /dev/zero > "$tmp/cifar/test_batch.bin"
row "truncated CIFAR-10 file" "not a whole number of 3073-byte records" -- train --dataset cifar10 --data "$tmp/cifar" --out "$tmp/r6"
{ printf '\x0c'; head -c 3072 /dev/zero; } > "$tmp/bad-label.bin"
cp -r "$tmp/cifar" "$tmp/cifar-label"
cp "$tmp/bad-label.bin" "$tmp/cifar-label/data_batch_3.bin"
row "CIFAR-10 label out of range" "record 0 has label 12" -- train --dataset cifar10 --data "$tmp/cifar-label" --out "$tmp/r7"
row "missing CIFAR-10 folder" "cifar-10-binary.tar.gz" -- train --dataset cifar10 --data "$tmp/no-cifar" --out "$tmp/r8"
# ---- prediction inputs
"$odyssey" train --train-subset 64 --test-subset 64 --batch-size 32 --epochs 1 --quiet --out "$tmp/model" >/dev/null 2>&1 ||
  { echo "FAIL: could not train the small model the remaining cases need" >&2; exit 1; }
w=$tmp/model/weights.safetensors
row "CIFAR-10 file for a 1-channel model" "CIFAR-10 images have 3 channels" -- predict --weights "$w" "$tmp/bad-label.bin"
{ be32 2051; be32 1; be32 20; be32 20; head -c 400 /dev/zero; } > "$tmp/small.idx"
row "wrong image size (IDX 20x20)" "20x20 images; this model takes 32x32" -- predict --weights "$w" "$tmp/small.idx"
printf 'not a png at all' > "$tmp/fake.png"
row "not a PNG" "not a readable PNG" -- predict --weights "$w" "$tmp/fake.png"
row "wrong image size (PNG 40x40)" "a 40x40 image; the model takes 32x32" -- predict --weights "$w" "$fixtures/gray-40x40.png"
# ---- weights files
row "missing weights file" "File does not exist" -- eval --weights "$tmp/none.safetensors"
head -c 1000 "$w" > "$tmp/cut.safetensors"
row "truncated weights file" "cut.safetensors" -- eval --weights "$tmp/cut.safetensors"
safetensors "$tmp/json.safetensors" '{"a": {"dtype": "F32", '
row "corrupt header (invalid JSON)" "JSON" -- info --weights "$tmp/json.safetensors"
{ le64 9223372036854775807; printf '{}'; } > "$tmp/huge.safetensors"
row "hostile header length (2^63)" "huge.safetensors" -- info --weights "$tmp/huge.safetensors"
safetensors "$tmp/overlap.safetensors" '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'
row "overlapping tensor offsets" "overlap" -- info --weights "$tmp/overlap.safetensors"
safetensors "$tmp/beyond.safetensors" '{"a":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}'
row "tensor beyond the end of the file" "beyond" -- info --weights "$tmp/beyond.safetensors"
row "weights for another model (width 4)" "but the models' stem is [64, C, 3, 3]" -- eval --weights "$fixtures/resnet18_w4.safetensors"
cp "$w" "$tmp/nan.safetensors"
size=$(stat -c %s "$tmp/nan.safetensors")
printf '\x00\x00\xc0\x7f' | dd of="$tmp/nan.safetensors" bs=1 seek=$((size - 4)) conv=notrunc status=none
row "NaN in the weights" "is nan, not a finite number" -- eval --weights "$tmp/nan.safetensors" --batch-size 64
# ---- weights to start from
mkdir -p "$tmp/cifar-ok"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do head -c $((3073 * 4)) /dev/zero > "$tmp/cifar-ok/$f.bin"; done
"$odyssey" train --dataset cifar10 --data "$tmp/cifar-ok" --batch-size 10 --epochs 1 --quiet --out "$tmp/cifar-run" >/dev/null 2>&1 ||
  { echo "FAIL: could not train the small CIFAR-10 model the next case needs" >&2; exit 1; }
cp "$tmp/cifar-run/weights.safetensors" "$tmp/cifar-model.safetensors"
row "weights to start from of another input (3-channel CIFAR-10 model)" "tensor 'conv1.weight' has shape [64, 3, 3, 3] in the file but [64, 1, 3, 3] is expected" -- train --init-weights "$tmp/cifar-model.safetensors" --train-subset 64 --out "$tmp/r9"
row "weights to start from of another model" "has no tensor" -- train --init-weights "$w" --model resnet34 --train-subset 64 --out "$tmp/r10"
row "--reset-classifier without --init-weights" "--reset-classifier needs --init-weights" -- train --reset-classifier --out "$tmp/r11"
# ---- output
row "output directory that cannot be created" "cannot create the run directory" -- train --train-subset 64 --epochs 1 --out /proc/odyssey-run
row "unwritable output directory" "cannot write in the run directory '/proc'" -- train --train-subset 64 --epochs 1 --out /proc
row "output directory that already holds a run" "already holds a run" -- train --train-subset 64 --epochs 1 --out "$tmp/model"
# Disk full: the file-size limit (ulimit -f, with SIGXFSZ ignored) makes the checkpoint write
# fail as a full disk would.
out=$( (trap '' XFSZ; ulimit -f 2000; "$odyssey" train --train-subset 64 --test-subset 64 --batch-size 32 --epochs 1 --quiet --out "$tmp/full") 2>&1 >/dev/null)
rc=$?
[ -n "$table" ] && echo "| disk full while saving a checkpoint (ulimit -f 2000) | \`odyssey train ... --out TMP/full\` | ${out//$tmp/TMP} |"
if [ "$rc" -ne 2 ] || [[ "$out" != *"File too large"* ]] || ls "$tmp/full"/checkpoint-epoch-*.safetensors >/dev/null 2>&1; then
  echo "FAIL: disk full -> exit $rc, message: $out (wanted exit 2, 'File too large', and no checkpoint left)" >&2
  failures=$((failures + 1))
elif [ -z "$table" ]; then
  echo "ok:   disk full while saving a checkpoint"
fi

# ---- environment
export ODYSSEY_TARGET=NOSUCH
row "unknown SIMD target (ODYSSEY_TARGET=NOSUCH)" "ODYSSEY_TARGET: SIMD target 'NOSUCH' is not available" -- train --train-subset 64 --epochs 1 --out "$tmp/target"
unset ODYSSEY_TARGET

[ "$failures" -eq 0 ] || { echo "$failures case(s) failed" >&2; exit 1; }
[ -n "$table" ] || echo "all bad-input cases give their message and exit code 2"
