"""Loads odyssey weights (weights.safetensors) into PyTorch's CIFAR ResNet-18 and evaluates
them on the Fashion-MNIST test set (Debian's dataset-fashion-mnist), so the accuracy can be
compared with `odyssey eval --weights ...`; or converts a PyTorch state dict the other way.

  /usr/bin/python3 scripts/pytorch/check_weights.py runs/x/weights.safetensors
  /usr/bin/python3 scripts/pytorch/check_weights.py --export-random out.safetensors
      (a freshly initialised PyTorch model for 1 input channel, saved as safetensors: odyssey
      loads it with `odyssey eval --weights out.safetensors`)
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet18 import ResNet18, load_safetensors, save_safetensors  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="?")
    ap.add_argument("--export-random")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.export_random:
        torch.manual_seed(0)
        net = ResNet18(1, 10, 64)
        meta = {"dataset": "fashion-mnist", "normalize_mean": "[0.286]", "normalize_std": "[0.353]",
                "model": "PyTorch ResNet18(in_channels=1)"}
        save_safetensors(a.export_random, net.state_dict(), meta)
        print("wrote", a.export_random)
        return
    tensors, meta = load_safetensors(a.weights)
    in_ch = tensors["conv1.weight"].shape[1]
    net = ResNet18(in_ch, 10, 64)
    missing, unexpected = net.load_state_dict(tensors, strict=True), None
    net.eval()
    mean = json.loads(meta.get("normalize_mean", "[0.286]"))[0]
    std = json.loads(meta.get("normalize_std", "[0.353]"))[0]
    x = idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = idx(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    x = torch.from_numpy((x - np.float32(mean)) / np.float32(std)).unsqueeze(1)
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), 500):
            logits = net(x[i:i + 500])
            t = torch.from_numpy(y[i:i + 500])
            loss += float(torch.nn.functional.cross_entropy(logits, t, reduction="sum"))
            correct += int((logits.argmax(1) == t).sum())
    print(f"PyTorch {torch.__version__} with {a.weights}: loss {loss / len(y):.4f}, accuracy {100 * correct / len(y):.2f}% "
          f"on {len(y)} Fashion-MNIST test images")


if __name__ == "__main__":
    main()
