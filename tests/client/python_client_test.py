#!/usr/bin/env python3
"""The Python package (client/python, as built into BUILD/client/python)
against a real spinnet-server process: jobs, sweeps watched to their end
and drawn as the paper's figures (valid PNGs of the asked size, sidecars
holding GetSweep's numbers), the study command, classify/stream/trace
giving the C++ CLI's answers on the same model, model files exported,
imported and parsed (spinnet.model_file's NumPy forward pass giving
Classify's probabilities), and errors as SpinnetError with the server's
code.

usage: python_client_test.py BUILD_DIR
"""
import dataclasses
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import grpc
import numpy as np
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
from testlib import Server, digit_rows  # noqa: E402

BUILD = sys.argv.pop(1) if __name__ == "__main__" else os.environ["BUILD"]
PYDIR = os.path.join(BUILD, "client", "python")
sys.path.insert(0, PYDIR)
from spinnet import model_file, plots  # noqa: E402
from spinnet.client import Client, Reset, SpinnetError, Steps, pb, \
    training_spec  # noqa: E402

TINY = {"epochs": 1, "layers": 1, "neurons": 4}
# Models for the model-file tests: an STNO with every setting the file
# holds away from its default (sparse, trained a_l, variability), and a
# 3-layer CTRNN on two values per time step (W_ext[0] is N x 2).
FILE_MODELS = {
    "st": ("small", {"cell": "stno", "epochs": 1, "layers": 2, "neurons": 5,
                     "density-int": 0.5, "density-ext": 0.75,
                     "train-amplification": True, "q": 0.1, "tau-hp": 3.0,
                     "zeta-bias": 0.9, "p-th": 2e-3, "p0": 0.1,
                     "amplification": 3.0, "dt-in": 0.5, "substeps": 3,
                     "resistance": 150.0, "threshold-current": 3e-4,
                     "thermal-noise": 0.01, "train-spread": 0.05,
                     "vary": "threshold+tau", "seed": 11}),
    "ct": ("small2d", {"cell": "ctrnn", "epochs": 1, "layers": 3,
                       "neurons": 4, "tau": 2.0, "seed": 12}),
}


def png_size(path):
    """(width, height) from the IHDR chunk of a valid PNG file."""
    with open(path, "rb") as f:
        head = f.read(33)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: no PNG signature"
    length, kind = struct.unpack(">I4s", head[8:16])
    assert (length, kind) == (13, b"IHDR"), f"{path}: first chunk {kind}"
    return struct.unpack(">II", head[16:24])


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.rows = digit_rows(100)
        cls.csv = os.path.join(cls.tmp.name, "small.csv")
        with open(cls.csv, "w") as f:
            f.write("\n".join(cls.rows) + "\n")
        cls.token = os.path.join(cls.tmp.name, "token")
        with open(cls.token, "w") as f:
            f.write("s3cret-token\n")
        cls.server = Server(BUILD, "--data-dir",
                            os.path.join(cls.tmp.name, "data"),
                            "--auth-token-file", cls.token)
        cls.server.cli("datasets", "upload", cls.csv, "--name", "small",
                       token_file=cls.token)
        cls.server.cli("datasets", "upload", cls.csv, "--name", "small2d",
                       "--input-dim", "2", token_file=cls.token)
        cls.client = Client(cls.server.address, token="s3cret-token")
        job = cls.client.submit("m", "small",
                                {"epochs": 1, "layers": 2, "neurons": 4})
        file_jobs = [cls.client.submit(name, dataset, settings)
                     for name, (dataset, settings) in FILE_MODELS.items()]
        cls.job = cls.client.wait(job.id)
        assert cls.job.state == pb.training.JOB_STATE_SUCCEEDED, cls.job
        for j in file_jobs:
            j = cls.client.wait(j.id)
            assert j.state == pb.training.JOB_STATE_SUCCEEDED, j

    @classmethod
    def tearDownClass(cls):
        try:
            cls.client.close()
            assert cls.server.stop() == 0
        finally:
            cls.tmp.cleanup()

    def cli(self, *args, **kw):
        return self.server.cli(*args, token_file=self.token, **kw)

    def values(self, row):
        return [float(v) for v in self.rows[row].split(",")[1:]]

    def out(self, name):
        return os.path.join(self.tmp.name, "figs", name)

    def check_figure(self, base, size):
        self.assertEqual(png_size(base + ".png"), size)
        with open(base + ".svg") as f:
            self.assertIn("<svg", f.read(2000))
        with open(base + ".json") as f:
            return json.load(f)

    def check_sidecar_is_the_sweeps(self, data, sweeps):
        """Every plotted median and quartile is GetSweep's for its point,
        and every point with a succeeded seed is plotted once per series
        it belongs to."""
        fresh = {s.id: self.client.get_sweep(s.id) for s in sweeps}
        plotted = 0
        for series in data["series"]:
            for i, (sid, index) in enumerate(zip(series["sweep_id"],
                                                 series["point"])):
                point = fresh[sid].points[index]
                self.assertEqual(series["median"][i],
                                 point.median_test_accuracy)
                self.assertEqual(series["q25"][i], point.q25_test_accuracy)
                self.assertEqual(series["q75"][i], point.q75_test_accuracy)
                # The server's statistics are numpy's over the seeds.
                self.assertAlmostEqual(point.median_test_accuracy,
                                       np.median(point.test_accuracies))
                plotted += 1
        return plotted

    # --- jobs and models ---------------------------------------------------

    def test_jobs(self):
        job = self.client.get_job(self.job.id)
        self.assertEqual(job.model_name, "m")
        self.assertEqual(job.spec, training_spec(
            {"epochs": 1, "layers": 2, "neurons": 4}))
        self.assertIn(job.id, [j.id for j in self.client.list_jobs()])
        self.assertIn(job.id,
                      [j.id for j in self.client.list_jobs("succeeded")])
        self.assertNotIn(job.id,
                         [j.id for j in self.client.list_jobs("failed")])
        updates = list(self.client.watch(job.id))
        self.assertEqual(updates[-1].job.state,
                         pb.training.JOB_STATE_SUCCEEDED)
        [metrics] = self.client.training_metrics(job.id)
        self.assertEqual(metrics.epoch, 1)
        with self.assertRaises(SpinnetError) as e:
            self.client.cancel(job.id)
        self.assertEqual(e.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("already ended", e.exception.message)

    def test_models(self):
        model = self.client.get_model("m")
        self.assertEqual((model.name, model.version, model.source_job_id),
                         ("m", 1, self.job.id))
        self.assertIn(("m", 1), [(x.name, x.version)
                                 for x in self.client.list_models()])
        sweep = self.client.submit_sweep("small", {}, TINY, seeds=[5],
                                         model_name="doomed")
        self.assertEqual(list(self.client.watch_sweep(sweep.id))[-1].state,
                         pb.sweep.SWEEP_STATE_DONE)
        self.assertEqual([x.version for x in
                          self.client.list_models("doomed")], [1])
        self.client.delete_model("doomed", 1)
        with self.assertRaises(SpinnetError) as e:
            self.client.get_model("doomed", 1)
        self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(self.client.get_dataset("small").sequences, 100)

    # --- sweeps and figures ---------------------------------------------

    def test_sweep_watched_to_its_end_and_drawn(self):
        sweep = self.client.submit_sweep(
            "small", {"cell": ["stno", "ctrnn"], "dt-in": [0.5, 1.0]}, TINY,
            seeds=[1, 2, 3], request_id="fig2b-test")
        self.assertEqual(sweep.jobs_total, 12)
        # The request id makes the submit idempotent.
        self.assertEqual(self.client.submit_sweep(
            "small", {"cell": ["stno", "ctrnn"], "dt-in": [0.5, 1.0]}, TINY,
            seeds=[1, 2, 3], request_id="fig2b-test").id, sweep.id)
        updates = list(self.client.watch_sweep(sweep.id))
        self.assertEqual(updates[-1].state, pb.sweep.SWEEP_STATE_DONE)
        self.assertEqual(updates[-1].jobs_succeeded, 12)
        revisions = [u.revision for u in updates]
        self.assertEqual(revisions, sorted(revisions))
        self.assertIn(sweep.id, [s.id for s in self.client.list_sweeps()])
        done = self.client.get_sweep(sweep.id)
        self.assertEqual([[(s.flag, s.value) for s in p.settings]
                          for p in done.points],
                         [[("cell", c), ("dt-in", d)]
                          for c in ("stno", "ctrnn") for d in ("0.5", "1.0")])

        base = self.out("fig2b")
        data = plots.fig2b(done, base, size=(640, 480))
        self.assertEqual(self.check_figure(base, (640, 480)), data)
        self.assertEqual(sorted(s["label"] for s in data["series"]),
                         ["CTRNN", "STNO"])
        self.assertEqual([s["x"] for s in data["series"]], [[0.5, 1.0]] * 2)
        self.assertEqual(self.check_sidecar_is_the_sweeps(data, [done]), 4)

        # The variability figure is generic over its two flags.
        base = self.out("variability")
        data = plots.variability(done, base, x_flag="dt-in",
                                 series_flag="cell", size=(640, 480))
        self.check_figure(base, (640, 480))
        self.assertEqual(sorted(s["label"] for s in data["series"]),
                         ["trained with cell ctrnn", "trained with cell stno"])
        self.assertEqual(self.check_sidecar_is_the_sweeps(data, [done]), 4)

        base = self.out("fig3c")
        data = plots.fig3c(done, base, size=(500, 400), series_flag="cell")
        self.check_figure(base, (500, 400))
        self.assertEqual(data["vline"], 1.0)
        self.assertEqual(self.check_sidecar_is_the_sweeps(data, [done]), 4)
        drives = sorted(p.mean_cumulative_drive for p in done.points)
        self.assertEqual(sorted(x for s in data["series"] for x in s["x"]),
                         drives)
        self.assertGreater(drives[0], 0)

    def test_training_curves_at_densities(self):
        sweeps = [self.client.submit_sweep(
            "small", {}, {**TINY, "epochs": 2, "density-int": d,
                          "density-ext": d}, seeds=[1, 2, 3])
            for d in (0.5, 1)]
        sweeps = [list(self.client.watch_sweep(s.id))[-1] for s in sweeps]
        base = self.out("fig5")
        data = plots.fig5(sweeps, self.client, base, size=(600, 450))
        self.check_figure(base, (600, 450))
        self.assertEqual([s["label"] for s in data["series"]],
                         ["100 % connections", "50 % connections"])
        for series, sweep in zip(data["series"], reversed(sweeps)):
            self.assertEqual(series["jobs"], list(sweep.points[0].job_ids))
            self.assertEqual(series["x"], [1, 2])
            curves = [[e.test_accuracy for e in
                       self.client.training_metrics(j)]
                      for j in sweep.points[0].job_ids]
            self.assertEqual(series["median"],
                             list(np.median(curves, axis=0)))
            # The last epoch's median is the sweep's final median.
            self.assertAlmostEqual(series["median"][-1],
                                   sweep.points[0].median_test_accuracy)
        base = self.out("fig4")
        data = plots.fig4(sweeps, base, size=(600, 450))
        self.check_figure(base, (600, 450))
        by_label = {s["label"]: s for s in data["series"]}
        self.assertEqual(by_label["all"]["x"], [50.0, 100.0])
        self.assertEqual(by_label["intralayer"]["x"], [100.0])
        self.assertEqual(self.check_sidecar_is_the_sweeps(data, sweeps), 4)

    def test_cancel_sweep(self):
        sweep = self.client.submit_sweep(
            "small", {"dt-in": [0.5, 1, 2]}, {**TINY, "epochs": 50},
            seeds=range(10))
        cancelled = self.client.cancel_sweep(sweep.id)
        self.assertTrue(cancelled.cancel_requested)
        last = list(self.client.watch_sweep(sweep.id))[-1]
        self.assertEqual(last.state, pb.sweep.SWEEP_STATE_CANCELLED)
        self.assertEqual(last.jobs_succeeded + last.jobs_cancelled, 30)
        with self.assertRaises(SpinnetError) as e:
            self.client.cancel_sweep(sweep.id)
        self.assertEqual(e.exception.code, grpc.StatusCode.FAILED_PRECONDITION)

    def study(self, *args):
        r = subprocess.run(
            [sys.executable, "-m", "spinnet.study", *args, "--server",
             self.server.address, "--token-file", self.token, "--dataset",
             "small", "--out", os.path.join(self.tmp.name, "study")],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONPATH": PYDIR})
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_study_command(self):
        r = self.study("fig3a", "--seeds", "2", "--epochs", "1",
                       "--max-values", "2", "--set", "layers=1", "--set",
                       "neurons=4", "--size", "500x300")
        self.assertIn("fig3a: jobs 8/8 ended; seeds done per point: "
                      "2/2 2/2 2/2 2/2", r.stderr)
        base = os.path.join(self.tmp.name, "study", "fig3a")
        data = self.check_figure(base, (500, 300))
        sweeps = [self.client.get_sweep(i) for i in data["sweeps"]]
        # One sweep per dt-in, with substeps keeping h <= tau_min / 2.
        self.assertEqual([[(f.flag, f.value) for f in s.fixed] for s in sweeps],
                         [[("epochs", "1"), ("layers", "1"), ("neurons", "4"),
                           ("dt-in", dt), ("substeps", n)]
                          for dt, n in (("0.05", "4"), ("10", "40"))])
        for s in sweeps:
            self.assertEqual([(a.flag, list(a.values)) for a in s.axes],
                             [("tau", ["0.5", "2"])])
        self.assertEqual(self.check_sidecar_is_the_sweeps(data, sweeps), 4)
        self.assertEqual([s["x"] for s in data["series"]], [[0.05, 10]] * 2)

        self.study("traces", "--epochs", "1", "--set", "layers=2", "--set",
                   "neurons=4", "--inputs", self.csv, "--model", "traced")
        data = self.check_figure(
            os.path.join(self.tmp.name, "study", "traces"), (800, 560))
        self.assertEqual([s["label"] for s in data["sequences"]],
                         ["0", "1", "2", "3"])
        self.assertEqual(data["neurons"], [[1, i] for i in range(4)])

    # --- inference: the CLI's answers -------------------------------------

    def test_classify_agrees_with_the_cli(self):
        got = self.client.classify("m", [self.values(i) for i in range(20)])
        [want] = [json_format.Parse(line, pb.inference.ClassifyResponse())
                  for line in self.cli("--json", "classify", "--model", "m",
                                       self.csv).stdout.splitlines()]
        self.assertEqual(len(want.results), 100)
        self.assertEqual(got.model_version, 1)
        for g, w in zip(got.results, want.results[:20]):
            self.assertEqual((g.class_index, g.label, g.steps),
                             (w.class_index, w.label, w.steps))
            self.assertEqual(len(g.probabilities), len(w.probabilities))
            for p, q in zip(g.probabilities, w.probabilities):
                self.assertAlmostEqual(p, q, places=12)
            self.assertAlmostEqual(g.energy_joules / w.energy_joules, 1, 12)

    def test_stream_agrees_with_the_cli(self):
        rows = self.rows[:5]
        got = list(self.client.stream(
            "m", [self.values(i) for i in range(5)], every=16))
        r = subprocess.run(
            [os.path.join(BUILD, "client", "spinnet"), "--server",
             self.server.address, "--token-file", self.token, "--json",
             "stream", "--model", "m", "--every", "16", "--sequences"],
            input="\n".join(rows) + "\n", capture_output=True, text=True,
            timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = [json_format.Parse(line, pb.inference.StreamClassifyResponse())
                for line in r.stdout.splitlines()]
        self.assertEqual(got[0].WhichOneof("kind"), "opened")
        self.assertEqual(got[0].opened, want[0].opened)
        answers = [m.answer for m in got if m.WhichOneof("kind") == "answer"]
        wanted = [m.answer for m in want if m.WhichOneof("kind") == "answer"]
        self.assertEqual(len(answers), 5 * 4)  # 3 provisional + 1 final
        self.assertEqual(len(answers), len(wanted))
        for g, w in zip(answers, wanted):
            self.assertEqual((g.sequence, g.final, g.classification.steps,
                              g.classification.class_index),
                             (w.sequence, w.final, w.classification.steps,
                              w.classification.class_index))
            for p, q in zip(g.classification.probabilities,
                            w.classification.probabilities):
                self.assertAlmostEqual(p, q, places=12)
        # Steps and Reset: a reset drops the half sequence; the next one is
        # answered as if alone.
        x = self.values(0)
        mixed = [m for m in self.client.stream(
            "m", [Steps(x[:30]), Reset(), Steps(x[:40]), Steps(x[40:], True)])
            if m.WhichOneof("kind") == "answer"]
        self.assertEqual(len(mixed), 1)
        self.assertEqual(mixed[0].answer.classification, answers[3]
                         .classification)

    def test_trace_agrees_with_the_cli_and_is_drawn(self):
        got = self.client.trace_neurons(
            "m", [self.values(0), self.values(2)], [(1, 0), (0, 3)])
        [want] = [json_format.Parse(line, pb.inference.TraceNeuronsResponse())
                  for line in self.cli("--json", "trace", "--model", "m",
                                       "--rows", "1,3", "--neurons",
                                       "1:0,0:3", self.csv
                                       ).stdout.splitlines()]
        self.assertEqual(list(got.time_ns), list(want.time_ns))
        self.assertEqual(got.neurons, want.neurons)
        for g, w in zip(got.sequences, want.sequences):
            self.assertEqual(g.classification.class_index,
                             w.classification.class_index)
            for gt, wt in zip(g.traces, w.traces):
                np.testing.assert_allclose(gt.values, wt.values, rtol=1e-12)
        base = self.out("traces")
        data = plots.traces(got, base, labels=["0", "2"], size=(700, 500))
        self.check_figure(base, (700, 500))
        y = np.array([[t.values for t in s.traces] for s in got.sequences])
        for j in range(2):
            scale = np.abs(y[:, j]).max()
            for i in range(2):
                np.testing.assert_allclose(
                    data["sequences"][i]["values"][j], y[i, j] / scale)

    # --- model files --------------------------------------------------------

    def classify_all(self, model, rows=range(40)):
        return self.client.classify(model, [self.values(i) for i in rows])

    def test_export_import_round_trip(self):
        for name in FILE_MODELS:
            exported = self.client.export_model(name)
            self.assertEqual(exported.model, self.client.get_model(name))
            self.assertEqual(exported.data[:8], b"SPNMODEL")
            copy = self.client.import_model(name + "-copy", exported.data)
            self.assertEqual((copy.name, copy.version, copy.source_job_id),
                             (name + "-copy", 1, ""))
            self.assertEqual(copy.spec, exported.model.spec)
            again = self.client.export_model(name + "-copy", 1)
            self.assertEqual(again.data, exported.data)
            # The same file classifies the same, bit for bit.
            want = self.classify_all(name).results
            got = self.classify_all(name + "-copy").results
            self.assertEqual(len(got), 40)
            for g, w in zip(got, want):
                self.assertEqual(g, w)
            # Version 1 (before variability): the file without the 28 bytes
            # version 2 appended, re-checksummed, as core still reads it.
            body = exported.data[:-32 - 28]
            body = body[:8] + (1).to_bytes(4, "little") + body[12:]
            v1 = body + hashlib.sha256(body).digest()
            old = model_file.parse(v1)
            new = model_file.parse(exported.data)
            self.assertEqual((old.format_version, new.format_version), (1, 2))
            self.assertEqual((old.thermal_noise, old.train_spread,
                              old.test_spread, old.vary),
                             (0.0, 0.0, 0.0, "threshold+tau+amplification"))
            for key in new.weights:
                np.testing.assert_array_equal(old.weights[key],
                                              new.weights[key])
            self.client.import_model(name + "-v1", v1)
            for g, w in zip(self.classify_all(name + "-v1").results, want):
                self.assertEqual(g.probabilities, w.probabilities)

    def test_corrupt_files_are_refused(self):
        data = self.client.export_model("st").data
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01
        unknown = data[:8] + (3).to_bytes(4, "little") + data[12:-32]
        unknown += hashlib.sha256(unknown).digest()
        trailing = data[:-32] + b"\0"
        trailing += hashlib.sha256(trailing).digest()
        cases = [  # (file, server's code, model_file's message)
            (bytes(flipped), grpc.StatusCode.DATA_LOSS, "checksum mismatch"),
            (data[:-1], grpc.StatusCode.DATA_LOSS, "checksum mismatch"),
            (data[:len(data) // 2], grpc.StatusCode.DATA_LOSS,
             "checksum mismatch"),
            (data[:20], grpc.StatusCode.DATA_LOSS, "file is 20 bytes"),
            (b"NOTAMODEL" * 10, grpc.StatusCode.INVALID_ARGUMENT,
             "not a spinnet model file"),
            (unknown, grpc.StatusCode.INVALID_ARGUMENT, "version 3"),
            (trailing, grpc.StatusCode.DATA_LOSS, "1 unexpected trailing"),
        ]
        for i, (bad, code, message) in enumerate(cases):
            with self.subTest(case=i):
                with self.assertRaises(SpinnetError) as e:
                    self.client.import_model("bad", bad)
                self.assertEqual(e.exception.code, code, e.exception.message)
                with self.assertRaisesRegex(ValueError, message):
                    model_file.parse(bad)
        self.assertEqual(self.client.list_models("bad"), [])
        model_file.parse(data)  # the intact file still parses

    def test_weights_give_classify_answers(self):
        """spinnet.model_file's settings are the model's record, and its
        weights run through core/MODEL.md's equations in NumPy give the
        server's Classify probabilities and energies to 1e-9."""
        sequences = np.array([self.values(i) for i in range(40)])
        for name, (dataset, settings) in FILE_MODELS.items():
            m = self.client.export_weights(name)
            record = self.client.get_model(name)
            # Every setting in the file is the record's (the server's
            # TrainingSpec with every field set), the asked ones included.
            # flags() is what submit() takes: every flag a spec field.
            flags = m.flags()
            spec = training_spec(flags)
            self.assertEqual(sorted(f.name for f, _ in spec.ListFields()),
                             sorted(f.replace("-", "_") for f in flags))
            for field, value in spec.ListFields():
                self.assertEqual(value, getattr(record.spec, field.name),
                                 field.name)
            for flag, value in settings.items():
                self.assertEqual(flags[flag], value, flag)
            self.assertEqual((m.dataset, list(m.class_labels), m.input_dim,
                              m.sequence_steps, m.num_classes),
                             (dataset, list(record.class_labels),
                              record.input_dim, record.sequence_steps,
                              len(record.class_labels)))
            # Names and shapes as documented; masked weights are 0.
            L, N, d, C = m.layers, m.neurons, m.input_dim, m.num_classes
            shapes = {"W_out": (C, N), "b_out": (C,), "a": (L,)}
            for l in range(L):
                shapes.update({f"layer{l}.W_ext": (N, d if l == 0 else N),
                               f"layer{l}.W_int": (N, N),
                               f"layer{l}.b": (N,)})
            self.assertEqual({k: v.shape for k, v in m.weights.items()},
                             shapes)
            self.assertEqual({k: v.shape for k, v in m.mask.items()}, shapes)
            for key, w in m.weights.items():
                self.assertTrue(np.all(np.isfinite(w)), key)
                if ".W_" in key:  # removed connections (a fixed a_l is not 0)
                    self.assertTrue(np.all(w[m.mask[key] == 0] == 0), key)
            if name == "st":
                self.assertLess(m.mask["layer1.W_int"].mean(), 1)
                self.assertTrue(np.all(m.mask["a"] == 1))
                self.assertFalse(np.all(m.weights["a"] == 3.0))  # trained

            got, energy = m.forward(sequences)
            answers = self.client.classify(name, sequences).results
            want = np.array([list(r.probabilities) for r in answers])
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
            self.assertEqual(list(got.argmax(axis=1)),
                             [r.class_index for r in answers])
            want_energy = np.array([r.energy_joules for r in answers])
            np.testing.assert_allclose(energy, want_energy, rtol=1e-9, atol=0)
            self.assertEqual(name == "st", bool(np.all(energy > 0)))
            # The comparison can tell a misread weight: the transposed
            # (row-major) W_int of the top layer is far off.
            w = dict(m.weights)
            w[f"layer{L - 1}.W_int"] = w[f"layer{L - 1}.W_int"].T
            off, _ = model_file.forward(
                dataclasses.replace(m, weights=w), sequences)
            self.assertGreater(np.abs(off - want).max(), 1e-6)

    # --- errors -----------------------------------------------------------

    def test_errors_carry_the_status(self):
        def code(call, *args, **kw):
            with self.assertRaises(SpinnetError) as e:
                call(*args, **kw)
            return e.exception.code, e.exception.message
        c = self.client
        self.assertEqual(code(c.get_model, "nope")[0],
                         grpc.StatusCode.NOT_FOUND)
        self.assertEqual(code(c.get_sweep, "nope")[0],
                         grpc.StatusCode.NOT_FOUND)
        self.assertEqual(code(c.get_job, "nope")[0], grpc.StatusCode.NOT_FOUND)
        status, message = code(c.submit_sweep, "small", {"no-such-flag": [1]},
                               TINY, seeds=[1])
        self.assertEqual(status, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("no-such-flag", message)
        status, message = code(c.trace_neurons, "m", [self.values(0)],
                               [(5, 0)])
        self.assertEqual(status, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("layer 5 out of range", message)
        self.assertEqual(code(c.submit, "x", "small", {"bogus": 1})[0],
                         grpc.StatusCode.INVALID_ARGUMENT)
        # Streams raise too, when the iteration meets the error.
        self.assertEqual(code(lambda: list(c.watch_sweep("nope")))[0],
                         grpc.StatusCode.NOT_FOUND)
        # Without the token, or with a wrong one: UNAUTHENTICATED.
        for token in (None, "wrong"):
            with Client(self.server.address, token) as other:
                self.assertEqual(code(other.list_models)[0],
                                 grpc.StatusCode.UNAUTHENTICATED)


if __name__ == "__main__":
    unittest.main()
