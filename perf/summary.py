"""The performance table of `make bench`: every row of the performance issue, odyssey beside
PyTorch measured in the same run, the ratio, and the percentage of the limits (DESIGN.md's
229 GFLOP/s and 45 GB/s, and this machine's fp32 peak measured at start-up).

  /usr/bin/python3 perf/summary.py [--build build/release] [--kernels-json FILE] [--quick]

--kernels-json reuses a `kernels_bench --benchmark_out=FILE --benchmark_out_format=json` run;
otherwise the rows it needs are benchmarked here. PyTorch runs as installed and with glibc's
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
CONV3X3 = [("l1_3x3_64_32", 64, 32, 64, 1), ("l2_down_3x3_64to128_s2", 64, 32, 128, 2),
           ("l2_3x3_128_16", 128, 16, 128, 1), ("l3_down_3x3_128to256_s2", 128, 16, 256, 2),
           ("l3_3x3_256_8", 256, 8, 256, 1), ("l4_down_3x3_256to512_s2", 256, 8, 512, 2),
           ("l4_3x3_512_4", 512, 4, 512, 1)]


def conv_flops(c, h, k, s, batch=128):
    p = (h + 2 - 3) // s + 1
    return 2.0 * batch * p * p * k * c * 9


def kernels(args):
    path = args.kernels_json
    if not path:
        path = os.path.join(tempfile.mkdtemp(), "kernels.json")
        cmd = [os.path.join(args.build, "perf", "kernels_bench"), "--benchmark_filter=conv2d/.*/l[1-4]_|batchnorm/train_fwd_bwd/64x32x32",
               f"--benchmark_out={path}", "--benchmark_out_format=json", "--benchmark_repetitions=3",
               "--benchmark_report_aggregates_only=true"]
        print("timing odyssey's kernels ...", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, capture_output=True)
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        name = b.get("run_name", b["name"]).split("/min_time")[0]
        out[name] = b["real_time"] / 1e3  # ms -> s
    return out


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
    args = ap.parse_args()
    steps = ["--steps", "2", "--warmup", "1"] if args.quick else ["--steps", "5", "--warmup", "2"]
    ours_bin = os.path.join(args.build, "perf", "resnet18_bench")
    torch_ok = e2e.have_torch()

    ours_k = kernels(args)
    print("timing ResNet-18 steps ...", file=sys.stderr, flush=True)
    train2 = e2e.run([ours_bin, "--mode", "train", "--threads", "2"] + steps)
    train1 = e2e.run([ours_bin, "--mode", "train", "--threads", "1"] + steps)
    infer = e2e.run([ours_bin, "--mode", "infer", "--threads", "2"] + steps)
    peak = train2["limit_measured_images_per_second"] * 3.33
    pt = {}
    if torch_ok:
        print("timing PyTorch ...", file=sys.stderr, flush=True)
        script = [sys.executable, os.path.join(HERE, "torch_resnet18.py")] + steps
        for label, env in (("installed", None), ("tuned", e2e.TUNED_MALLOC)):
            pt[label] = {
                "train": e2e.run(script + ["--mode", "train"], env),
                "infer": e2e.run(script + ["--mode", "infer"], env),
                "kernels": torch_kernels(env),
            }

    print(f"\nodyssey vs PyTorch {'(as installed / with tuned malloc)' if torch_ok else '(not installed)'}, batch 128, "
          f"2 threads, fp32, SIMD target {train2['target']}; this machine's fp32 peak measured at {peak:.0f} GFLOP/s "
          f"(DESIGN.md: {DESIGN_GFLOPS:.0f}); ratio = odyssey's speed over PyTorch's\n")
    print("| what | odyssey | PyTorch installed / tuned | ratio (installed / tuned) | % of limit: design / measured | target |")
    print("|---|---|---|---|---|---|")

    def pt_pair(get):
        if not torch_ok:
            return "-", "-"
        a, b = get(pt["installed"]), get(pt["tuned"])
        return a, b

    # End to end.
    for mode, row, target, limit in (("train", train2, ">= 1.5x PyTorch", 3.33), ("infer", infer, ">= 1.0x PyTorch", 1.11)):
        ips = row["images_per_second"]
        a, b = pt_pair(lambda p: p[mode]["images_per_second"])
        ratio = f"{ips / a:.2f}x / {ips / b:.2f}x" if torch_ok else "-"
        pts = f"{a:.1f} / {b:.1f} images/s" if torch_ok else "-"
        print(f"| ResNet-18 {'training step' if mode == 'train' else 'inference'} | {ips:.1f} images/s | {pts} | {ratio} | "
              f"{pct(ips, DESIGN_GFLOPS / limit)} / {pct(ips, peak / limit)} | {target} |")
    # Convolutions.
    for name, c, h, k, s in CONV3X3:
        flops = conv_flops(c, h, k, s)
        for pas, target in (("fwd", ">= 90% of peak"), ("bwd_data", ">= 85%"), ("bwd_weights", ">= 85%")):
            key = f"conv2d/{pas}/{name}"
            if key not in ours_k:
                continue
            g = flops / ours_k[key] / 1e9
            if torch_ok:
                ta, tb = pt["installed"]["kernels"][key], pt["tuned"]["kernels"][key]
                pts = f"{flops / ta / 1e9:.0f} / {flops / tb / 1e9:.0f} GFLOP/s"
                ratio = f"{ta / ours_k[key]:.2f}x / {tb / ours_k[key]:.2f}x"
            else:
                pts = ratio = "-"
            print(f"| conv2d {pas} {name} | {g:.0f} GFLOP/s | {pts} | {ratio} | {pct(g, DESIGN_GFLOPS)} / {pct(g, peak)} | {target} |")
    # Batch norm.
    key = "batchnorm/train_fwd_bwd/64x32x32"
    if key in ours_k:
        ms = ours_k[key] * 1e3
        floor = 8 * 128 * 64 * 32 * 32 * 4 / DESIGN_GBS / 1e6  # ms for 8 tensor passes at 45 GB/s
        if torch_ok:
            ta, tb = pt["installed"]["kernels"][key] * 1e3, pt["tuned"]["kernels"][key] * 1e3
            pts, ratio = f"{ta:.1f} / {tb:.1f} ms", f"{ta / ms:.2f}x / {tb / ms:.2f}x"
        else:
            pts = ratio = "-"
        print(f"| batch_norm2d training fwd+bwd (128,64,32,32) | {ms:.1f} ms | {pts} | {ratio} | memory floor {floor:.1f} ms | <= 9 ms |")
    # Memory and threads.
    if torch_ok:
        a, b = pt["installed"]["train"]["peak_rss_mb"], pt["tuned"]["train"]["peak_rss_mb"]
        print(f"| peak resident memory, training step | {train2['peak_rss_mb']:.0f} MB | {a:.0f} / {b:.0f} MB | "
              f"{a / train2['peak_rss_mb']:.2f}x / {b / train2['peak_rss_mb']:.2f}x less | | <= PyTorch's |")
    else:
        print(f"| peak resident memory, training step | {train2['peak_rss_mb']:.0f} MB | - | - | | <= PyTorch's |")
    scale = train2["images_per_second"] / train1["images_per_second"]
    print(f"| 2 threads over 1 thread, training step | {scale:.2f}x ({train1['images_per_second']:.1f} -> "
          f"{train2['images_per_second']:.1f} images/s) | | | {pct(scale, 2.0)} of 2.0x | >= 1.8x |")


if __name__ == "__main__":
    main()
