#!/usr/bin/env python3
"""End-to-end tests of the spinnet-server process with the spinnet CLI:
the whole flow on one server, kill -9 mid-training and restart, graceful
SIGTERM, a second server on the same data dir, auth on the command line.

usage: e2e_test.py BUILD_DIR
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Server as ServerProcess, digit_rows, field, wait_for  # noqa: E402

BUILD = None


def server_bin():
    return os.path.join(BUILD, "server", "spinnet-server")


def cli_bin():
    return os.path.join(BUILD, "client", "spinnet")


def Server(data_dir, *extra):
    """A server on its own SQLite data dir."""
    return ServerProcess(BUILD, "--data-dir", data_dir, *extra)





class WholeFlowTest(unittest.TestCase):
    def test_upload_train_watch_classify_stream_metrics(self):
        with tempfile.TemporaryDirectory() as tmp:
            s = Server(os.path.join(tmp, "data"))
            try:
                self.assertEqual(s.cli("health").returncode, 0)
                # A small dataset: the first 400 digits as CSV (label first).
                csv = os.path.join(tmp, "small.csv")
                with open(csv, "w") as f:
                    f.write("\n".join(digit_rows(400)) + "\n")
                s.cli("datasets", "upload", csv, "--name", "small")
                names = [field(d, "name") for d in s.json("datasets")[0]["datasets"]]
                self.assertIn("digits", names)
                self.assertIn("small", names)

                r = s.cli("train", "--dataset", "small", "--model", "m",
                          "--epochs", "3", "--neurons", "16", "--watch",
                          "--request-id", "req-1")
                jobs = s.json("jobs")[0]["jobs"]
                self.assertEqual(len(jobs), 1)
                job = jobs[0]
                self.assertEqual(field(job, "state"), "JOB_STATE_SUCCEEDED")
                # Idempotent: the same request id returns the same job.
                again = s.json("train", "--dataset", "small", "--model", "m",
                               "--epochs", "3", "--neurons", "16",
                               "--request-id", "req-1")
                self.assertEqual(field(again[0], "id"), field(job, "id"))
                self.assertEqual(len(s.json("jobs")[0]["jobs"]), 1)

                models = s.json("models", "m")[0]["models"]
                self.assertEqual(len(models), 1)
                self.assertEqual(field(models[0], "version"), 1)

                curves = s.json("metrics", field(job, "id"))
                epochs = field(curves[0], "epochs")
                self.assertEqual(len(epochs), 3)

                out = s.cli("classify", "--model", "m", csv).stdout
                self.assertIn("accuracy", out)

                # Stream two sequences given as labelled rows, one step per message.
                r = subprocess.run(
                    [cli_bin(), "--server", s.address, "stream", "--model", "m",
                     "--every", "16", "--sequences"],
                    input="\n".join(open(csv).read().splitlines()[:2]) + "\n",
                    capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertGreaterEqual(r.stdout.lower().count("final"), 2, r.stdout)
                self.assertGreaterEqual(r.stdout.lower().count("provisional"), 6, r.stdout)

                body = urllib.request.urlopen(f"http://{s.metrics}/metrics", timeout=10).read().decode()
                self.assertIn("spinnet_grpc_requests_total", body)
                self.assertIn("spinnet_training_jobs", body)
                self.assertIn("spinnet_classifications_total", body)
            finally:
                self.assertEqual(s.stop(), 0)


class DurabilityTest(unittest.TestCase):
    def test_kill_9_mid_training_and_a_corrupt_checkpoint_then_restart_finishes(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            s = Server(data)
            submitted = s.json("train", "--dataset", "digits", "--model", "k",
                               "--epochs", "6")[0]
            job_id = field(submitted, "id")
            wait_for(lambda: (field(s.json("job", job_id)[0], "epochs_done") or 0) >= 2,
                     120, "two epochs")
            s.stop(signal.SIGKILL)  # mid-epoch
            # Corrupt the newest checkpoint: the restart falls back to the
            # previous one and re-runs that epoch.
            ckpt = os.path.join(data, "checkpoints", job_id + ".ckpt")
            self.assertTrue(os.path.exists(ckpt + ".prev"))
            if not os.path.exists(ckpt):  # killed between rotate and write
                ckpt += ".prev"
            with open(ckpt, "r+b") as f:
                f.seek(os.path.getsize(ckpt) // 2)
                byte = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([byte[0] ^ 0xFF]))
            s = Server(data)
            try:
                done = wait_for(
                    lambda: (lambda j: j if field(j, "state") == "JOB_STATE_SUCCEEDED" else None)(
                        s.json("job", job_id)[0]), 180, "the resumed job")
                self.assertGreaterEqual(field(done, "restarts"), 1)
                epochs = field(s.json("metrics", job_id)[0], "epochs")
                self.assertEqual([field(e, "epoch") for e in epochs], [1, 2, 3, 4, 5, 6])
                self.assertEqual(len(s.json("models", "k")[0]["models"]), 1)
            finally:
                self.assertEqual(s.stop(), 0)

    def test_second_server_on_same_data_dir_refuses(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            s = Server(data)
            try:
                r = subprocess.run([server_bin(), "--listen", "127.0.0.1:0",
                                    "--metrics-listen", "", "--data-dir", data],
                                   capture_output=True, text=True, timeout=30)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("already running", r.stderr)
                port = s.address.rsplit(":", 1)[1]
                r = subprocess.run([server_bin(), "--listen", f"127.0.0.1:{port}",
                                    "--metrics-listen", "", "--data-dir",
                                    os.path.join(tmp, "other")],
                                   capture_output=True, text=True, timeout=30)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("cannot listen", r.stderr)
            finally:
                s.stop()

    def test_sigterm_checkpoints_and_the_job_resumes(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            s = Server(data)
            job_id = field(s.json("train", "--dataset", "digits", "--model",
                                  "g", "--epochs", "4")[0], "id")
            wait_for(lambda: (field(s.json("job", job_id)[0], "epochs_done") or 0) >= 1,
                     120, "one epoch")
            start = time.time()
            self.assertEqual(s.stop(signal.SIGTERM), 0)
            self.assertLess(time.time() - start, 10)
            s = Server(data)
            try:
                wait_for(lambda: field(s.json("job", job_id)[0], "state") == "JOB_STATE_SUCCEEDED",
                         180, "the job after a graceful restart")
            finally:
                s.stop()


class AuthTest(unittest.TestCase):
    def test_token_required_and_non_loopback_refused_without_auth(self):
        with tempfile.TemporaryDirectory() as tmp:
            token = os.path.join(tmp, "token")
            with open(token, "w") as f:
                f.write("s3cret-token\n")
            s = Server(os.path.join(tmp, "data"), "--auth-token-file", token)
            try:
                r = s.cli("models", check=False)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("UNAUTHENTICATED", r.stderr)
                self.assertEqual(s.cli("models", token_file=token).returncode, 0)
                # Health needs no token.
                self.assertEqual(s.cli("health").returncode, 0)
            finally:
                s.stop()
            r = subprocess.run([server_bin(), "--listen", "0.0.0.0:0",
                                "--metrics-listen", "", "--data-dir",
                                os.path.join(tmp, "data2")],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("auth-token-file", r.stderr)


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
