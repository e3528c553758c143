#!/usr/bin/python3
"""Studies per core-hour: the paper's Fig. 3a grid run the way docs/studies.md
runs it (`python3 -m spinnet.study fig3a` against a spinnet-server with
`--training-workers` workers): tau {0.5, 1, 2} ns x 7 input intervals
{0.05, 0.1, 0.2, 0.5, 1, 2, 5} ns x SEEDS seeds x EPOCHS epochs, with the
study's substeps rule (max(4, ceil(2 dt_in / 0.5))). Measures the wall time
from the first submit to the last job's end and the server's CPU time
(user + system), and prints them as a Markdown table row, with the core-hours
per full study (210 trainings x 30 epochs) they extrapolate to.

`--server-binary` picks another build's server (e.g. the one before a
change), so that two builds can be measured one after the other under the
same conditions; the Python client is always BUILD's.

usage: /usr/bin/python3 tests/bench/study_bench.py [--build build]
           [--server-binary PATH] [--seeds 10] [--epochs 30] [--workers 2]
           [--label NAME] [--header]

Each training runs on one thread: the server's sweeps train every point on
one thread (core/sweep.cc), so the parallelism is --workers.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

DT_IN = "0.05,0.1,0.2,0.5,1,2,5"
TAUS, FULL_SEEDS, FULL_EPOCHS = 3, 10, 30


def cpu_seconds(pid):
    """User + system CPU seconds of a live process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def run(build, server_binary, seeds, epochs, workers):
    data = tempfile.mkdtemp(prefix="study-bench-")
    try:
        server = subprocess.Popen(
            [server_binary, "--listen", "127.0.0.1:0", "--metrics-listen", "",
             "--data-dir", data, "--training-workers", str(workers)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = server.stdout.readline()
        m = re.search(r"listening on (\S+?)[,\s]", line + " ")
        if not m:
            server.kill()
            server.wait()
            sys.exit(f"study_bench: server did not start: {line}")
        try:
            cpu0 = cpu_seconds(server.pid)
            env = dict(os.environ,
                       PYTHONPATH=os.path.join(build, "client", "python"))
            start = time.monotonic()
            subprocess.run(
                ["/usr/bin/python3", "-m", "spinnet.study", "fig3a",
                 "--server", m.group(1), "--seeds", str(seeds),
                 "--epochs", str(epochs), "--dt-in", DT_IN,
                 "--out", os.path.join(data, "out")],
                env=env, check=True, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            wall = time.monotonic() - start
            cpu = cpu_seconds(server.pid) - cpu0
        finally:
            server.terminate()
            server.wait(timeout=60)
        return wall, cpu
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build", help="CMake build directory")
    p.add_argument("--server-binary", help="default: BUILD/server/spinnet-server")
    p.add_argument("--seeds", type=int, default=FULL_SEEDS)
    p.add_argument("--epochs", type=int, default=FULL_EPOCHS)
    p.add_argument("--workers", type=int, default=2,
                   help="the server's --training-workers")
    p.add_argument("--label", default="", help="first column of the row")
    p.add_argument("--header", action="store_true", help="print the header")
    a = p.parse_args()
    binary = a.server_binary or os.path.join(a.build, "server", "spinnet-server")
    wall, cpu = run(a.build, binary, a.seeds, a.epochs, a.workers)
    runs = TAUS * len(DT_IN.split(",")) * a.seeds
    # A training's cost is linear in its epochs; the full study is 210 runs
    # of 30 epochs.
    scale = (TAUS * len(DT_IN.split(",")) * FULL_SEEDS * FULL_EPOCHS) / (
        runs * a.epochs)
    core_hours = cpu * scale / 3600
    if a.header:
        print("| build | trainings x epochs | workers | wall | CPU | "
              "core-hours per full Fig. 3a study | studies per core-hour |")
        print("|---|---|---|---|---|---|---|")
    print(f"| {a.label or binary} | {runs} x {a.epochs} | "
          f"{a.workers} | "
          f"{wall:.0f} s | {cpu:.0f} s | {core_hours:.3f} | "
          f"{1 / core_hours:.1f} |")


if __name__ == "__main__":
    main()
