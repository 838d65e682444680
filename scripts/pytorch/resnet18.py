"""The CIFAR ResNets in PyTorch (ResNet-18, ResNet-34, PreAct ResNet-18, as kuangliu's
pytorch-cifar defines them), with the same module names as odyssey's (conv1, bn1,
layer1.0.conv1, layer2.0.shortcut.0, linear, ...), plus a minimal safetensors writer and
reader (Debian's python3-torch has no safetensors package).

Used to make the reference files the tests read and to run PyTorch beside odyssey in the
benchmarks. Run with Debian's interpreter: /usr/bin/python3.
"""
import json
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """relu(bn1(x)) feeds conv1 and, when the shape changes, the 1x1 shortcut; the identity
    shortcut is x itself; no ReLU after the sum."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class ResNet(nn.Module):
    """conv1 (+ bn1 and ReLU unless pre-activation), four stages, global average pool, linear."""

    def __init__(self, block, blocks, in_channels=3, classes=10, width=64, stem_bn=True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        if stem_bn:
            self.bn1 = nn.BatchNorm2d(width)
        planes = [width, 2 * width, 4 * width, 8 * width]
        strides = [1, 2, 2, 2]
        in_planes = width
        for i, (p, s, n) in enumerate(zip(planes, strides, blocks)):
            layers = [block(in_planes, p, s)] + [block(p, p, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            in_planes = p
        self.linear = nn.Linear(8 * width, classes)

    def forward(self, x):
        out = self.conv1(x)
        if hasattr(self, "bn1"):
            out = F.relu(self.bn1(out))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def ResNet18(in_channels=3, classes=10, width=64):
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, classes, width)


def ResNet34(in_channels=3, classes=10, width=64):
    return ResNet(BasicBlock, [3, 4, 6, 3], in_channels, classes, width)


def PreActResNet18(in_channels=3, classes=10, width=64):
    return ResNet(PreActBlock, [2, 2, 2, 2], in_channels, classes, width, stem_bn=False)


MODELS = {"resnet18": ResNet18, "resnet34": ResNet34, "preact-resnet18": PreActResNet18}


_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
_TORCH = {v: k for k, v in _DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as safetensors: u64 header length, JSON header, raw data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Reads a safetensors file into {name: tensor} and its metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=_TORCH[h["dtype"]])
        out[name] = t.reshape(h["shape"]).clone()
    return out, meta
