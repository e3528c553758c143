#!/usr/bin/python3
"""Eager-PyTorch reference of the spinnet model, for throughput comparison.

The multilayer STNO (or CTRNN) network of /work/shared/spec/model.md written
the way it usually is in research code: eager PyTorch, autograd BPTT through
every Euler step, torch.optim.Adam, one CPU thread. It integrates the same
equations as core/network.cc Network::Step. Run it with Debian's
python3-torch:

  /usr/bin/python3 tests/bench/torch_reference.py [--cell ctrnn] [--dtype float32]
  /usr/bin/python3 tests/bench/torch_reference.py --epochs 2

Benchmark mode prints one JSON line; --epochs mode prints test accuracy per
epoch (a sanity check that the model learns; the split is not the C++ one).
"""
import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np
import torch

DIGITS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "../../core/data/digits.csv.gz")


class SpinNet(torch.nn.Module):
    """L layers of N neurons, explicit Euler, readout from the last layer."""

    def __init__(self, a):
        super().__init__()
        self.a = a
        L, N = a.layers, a.neurons

        def weight(rows, cols, scale=1.0):
            return torch.nn.Parameter(torch.randn(rows, cols) * scale / cols ** 0.5)

        self.w_ext = torch.nn.ParameterList(
            [weight(N, a.input_dim if l == 0 else N) for l in range(L)])
        self.w_int = torch.nn.ParameterList(
            [weight(N, N, a.init_int_scale) for _ in range(L)])
        self.b = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(N, 1)) for _ in range(L)])
        self.w_out = weight(a.classes, N)
        self.b_out = torch.nn.Parameter(torch.zeros(a.classes, 1))

    def forward(self, u):
        """u: K x d x B input samples -> C x B logits."""
        a, L = self.a, self.a.layers
        B = u.shape[2]
        stno = a.cell == "stno"
        h = a.dt_in / a.substeps
        h_tau, h_hp = h / a.tau, h / a.tau_hp
        init = a.p0 if stno else 0.0
        p = [u.new_full((a.neurons, B), init) for _ in range(L)]
        s = [u.new_full((a.neurons, B), init) for _ in range(L)]
        y = [u.new_zeros((a.neurons, B)) for _ in range(L)]
        bias = [b + a.zeta_bias for b in self.b] if stno else list(self.b)
        for u_k in u:
            drive0 = self.w_ext[0] @ u_k  # held for all substeps
            for _ in range(a.substeps):
                # Every zeta from the state at t, then every layer advances.
                z = [bias[l] + self.w_int[l] @ y[l] +
                     (drive0 if l == 0 else self.w_ext[l] @ y[l - 1])
                     for l in range(L)]
                for l in range(L):
                    if stno:
                        s[l] = s[l] + h_hp * (p[l] - s[l])
                        p[l] = torch.clamp(
                            p[l] + h_tau * (p[l] * (z[l] * (1 - p[l]) - 1 - a.q * p[l])
                                            + a.p_th), 0.0, 1.0)
                        y[l] = a.amplification * (p[l] - s[l])
                    else:
                        p[l] = p[l] + h_tau * (torch.tanh(z[l]) - p[l])
                        y[l] = p[l]
        return self.w_out @ y[-1] + self.b_out


def load_digits(dtype):
    """Returns u (64 x 1 x 1797, pixel/16) and labels (1797,)."""
    with gzip.open(DIGITS, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    u = torch.tensor(data[:, :64].T / 16.0, dtype=dtype).unsqueeze(1)
    return u, torch.tensor(data[:, 64], dtype=torch.long)


def train_step(model, opt, u, labels, clip_norm):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(u).T, labels)
    loss.backward()
    if clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    opt.step()
    return loss.item()


def benchmark(model, opt, u, labels, a):
    times, cpu = [], 0.0
    gen = torch.Generator().manual_seed(a.seed)
    for i in range(a.warmup + a.batches):
        idx = torch.randint(labels.numel(), (a.batch,), generator=gen)
        start, cpu_start = time.perf_counter(), time.process_time()
        train_step(model, opt, u[:, :, idx], labels[idx], a.clip_norm)
        if i >= a.warmup:
            times.append(time.perf_counter() - start)
            cpu += time.process_time() - cpu_start
    print(json.dumps({
        "impl": "pytorch-eager", "dtype": a.dtype, "cell": a.cell,
        "threads": torch.get_num_threads(), "batch": a.batch,
        "samples_per_second": a.batch * len(times) / sum(times),
        # On the process's CPU time: what a shared machine's other load
        # does not inflate.
        "cpu_samples_per_second": a.batch * len(times) / cpu,
        "seconds_per_batch_median": statistics.median(times),
        "torch_version": torch.__version__}))


def train_epochs(model, opt, u, labels, a):
    perm = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(1234))
    n_train = int(0.8 * labels.numel())
    train, test = perm[:n_train], perm[n_train:]
    for epoch in range(a.epochs):
        start, losses = time.perf_counter(), []
        order = train[torch.randperm(n_train)]
        for i in range(0, n_train, a.batch):
            idx = order[i:i + a.batch]
            losses.append(train_step(model, opt, u[:, :, idx], labels[idx], a.clip_norm))
        with torch.no_grad():
            acc = (model(u[:, :, test]).argmax(0) == labels[test]).double().mean().item()
        print(f"epoch {epoch + 1}: train loss {statistics.mean(losses):.4f}  "
              f"test accuracy {100 * acc:.2f}%  ({time.perf_counter() - start:.1f} s)",
              flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = p.add_argument
    add("--cell", choices=["stno", "ctrnn"], default="stno", help="neuron model")
    add("--dtype", choices=["float64", "float32"], default="float64",
        help="floating-point type (the C++ core uses float64)")
    add("--batches", type=int, default=20, help="timed training steps")
    add("--warmup", type=int, default=3, help="untimed training steps before timing")
    add("--epochs", type=int, default=0,
        help="if > 0, train on an 80%% split for this many epochs and report test accuracy")
    add("--batch", type=int, default=32, help="batch size")
    add("--lr", type=float, default=5e-3, help="Adam learning rate (constant)")
    add("--clip-norm", type=float, default=1.0,
        help="global gradient-norm clipping, 0 disables (C++ default 1.0)")
    add("--seed", type=int, default=0, help="seed for initialisation and batches")
    add("--layers", type=int, default=3, help="L: number of layers")
    add("--neurons", type=int, default=32, help="N: neurons per layer")
    add("--tau", type=float, default=1.0, help="neuron relaxation time [ns]")
    add("--dt-in", type=float, default=1.0, help="input interval [ns]")
    add("--substeps", type=int, default=4, help="Euler steps per input interval")
    add("--zeta-bias", type=float, default=0.8, help="fixed DC bias current / I_th (STNO)")
    add("--q", type=float, default=0.0, help="nonlinear damping Q (STNO)")
    add("--p-th", type=float, default=1e-3, help="thermal floor (STNO)")
    add("--p0", type=float, default=0.05, help="initial power (STNO)")
    add("--amplification", type=float, default=4.0, help="a_l, fixed (STNO)")
    add("--tau-hp", type=float, default=5.0, help="high-pass time constant [ns] (STNO)")
    add("--init-int-scale", type=float, default=0.5, help="W_int init scale")
    a = p.parse_args()
    a.input_dim, a.classes = 1, 10

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    dtype = getattr(torch, a.dtype)
    torch.set_default_dtype(dtype)
    u, labels = load_digits(dtype)
    model = SpinNet(a)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    if a.epochs > 0:
        train_epochs(model, opt, u, labels, a)
    else:
        benchmark(model, opt, u, labels, a)


if __name__ == "__main__":
    main()
