#!/usr/bin/python3
"""Training throughput of the spinnet core against eager PyTorch, side by side.

Runs, in alternating rounds on the same machine, the Google Benchmark
BM_TrainBatch (tests/bench/core_bench.cc: forward + BPTT of a batch of 32,
default 3 x 32 network, 64 steps x 4 substeps) and tests/bench/torch_reference.py
(the same model in eager PyTorch with autograd and Adam, one thread), for both
cells and both precisions, and prints medians and ratios as a Markdown table,
plus the FLOP rate against the machine's measured matrix-product peak and the
two-thread scaling. Needs Debian's python3-torch (`make bench` installs it).

usage: /usr/bin/python3 tests/bench/compare_torch.py [--build build] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def core_bench(binary, pattern):
    out = subprocess.run(
        [binary, f"--benchmark_filter={pattern}", "--benchmark_format=json",
         "--benchmark_min_time=1"], check=True, capture_output=True, text=True)
    return {b["name"]: b for b in json.loads(out.stdout)["benchmarks"]}


def torch_bench(cell, dtype):
    out = subprocess.run(
        ["/usr/bin/python3", os.path.join(HERE, "torch_reference.py"),
         "--cell", cell, "--dtype", dtype, "--batches", "15"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build", help="CMake build directory")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    a = p.parse_args()
    binary = os.path.join(a.build, "tests/bench/core_bench")
    configs = [(cell, dtype) for cell in ("stno", "ctrnn")
               for dtype in ("float32", "float64")]
    ours, theirs, flops, peak, two = {}, {}, {}, {}, []
    for _ in range(a.rounds):
        for cell, dtype in configs:
            t = "float" if dtype == "float32" else "double"
            name = f"BM_TrainBatch<{t}>/cell:{0 if cell == 'stno' else 1}/threads:1/real_time"
            b = core_bench(binary, f"^{name.replace('/real_time', '')}")[name]
            ours.setdefault((cell, dtype), []).append(b["items_per_second"])
            flops.setdefault((cell, dtype), []).append(b["gemm_flops"])
            theirs.setdefault((cell, dtype), []).append(torch_bench(cell, dtype))
        for t in ("float", "double"):
            b = core_bench(binary, f"BM_PeakGemm<{t}>")[f"BM_PeakGemm<{t}>"]
            peak.setdefault(t, []).append(b["gemm_flops"])
        pair = core_bench(binary, "BM_TrainBatch<float>/cell:0/threads:[12]")
        two.append(pair["BM_TrainBatch<float>/cell:0/threads:2/real_time"]["items_per_second"] /
                   pair["BM_TrainBatch<float>/cell:0/threads:1/real_time"]["items_per_second"])

    med = statistics.median
    print(f"CPU: {cpu_name()}; medians of {a.rounds} alternating rounds\n")
    print("| cell | precision | spinnet samples/s | eager PyTorch samples/s | ratio | "
          "GFLOP/s (products) | % of measured peak |")
    print("|---|---|---|---|---|---|---|")
    for cell, dtype in configs:
        o, t = med(ours[(cell, dtype)]), med(theirs[(cell, dtype)])
        f = med(flops[(cell, dtype)])
        pk = med(peak["float" if dtype == "float32" else "double"])
        print(f"| {cell} | {dtype} | {o:,.0f} | {t:,.0f} | {o / t:.1f}x | "
              f"{f / 1e9:.1f} | {100 * f / pk:.0f} % |")
    print(f"\nmeasured peak (512x512 Eigen product, one thread): "
          f"float {med(peak['float']) / 1e9:.0f} GFLOP/s, "
          f"double {med(peak['double']) / 1e9:.0f} GFLOP/s")
    print(f"two threads / one thread (stno, float32): {med(two):.2f}x")


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    return "unknown"


if __name__ == "__main__":
    main()
