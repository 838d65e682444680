"""PyTorch's side of the kernel rows of `make bench`: each ResNet-18 convolution
(forward, backward-data, backward-weights, through aten's convolution_backward, i.e.
oneDNN; the stem without backward-data, which training never runs) and batch norm forward+backward at (128, 64, 32, 32), batch 128, timed as the
median of repeated calls, printed as JSON. Run with Debian's PyTorch: /usr/bin/python3."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from summary import CONV_ROWS, CONVS, conv_passes  # noqa: E402  (the shapes, shared with the table)


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
    for name in CONV_ROWS:
        c, h, k, s, r, _ = CONVS[name]
        p = r // 2
        x = torch.randn(a.batch, c, h, h)
        w = torch.randn(k, c, r, r)
        y = F.conv2d(x, w, None, s, p)
        dy = torch.randn_like(y)

        def bwd(mask):
            return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

        runs = {"fwd": lambda: F.conv2d(x, w, None, s, p), "bwd_data": bwd([True, False, False]),
                "bwd_weights": bwd([False, True, False])}
        for pas in conv_passes(name):
            out[f"conv2d/{pas}/{name}"] = median_seconds(runs[pas], a.reps)
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
