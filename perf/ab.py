#!/usr/bin/env python3
"""Two builds of odyssey, alternated: is B faster than A?

  python3 perf/ab.py [--rounds 6] [--target AVX2] OLD_BINARY NEW_BINARY -- ARGS...

Both binaries are kernels_bench or both resnet18_bench (copy the old one aside before
rebuilding). Each round runs A and B back to back with ARGS, the one that goes first
alternating; the table gives each side's median and the median of the per-round ratios
B/A, with their range. On a shared host whose speed drifts 20-40% within minutes, the
per-round ratio is what a decision can rest on; two single runs are not (perf/README.md
v18-v20 decide everything this way).

  kernels_bench:  ARGS are its own, e.g. --benchmark_filter='conv2d/fwd/l1_.*' (a binary
                  whose name has "kernels" in it, or any --benchmark_ argument); the ratio
                  is of times (below 1: B is faster), per benchmark row
  resnet18_bench: ARGS are its own, e.g. --mode train --batch 128 --steps 6; the ratio is
                  of images/s (above 1: B is faster)

--target runs both on that Highway target (ODYSSEY_TARGET, e.g. AVX2 on an AVX-512 machine).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run(binary, args, env):
    proc = subprocess.run([binary] + args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"ab.py: {binary} exited with {proc.returncode}:\n{proc.stderr.strip()}")
    out = proc.stdout
    try:
        data = json.loads(out[out.index("{"):])
    except ValueError:
        sys.exit(f"ab.py: {binary} printed no JSON object (is it kernels_bench or resnet18_bench?)")
    if "benchmarks" in data:  # Google Benchmark's JSON: a time per row, in ms
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
        return {b["name"]: b["real_time"] * scale[b.get("time_unit", "ns")] for b in data["benchmarks"]
                if b.get("run_type", "iteration") == "iteration"}, "ms"
    if "images_per_second" in data:
        return {"resnet18_bench " + " ".join(args): data["images_per_second"]}, "images/s"
    sys.exit(f"ab.py: {binary}'s JSON has neither benchmark rows nor images_per_second")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of A and B (default 6)")
    parser.add_argument("--target", help="Highway target for both (ODYSSEY_TARGET)")
    parser.add_argument("a", help="the old binary")
    parser.add_argument("b", help="the new binary")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the binaries' own arguments")
    opts = parser.parse_args()
    if opts.rounds < 1:
        parser.error("--rounds must be at least 1")
    for binary in (opts.a, opts.b):
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            parser.error(f"{binary} is not an executable file")
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    # kernels_bench (Google Benchmark) prints JSON when asked; resnet18_bench always does.
    if any("kernels" in os.path.basename(b) for b in (opts.a, opts.b)) or any(a.startswith("--benchmark") for a in args):
        args = args + ["--benchmark_format=json"]
    env = dict(os.environ)
    if opts.target:
        env["ODYSSEY_TARGET"] = opts.target

    binaries = (opts.a, opts.b)
    samples = ({}, {})  # by side (A, B), then by row
    unit = ""
    for r in range(opts.rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            rows, unit = run(binaries[side], args, env)
            for name, value in rows.items():
                samples[side].setdefault(name, []).append(value)
        print(f"round {r + 1} of {opts.rounds} done", file=sys.stderr, flush=True)

    what = "time" if unit == "ms" else "speed"
    print(f"| row | A median {unit} | B median {unit} | B/A {what}, median of {opts.rounds} rounds (range) |")
    print("|---|---|---|---|")
    for name, a_values in samples[0].items():
        b_values = samples[1].get(name)
        if not b_values or len(b_values) != len(a_values):
            print(f"| {name} | {statistics.median(a_values):.3f} | (missing in B) | |")
            continue
        ratios = [b / a for a, b in zip(a_values, b_values)]
        print(f"| {name} | {statistics.median(a_values):.3f} | {statistics.median(b_values):.3f} | "
              f"{statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
