"""python3 -m spinnet.study NAME: runs one of the paper's studies on a
spinnet server as sweeps (one training job per grid point and seed),
shows progress (seeds done per point) and draws the figure as
OUT/NAME.png, OUT/NAME.svg and OUT/NAME.json (spinnet.plots).

Grids (model.md section 7; training flags as `spinnet-train --help`):
  fig2b        cell {stno, ctrnn}, one sweep per dt-in in DT
  fig3a        tau {0.5, 1, 2}, one sweep per dt-in in DT
  fig3b        lr {0.001, 0.005, 0.02}, one sweep per dt-in in DT
  fig3c        tau {0.5, 1, 2, 5}, one sweep per dt-in in DT; accuracy vs
               the cumulative drive D of every point
  fig4         three sweeps: density-int DENS (density-ext 1), density-ext
               DENS (density-int 1), and one per value v of DENS + 1 with
               density-int = density-ext = v
  fig5         one sweep per global density {0.5, 0.25, 0.1}
               (density-int = density-ext); curves from each job's
               per-epoch metrics
  traces       one job (the first seed) that publishes --model, then the
               last layer's first 4 neurons traced for one input of each
               of the first 4 classes (--inputs or the digits file)
  variability  train-spread {0, 0.05, 0.1} x test-spread
               {0, 0.02, 0.05, 0.1, 0.2} (flag names: --x-flag,
               --series-flag)
with DT = {0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10} ns and DENS = {0.1, 0.25,
0.5, 0.75}. The dt-in studies set substeps = max(4, ceil(2 dt_in /
tau_min)) per sweep, so that the Euler step stays <= tau / 2 (the server
refuses steps over 2 tau). --max-values N keeps N values of each list (evenly spread,
first and last kept); --dt-in and --densities replace DT and DENS; --set
FLAG=VALUE adds a setting to every point; --from-sweeps draws from sweeps
already run.
"""
from __future__ import annotations

import argparse
import gzip
import math
import os
import sys
from typing import Any, Callable, Optional

from . import plots
from .client import Client, SpinnetError
from ._proto import sweep_pb2

DT_IN = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]
DENSITIES = [0.1, 0.25, 0.5, 0.75]


def shrink(values: list[Any], keep: Optional[int]) -> list[Any]:
    """`keep` values of `values`, evenly spread, first and last kept."""
    if not keep or keep >= len(values):
        return list(values)
    if keep == 1:
        return [values[0]]
    step = (len(values) - 1) / (keep - 1)
    return [values[round(i * step)] for i in range(keep)]


Plan = list[tuple[dict[str, list[Any]], dict[str, Any]]]


def dt_sweeps(series: dict[str, list[Any]], dts: list[float],
              fixed: dict[str, Any]) -> Plan:
    """One sweep per dt-in value over the `series` axes, each with enough
    Euler substeps that h = dt_in / substeps stays <= tau / 2 for the
    smallest tau of the study (the server refuses h > 2 tau): substeps =
    max(4, ceil(2 dt_in / tau_min)), unless --set substeps=N says."""
    taus = [float(t) for t in series.get("tau", [fixed.get("tau", 1.0)])]
    out: Plan = []
    for dt in dts:
        extra: dict[str, Any] = {"dt-in": dt}
        if "substeps" not in fixed:
            extra["substeps"] = max(4, math.ceil(2 * dt / min(taus) - 1e-9))
        out.append((series, extra))
    return out


def plan(name: str, args: argparse.Namespace, fixed: dict[str, Any]) -> Plan:
    """The sweeps study `name` submits, (axes, fixed settings) each, its
    grids shrunk by --max-values; `fixed` are the settings of every
    point (--epochs, --set)."""
    k = args.max_values
    dt = shrink(args.dt_in or DT_IN, k)
    dens = shrink(args.densities or DENSITIES, k)
    if name == "fig2b":
        return dt_sweeps({"cell": ["stno", "ctrnn"]}, dt, fixed)
    if name == "fig3a":
        return dt_sweeps({"tau": shrink([0.5, 1, 2], k)}, dt, fixed)
    if name == "fig3b":
        return dt_sweeps({"lr": shrink([0.001, 0.005, 0.02], k)}, dt, fixed)
    if name == "fig3c":
        return dt_sweeps({"tau": shrink([0.5, 1, 2, 5], k)}, dt, fixed)
    if name == "fig4":
        sweeps: Plan = [({"density-int": dens}, {"density-ext": 1}),
                        ({"density-ext": dens}, {"density-int": 1})]
        sweeps += [({}, {"density-int": v, "density-ext": v})
                   for v in dens + [1]]
        return sweeps
    if name == "fig5":
        return [({}, {"density-int": v, "density-ext": v})
                for v in shrink([0.5, 0.25, 0.1], k)]
    if name == "traces":
        return [({}, {})]
    if name == "variability":
        return [({args.series_flag: shrink([0, 0.05, 0.1], k),
                  args.x_flag: shrink([0, 0.02, 0.05, 0.1, 0.2], k)}, {})]
    raise ValueError(name)


STUDIES = ["fig2b", "fig3a", "fig3b", "fig3c", "fig4", "fig5", "traces",
           "variability"]


def progress_line(name: str, sweeps: list[sweep_pb2.Sweep]) -> str:
    """`NAME: jobs 12/40 ended; seeds done per point: 3/10 3/10 ...`."""
    ended = sum(s.jobs_succeeded + s.jobs_failed + s.jobs_cancelled
                for s in sweeps)
    total = sum(s.jobs_total for s in sweeps)
    per_point = [f"{p.seeds_succeeded + p.seeds_failed + p.seeds_cancelled}"
                 f"/{p.seeds_total}" for s in sweeps for p in s.points]
    return (f"{name}: jobs {ended}/{total} ended; seeds done per point: "
            + " ".join(per_point))


def wait(client: Client, name: str, ids: list[str],
         out: Any = sys.stderr) -> list[sweep_pb2.Sweep]:
    """Watches the sweeps to their end (one after the other; their jobs
    run together), redrawing the progress line; returns them as ended."""
    latest = {i: client.get_sweep(i) for i in ids}
    tty = out.isatty()
    shown = ""

    def show() -> None:
        nonlocal shown
        line = progress_line(name, [latest[i] for i in ids])
        if line != shown:
            out.write(("\r\033[K" if tty else "") + line + ("" if tty else
                                                             "\n"))
            out.flush()
            shown = line
    for i in ids:
        for update in client.watch_sweep(i):
            latest[i] = update
            show()
    latest = {i: client.get_sweep(i) for i in ids}
    show()
    if tty:
        out.write("\n")
    return [latest[i] for i in ids]


def digits_file() -> Optional[str]:
    """The digits CSV (64 pixels then the label) where spinnet installs or
    ships it: $SPINNET_DIGITS, share/spinnet, or core/data below the
    current directory."""
    for path in [os.environ.get("SPINNET_DIGITS", ""),
                 "/usr/local/share/spinnet/digits.csv.gz",
                 "/usr/share/spinnet/digits.csv.gz",
                 "core/data/digits.csv.gz"]:
        if path and os.path.exists(path):
            return path
    return None


def read_inputs(args: argparse.Namespace) -> list[tuple[str, list[float]]]:
    """Labelled rows (label, values) from --inputs (the server's CSV format:
    label, then the values) or, for the digits dataset, the digits file
    (pixels / 16)."""
    if args.inputs:
        with open(args.inputs) as f:
            rows = [line.strip().split(",") for line in f if line.strip()]
        return [(r[0], [float(v) for v in r[1:]]) for r in rows]
    path = digits_file()
    if args.dataset != "digits" or path is None:
        raise SystemExit("spinnet.study traces: --inputs FILE.csv needed "
                         "(labelled rows of the dataset)")
    with gzip.open(path, "rt") as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    return [(r[-1], [int(v) / 16 for v in r[:-1]]) for r in rows]


def draw_traces(client: Client, sweep: sweep_pb2.Sweep,
                args: argparse.Namespace, path: str) -> dict[str, Any]:
    """Traces the model the study's first job published."""
    job = client.get_job(sweep.points[0].job_ids[0])
    if not job.model_version:
        raise SystemExit(f"spinnet.study traces: job {job.id} ended "
                         f"{job.state}: {job.failure_reason}")
    model = client.get_model(args.model, job.model_version)
    first: dict[str, list[float]] = {}
    for label, values in read_inputs(args):
        if label in list(model.class_labels)[:4] and label not in first:
            first[label] = values
    labels = sorted(first, key=list(model.class_labels).index)
    last = model.spec.layers - 1
    neurons = [(last, i) for i in range(min(4, model.spec.neurons))]
    response = client.trace_neurons(args.model, [first[c] for c in labels],
                                    neurons, version=model.version)
    return plots.traces(response, path, labels=labels, size=args.size)


def float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of numbers")


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m spinnet.study",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=STUDIES)
    parser.add_argument("--server", default=os.environ.get(
        "SPINNET_SERVER", "127.0.0.1:50051"), help="HOST:PORT (as spinnet)")
    parser.add_argument("--token-file", help="file with the bearer token")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", type=int, default=10,
                        help="seeds 0..N-1 per point (default 10)")
    parser.add_argument("--epochs", type=int,
                        help="training epochs (default: the server's)")
    parser.add_argument("--dt-in", type=float_list, metavar="LIST",
                        help="the dt-in studies' DT (comma-separated, ns)")
    parser.add_argument("--densities", type=float_list, metavar="LIST",
                        help="fig4's DENS (comma-separated fractions)")
    parser.add_argument("--max-values", type=int, metavar="N",
                        help="keep N values of each grid list")
    parser.add_argument("--set", action="append", default=[],
                        metavar="FLAG=VALUE",
                        help="a training setting of every point (repeat)")
    parser.add_argument("--per-input-steps", type=int, metavar="K",
                        help="fig3c: plot D / K (K inputs per sequence)")
    parser.add_argument("--from-sweeps", metavar="ID,ID",
                        help="draw from these sweeps (already run, e.g. "
                        "fig3c from fig3a's and fig3b's) instead of "
                        "submitting the study's own")
    parser.add_argument("--out", default=".", help="output directory")
    parser.add_argument("--size", type=parse_size, default=plots.DEFAULT_SIZE,
                        metavar="WxH", help="figure size in pixels")
    parser.add_argument("--model", default="study-traces",
                        help="traces: the model its job publishes")
    parser.add_argument("--inputs", help="traces: labelled CSV rows to trace")
    parser.add_argument("--x-flag", default="test-spread",
                        help="variability: the test-time spread flag")
    parser.add_argument("--series-flag", default="train-spread",
                        help="variability: the training spread flag")
    args = parser.parse_args(argv)

    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    fixed: dict[str, Any] = {}
    if args.epochs:
        fixed["epochs"] = args.epochs
    for item in args.set:
        flag, eq, value = item.partition("=")
        if not eq:
            parser.error(f"--set: '{item}' is not FLAG=VALUE")
        fixed[flag] = value
    study = plan(args.name, args, fixed)
    path = os.path.join(args.out, args.name)
    try:
        with Client(args.server, token) as client:
            ids = args.from_sweeps.split(",") if args.from_sweeps else []
            for axes, extra in [] if ids else study:
                sweep = client.submit_sweep(
                    args.dataset, axes, {**fixed, **extra},
                    seeds=range(1 if args.name == "traces" else args.seeds),
                    model_name=args.model if args.name == "traces" else None)
                ids.append(sweep.id)
            print(f"{args.name}: sweeps {' '.join(ids)}", file=sys.stderr)
            sweeps = wait(client, args.name, ids)
            failed = sum(s.jobs_failed for s in sweeps)
            if failed:
                print(f"{args.name}: {failed} job(s) failed; the figure "
                      "shows the succeeded seeds", file=sys.stderr)
            draw: dict[str, Callable[[], Any]] = {
                "fig2b": lambda: plots.fig2b(sweeps, path, args.size),
                "fig3a": lambda: plots.fig3a(sweeps, path, args.size),
                "fig3b": lambda: plots.fig3b(sweeps, path, args.size),
                "fig3c": lambda: plots.fig3c(
                    sweeps, path, args.size,
                    per_input_steps=args.per_input_steps),
                "fig4": lambda: plots.fig4(sweeps, path, args.size),
                "fig5": lambda: plots.fig5(sweeps, client, path, args.size),
                "traces": lambda: draw_traces(client, sweeps[0], args, path),
                "variability": lambda: plots.variability(
                    sweeps, path, args.x_flag, args.series_flag, args.size),
            }
            draw[args.name]()
    except SpinnetError as e:
        print(f"spinnet.study: {e}", file=sys.stderr)
        return 1
    print(f"{path}.png {path}.svg {path}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
