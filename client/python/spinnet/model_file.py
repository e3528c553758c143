"""Model files (core/model_io.h) read in Python: the settings and the
weights of a trained network as NumPy arrays, and its forward pass.

A model file is what `spinnet-train --out` writes and ExportModel sends:
the magic "SPNMODEL", a uint32 format version (1 or 2), the payload, and
the SHA-256 of everything before it. :func:`parse` checks all of it as
core's ParseModel does (size, magic, checksum, then version, every length
against the bytes left, no trailing bytes, sizes and values consistent)
and raises ValueError, saying what is wrong, on a corrupt, truncated or
foreign file.

Weights (``TrainedModel.weights``, float64 arrays, named after the symbols
of core/MODEL.md; L layers, N neurons, d = input_dim, C = num_classes):

==================  ========  ============================================
name                shape     meaning
==================  ========  ============================================
``layerL.W_ext``    (N, d)    input weights of layer 0 (``layer0.W_ext``)
``layerL.W_ext``    (N, N)    interlayer weights y_{l-1} -> layer l, l >= 1
``layerL.W_int``    (N, N)    intralayer (recurrent) weights y_l -> layer l
``layerL.b``        (N,)      trainable bias b_l
``W_out``           (C, N)    readout weights
``b_out``           (C,)      readout bias
``a``               (L,)      amplification factors a_l (STNO; unused by
                              the CTRNN)
==================  ========  ============================================

``TrainedModel.mask`` has the same names and shapes: 1.0 where a value was
trained, 0.0 where it was fixed (connections removed by density-int /
density-ext stay 0; ``a`` is 0 unless train-amplification).

Settings are attributes named like the training flags (``dt_in`` for
--dt-in); :meth:`TrainedModel.flags` gives them as the flags themselves, as
:meth:`spinnet.client.Client.submit` takes them. Variability: the file holds
the settings (thermal_noise, train_spread, test_spread, vary), not drawn
devices: a chip is drawn from the seed when it is used. Version 1 files have
no such settings and read as no variability (0, 0, 0, "all"), as in core.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import struct
from typing import Any, Sequence, Union

import numpy as np

MAGIC = b"SPNMODEL"
OLDEST_VERSION = 1
NEWEST_VERSION = 2
_CHECKSUM_BYTES = 32
_MIN_FILE_BYTES = len(MAGIC) + 4 + _CHECKSUM_BYTES
_MAX_STRING_BYTES = 1 << 16  # core's kMaxStringBytes

# core/config.h VaryingParam bits, in VaryingParamsName's order.
_VARY_BITS = (("threshold", 1), ("tau", 2), ("amplification", 4))


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A parsed model file. Attributes after `format_version` are the
    file's values, named like the training flags (--dt-in -> dt_in);
    input_dim, num_classes and adam_eps have no flag."""
    format_version: int
    # network (core NetworkConfig)
    cell: str  # "stno" or "ctrnn"
    layers: int
    neurons: int
    input_dim: int
    num_classes: int
    tau: float  # [ns]
    dt_in: float  # [ns]
    substeps: int
    zeta_bias: float
    q: float
    p_th: float
    p0: float
    amplification: float  # initial a_l (trained values: weights["a"])
    train_amplification: bool
    tau_hp: float  # [ns]
    density_int: float
    density_ext: float
    # device
    resistance: float  # [ohm]
    threshold_current: float  # [A]
    thermal_noise: float
    # training
    lr: float
    beta1: float
    beta2: float
    adam_eps: float
    clip_norm: float
    schedule: str
    lr_final_fraction: float
    batch: int
    epochs: int
    seed: int
    threads: int
    init_int_scale: float
    precision: str
    train_spread: float
    test_spread: float
    vary: str  # "threshold+tau+amplification" ... or "none"
    # data
    dataset: str
    class_labels: tuple[str, ...]
    sequence_steps: int  # K of the training data
    weights: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]

    @property
    def h(self) -> float:
        """The Euler step dt_in / substeps [ns]."""
        return self.dt_in / self.substeps

    def flags(self) -> dict[str, Union[str, int, float, bool]]:
        """The training settings as training flags ({"dt-in": 1.0, ...})."""
        skip = {"format_version", "input_dim", "num_classes", "adam_eps",
                "dataset", "class_labels", "sequence_steps", "weights",
                "mask"}
        return {f.name.replace("_", "-"): getattr(self, f.name)
                for f in dataclasses.fields(self) if f.name not in skip}

    def forward(self, sequences: Union[Sequence[Sequence[float]], np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
        """The nominal network (no device variability, no noise) run on
        `sequences` (B x K*d values, step k's d values at k*d..k*d+d-1),
        as core's Classify computes it: (class probabilities B x C, Joule
        energy per sequence B). See :func:`forward`."""
        return forward(self, sequences)


class _Reader:
    """core's Reader: little-endian fields, every read and length checked
    against the bytes left (ValueError naming the field)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def left(self) -> int:
        return len(self._data) - self._at

    def _take(self, field: str, n: int) -> memoryview:
        if n > self.left():
            raise ValueError(f"corrupt payload at {field}: need {n} bytes, "
                             f"{self.left()} left")
        b = self._data[self._at:self._at + n]
        self._at += n
        return b

    def _unpack(self, field: str, fmt: str) -> Any:
        return struct.unpack(fmt, self._take(field, struct.calcsize(fmt)))[0]

    def u32(self, field: str) -> int:
        return self._unpack(field, "<I")

    def i32(self, field: str) -> int:
        return self._unpack(field, "<i")

    def u64(self, field: str) -> int:
        return self._unpack(field, "<Q")

    def f64(self, field: str) -> float:
        return self._unpack(field, "<d")

    def boolean(self, field: str) -> bool:
        v = self._take(field, 1)[0]
        if v > 1:
            raise ValueError(f"corrupt payload at {field}: bool byte is {v}; "
                             "need 0 or 1")
        return v == 1

    def length(self, field: str, min_element_bytes: int) -> int:
        n = self.u64(field)
        if n > self.left() // min_element_bytes:
            raise ValueError(f"corrupt payload at {field}: length {n} does "
                             f"not fit in the {self.left()} bytes left")
        return n

    def string(self, field: str) -> str:
        n = self.length(field, 1)
        if n > _MAX_STRING_BYTES:
            raise ValueError(f"corrupt payload at {field}: string length {n} "
                             f"exceeds the limit {_MAX_STRING_BYTES}")
        try:
            return bytes(self._take(field, n)).decode()
        except UnicodeDecodeError as e:
            raise ValueError(f"corrupt payload at {field}: {e}") from None

    def doubles(self, field: str) -> np.ndarray:
        n = self.length(field, 8)
        return np.frombuffer(self._take(field, 8 * n), dtype="<f8").astype(
            np.float64)


def _vary_name(bits: int) -> str:
    names = [name for name, bit in _VARY_BITS if bits & bit]
    return "+".join(names) if names else "none"


def layout(layers: int, neurons: int, input_dim: int,
           num_classes: int) -> list[tuple[str, tuple[int, ...]]]:
    """The weights' names and shapes in the order of core's ParamLayout
    (the flat vector of the file; matrices column-major), for both cells."""
    n = neurons
    out: list[tuple[str, tuple[int, ...]]] = []
    for layer in range(layers):
        out.append((f"layer{layer}.W_ext", (n, input_dim if layer == 0
                                            else n)))
        out.append((f"layer{layer}.W_int", (n, n)))
        out.append((f"layer{layer}.b", (n,)))
    out += [("W_out", (num_classes, n)), ("b_out", (num_classes,)),
            ("a", (layers,))]
    return out


def _split(flat: np.ndarray, shapes: list[tuple[str, tuple[int, ...]]]
           ) -> dict[str, np.ndarray]:
    out, at = {}, 0
    for name, shape in shapes:
        size = math.prod(shape)
        a = flat[at:at + size].reshape(shape, order="F")
        a.flags.writeable = False
        out[name] = a
        at += size
    return out


def check_file(data: bytes) -> int:
    """Size, magic, checksum and format version, in core's order (the
    version is trusted only once the checksum holds); returns the version.
    ValueError says which check failed."""
    data = bytes(data)
    if len(data) < _MIN_FILE_BYTES:
        raise ValueError(f"file is {len(data)} bytes; a spinnet model file "
                         f"has at least {_MIN_FILE_BYTES}")
    if data[:len(MAGIC)] != MAGIC:
        raise ValueError(f"not a spinnet model file (starts with "
                         f"{data[:len(MAGIC)]!r}; expected {MAGIC!r})")
    body = data[:-_CHECKSUM_BYTES]
    if hashlib.sha256(body).digest() != data[-_CHECKSUM_BYTES:]:
        raise ValueError("checksum mismatch: file is corrupt or truncated")
    (version,) = struct.unpack_from("<I", data, len(MAGIC))
    if not OLDEST_VERSION <= version <= NEWEST_VERSION:
        raise ValueError(f"spinnet model file format version {version} is "
                         f"not supported; this reads versions "
                         f"{OLDEST_VERSION} to {NEWEST_VERSION}")
    return version


def parse(data: bytes) -> TrainedModel:
    """The model file `data` (bytes of `spinnet-train --out` or of
    Client.export_model) as a TrainedModel; ValueError if it is corrupt,
    truncated, not a model file, of an unknown version, or inconsistent."""
    version = check_file(data)
    r = _Reader(bytes(data)[len(MAGIC) + 4:-_CHECKSUM_BYTES])
    v: dict[str, Any] = {"format_version": version}
    # The field order of core/model_io.cc WriteModel.
    v["cell"] = r.string("network.cell")
    if v["cell"] not in ("stno", "ctrnn"):
        raise ValueError(f"unknown cell type {v['cell']!r}")
    for name in ("layers", "neurons", "input_dim", "num_classes"):
        v[name] = r.i32("network." + name)
    v["tau"] = r.f64("network.tau")
    v["dt_in"] = r.f64("network.dt_in")
    v["substeps"] = r.i32("network.substeps")
    for name in ("zeta_bias", "q", "p_th", "p0", "amplification"):
        v[name] = r.f64("network." + name)
    v["train_amplification"] = r.boolean("network.train_amplification")
    for name in ("tau_hp", "density_int", "density_ext"):
        v[name] = r.f64("network." + name)
    v["resistance"] = r.f64("device.resistance_ohm")
    v["threshold_current"] = r.f64("device.threshold_current_amp")
    for name in ("lr", "beta1", "beta2", "adam_eps", "clip_norm"):
        v[name] = r.f64("train." + name)
    v["schedule"] = r.string("train.schedule")
    v["lr_final_fraction"] = r.f64("train.lr_final_fraction")
    v["batch"] = r.i32("train.batch")
    v["epochs"] = r.i32("train.epochs")
    v["seed"] = r.u64("train.seed")
    v["threads"] = r.i32("train.threads")
    v["init_int_scale"] = r.f64("train.init_int_scale")
    v["precision"] = r.string("train.precision")
    v["dataset"] = r.string("dataset_name")
    v["class_labels"] = tuple(
        r.string("class_labels")
        for _ in range(r.length("class_labels", 8)))
    v["sequence_steps"] = r.i32("sequence_steps")
    params = r.doubles("params")
    mask = r.doubles("mask")
    if version >= 2:
        v["thermal_noise"] = r.f64("device.thermal_noise")
        v["train_spread"] = r.f64("train.train_spread")
        v["test_spread"] = r.f64("train.test_spread")
        v["vary"] = _vary_name(r.u32("train.vary"))
    else:  # version 1 has no variability: core's defaults
        v.update(thermal_noise=0.0, train_spread=0.0, test_spread=0.0,
                 vary=_vary_name(7))
    if r.left():
        raise ValueError(f"corrupt payload: {r.left()} unexpected trailing "
                         "bytes")

    # The consistency core's Model::Validate needs before the arrays mean
    # anything (the checksum only proves the writer wrote these bytes).
    for name in ("layers", "neurons", "input_dim", "num_classes",
                 "substeps"):
        if v[name] < 1:
            raise ValueError(f"invalid model: {name} = {v[name]}; need >= 1")
    shapes = layout(v["layers"], v["neurons"], v["input_dim"],
                    v["num_classes"])
    size = sum(math.prod(s) for _, s in shapes)
    if params.size != size or mask.size != size:
        raise ValueError(f"invalid model: params has {params.size} and mask "
                         f"{mask.size} entries; the network has {size} "
                         "parameters")
    if len(v["class_labels"]) != v["num_classes"]:
        raise ValueError(f"invalid model: class_labels has "
                         f"{len(v['class_labels'])} entries; num_classes = "
                         f"{v['num_classes']}")
    if not np.all(np.isfinite(params)):
        raise ValueError("invalid model: params hold a non-finite value")
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError("invalid model: mask values must be 0 or 1")
    return TrainedModel(weights=_split(params, shapes),
                        mask=_split(mask, shapes), **v)


def load(path: str) -> TrainedModel:
    """parse() of the file at `path`."""
    with open(path, "rb") as f:
        return parse(f.read())


def forward(model: TrainedModel,
            sequences: Union[Sequence[Sequence[float]], np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """core's Classify in NumPy for the nominal network (core/MODEL.md
    sections 2, 3 and 7; core/network.cc Network::Step): per input sample,
    `substeps` explicit-Euler steps of h = dt_in / substeps, every layer
    computed from the state at time t (simultaneous update), then softmax
    of the readout. Returns (probabilities B x C, energy [J] per sequence B).
    """
    x = np.asarray(sequences, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0 or x.shape[1] % model.input_dim:
        raise ValueError(f"sequences of shape {x.shape}: need B x K*d "
                         f"values, d = {model.input_dim}")
    w = model.weights
    L, N, d = model.layers, model.neurons, model.input_dim
    B, K = x.shape[0], x.shape[1] // d
    stno = model.cell == "stno"
    h = model.h
    c, c_hp = h / model.tau, h / model.tau_hp
    zeta_bias = model.zeta_bias if stno else 0.0
    # Initial state: p = s = p0 so y = 0 (STNO), h = 0 (CTRNN).
    p = [np.full((N, B), model.p0 if stno else 0.0) for _ in range(L)]
    s = [np.full((N, B), model.p0) for _ in range(L)]
    y = [np.zeros((N, B)) for _ in range(L)]
    # E = sum R (zeta I_th)^2 h over layers, neurons and steps; h in s.
    per_z2 = model.resistance * model.threshold_current ** 2 * h * 1e-9
    energy = np.zeros(B)
    for k in range(K):
        drive0 = w["layer0.W_ext"] @ x[:, k * d:(k + 1) * d].T
        for _ in range(model.substeps):
            p_new, s_new, y_new = [], [], []
            for l in range(L):
                if l == 0:
                    z = w["layer0.W_int"] @ y[0] + drive0
                else:
                    # [W_ext[l] W_int[l]] [y_{l-1}; y_l], core's product.
                    z = (np.hstack([w[f"layer{l}.W_ext"],
                                    w[f"layer{l}.W_int"]])
                         @ np.vstack([y[l - 1], y[l]]))
                z = z + w[f"layer{l}.b"][:, None]
                if stno:
                    z = z + zeta_bias
                    pl = p[l]
                    pn = np.clip(pl + c * (pl * (z * (1 - pl) - 1
                                                 - model.q * pl)
                                           + model.p_th), 0.0, 1.0)
                    sn = s[l] + c_hp * (pl - s[l])
                    p_new.append(pn)
                    s_new.append(sn)
                    y_new.append(w["a"][l] * (pn - sn))
                    energy += per_z2 * (z * z).sum(axis=0)
                else:
                    # tanh as core computes it: 1 - 2 / (exp(2z) + 1).
                    t = 1 - 2 / (np.exp(2 * z) + 1)
                    pn = p[l] + c * (t - p[l])
                    p_new.append(pn)
                    s_new.append(s[l])
                    y_new.append(pn)
            p, s, y = p_new, s_new, y_new
    logits = w["W_out"] @ y[L - 1] + w["b_out"][:, None]
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).T, energy


__all__ = ["TrainedModel", "parse", "load", "check_file", "forward",
           "layout", "MAGIC"]
