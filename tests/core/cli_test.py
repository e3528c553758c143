#!/usr/bin/env python3
"""End-to-end tests of spinnet-train: flags, errors, the digits accuracy the
issue asks for, checkpoint/interrupt/resume through the CLI, sweeps.

usage: cli_test.py PATH/TO/spinnet-train
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest

TRAIN = None
REQUIRED_KEYS = {"epoch", "train_loss", "train_accuracy", "test_loss",
                 "test_accuracy", "samples_per_second", "cumulative_drive",
                 "energy_per_sample_joules"}


def run(*args, timeout=600):
    return subprocess.run([TRAIN, *args], capture_output=True, text=True,
                          timeout=timeout)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class FlagsTest(unittest.TestCase):
    def test_help_documents_every_flag_with_units(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ["--dataset", "--test-dataset", "--out", "--json",
                     "--sweep", "--seeds", "--cell", "--epochs", "--seed",
                     "--dt-in", "--tau", "--substeps", "--batch", "--lr",
                     "--density-int", "--density-ext", "--threads",
                     "--resistance", "--threshold-current", "--precision",
                     "--train-spread", "--test-spread", "--thermal-noise",
                     "--vary"]:
            self.assertIn(flag, r.stdout)
        self.assertIn("[ns]", r.stdout)
        self.assertIn("[ohm]", r.stdout)

    def test_bad_flags_exit_2_with_one_line(self):
        for args, message in [
                (["--bogus"], "unknown flag --bogus"),
                (["--lr", "abc"], "'abc' is not a number"),
                (["--epochs"], "needs a value"),
                (["--cell", "lstm"], "unknown cell 'lstm'"),
                (["--dt-in", "0.5,1"], "add --sweep"),
                (["--density-int", "1.5"], "density_int"),
                (["--dt-in", "10", "--substeps", "1"], "unstable"),
                (["--seeds", "0-3"], "--seeds needs --sweep"),
                (["--train-spread", "0.5"], "train_spread = 0.5"),
                (["--vary", "tau+damping"], "unknown device parameter"),
                (["--test-spread", "0.3", "--substeps", "1"],
                 "shortest device tau"),
                (["positional"], "unexpected argument")]:
            r = run(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(message, r.stderr)

    def test_bad_dataset_is_a_clear_runtime_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            ragged = os.path.join(tmp, "ragged.csv")
            with open(ragged, "w") as f:
                f.write("a,1,2,3\nb,1,2\n")
            r = run("--dataset", ragged)
            self.assertEqual(r.returncode, 1)
            self.assertIn("line 2", r.stderr)
            r = run("--dataset", os.path.join(tmp, "missing.csv"))
            self.assertEqual(r.returncode, 1)
            self.assertIn("missing.csv", r.stderr)


class DigitsTest(unittest.TestCase):
    def test_digits_30_epochs_then_interrupt_and_resume(self):
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "model.bin")
            r = run("--dataset", "digits", "--epochs", "30", "--seed", "0",
                    "--json", "--out", model)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = json_lines(r.stdout)
            self.assertEqual(len(lines), 31)
            for i, line in enumerate(lines[:-1]):
                self.assertTrue(REQUIRED_KEYS <= line.keys(), line)
                self.assertEqual(line["epoch"], i + 1)
            final = lines[-1]
            self.assertTrue(final["final"])
            self.assertGreaterEqual(final["test_accuracy"], 0.88)
            self.assertGreater(os.path.getsize(model), 1000)

            # Interrupt a second run after its first epoch, then resume it
            # from the checkpoint: the result equals the uninterrupted run.
            ckpt = os.path.join(tmp, "run.ckpt")
            p = subprocess.Popen(
                [TRAIN, "--epochs", "30", "--seed", "0", "--json",
                 "--checkpoint", ckpt], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
            first = json.loads(p.stdout.readline())
            self.assertEqual(first["epoch"], 1)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 130, err)
            self.assertIn("interrupted", err)
            r = run("--resume", ckpt, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            resumed = json_lines(r.stdout)
            self.assertEqual(resumed[-1]["test_accuracy"],
                             final["test_accuracy"])
            self.assertEqual(resumed[-1]["test_loss"], final["test_loss"])
            self.assertEqual(resumed[-2]["epoch"], 30)

            r = run("--resume", ckpt, "--lr", "0.1")
            self.assertEqual(r.returncode, 2)
            self.assertIn("cannot be changed with --resume", r.stderr)


class CsvAndSweepTest(unittest.TestCase):
    def test_csv_with_separate_test_set_and_sweep(self):
        with tempfile.TemporaryDirectory() as tmp:
            # Two classes of d = 2 sequences: rising or falling first value.
            def write(path, n, phase):
                with open(path, "w") as f:
                    for i in range(n):
                        label = "up" if i % 2 else "down"
                        vals = []
                        for k in range(8):
                            x = (k if label == "up" else 7 - k) / 7
                            vals += [x, (i * 7 + phase) % 5 / 5]
                        f.write(label + "," + ",".join(f"{v:.3f}" for v in vals) + "\n")
            train, test = os.path.join(tmp, "t.csv"), os.path.join(tmp, "v.csv")
            write(train, 64, 0)
            write(test, 16, 3)
            r = run("--dataset", train, "--test-dataset", test,
                    "--input-dim", "2", "--epochs", "6", "--json",
                    "--neurons", "8", "--batch", "8", "--lr", "0.02")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertGreaterEqual(json_lines(r.stdout)[-1]["test_accuracy"], 0.9)

            r = run("--sweep", "--dataset", train, "--test-dataset", test,
                    "--input-dim", "2", "--epochs", "2", "--neurons", "8",
                    "--dt-in", "0.5,1", "--cell", "stno,ctrnn",
                    "--seeds", "0-2", "--threads", "2", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            points = json_lines(r.stdout)
            self.assertEqual(len(points), 4)
            for p in points:
                self.assertEqual(p["seeds"], 3)
                self.assertEqual(len(p["test_accuracies"]), 3)
                self.assertLessEqual(p["q25_test_accuracy"],
                                     p["median_test_accuracy"])
                self.assertLessEqual(p["median_test_accuracy"],
                                     p["q75_test_accuracy"])
            self.assertEqual(points[0]["settings"], {"dt-in": "0.5", "cell": "stno"})

            # Accuracy versus device spread, trained without and with it.
            r = run("--sweep", "--dataset", train, "--test-dataset", test,
                    "--input-dim", "2", "--epochs", "2", "--neurons", "8",
                    "--test-spread", "0,0.2", "--train-spread", "0,0.1",
                    "--vary", "tau+threshold", "--thermal-noise", "0.01",
                    "--seeds", "0-1", "--threads", "2", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            points = json_lines(r.stdout)
            self.assertEqual([p["settings"] for p in points], [
                {"test-spread": "0", "train-spread": "0"},
                {"test-spread": "0", "train-spread": "0.1"},
                {"test-spread": "0.2", "train-spread": "0"},
                {"test-spread": "0.2", "train-spread": "0.1"}])
            for p in points:
                self.assertEqual(len(p["test_accuracies"]), 2)


if __name__ == "__main__":
    TRAIN = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
