"""The paper's figures (Plouet et al., arXiv 2408.02835) from sweeps.

Each function takes one or more finished sweeps (spinnet.v1 Sweep messages,
e.g. from Client.get_sweep) or a TraceNeuronsResponse, and writes
PATH.png, PATH.svg and PATH.json, where PATH is the `path` argument without
an extension. The JSON sidecar holds exactly the plotted numbers: for each
series its x values and the median and 25th/75th percentiles of final test
accuracy as the sweep reports them (fractions; the axes show percent), with
the sweep id and point index every number came from. Each function returns
that sidecar as a dict.

A point's settings are the sweep's fixed flags overlaid by the point's axis
values (spinnet.client.point_settings); a series is the points sharing the
value of the series flag, ordered by the x flag. Where two points would
give one series the same x (overlapping sweeps), the first is drawn.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .client import Client, point_settings  # noqa: E402
from ._proto import inference_pb2, sweep_pb2  # noqa: E402

Sweeps = Union[sweep_pb2.Sweep, Sequence[sweep_pb2.Sweep]]
Size = tuple[int, int]  # width, height [pixels]
DPI = 100
DEFAULT_SIZE: Size = (800, 560)

# What a point's unset flags default to, for grouping (model.md defaults).
_DEFAULTS = {"cell": "stno", "density-int": "1", "density-ext": "1"}
_ACC = "test accuracy [%]"
_DT_IN = "input interval $\\Delta t_{in}$ [ns]"


def _as_list(sweeps: Sweeps) -> list[sweep_pb2.Sweep]:
    return [sweeps] if isinstance(sweeps, sweep_pb2.Sweep) else list(sweeps)


def _points(sweeps: Sweeps) -> Iterable[tuple[sweep_pb2.Sweep, int,
                                              sweep_pb2.SweepPoint,
                                              dict[str, str]]]:
    for sweep in _as_list(sweeps):
        for i, point in enumerate(sweep.points):
            settings = dict(_DEFAULTS)
            settings.update(point_settings(sweep, point))
            yield sweep, i, point, settings


def _value(settings: dict[str, str], flag: str) -> Optional[float]:
    text = settings.get(flag)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _collect(sweeps: Sweeps, x_of: Callable[[dict[str, str],
                                             sweep_pb2.SweepPoint],
                                            Optional[float]],
             series_of: Callable[[dict[str, str]], Optional[str]],
             ) -> list[dict[str, Any]]:
    """Series of points: series_of(settings) names a point's series (None:
    not drawn), x_of(settings, point) its x (None: not drawn). Points with no
    succeeded seed are left out (the sweep reports 0 for them)."""
    series: dict[str, dict[float, dict[str, Any]]] = {}
    for sweep, index, point, settings in _points(sweeps):
        label = series_of(settings)
        x = x_of(settings, point)
        if label is None or x is None or point.seeds_succeeded == 0:
            continue
        series.setdefault(label, {}).setdefault(x, {
            "x": x, "median": point.median_test_accuracy,
            "q25": point.q25_test_accuracy, "q75": point.q75_test_accuracy,
            "seeds_succeeded": point.seeds_succeeded,
            "seeds_total": point.seeds_total,
            "cumulative_drive": point.mean_cumulative_drive,
            "sweep_id": sweep.id, "point": index})
    out = []
    for label, by_x in series.items():
        rows = [by_x[x] for x in sorted(by_x)]
        entry: dict[str, Any] = {"label": label}
        for key in rows[0] if rows else ():
            entry[key] = [r[key] for r in rows]
        out.append(entry)
    return out


def _figure(size: Size) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    return fig, ax


def _save(fig: Any, path: str, data: dict[str, Any]) -> dict[str, Any]:
    base = os.path.splitext(path)[0] if path.endswith(
        (".png", ".svg", ".json")) else path
    os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
    fig.savefig(base + ".png", dpi=DPI)
    fig.savefig(base + ".svg", dpi=DPI)
    plt.close(fig)
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1)
    return data


def _draw_bands(ax: Any, series: list[dict[str, Any]]) -> None:
    for s in series:
        x = np.asarray(s["x"], dtype=float)
        line, = ax.plot(x, 100 * np.asarray(s["median"]), "o-", ms=4,
                        label=s["label"])
        ax.fill_between(x, 100 * np.asarray(s["q25"]),
                        100 * np.asarray(s["q75"]), alpha=0.25,
                        color=line.get_color(), linewidth=0)


def _band_figure(name: str, sweeps: Sweeps, path: str,
                 series: list[dict[str, Any]], size: Size, xlabel: str,
                 title: str, xlog: bool, legend_title: str,
                 extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Draws `series` as median lines with 25-75 % bands against accuracy
    and saves the figure with its numbers (`extra` added to them)."""
    fig, ax = _figure(size)
    _draw_bands(ax, series)
    if xlog:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_ACC)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(title=legend_title)
    fig.tight_layout()
    return _save(fig, path, {
        "figure": name, "sweeps": [s.id for s in _as_list(sweeps)],
        **(extra or {}), "xlabel": xlabel, "ylabel": _ACC,
        "xscale": "log" if xlog else "linear", "accuracy_unit": "fraction",
        "series": series})


def _line_figure(name: str, sweeps: Sweeps, path: str, x_flag: str,
                 series_flag: str, label: Callable[[str], str], xlabel: str,
                 title: str, size: Size, xlog: bool,
                 series_default: Optional[str] = None) -> dict[str, Any]:
    """Median accuracy against x_flag with the 25-75 % band, a line per
    value of series_flag (series_default where a point does not set it;
    None: such points are not drawn)."""
    def series_of(st: dict[str, str]) -> Optional[str]:
        value = st.get(series_flag, series_default)
        return None if value is None else label(value)
    series = _collect(sweeps, lambda st, p: _value(st, x_flag), series_of)
    series.sort(key=lambda s: s["label"])
    return _band_figure(name, sweeps, path, series, size, xlabel, title, xlog,
                        "median, 25-75th percentile",
                        {"x_flag": x_flag, "series_flag": series_flag})


def fig2b(sweeps: Sweeps, path: str, size: Size = DEFAULT_SIZE
          ) -> dict[str, Any]:
    """Fig. 2b: test accuracy vs input interval dt_in (log axis) for the
    STNO network and the CTRNN (flag `cell`)."""
    return _line_figure("fig2b", sweeps, path, "dt-in", "cell",
                        lambda v: v.upper(), _DT_IN,
                        "STNO network vs CTRNN", size, True)


def fig3a(sweeps: Sweeps, path: str, size: Size = DEFAULT_SIZE
          ) -> dict[str, Any]:
    """Fig. 3a: test accuracy vs dt_in (log axis), a line per neuron
    relaxation time tau (flag `tau`)."""
    return _line_figure("fig3a", sweeps, path, "dt-in", "tau",
                        lambda v: f"$\\tau$ = {v} ns", _DT_IN,
                        "accuracy vs input interval for three $\\tau$", size,
                        True)


def fig3b(sweeps: Sweeps, path: str, size: Size = DEFAULT_SIZE
          ) -> dict[str, Any]:
    """Fig. 3b: test accuracy vs dt_in (log axis), a line per learning rate
    (flag `lr`)."""
    return _line_figure("fig3b", sweeps, path, "dt-in", "lr",
                        lambda v: f"learning rate {v}", _DT_IN,
                        "accuracy vs input interval for three learning rates",
                        size, True)


def fig3c(sweeps: Sweeps, path: str, size: Size = DEFAULT_SIZE,
          series_flag: Optional[str] = "tau",
          per_input_steps: Optional[int] = None) -> dict[str, Any]:
    """Fig. 3c: test accuracy vs cumulative drive D (log axis) over every
    point of the sweeps, a red vertical line at D = 1. Each point is its
    median with a 25-75 % bar, coloured by `series_flag` (None: one
    colour). With `per_input_steps` = K, D / K is plotted (the per-input
    normalisation of model.md section 7)."""
    k = float(per_input_steps or 1)
    series = _collect(
        sweeps, lambda st, p: p.mean_cumulative_drive / k,
        lambda st: (f"{series_flag} = {st.get(series_flag, 'default')}"
                    if series_flag else "all points"))
    series.sort(key=lambda s: s["label"])
    fig, ax = _figure(size)
    for s in series:
        med = 100 * np.asarray(s["median"])
        err = [med - 100 * np.asarray(s["q25"]),
               100 * np.asarray(s["q75"]) - med]
        ax.errorbar(s["x"], med, yerr=err, fmt="o", ms=4, capsize=2,
                    label=s["label"])
    ax.axvline(1.0, color="red", linestyle="-", linewidth=1.5, label="D = 1")
    ax.set_xscale("log")
    xlabel = ("cumulative drive per input D / K" if per_input_steps
              else "cumulative drive D")
    ax.set_xlabel(xlabel + " (dimensionless)")
    ax.set_ylabel(_ACC)
    ax.set_title("accuracy vs cumulative drive")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path, {
        "figure": "fig3c", "sweeps": [s.id for s in _as_list(sweeps)],
        "x": "mean_cumulative_drive", "per_input_steps": per_input_steps,
        "vline": 1.0, "xlabel": xlabel, "ylabel": _ACC, "xscale": "log",
        "accuracy_unit": "fraction", "series": series})


def fig4(sweeps: Sweeps, path: str, size: Size = DEFAULT_SIZE
         ) -> dict[str, Any]:
    """Fig. 4: test accuracy vs connection density [%]: intralayer
    (density-int varied, density-ext = 1), interlayer (density-ext varied,
    density-int = 1) and all (both equal). Points fitting none of the three
    are not drawn; the fully connected point belongs to all three."""
    def classify(kind: str) -> Callable[[dict[str, str]], Optional[str]]:
        def series_of(st: dict[str, str]) -> Optional[str]:
            di, de = _value(st, "density-int"), _value(st, "density-ext")
            fits = {"intralayer": de == 1.0, "interlayer": di == 1.0,
                    "all": di == de}[kind]
            return kind if fits else None
        return series_of
    x_flag = {"intralayer": "density-int", "interlayer": "density-ext",
              "all": "density-int"}
    series = []
    for kind in ("intralayer", "interlayer", "all"):
        series += _collect(sweeps,
                           lambda st, p, f=x_flag[kind]: 100 * _value(st, f),
                           classify(kind))
    return _band_figure("fig4", sweeps, path, series, size,
                        "connection density [%]",
                        "accuracy vs connection density", False,
                        "connections masked")


def training_curves(sweeps: Sweeps, client: Client,
                    series_of: Callable[[dict[str, str]], Optional[str]]
                    ) -> list[dict[str, Any]]:
    """Per-epoch test accuracy of every succeeded job of the sweeps' points
    (GetTrainingMetrics), summarised per series and epoch: median and
    25th/75th percentiles (numpy's linear interpolation) over its jobs."""
    per_series: dict[str, dict[str, list[float]]] = {}
    for sweep, _, point, settings in _points(sweeps):
        label = series_of(settings)
        if label is None:
            continue
        seed_job = dict(zip(sweep.seeds, point.job_ids))
        for seed in point.succeeded_seeds:
            job = seed_job[seed]
            curve = [e.test_accuracy for e in client.training_metrics(job)]
            per_series.setdefault(label, {})[job] = curve
    out = []
    for label, curves in per_series.items():
        epochs = max(len(c) for c in curves.values())
        rows = [[c[e] for c in curves.values() if len(c) > e]
                for e in range(epochs)]
        out.append({
            "label": label, "x": list(range(1, epochs + 1)),
            "median": [float(np.median(r)) for r in rows],
            "q25": [float(np.percentile(r, 25)) for r in rows],
            "q75": [float(np.percentile(r, 75)) for r in rows],
            "jobs": list(curves), "curves": list(curves.values())})
    return out


def fig5(sweeps: Sweeps, client: Client, path: str,
         size: Size = DEFAULT_SIZE) -> dict[str, Any]:
    """Fig. 5: test accuracy vs epoch at each global connection density
    (points with density-int = density-ext), from every succeeded job's
    per-epoch metrics: median and 25-75 % band over the seeds."""
    def series_of(st: dict[str, str]) -> Optional[str]:
        di, de = _value(st, "density-int"), _value(st, "density-ext")
        return f"{100 * di:g} % connections" if di == de else None
    series = training_curves(sweeps, client, series_of)
    series.sort(key=lambda s: -float(s["label"].split()[0]))
    return _band_figure("fig5", sweeps, path, series, size, "epoch",
                        "training at global connection densities", False,
                        "median, 25-75th percentile")


def traces(response: inference_pb2.TraceNeuronsResponse, path: str,
           labels: Optional[Sequence[str]] = None,
           size: Size = DEFAULT_SIZE) -> dict[str, Any]:
    """Figs. 1b-d / 2c-e: the normalized output of each traced neuron vs
    time, one panel per neuron and one line per input sequence (labelled by
    `labels`, its true classes, else by the class the model gave it). Each
    neuron's outputs are divided by their largest magnitude over all the
    sequences, so that they span at most [-1, 1]."""
    neurons = [(n.layer, n.index) for n in response.neurons]
    t = list(response.time_ns)
    names = [labels[i] if labels else seq.classification.label
             for i, seq in enumerate(response.sequences)]
    normalized: list[list[list[float]]] = []  # neuron, sequence, time
    for j in range(len(neurons)):
        rows = np.asarray([seq.traces[j].values for seq in response.sequences],
                          dtype=float)
        scale = float(np.max(np.abs(rows))) if rows.size else 0.0
        normalized.append((rows / scale if scale > 0 else rows).tolist())
    fig, axes = plt.subplots(len(neurons), 1, sharex=True, squeeze=False,
                             figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    for j, (layer, index) in enumerate(neurons):
        ax = axes[j][0]
        for i, name in enumerate(names):
            ax.plot(t, normalized[j][i], label=f"class {name}")
        ax.set_ylabel(f"neuron {layer}:{index}\nnormalized y", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=min(len(names), 5), loc="upper right")
    axes[-1][0].set_xlabel("time [ns]")
    fig.suptitle("normalized neuron outputs for inputs of different classes")
    fig.tight_layout()
    return _save(fig, path, {
        "figure": "traces", "model_version": response.model_version,
        "time_ns": t, "neurons": [list(n) for n in neurons],
        "sequences": [{"label": name,
                       "predicted": seq.classification.label,
                       "values": [normalized[j][i]
                                  for j in range(len(neurons))]}
                      for i, (name, seq) in enumerate(
                          zip(names, response.sequences))]})


def variability(sweeps: Sweeps, path: str, x_flag: str = "test-spread",
                series_flag: str = "train-spread",
                size: Size = DEFAULT_SIZE) -> dict[str, Any]:
    """Accuracy vs device spread at test (`x_flag`), a line per spread the
    models were trained with (`series_flag`; 0: trained without
    variability). Generic over the two flag names."""
    def label(v: str) -> str:
        try:
            without = float(v) == 0
        except ValueError:
            without = False
        return (f"trained without variability ({series_flag} 0)"
                if without else f"trained with {series_flag} {v}")
    return _line_figure("variability", sweeps, path, x_flag, series_flag,
                        label, f"device spread at test, --{x_flag}",
                        "robustness to device variability", size, False,
                        series_default="0")


__all__ = ["fig2b", "fig3a", "fig3b", "fig3c", "fig4", "fig5", "traces",
           "variability", "training_curves", "DEFAULT_SIZE"]
