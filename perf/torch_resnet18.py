"""PyTorch's side of perf/resnet18_bench.py: the same ResNet-18, batch and thread count,
timed the same way (median of the timed steps after warm-up), printed as one JSON object.
Run with Debian's PyTorch: /usr/bin/python3 perf/torch_resnet18.py --mode train"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "pytorch"))
from resnet18 import ResNet18  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frozen", action="store_true",
                    help="infer: the network frozen for inference (torch.jit.freeze, then optimize_for_inference, "
                         "which prepacks the convolutions' weights for oneDNN once): what odyssey's fixed weights "
                         "compare with")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = ResNet18(3, 10, 64)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.arange(a.batch) % 10
    net.train(a.mode == "train")
    model = net
    if a.frozen and a.mode == "infer":
        with torch.no_grad():
            model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(net)))

    def step():
        if a.mode == "train":
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "version": torch.__version__, "mode": a.mode, "frozen": a.frozen,
                      "batch": a.batch, "threads": a.threads, "step_seconds": round(median, 4),
                      "images_per_second": round(a.batch / median, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
