"""PyTorch's side of the kernel rows of `make bench`: each ResNet-18 3x3 convolution
(forward, backward-data, backward-weights, through aten's convolution_backward, i.e.
oneDNN) and batch norm forward+backward at (128, 64, 32, 32), batch 128, timed as the
median of repeated calls, printed as JSON. Run with Debian's PyTorch: /usr/bin/python3."""
import argparse
import json
import time

import torch
import torch.nn.functional as F

CONVS = [  # name, C, H, K, stride (3x3, pad 1)
    ("l1_3x3_64_32", 64, 32, 64, 1),
    ("l2_down_3x3_64to128_s2", 64, 32, 128, 2),
    ("l2_3x3_128_16", 128, 16, 128, 1),
    ("l3_down_3x3_128to256_s2", 128, 16, 256, 2),
    ("l3_3x3_256_8", 256, 8, 256, 1),
    ("l4_down_3x3_256to512_s2", 256, 8, 512, 2),
    ("l4_3x3_512_4", 512, 4, 512, 1),
]


def median_seconds(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {}
    for name, c, h, k, s in CONVS:
        x = torch.randn(a.batch, c, h, h)
        w = torch.randn(k, c, 3, 3)
        y = F.conv2d(x, w, None, s, 1)
        dy = torch.randn_like(y)

        def bwd(mask):
            return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [1, 1], [1, 1], False, [0, 0], 1, mask)

        out[f"conv2d/fwd/{name}"] = median_seconds(lambda: F.conv2d(x, w, None, s, 1), a.reps)
        out[f"conv2d/bwd_data/{name}"] = median_seconds(bwd([True, False, False]), a.reps)
        out[f"conv2d/bwd_weights/{name}"] = median_seconds(bwd([False, True, False]), a.reps)
    x = torch.randn(a.batch, 64, 32, 32, requires_grad=True)
    bn = torch.nn.BatchNorm2d(64)
    dy = torch.randn_like(x)

    def bn_step():
        y = bn(x)
        y.backward(dy)

    out["batchnorm/train_fwd_bwd/64x32x32"] = median_seconds(bn_step, a.reps)
    print(json.dumps({"version": torch.__version__, "threads": a.threads, "seconds": out}))


if __name__ == "__main__":
    main()
