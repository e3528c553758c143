#!/usr/bin/env python3
"""`spinnet trace` against a real spinnet-server process: the table and
--json of a good trace, each bad input as a clear error (and the server
traces again afterwards), and the RPC under its own metrics label.

usage: trace_cli_test.py BUILD_DIR
"""
import os
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Server, digit_rows, field  # noqa: E402

BUILD = None


class TraceCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.csv = os.path.join(cls.tmp.name, "small.csv")
        with open(cls.csv, "w") as f:
            f.write("\n".join(digit_rows(100)) + "\n")
        cls.server = Server(BUILD, "--data-dir", os.path.join(cls.tmp.name, "data"))
        cls.server.cli("datasets", "upload", cls.csv, "--name", "small")
        cls.server.cli("train", "--dataset", "small", "--model", "m", "--epochs",
                       "1", "--layers", "2", "--neurons", "4", "--watch")

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.server.stop() == 0
        finally:
            cls.tmp.cleanup()

    def trace(self, *args, check=True):
        return self.server.cli("trace", "--model", "m", *args, self.csv,
                               check=check)

    def test_table_per_row_time_then_one_column_per_neuron(self):
        out = self.trace("--rows", "1,3", "--neurons", "1:0,0:3").stdout
        blocks = out.strip().split("\n\n")
        self.assertEqual(len(blocks), 2, out)
        for block, row in zip(blocks, (1, 3)):
            lines = block.splitlines()
            self.assertTrue(lines[0].startswith(f"row {row}: "), lines[0])
            self.assertEqual(lines[1].split(), ["t[ns]", "1:0", "0:3"])
            rows = [[float(x) for x in l.split()] for l in lines[2:]]
            self.assertEqual([r[0] for r in rows], [float(k) for k in range(1, 65)])
            self.assertTrue(all(len(r) == 3 for r in rows))
            # The neurons respond to the digit: their outputs vary in time.
            self.assertGreater(max(r[2] for r in rows) - min(r[2] for r in rows), 1e-3)

    def test_json_defaults_to_the_last_layer_and_agrees_with_classify(self):
        [traced] = self.server.json("trace", "--model", "m", "--rows", "2",
                                    self.csv)
        self.assertEqual(field(traced, "model_version"), 1)
        self.assertEqual(len(field(traced, "time_ns")), 64)
        self.assertEqual(traced["neurons"],
                         [{"layer": 1, "index": i} for i in range(4)])
        [seq] = traced["sequences"]
        self.assertEqual(len(seq["traces"]), 4)
        self.assertTrue(all(len(t["values"]) == 64 for t in seq["traces"]))
        # Row 2 alone, through classify: the same answer.
        one = os.path.join(self.tmp.name, "row2.csv")
        with open(self.csv) as f, open(one, "w") as g:
            g.write(f.read().splitlines()[1] + "\n")
        [classified] = self.server.json("classify", "--model", "m", one)
        want = classified["results"][0]
        got = seq["classification"]
        self.assertEqual(field(got, "class_index"), field(want, "class_index"))
        for p, q in zip(got["probabilities"], want["probabilities"]):
            self.assertAlmostEqual(p, q, places=12)

    def test_bad_input_is_a_clear_error_and_loses_nothing(self):
        cases = [
            (["--rows", "1", "--neurons", "2:0"], 1,
             "INVALID_ARGUMENT: neuron 0 (layer 2, index 0): layer 2 out of range"),
            (["--rows", "1", "--neurons", "0:4"], 1,
             "index 4 out of range; each layer has 4 neuron(s), 0..3"),
            ([], 1, "INVALID_ARGUMENT: sequences: 100 in one call; the limit is 16"),
            (["--rows", "1", "--neurons", "x"], 2, "--neurons: 'x' is not LAYER:INDEX"),
            (["--rows", "101"], 2, "--rows: '101' is not a row number of the file (1..100)"),
        ]
        for args, status, message in cases:
            r = self.trace(*args, check=False)
            self.assertEqual(r.returncode, status, (args, r.stderr))
            self.assertIn(message, r.stderr, args)
            self.assertEqual(r.stdout, "", args)
        r = self.server.cli("trace", "--model", "nope", self.csv, check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("NOT_FOUND", r.stderr)
        # A shorter sequence than the model was trained on (d = 1 takes any
        # length): traced over its own 3 steps.
        short = os.path.join(self.tmp.name, "short.csv")
        with open(short, "w") as f:
            f.write("0,0.1,0.2,0.3\n")
        [traced] = self.server.json("trace", "--model", "m", short)
        self.assertEqual(field(traced, "time_ns"), [1, 2, 3])
        self.assertEqual(self.trace("--rows", "5").returncode, 0)

    def test_metrics_label_the_rpc(self):
        self.trace("--rows", "1")
        self.trace("--rows", "1", "--neurons", "9:9", check=False)
        body = urllib.request.urlopen(
            f"http://{self.server.metrics}/metrics", timeout=10).read().decode()
        method = 'method="spinnet.v1.InferenceService/TraceNeurons"'
        lines = [l for l in body.splitlines()
                 if l.startswith("spinnet_grpc_requests_total") and method in l]
        self.assertTrue(any('code="OK"' in l for l in lines), lines)
        self.assertTrue(any('code="INVALID_ARGUMENT"' in l for l in lines), lines)


if __name__ == "__main__":
    BUILD = sys.argv.pop(1)
    unittest.main()
