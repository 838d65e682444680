#!/usr/bin/env bash
# Writes a small Fashion-MNIST folder for the CLI tests: the first N images and labels of
# Debian's test split, as both its training and its test set.
# Usage: small_fashion_mnist.sh DIR N
set -eu
dir=$1
n=$2
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
fm=/usr/share/datasets/fashion-mnist
mkdir -p "$dir"
{ be32 2051; be32 "$n"; be32 28; be32 28; zcat "$fm/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c $((n * 784)); } > "$dir/t10k-images-idx3-ubyte"
{ be32 2049; be32 "$n"; zcat "$fm/t10k-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$n"; } > "$dir/t10k-labels-idx1-ubyte"
cp "$dir/t10k-images-idx3-ubyte" "$dir/train-images-idx3-ubyte"
cp "$dir/t10k-labels-idx1-ubyte" "$dir/train-labels-idx1-ubyte"
