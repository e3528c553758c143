"""python3 -m spinnet.tune: chooses each cell's training defaults on a
validation split and reports test accuracy once, as sweeps on a spinnet
server (README, "Accuracy"; docs/studies.md).

The protocol, the same for the STNO and the CTRNN (equal effort):
  1. On "digits:validation" (the fixed training split's 1,437 sequences,
     split again 1,149 train / 288 validation; the test split is never
     read): lr {0.002, 0.005, 0.01, 0.02} x tau {t/2, t, 2t} around the
     cell's current default t x init-int-scale {0.5, 1}, --seeds seeds
     each, --epochs epochs. The best point has the highest 25th percentile
     of validation accuracy over its seeds (ties: the higher median), so a
     setting where one seed in four collapses does not win.
  2. At that point, epochs {2/3, 1, 3/2} x --epochs, --seeds2 seeds, on the
     same validation split; the best as above.
  3. The chosen settings, --final-seeds seeds, once on "digits" (the fixed
     test split) and once on "digits:partition-1" (another random 80/20
     partition): the reported test accuracies.
Writes OUT/tuning.json with every sweep's points and the choices, and
prints the tables.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .client import Client
from .study import wait

CELLS = {"stno": {"tau": 1.0}, "ctrnn": {"tau": 5.0}}
LRS = [0.002, 0.005, 0.01, 0.02]
SCALES = [0.5, 1]


def points(sweep: Any) -> list[dict[str, Any]]:
    """Each point's settings and statistics, as plain data."""
    out = []
    for p in sweep.points:
        out.append({
            "settings": {s.flag: s.value for s in p.settings},
            "seeds_succeeded": p.seeds_succeeded,
            "seeds_total": p.seeds_total,
            "median": p.median_test_accuracy,
            "q25": p.q25_test_accuracy,
            "q75": p.q75_test_accuracy,
            "accuracies": list(p.test_accuracies),
            "D": p.mean_cumulative_drive,
        })
    return out


def best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The point with the highest 25th percentile, then the highest median;
    only points where every seed succeeded compete."""
    whole = [r for r in rows if r["seeds_succeeded"] == r["seeds_total"]]
    return max(whole, key=lambda r: (r["q25"], r["median"]))


def table(title: str, rows: list[dict[str, Any]]) -> str:
    lines = [title]
    for r in rows:
        name = " ".join(f"{k}={v}" for k, v in r["settings"].items())
        lines.append(f"  {name:<40} {r['seeds_succeeded']}/{r['seeds_total']}"
                     f"  median {100 * r['median']:6.2f}%  q25 "
                     f"{100 * r['q25']:6.2f}%  q75 {100 * r['q75']:6.2f}%")
    return "\n".join(lines)


def run(client: Client, label: str, dataset: str, axes: dict[str, list[Any]],
        fixed: dict[str, Any], seeds: int,
        sweep_id: str = "") -> list[dict[str, Any]]:
    """The sweep's points once it has ended: sweep `sweep_id` if given (one
    run before), else a new one."""
    if not sweep_id:
        sweep_id = client.submit_sweep(dataset, axes=axes, fixed=fixed,
                                       seeds=range(seeds)).id
    [done] = wait(client, label, [sweep_id])
    rows = points(done)
    for r in rows:  # the fixed settings too, so a row says all it ran with
        r["settings"] = {**{k: str(v) for k, v in fixed.items()},
                         **r["settings"]}
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m spinnet.tune",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get(
        "SPINNET_SERVER", "127.0.0.1:50051"))
    parser.add_argument("--token-file")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seeds2", type=int, default=5)
    parser.add_argument("--final-seeds", type=int, default=10)
    parser.add_argument("--cells", default="stno,ctrnn")
    parser.add_argument("--stage1", default="", metavar="CELL=ID,...",
                        help="reuse these stage-1 sweeps (run before)")
    parser.add_argument("--out", default=".")
    args = parser.parse_args(argv)
    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    client = Client(args.server, token)
    report: dict[str, Any] = {"protocol": __doc__, "cells": {}}
    reuse = dict(item.split("=") for item in args.stage1.split(",") if item)
    for cell in args.cells.split(","):
        t = CELLS[cell]["tau"]
        base = {"cell": cell, "epochs": args.epochs}
        stage1 = run(client, f"{cell} lr x tau x scale", "digits:validation",
                     {"lr": LRS, "tau": [t / 2, t, 2 * t],
                      "init-int-scale": SCALES}, base, args.seeds,
                     reuse.get(cell, ""))
        b1 = best(stage1)
        chosen = dict(b1["settings"])
        chosen.pop("epochs")
        epochs = [round(args.epochs * 2 / 3), args.epochs,
                  round(args.epochs * 3 / 2)]
        stage2 = run(client, f"{cell} epochs", "digits:validation",
                     {"epochs": epochs}, chosen, args.seeds2)
        b2 = best(stage2)
        chosen["epochs"] = b2["settings"]["epochs"]
        final = {}
        for dataset in ("digits", "digits:partition-1"):
            [row] = run(client, f"{cell} on {dataset}", dataset, {}, chosen,
                        args.final_seeds)
            final[dataset] = row
        report["cells"][cell] = {"stage1": stage1, "stage2": stage2,
                                 "chosen": chosen, "final": final}
        print(table(f"{cell}: stage 1 on digits:validation", stage1))
        print(table(f"{cell}: stage 2 on digits:validation", stage2))
        print(f"{cell}: chosen {chosen}")
        print(table(f"{cell}: test accuracy", list(final.values())))
        sys.stdout.flush()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tuning.json"), "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
