#!/usr/bin/env python3
"""Sweeps (studies) through the real servers and the real CLI:

  - two replicas on one PostgreSQL: a sweep submitted on one is run by the
    workers of both, watched and read on the other; its point statistics
    equal the median and quartiles computed here from its jobs; a repeated
    request id returns the same sweep, a different request under it is
    refused; a sweep cancelled on one replica stops its jobs on both;
  - one server on SQLite: the same submit, watch, get, idempotency, cancel;
  - every bad input the CLI and the API refuse, and nothing written by them.

Usage: sweep_test.py BUILD_DIR
"""
import json
import os
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import replicas_test  # noqa: E402
from replicas_test import FleetTest, cli, cli_json  # noqa: E402
from testlib import Server, digit_rows, field, wait_for  # noqa: E402

# Small and quick: 1 layer of 4 neurons, 1 epoch on 100 digits.
TINY = ["--layers", "1", "--neurons", "4", "--epochs", "1"]


def quantile(values, q):
    """numpy's default (linear) quantile, by hand."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


class SweepChecks:
    """The checks, given `self.servers` (their addresses) on one store."""

    def submit_sweep(self, address, *args):
        return cli_json(address, "sweep", "submit", "--dataset", "tiny", *args)[0]

    def upload_tiny(self, address):
        cli(address, "datasets", "upload", self.tiny, "--name", "tiny")

    def check_statistics(self, address, sweep):
        """Each point's numbers from its jobs, computed here."""
        for point in sweep["points"]:
            accuracies, drives = [], []
            for job_id in field(point, "job_ids"):
                job = cli_json(address, "job", job_id)[0]
                self.assertEqual(field(job, "state"), "JOB_STATE_SUCCEEDED")
                self.assertEqual(field(job, "sweep_id"), sweep["id"])
                self.assertFalse(field(job, "model_version"))  # none published
                last = field(job, "latest_epoch")
                accuracies.append(field(last, "test_accuracy") or 0.0)
                drives.append(field(last, "cumulative_drive") or 0.0)
            self.assertEqual(field(point, "seeds_succeeded"), len(accuracies))
            for name, q in (("median_test_accuracy", 0.5),
                            ("q25_test_accuracy", 0.25),
                            ("q75_test_accuracy", 0.75)):
                self.assertAlmostEqual(field(point, name) or 0.0,
                                       quantile(accuracies, q), places=12)
            self.assertAlmostEqual(field(point, "mean_cumulative_drive"),
                                   sum(drives) / len(drives), places=9)

    def run_submit_watch_get(self):
        first, other = self.servers[0], self.servers[-1]
        self.upload_tiny(first)
        sweep = self.submit_sweep(first, *TINY, "--dt-in", "0.5,1", "--cell",
                            "stno,ctrnn", "--seeds", "0-2",
                            "--request-id", "study-1")
        self.assertEqual(field(sweep, "jobs_total"), 12)
        self.assertEqual(len(sweep["points"]), 4)
        self.assertEqual([s["value"] for s in sweep["points"][1]["settings"]],
                         ["0.5", "ctrnn"])
        # The same request again, on another replica: the same sweep.
        again = self.submit_sweep(other, *TINY, "--dt-in", "0.5,1", "--cell",
                            "stno,ctrnn", "--seeds", "0-2",
                            "--request-id", "study-1")
        self.assertEqual(again["id"], sweep["id"])
        r = cli(other, "sweep", "submit", "--dataset", "tiny", *TINY,
                "--dt-in", "0.5,2", "--seeds", "0-2", "--request-id", "study-1",
                check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ALREADY_EXISTS", r.stderr)

        # Watched on the other replica to the end: one message per change,
        # the last one DONE.
        updates = cli_json(other, "sweep", "watch", sweep["id"])
        self.assertEqual(field(updates[-1], "state"), "SWEEP_STATE_DONE")
        done = cli_json(first, "sweep", "get", sweep["id"])[0]
        self.assertEqual(field(done, "jobs_succeeded"), 12)
        self.assertEqual(field(done, "progress"), 1)
        self.check_statistics(first, done)
        listed = cli_json(other, "sweep", "list")[0]["sweeps"]
        self.assertEqual([s["id"] for s in listed], [sweep["id"]])
        # The human table: one row per point, with its median.
        table = cli(first, "sweep", "get", sweep["id"]).stdout
        self.assertIn("dt-in=0.5 cell=ctrnn", table)
        self.assertIn("%.2f%%" % (100 * field(done["points"][0],
                                              "median_test_accuracy")), table)
        return done

    def run_cancel(self):
        first, other = self.servers[0], self.servers[-1]
        # Long jobs (minutes each): the cancel finds them queued or running.
        sweep = self.submit_sweep(first, "--layers", "2", "--neurons", "32",
                                  "--epochs", "2000", "--dt-in", "0.5,1",
                                  "--seeds", "0-3")
        wait_for(lambda: field(cli_json(other, "sweep", "get", sweep["id"])[0],
                               "jobs_running"), 60, "a job of the sweep to run")
        cancelled = cli_json(other, "sweep", "cancel", sweep["id"])[0]
        self.assertTrue(field(cancelled, "cancel_requested"))
        end = wait_for(lambda: (lambda s: s if field(s, "state") ==
                                "SWEEP_STATE_CANCELLED" else None)(
            cli_json(first, "sweep", "get", sweep["id"])[0]), 30,
            "every job of the cancelled sweep to end")
        self.assertEqual(field(end, "jobs_cancelled"), 8)
        for point in end["points"]:
            for job_id in field(point, "job_ids"):
                self.assertEqual(field(cli_json(first, "job", job_id)[0], "state"),
                                 "JOB_STATE_CANCELLED")
        r = cli(first, "sweep", "cancel", sweep["id"], check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already ended", r.stderr)
        # `sweep watch` of a cancelled sweep exits 1 and says so.
        r = cli(first, "sweep", "watch", sweep["id"], check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("was cancelled", r.stderr)


class PostgresSweepTest(FleetTest, SweepChecks):
    def test_two_replicas_run_watch_and_cancel_a_sweep(self):
        a = self.start("r1", "--training-workers", "1")
        b = self.start("r2", "--training-workers", "1")
        self.servers = [a.address, b.address]
        done = self.run_submit_watch_get()
        # Both replicas' workers took part.
        claimed = {r.name: sum(r.logs().count(j + ": claimed")
                               for p in done["points"] for j in field(p, "job_ids"))
                   for r in (a, b)}
        self.assertEqual(sum(claimed.values()), 12, claimed)
        self.assertTrue(all(claimed.values()), claimed)
        self.run_cancel()


class SqliteSweepTest(unittest.TestCase, SweepChecks):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.tiny = os.path.join(self.tmp.name, "tiny.csv")
        with open(self.tiny, "w") as f:
            f.write("\n".join(digit_rows(100)) + "\n")
        self.server = Server(replicas_test.BUILD, "--data-dir",
                             os.path.join(self.tmp.name, "data"),
                             "--training-workers", "2",
                             log=tempfile.TemporaryFile(mode="w+"))
        self.servers = [self.server.address]

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.server.log.close()
        self.tmp.cleanup()

    def test_submit_watch_get_and_cancel(self):
        self.run_submit_watch_get()
        self.run_cancel()

    def test_bad_input_is_refused_and_writes_nothing(self):
        address = self.server.address
        self.upload_tiny(address)

        def refused(*args, code=2):
            r = cli(address, "sweep", "submit", *args, check=False)
            self.assertEqual(r.returncode, code, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            return r.stderr

        self.assertIn("--dataset", refused("--dt-in", "1,2"))
        self.assertIn("unknown flag --nope", refused("--dataset", "tiny",
                                                      "--nope", "1,2"))
        self.assertIn("--seeds", refused("--dataset", "tiny", "--seeds", "9-0"))
        self.assertIn("more than 1000", refused("--dataset", "tiny",
                                                "--seeds", "0-1000"))
        self.assertIn("appears twice", refused("--dataset", "tiny",
                                               "--seeds", "1,1"))
        # The server's answers: exit 1, the field named.
        self.assertIn("NOT_FOUND", refused("--dataset", "nope", "--dt-in", "1,2",
                                           code=1))
        err = refused("--dataset", "tiny", "--dt-in", ",", code=1)
        self.assertIn("INVALID_ARGUMENT", err)
        self.assertIn("dt-in", err)
        many = ",".join(str(i + 1) for i in range(101))
        err = refused("--dataset", "tiny", "--tau", many, "--lr",
                      ",".join(f"0.{i + 1}" for i in range(100)), code=1)
        self.assertIn("more than 10000 points", err)
        err = refused("--dataset", "tiny", "--tau", many, "--seeds", "0-99",
                      code=1)
        self.assertIn("at most 10000 per sweep", err)
        self.assertIn("use seeds", refused("--dataset", "tiny", "--seed", "3",
                                           code=1))
        self.assertEqual(cli_json(address, "sweep", "list")[0].get("sweeps", []), [])
        self.assertEqual(cli_json(address, "jobs")[0].get("jobs", []), [])
        r = cli(address, "sweep", "get", "s-nope", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_FOUND", r.stderr)


if __name__ == "__main__":
    replicas_test.BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
