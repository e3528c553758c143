#!/usr/bin/env python3
"""The job queue's cost, measured: jobs per minute draining short jobs
(1 epoch of the default network on digits) with SQLite at 1 replica and
PostgreSQL at 1 and 2 replicas (one training worker each, on this 2-core
machine), the service's overhead per job beside the job's own compute
(its epoch_seconds: training and evaluation), the claim-to-start latency of a
job submitted to idle replicas, and the CPU that idle replicas (and the
database) burn.

usage: queue_bench.py BUILD_DIR [--jobs N] [--idle-seconds S]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
import replicas_test as fleet  # noqa: E402
from pg_cluster import PgCluster  # noqa: E402

field = fleet.field


def micros(ts):
    """A JSON Timestamp ("2026-11-30T03:10:00.123456Z") in microseconds."""
    from datetime import datetime
    return int(datetime.strptime(ts.rstrip("Z")[:26].ljust(26, "0"),
                                 "%Y-%m-%dT%H:%M:%S.%f").timestamp() * 1e6)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids(pg):
    out = subprocess.run(["pgrep", "-f", pg.data], capture_output=True,
                         text=True).stdout.split()
    return [int(p) for p in out]


def drain(replicas, jobs):
    """Submits `jobs` 1-epoch jobs round robin and waits for all to end."""
    ids = []
    for i in range(jobs):
        ids.append(field(fleet.cli_json(
            replicas[i % len(replicas)].address, "train", "--dataset",
            "digits", "--model", "q", "--epochs", "1")[0], "id"))
    address = replicas[0].address
    deadline = time.time() + 1800
    while time.time() < deadline:
        listed = [j for page in fleet.cli_json(address, "jobs")
                  for j in page.get("jobs", [])]
        done = [j for j in listed if field(j, "state") in fleet.TERMINAL]
        if len(done) == jobs:
            break
        time.sleep(1)
    assert all(field(j, "state") == "JOB_STATE_SUCCEEDED" for j in done)
    starts = [micros(field(j, "start_time")) for j in done]
    ends = [micros(field(j, "end_time")) for j in done]
    wall = (max(ends) - min(starts)) / 1e6
    compute = [field(field(j, "latest_epoch"), "epoch_seconds") for j in done]
    per_job = wall * len(replicas) / jobs  # one worker per replica
    return {
        "jobs_per_minute": jobs / wall * 60,
        "wall_s": wall,
        "per_job_s": per_job,
        "compute_s": statistics.mean(compute),
        "overhead_ms": (per_job - statistics.mean(compute)) * 1000,
        "attempts": sorted({field(j, "attempt") for j in done}),
    }


def claim_latency(replicas, samples):
    """start_time - create_time of single jobs submitted to idle replicas."""
    latencies = []
    for i in range(samples):
        r = replicas[i % len(replicas)]
        job_id = field(fleet.cli_json(r.address, "train", "--dataset", "digits",
                                      "--model", "l", "--epochs", "1",
                                      "--neurons", "4", "--layers", "1")[0], "id")
        while True:
            j = fleet.cli_json(r.address, "job", job_id)[0]
            if field(j, "state") in fleet.TERMINAL:
                break
            time.sleep(0.05)
        latencies.append((micros(field(j, "start_time")) -
                          micros(field(j, "create_time"))) / 1000)
    return statistics.median(latencies), max(latencies)


def idle_cpu(replicas, pg, seconds):
    pids = [r.proc.pid for r in replicas]
    db = postgres_pids(pg) if pg else []
    before = [cpu_seconds(p) for p in pids], [cpu_seconds(p) for p in db]
    time.sleep(seconds)
    after = [cpu_seconds(p) for p in pids], [cpu_seconds(p) for p in db]
    per_replica = [(a - b) / seconds * 100 for a, b in zip(after[0], before[0])]
    database = sum(a - b for a, b in zip(after[1], before[1])) / seconds * 100
    return max(per_replica), database


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--idle-seconds", type=float, default=20)
    args = ap.parse_args()
    fleet.BUILD = os.path.abspath(args.build)
    results = []
    with PgCluster() as pg, tempfile.TemporaryDirectory() as tmp:
        password_file = pg.password_file()
        scenarios = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2)]
        for n, (kind, count) in enumerate(scenarios):
            if kind == "sqlite":
                store = "sqlite://" + os.path.join(tmp, f"data{n}")
            else:
                pg.create_database(f"bench{n}")
                store = pg.url(f"bench{n}")
            replicas = [fleet.Replica(f"b{i + 1}", store,
                                      password_file if kind == "postgresql" else None,
                                      "--max-queued-jobs", str(args.jobs))
                        for i in range(count)]
            try:
                row = drain(replicas, args.jobs)
                row["claim_p50_ms"], row["claim_max_ms"] = claim_latency(replicas, 20)
                row["idle_cpu_replica_pct"], row["idle_cpu_db_pct"] = idle_cpu(
                    replicas, pg if kind == "postgresql" else None,
                    args.idle_seconds)
            finally:
                for r in replicas:
                    r.stop()
                    r.log.close()
            row["scenario"] = f"{kind} x{count}"
            results.append(row)
            print(row, flush=True)
    print()
    print(f"{'store x replicas':18} {'jobs/min':>9} {'per job':>8} {'compute':>8} "
          f"{'overhead':>9} {'claim p50':>10} {'idle CPU':>9} {'db idle':>8}")
    for r in results:
        print(f"{r['scenario']:18} {r['jobs_per_minute']:9.1f} "
              f"{r['per_job_s']*1000:6.0f}ms {r['compute_s']*1000:6.0f}ms "
              f"{r['overhead_ms']:7.1f}ms {r['claim_p50_ms']:8.1f}ms "
              f"{r['idle_cpu_replica_pct']:8.2f}% {r['idle_cpu_db_pct']:7.2f}%")


if __name__ == "__main__":
    main()
