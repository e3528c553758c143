#!/usr/bin/python3
"""StreamClassify against a bare gRPC echo stream: medians of several runs.

Runs tests/bench/stream_load (which measures spinnet and echo side by side in
one process) `--runs` times and prints, as Markdown, the medians and ranges
of the p50 ratio and the throughput ratio (spinnet / echo) per session count,
and of the open rate. With a second binary (`--before`, e.g. stream_load
built at an older commit), the two alternate run by run, so that both see
the same machine load, and both get columns. The load average at the start
and end of the runs is printed: on a busy machine the ratios move a lot.

usage: /usr/bin/python3 tests/bench/stream_compare.py [--runs 3] [--seconds 3]
           [--before OLD_STREAM_LOAD] [--raw RUNS.json] [STREAM_LOAD]
"""
import argparse
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def run(binary, seconds):
    out = subprocess.run([binary, "--seconds", str(seconds), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cell(values, fmt="{:.2f}"):
    return (fmt.format(statistics.median(values)) + " [" +
            fmt.format(min(values)) + "-" + fmt.format(max(values)) + "]")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("binary", nargs="?",
                   default=os.path.join(HERE, "../../build/tests/bench/stream_load"))
    p.add_argument("--before", help="a second stream_load to alternate with")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--raw", help="also write every run's JSON to this file")
    args = p.parse_args()
    builds = {"before": args.before} if args.before else {}
    builds["after" if args.before else "this build"] = args.binary
    results = {name: [] for name in builds}
    start_load = load()
    for i in range(args.runs):
        for name, binary in builds.items():
            print(f"run {i + 1}/{args.runs}, {name}, load {load()}", flush=True)
            results[name].append(run(binary, args.seconds))
    end_load = load()

    print(f"\n{os.cpu_count()} cores ({cpu_model()}), {args.runs} runs of "
          f"{args.seconds:g} s per point, load average {start_load} at the "
          f"start and {end_load} at the end; medians [ranges]\n")
    names = list(builds)
    print("| S | " + " | ".join(f"{n}: p50 ratio | {n}: throughput ratio"
                                for n in names) + " |")
    print("|---:|" + "---:|---:|" * len(names))
    def points(n, s):  # the runs' points at S = s (none if that build has none)
        return [pt for r in results[n] for pt in r["streams"] if pt["sessions"] == s]

    sessions = sorted({pt["sessions"] for n in names for r in results[n]
                       for pt in r["streams"]})
    for s in sessions:
        cells = []
        for n in names:
            pts = points(n, s)
            if not pts:  # e.g. an older stream_load without S = 1,024
                cells += ["–", "–"]
                continue
            cells.append(cell([pt["spinnet"]["p50_us"] / pt["echo"]["p50_us"]
                               for pt in pts]))
            cells.append(cell([pt["spinnet"]["steps_per_second"] /
                               pt["echo"]["steps_per_second"] for pt in pts]))
        print(f"| {s:,} | " + " | ".join(cells) + " |")
    print()
    for n in names:
        opens = [r["opens"] for r in results[n] if "opens" in r]
        if opens:
            print(f"- {n}: open rate ({opens[0]['concurrency']} concurrent "
                  f"one-step sessions) spinnet "
                  f"{cell([o['spinnet']['sessions_per_second'] for o in opens], '{:,.0f}')}/s, "
                  f"echo {cell([o['echo']['sessions_per_second'] for o in opens], '{:,.0f}')}/s, "
                  f"ratio {cell([o['spinnet']['sessions_per_second'] / o['echo']['sessions_per_second'] for o in opens])}; "
                  f"p50 to the first answer {cell([o['spinnet']['p50_us'] for o in opens], '{:,.0f}')} µs "
                  f"vs {cell([o['echo']['p50_us'] for o in opens], '{:,.0f}')} µs")
        else:
            print(f"- {n}: no open-rate point")
        for s in sessions:
            pts = points(n, s)
            if not pts:
                continue
            print(f"  - S = {s:,}: spinnet p50 "
                  f"{statistics.median(pt['spinnet']['p50_us'] for pt in pts):,.0f} µs, "
                  f"{statistics.median(pt['spinnet']['steps_per_second'] for pt in pts):,.0f} steps/s; "
                  f"echo p50 {statistics.median(pt['echo']['p50_us'] for pt in pts):,.0f} µs, "
                  f"{statistics.median(pt['echo']['steps_per_second'] for pt in pts):,.0f} steps/s")
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
