"""The performance table of `make bench`: every row of the performance issue, odyssey beside
PyTorch measured in the same run, the ratio, and the percentage of the limits (DESIGN.md's
229 GFLOP/s and 45 GB/s, and this machine's fp32 peak measured at start-up).

  /usr/bin/python3 perf/summary.py [--build build/release] [--kernels-json FILE] [--quick] [--target AVX2]

--kernels-json reuses a `kernels_bench --benchmark_out=FILE --benchmark_out_format=json` run;
otherwise the rows it needs are benchmarked here. --target runs odyssey on that Highway target
(ODYSSEY_TARGET; e.g. AVX2 on an AVX-512 machine) and caps PyTorch's oneDNN to the matching ISA
(ONEDNN_MAX_CPU_ISA), as resnet18_bench.py --target does. PyTorch runs as installed and with glibc's
malloc keeping freed memory (see resnet18_bench.py); ratios compare odyssey with each.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import resnet18_bench as e2e  # noqa: E402

DESIGN_GFLOPS, DESIGN_GBS = 229.0, 45.0
# Every convolution of ResNet-18 (CIFAR) as kernels_bench names it: input channels C, extent H
# (= W), output channels K, stride, kernel size, and how often it occurs in one training step.
CONVS = {
    "stem_3x3_3to64_32": (3, 32, 64, 1, 3, 1),
    "l1_3x3_64_32": (64, 32, 64, 1, 3, 4),
    "l2_down_3x3_64to128_s2": (64, 32, 128, 2, 3, 1),
    "l2_3x3_128_16": (128, 16, 128, 1, 3, 3),
    "l2_proj_1x1_64to128_s2": (64, 32, 128, 2, 1, 1),
    "l3_down_3x3_128to256_s2": (128, 16, 256, 2, 3, 1),
    "l3_3x3_256_8": (256, 8, 256, 1, 3, 3),
    "l3_proj_1x1_128to256_s2": (128, 16, 256, 2, 1, 1),
    "l4_down_3x3_256to512_s2": (256, 8, 512, 2, 3, 1),
    "l4_3x3_512_4": (512, 4, 512, 1, 3, 3),
    "l4_proj_1x1_256to512_s2": (256, 8, 512, 2, 1, 1),
}
# The rows of the performance table: every convolution of the network, each pass against
# oneDNN (PyTorch's convolution on CPU).
CONV_ROWS = list(CONVS)


def conv_passes(name):
    """The passes training runs: the stem's input gradient (the image's) is never computed."""
    return ("fwd", "bwd_weights") if name.startswith("stem") else ("fwd", "bwd_data", "bwd_weights")
# The end-to-end rows (issue 14): mode, batch, threads, and the target ratio over PyTorch with
# tuned malloc. The 1-thread row gives the two-thread scaling.
E2E_CASES = [("train", 128, 2, 2.0), ("train", 128, 1, None), ("train", 32, 2, 1.5),
             ("infer", 128, 2, 2.5), ("infer", 1, 2, 1.5)]
STEP_BN = {"64x32x32": 5, "128x16x16": 5, "256x8x8": 5, "512x4x4": 5}
# ReLU backward passes (the forward ReLU and residual add are fused into batch norm).
STEP_RELU_BWD = {"64x32x32": 5, "128x16x16": 4, "256x8x8": 4, "512x4x4": 4}


def step_breakdown(k, step_seconds):
    """Seconds of one training step spent in each kind of kernel, from the isolated kernel
    benchmarks (None when the kernel run did not cover every shape). The stem's input
    gradient is not computed in training."""
    parts = {"conv2d": 0.0, "batch_norm2d fwd+bwd": 0.0, "rest (relu bwd, pool, linear, loss, SGD)": 0.0}
    try:
        for name, (*_, count) in CONVS.items():
            parts["conv2d"] += count * sum(k[f"conv2d/{p}/{name}"] for p in conv_passes(name))
        for shape, count in STEP_BN.items():
            parts["batch_norm2d fwd+bwd"] += count * k[f"batchnorm/train_fwd_bwd/{shape}"]
            parts["rest (relu bwd, pool, linear, loss, SGD)"] += STEP_RELU_BWD[shape] * k[f"relu/bwd/{shape}"]
        rest = ("global_avgpool/fwd/512x4x4", "global_avgpool/bwd/512x4x4", "linear/fwd/512to10",
                "linear/bwd_data/512to10", "linear/bwd_weights/512to10", "cross_entropy/fwd_bwd/10", "sgd/update/11.2M")
        parts["rest (relu bwd, pool, linear, loss, SGD)"] += sum(k[r] for r in rest)
    except KeyError:
        return None
    parts["not in any kernel (measured step minus the sum)"] = step_seconds - sum(parts.values())
    return parts


def conv_flops(name, batch=128):
    """FLOPs of one pass of a convolution of CONVS (padding 1 for 3x3, 0 for 1x1)."""
    c, h, k, s, r, _ = CONVS[name]
    p = (h + 2 * (r // 2) - r) // s + 1
    return 2.0 * batch * p * p * k * c * r * r


def kernels(args):
    path = args.kernels_json
    if not path:
        path = os.path.join(tempfile.mkdtemp(), "kernels.json")
        cmd = [os.path.join(args.build, "perf", "kernels_bench"), "--benchmark_filter=conv2d(_direct)?/.*/l[1-4]_|batchnorm/train_fwd_bwd/64x32x32",
               f"--benchmark_out={path}", "--benchmark_out_format=json", "--benchmark_repetitions=3",
               "--benchmark_report_aggregates_only=true"]
        print("timing odyssey's kernels ...", file=sys.stderr, flush=True)
        env = {**os.environ, "ODYSSEY_TARGET": args.target} if args.target else None
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    with open(path) as f:
        data = json.load(f)
    out, peaks = {}, []
    per_second = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        name = b.get("run_name", b["name"]).split("/min_time")[0]
        out[name] = b["real_time"] / per_second[b.get("time_unit", "ns")]
        if b.get("%peak"):
            peaks.append(b["GFLOP/s"] / b["%peak"] * 100)
    # The peak and bandwidth kernels_bench measured at its start-up (its %peak and %bandwidth
    # counters are relative to them).
    bandwidth = float(data.get("context", {}).get("bandwidth_gbs", 0)) or None
    return out, (peaks[0] if peaks else None), bandwidth


def torch_kernels(env=None):
    r = subprocess.run([sys.executable, os.path.join(HERE, "torch_kernels.py")], check=True, capture_output=True,
                       text=True, env={**os.environ, **(env or {})})
    return json.loads(r.stdout)["seconds"]


def pct(x, limit):
    return f"{100 * x / limit:.0f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "release"))
    ap.add_argument("--kernels-json")
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, not a measurement)")
    ap.add_argument("--target", help="odyssey's SIMD target (e.g. AVX2), PyTorch's oneDNN capped to match")
    args = ap.parse_args()
    target_args = ["--target", args.target] if args.target else []
    isa = {"ONEDNN_MAX_CPU_ISA": e2e.ONEDNN_ISA.get(args.target.upper(), args.target.upper())} if args.target else {}
    ours_bin = os.path.join(args.build, "perf", "resnet18_bench")
    torch_ok = e2e.have_torch()

    ours_k, kernel_peak, bandwidth = kernels(args)
    print("timing ResNet-18 steps ...", file=sys.stderr, flush=True)
    ours = {(m, b, t): e2e.run([ours_bin, "--mode", m, "--batch", str(b), "--threads", str(t)] + target_args +
                               e2e.steps_for(b, args.quick))
            for m, b, t, _ in E2E_CASES}
    train2, train1 = ours[("train", 128, 2)], ours[("train", 128, 1)]
    peak = train2.get("peak_gflops", train2["limit_measured_images_per_second"] * 3.33)
    kernel_peak = kernel_peak or peak
    pt = {}
    if torch_ok:
        print("timing PyTorch ...", file=sys.stderr, flush=True)
        script = [sys.executable, os.path.join(HERE, "torch_resnet18.py")]
        for label, env in (("installed", isa), ("tuned", {**e2e.TUNED_MALLOC, **isa})):
            pt[label] = {(m, b, t): e2e.run(script + ["--mode", m, "--batch", str(b), "--threads", str(t)]
                                            + e2e.steps_for(b, args.quick), env)
                         for m, b, t, target in E2E_CASES if target}
            pt[label]["kernels"] = torch_kernels(env)

    print(f"\nodyssey vs PyTorch {'(as installed / with tuned malloc)' if torch_ok else '(not installed)'}, "
          f"kernels at batch 128, "
          f"2 threads, fp32, {train2.get('cpu', 'CPU not recorded')}, SIMD target {train2['target']}; this machine's fp32 peak measured at {peak:.0f} GFLOP/s "
          f"by resnet18_bench and {kernel_peak:.0f} by kernels_bench, each the reference of its own rows (DESIGN.md: {DESIGN_GFLOPS:.0f}); ratio = odyssey's speed over PyTorch's. "
          f"Convolution GFLOP/s count the direct convolution's FLOPs (2 N P Q K C R S) for every algorithm, so "
          f"Winograd F(2x2, 3x3), which does 2.25x fewer multiplies, can pass 100% of the peak; its rows also show "
          f"odyssey's direct convolution from the same run.\n")
    print("| what | odyssey | PyTorch installed / tuned | ratio (installed / tuned) | % of limit: design / measured | target |")
    print("|---|---|---|---|---|---|")

    def pt_pair(get):
        if not torch_ok:
            return "-", "-"
        a, b = get(pt["installed"]), get(pt["tuned"])
        return a, b

    # End to end.
    for m, b, t, target in E2E_CASES:
        if not target:
            continue
        row, limit = ours[(m, b, t)], 3.33 if m == "train" else 1.11
        ips = row["images_per_second"]
        a, c = pt_pair(lambda p: p[(m, b, t)]["images_per_second"])
        ratio = f"{ips / a:.2f}x / {ips / c:.2f}x" if torch_ok else "-"
        pts = f"{a:.1f} / {c:.1f} images/s" if torch_ok else "-"
        print(f"| ResNet-18 {'training step' if m == 'train' else 'inference'}, batch {b} | {ips:.1f} images/s | {pts} | "
              f"{ratio} | {pct(ips, DESIGN_GFLOPS / limit)} / {pct(ips, peak / limit)} | >= {target}x PyTorch tuned |")
    # Convolutions.
    for name in CONV_ROWS:
        flops = conv_flops(name)
        # Issue 14: every pass >= 1.2x oneDNN, the stride-2 and 1x1 ones >= 1.5x.
        target = ">= 1.5x oneDNN" if "_s2" in name or "_1x1_" in name else ">= 1.2x oneDNN"
        for pas in conv_passes(name):
            key = f"conv2d/{pas}/{name}"
            if key not in ours_k:
                continue
            g = flops / ours_k[key] / 1e9
            direct = ours_k.get(f"conv2d_direct/{pas}/{name}")
            ours = f"{g:.0f} GFLOP/s" + (f" (Winograd; direct {flops / direct / 1e9:.0f})" if direct else "")
            if torch_ok:
                ta, tb = pt["installed"]["kernels"][key], pt["tuned"]["kernels"][key]
                pts = f"{flops / ta / 1e9:.0f} / {flops / tb / 1e9:.0f} GFLOP/s"
                ratio = f"{ta / ours_k[key]:.2f}x / {tb / ours_k[key]:.2f}x"
            else:
                pts = ratio = "-"
            print(f"| conv2d {pas} {name} | {ours} | {pts} | {ratio} | {pct(g, DESIGN_GFLOPS)} / {pct(g, kernel_peak)} | {target} |")
    # Batch norm.
    key = "batchnorm/train_fwd_bwd/64x32x32"
    if key in ours_k:
        ms = ours_k[key] * 1e3
        # 8 passes over a tensor (forward: x for the statistics, x and y; backward: x and dy
        # for the sums, x, dy and dx) at the bandwidth this machine measured.
        gbs = bandwidth or DESIGN_GBS
        floor = 8 * 128 * 64 * 32 * 32 * 4 / gbs / 1e6
        if torch_ok:
            ta, tb = pt["installed"]["kernels"][key] * 1e3, pt["tuned"]["kernels"][key] * 1e3
            pts, ratio = f"{ta:.1f} / {tb:.1f} ms", f"{ta / ms:.2f}x / {tb / ms:.2f}x"
        else:
            pts = ratio = "-"
        print(f"| batch_norm2d training fwd+bwd (128,64,32,32) | {ms:.1f} ms | {pts} | {ratio} | memory floor {floor:.1f} ms at {gbs:.0f} GB/s "
              f"({ms / floor:.2f}x) | <= 1.5x the floor |")
    # Memory and threads.
    if torch_ok:
        a, b = pt["installed"][("train", 128, 2)]["peak_rss_mb"], pt["tuned"][("train", 128, 2)]["peak_rss_mb"]
        print(f"| peak resident memory, training step | {train2['peak_rss_mb']:.0f} MB | {a:.0f} / {b:.0f} MB | "
              f"{a / train2['peak_rss_mb']:.2f}x / {b / train2['peak_rss_mb']:.2f}x less | | <= PyTorch's |")
    else:
        print(f"| peak resident memory, training step | {train2['peak_rss_mb']:.0f} MB | - | - | | <= PyTorch's |")
    scale = train2["images_per_second"] / train1["images_per_second"]
    print(f"| 2 threads over 1 thread, training step | {scale:.2f}x ({train1['images_per_second']:.1f} -> "
          f"{train2['images_per_second']:.1f} images/s) | | | {pct(scale, 2.0)} of 2.0x | >= 1.9x |")

    step = 128 / train2["images_per_second"]
    parts = step_breakdown(ours_k, step)
    if parts:
        print(f"\nWhere odyssey's training step goes ({step * 1e3:.0f} ms at batch 128), from the isolated kernel timings "
              f"times their count in ResNet-18:\n")
        print("| part | ms | share of the step |")
        print("|---|---|---|")
        for what, sec in parts.items():
            print(f"| {what} | {sec * 1e3:.0f} | {100 * sec / step:.0f}% |")
        conv_flop = sum(count * conv_flops(name) * len(conv_passes(name)) for name, (*_, count) in CONVS.items())
        print(f"\nconv2d in the step: {conv_flop / 1e9:.0f} GFLOP as direct convolutions, done at "
              f"{conv_flop / parts['conv2d'] / 1e9:.0f} GFLOP/s ({pct(conv_flop / parts['conv2d'] / 1e9, kernel_peak)} of "
              f"the measured peak; Winograd does fewer).")


if __name__ == "__main__":
    main()
