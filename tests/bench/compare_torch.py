#!/usr/bin/python3
"""Training throughput of the spinnet core against eager PyTorch, side by side.

Runs, in alternating rounds on the same machine, the Google Benchmark
BM_TrainBatch (tests/bench/core_bench.cc: forward + BPTT of a batch of 32,
default 3 x 32 network, 64 steps x 4 substeps) and tests/bench/torch_reference.py
(the same model in eager PyTorch with autograd and Adam, one thread), for both
cells and both precisions, and prints medians and ratios as a Markdown table,
plus the FLOP rate against the machine's measured matrix-product peak
(BM_PeakGemm, interleaved with the training runs; both rates on CPU time, so
that other processes on a shared machine do not count against either), the
per-step product alone (BM_StepGemm), and the two-thread scaling beside one
thread pinned to each core (taskset), which shows a slower or shared second
core, and two independent trainings at once, one per core, with the
per-step product run the same way as the control (in cache, so it shows
what the cores themselves lose when both work). With --baseline, a
core_bench built from another commit (e.g. before a change) runs in the
same rounds and gets its own column. Needs Debian's python3-torch (`make
bench` installs it).

usage: /usr/bin/python3 tests/bench/compare_torch.py [--build build] [--rounds 3]
           [--baseline path/to/other/core_bench]
"""
import argparse
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def bench_command(binary, pattern, cpu=None):
    """`cpu`: run pinned to that core."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return pin + [binary, f"--benchmark_filter={pattern}",
                  "--benchmark_format=json", "--benchmark_min_time=1"]


def core_bench(binary, pattern, cpu=None):
    out = subprocess.run(bench_command(binary, pattern, cpu), check=True,
                         capture_output=True, text=True)
    return {b["name"]: b for b in json.loads(out.stdout)["benchmarks"]}


def core_bench_pair(binary, pattern):
    """Two copies of one benchmark at once, pinned to cores 0 and 1: what
    each core keeps of its speed while the other works too."""
    cmd = bench_command(binary, pattern)
    runs = [subprocess.Popen(bench_command(binary, pattern, cpu),
                             stdout=subprocess.PIPE, text=True) for cpu in (0, 1)]
    outs = [r.communicate()[0] for r in runs]
    for r in runs:
        if r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, cmd)
    return [json.loads(o)["benchmarks"][0] for o in outs]


def seconds(b, key):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return b[key] * scale


def cpu_gflops(b):
    """A BM_TrainBatch's product FLOP rate on its CPU time (batch 32)."""
    return b["gemm_flops_per_sample"] * 32 / seconds(b, "cpu_time") / 1e9


def steal_jiffies():
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def torch_bench(cell, dtype):
    out = subprocess.run(
        ["/usr/bin/python3", os.path.join(HERE, "torch_reference.py"),
         "--cell", cell, "--dtype", dtype, "--batches", "15"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["cpu_samples_per_second"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build", help="CMake build directory")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--baseline", help="another build's core_bench, run alongside")
    a = p.parse_args()
    binary = os.path.join(a.build, "tests/bench/core_bench")
    configs = [(cell, dtype) for cell in ("stno", "ctrnn")
               for dtype in ("float32", "float64")]
    ours, base, theirs, flops, peak, step, two = {}, {}, {}, {}, {}, [], []
    pinned = {0: [], 1: []}
    # both cores busy at once, over one alone: independent trainings, and
    # the per-step product (compute-bound, in cache) as the control
    together = {"training": [], "product": []}
    steal0, clock0 = steal_jiffies(), os.times().elapsed
    for _ in range(a.rounds):
        for cell, dtype in configs:
            t = "float" if dtype == "float32" else "double"
            name = f"BM_TrainBatch<{t}>/cell:{0 if cell == 'stno' else 1}/threads:1/real_time"
            pattern = f"^{name.replace('/real_time', '')}"
            b = core_bench(binary, pattern)[name]
            ours.setdefault((cell, dtype), []).append(32 / seconds(b, "cpu_time"))
            flops.setdefault((cell, dtype), []).append(cpu_gflops(b))
            if a.baseline:
                b = core_bench(a.baseline, pattern)[name]
                base.setdefault((cell, dtype), []).append(32 / seconds(b, "cpu_time"))
            theirs.setdefault((cell, dtype), []).append(torch_bench(cell, dtype))
        for t in ("float", "double"):
            b = core_bench(binary, f"BM_PeakGemm<{t}>")[f"BM_PeakGemm<{t}>"]
            peak.setdefault(t, []).append(b["gemm_flops"] / 1e9)
        step.append(core_bench(binary, "BM_StepGemm")["BM_StepGemm"]["gemm_flops"] / 1e9)
        one = "BM_TrainBatch<float>/cell:0/threads:1/real_time"
        pair = core_bench(binary, "BM_TrainBatch<float>/cell:0/threads:[12]")
        two.append(pair["BM_TrainBatch<float>/cell:0/threads:2/real_time"]["items_per_second"] /
                   pair[one]["items_per_second"])
        if (os.cpu_count() or 1) >= 2:
            for cpu in (0, 1):
                b = core_bench(binary, "^BM_TrainBatch<float>/cell:0/threads:1/",
                               cpu=cpu)[one]
                pinned[cpu].append(b["items_per_second"])
            pair = core_bench_pair(binary, f"^{one.replace('/real_time', '')}/")
            together["training"].append(
                sum(b["items_per_second"] for b in pair) / pinned[0][-1])
            alone = core_bench(binary, "^BM_StepGemm$", cpu=0)["BM_StepGemm"]
            pair = core_bench_pair(binary, "^BM_StepGemm$")
            together["product"].append(
                sum(b["gemm_flops"] for b in pair) / alone["gemm_flops"])
    steal = (steal_jiffies() - steal0) / os.sysconf("SC_CLK_TCK") / (
        (os.times().elapsed - clock0) * (os.cpu_count() or 1))

    med = statistics.median
    print(f"CPU: {cpu_name()}; medians of {a.rounds} alternating rounds; "
          f"load average at the end {os.getloadavg()[0]:.1f}; "
          f"steal {100 * steal:.0f} % of CPU time\n")
    print("| cell | precision | spinnet samples/s |"
          + (" before samples/s | speed-up |" if a.baseline else "")
          + " eager PyTorch samples/s | ratio | GFLOP/s (products) | % of measured peak |")
    print("|---|---|---|" + ("---|---|" if a.baseline else "") + "---|---|---|---|")
    for cell, dtype in configs:
        o, t = med(ours[(cell, dtype)]), med(theirs[(cell, dtype)])
        f = med(flops[(cell, dtype)])
        pk = med(peak["float" if dtype == "float32" else "double"])
        before = ""
        if a.baseline:
            bb = med(base[(cell, dtype)])
            before = f" {bb:,.0f} | {o / bb:.2f}x |"
        print(f"| {cell} | {dtype} | {o:,.0f} |{before} {t:,.0f} | {o / t:.1f}x | "
              f"{f:.1f} | {100 * f / pk:.0f} % |")
    print(f"\nmeasured peak (512x512 Eigen product, one thread): "
          f"float {med(peak['float']):.0f} GFLOP/s, "
          f"double {med(peak['double']):.0f} GFLOP/s; the per-step product "
          f"alone (32 x 64 x 32, core/small_gemm.h): {med(step):.0f} GFLOP/s")
    print("samples/s and GFLOP/s on CPU time (one thread; PyTorch's on its "
          "process CPU time); the two-thread rates below on wall time")
    print(f"two threads / one thread (stno, float32): {med(two):.2f}x")
    if pinned[0]:
        print(f"one thread pinned to core 0: {med(pinned[0]):,.0f} samples/s, "
              f"to core 1: {med(pinned[1]):,.0f} samples/s (wall time)")
        print(f"two independent one-thread trainings at once, pinned to cores 0 "
              f"and 1, over one alone: {med(together['training']):.2f}x; the "
              f"per-step product the same way: {med(together['product']):.2f}x")


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    return "unknown"


if __name__ == "__main__":
    main()
