"""ResNet-18 end to end, odyssey beside PyTorch, in one run: a training step (forward,
backward, SGD) at batch 128 and 32 and inference at batch 128 and 1, with 2 threads, each in
its own process so peak resident memory is measured per implementation. Small batches time
more steps (at least 640 images), so every row measures a similar span of time.

PyTorch runs twice: as installed, and with glibc's malloc told to keep freed memory
(MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_), because on this machine kind every fresh
large allocation costs page faults that dominate PyTorch's step; the second row is PyTorch
at its best here. Inference rows add a third run: the network frozen for inference
(torch.jit.freeze, then optimize_for_inference, which prepacks the convolutions' weights for
oneDNN once), the counterpart of odyssey's inference, which keeps its prepared weights
between passes as `odyssey infer` and evaluation do. The ratio column gives odyssey's
images/s over each row's.

Usage: /usr/bin/python3 perf/resnet18_bench.py [--build build/release] [--train-batches 128,32]
           [--infer-batches 128,1] [--threads 2] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Highway's target names and the oneDNN ISA cap (ONEDNN_MAX_CPU_ISA) that matches each.
ONEDNN_ISA = {"AVX2": "AVX2", "AVX3": "AVX512_CORE", "AVX3_ZEN4": "AVX512_CORE_BF16", "SSE4": "SSE41"}
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34), "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def steps_for(batch, quick=False):
    """--steps and --warmup arguments for a batch: 5 timed steps (2 warm-up) at batch 128,
    more for smaller batches so the timed span covers at least 640 images (at most 200 steps)."""
    if quick:
        return ["--steps", "2", "--warmup", "1"]
    steps = min(200, max(5, -(-640 // batch)))
    return ["--steps", str(steps), "--warmup", str(max(2, steps // 4))]


def have_torch():
    return subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "release"))
    ap.add_argument("--train-batches", default="128,32", help="comma-separated batch sizes of the training rows")
    ap.add_argument("--infer-batches", default="128,1", help="comma-separated batch sizes of the inference rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target", help="run odyssey on this SIMD target (e.g. AVX2 on an AVX-512 machine) and cap "
                    "PyTorch's oneDNN the same way (ONEDNN_MAX_CPU_ISA=AVX2): the AVX2 comparison without a Zen 3")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    ours_bin = os.path.join(a.build, "perf", "resnet18_bench")
    torch_ok = have_torch()
    rows = []
    cases = [("train", int(b)) for b in a.train_batches.split(",") if b] + \
            [("infer", int(b)) for b in a.infer_batches.split(",") if b]
    for mode, batch in cases:
        print(f"timing {mode} at batch {batch} ...", file=sys.stderr, flush=True)
        common = ["--batch", str(batch), "--threads", str(a.threads)] + steps_for(batch)
        ours = run([ours_bin, "--mode", mode] + common + (["--target", a.target] if a.target else []))
        row = {"mode": mode, "batch": batch, "odyssey": ours}
        if torch_ok:
            script = [sys.executable, os.path.join(HERE, "torch_resnet18.py"), "--mode", mode] + common
            isa = {"ONEDNN_MAX_CPU_ISA": ONEDNN_ISA.get(a.target.upper(), a.target.upper())} if a.target else {}
            row["pytorch"] = run(script, isa)
            row["pytorch_tuned"] = run(script, {**TUNED_MALLOC, **isa})
            if mode == "infer":
                row["pytorch_frozen"] = run(script + ["--frozen"], {**TUNED_MALLOC, **isa})
        rows.append(row)

    o = rows[0]["odyssey"]
    print(f"\nResNet-18 (CIFAR, 32x32), {a.threads} threads, fp32, {o.get('cpu', 'CPU not recorded')}, "
          f"SIMD target {o['target']}, measured peak {o['peak_gflops']:.0f} GFLOP/s")
    head = f"{'':22}{'images/s':>10}{'% design limit':>16}{'% measured limit':>18}{'peak RSS MB':>13}{'ratio':>8}"
    for row in rows:
        o = row["odyssey"]
        print(f"\n{'training step' if row['mode'] == 'train' else 'inference'}, batch {row['batch']} "
              f"(design limit {o['limit_design_images_per_second']:.0f} images/s, this machine's "
              f"{o['limit_measured_images_per_second']:.0f})")
        print(head)
        best = row.get("pytorch_tuned")
        for name, r in (("odyssey", o), ("PyTorch as installed", row.get("pytorch")), ("PyTorch, tuned malloc", best),
                        ("PyTorch frozen, tuned", row.get("pytorch_frozen"))):
            if not r:
                continue
            ips = r["images_per_second"]
            ratio = f"{o['images_per_second'] / ips:.2f}x" if name != "odyssey" else ""
            print(f"{name:22}{ips:10.1f}{100 * ips / o['limit_design_images_per_second']:15.0f}%"
                  f"{100 * ips / o['limit_measured_images_per_second']:17.0f}%{r['peak_rss_mb']:13.0f}{ratio:>8}")
    if not torch_ok:
        print("\n(python3-torch is not installed: no PyTorch rows; `scripts/bootstrap.sh --with-torch` adds it)")
    else:
        print("\nratio = odyssey's images/s over that row's")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
