"""odyssey's kernels beside oneDNN's, alternated: each round runs kernels_bench on the chosen
rows, then perf/torch_kernels.py (PyTorch 1.13's convolutions and batch norm, glibc's malloc
tuned as in resnet18_bench.py), and the table gives each row's median (and range) over the
rounds and the ratio of the medians. On a shared host whose speed drifts within minutes, the
alternation is what makes a ratio fair; a single `make bench` row can be off by 1.5x.

  /usr/bin/python3 perf/onednn_pairs.py [--build build/release] [--rounds 3] [--filter REGEX] [--target AVX2]
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import resnet18_bench as e2e  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "release"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--filter", default="conv2d/.*/(l._proj|l._down)|batchnorm/train_fwd_bwd/64x32x32",
                    help="kernels_bench rows (a --benchmark_filter regex; rows PyTorch lacks are left out)")
    ap.add_argument("--target", help="odyssey's SIMD target, oneDNN capped to match (as in summary.py)")
    a = ap.parse_args()
    if not e2e.have_torch():
        sys.exit("onednn_pairs.py: needs Debian's python3-torch (make bootstrap-torch)")
    env_ours = {**os.environ, **({"ODYSSEY_TARGET": a.target} if a.target else {})}
    env_torch = {**os.environ, **e2e.TUNED_MALLOC}
    if a.target:
        env_torch["ONEDNN_MAX_CPU_ISA"] = e2e.ONEDNN_ISA.get(a.target.upper(), a.target.upper())
    out = os.path.join(tempfile.mkdtemp(), "kernels.json")
    ours, theirs = collections.defaultdict(list), collections.defaultdict(list)
    per_second = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}
    for r in range(a.rounds):
        print(f"round {r + 1} of {a.rounds} ...", file=sys.stderr, flush=True)
        subprocess.run([os.path.join(a.build, "perf", "kernels_bench"), f"--benchmark_filter={a.filter}",
                        f"--benchmark_out={out}", "--benchmark_out_format=json", "--benchmark_min_time=0.3"],
                       check=True, capture_output=True, env=env_ours)
        with open(out) as f:
            for b in json.load(f)["benchmarks"]:
                ours[b["name"].split("/min_time")[0]].append(b["real_time"] / per_second[b["time_unit"]])
        t = subprocess.run([sys.executable, os.path.join(HERE, "torch_kernels.py")], check=True, capture_output=True,
                           text=True, env=env_torch)
        for name, seconds in json.loads(t.stdout)["seconds"].items():
            theirs[name].append(seconds)
    print(f"| row | odyssey ms, median (range) of {a.rounds} | oneDNN ms (tuned malloc) | ratio |")
    print("|---|---|---|---|")
    for name in sorted(n for n in ours if n in theirs):
        o, t = ours[name], theirs[name]
        mo, mt = statistics.median(o), statistics.median(t)
        print(f"| {name} | {mo * 1e3:.2f} ({min(o) * 1e3:.2f}-{max(o) * 1e3:.2f}) | "
              f"{mt * 1e3:.2f} ({min(t) * 1e3:.2f}-{max(t) * 1e3:.2f}) | {mt / mo:.2f}x |")


if __name__ == "__main__":
    main()
