#!/usr/bin/env python3
"""Storage faults in the real spinnet-server process.

On SQLite (a data dir), the server runs under LD_PRELOAD=libspinnet_faultfs
(tests/server/faultfs.c), whose control file makes writes, fsyncs or
renames of chosen paths fail with ENOSPC or EIO, tear, kill the process or
crawl. On PostgreSQL (a throw-away cluster, tests/pg_cluster.py), the
server's connections are killed with pg_terminate_backend while a write is
held in the middle of its transaction by a table lock.

Every case checks the same outcomes: the job ends FAILED naming the cause,
or is retried and ends once; nothing is half-written; the model published
before (its bytes and SHA-256) is untouched and still classifies; health,
listings and Classify keep working while the fault lasts.

usage: storage_faults_test.py BUILD_DIR FAULTFS_LIBRARY
"""
import glob
import json
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_cluster import PgCluster  # noqa: E402
from testlib import Server, digit_rows, field, wait_for  # noqa: E402

BUILD = None
FAULTFS = None
TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
# Short leases, so that a lease left to lapse comes back within seconds.
LEASE = ["--lease-ttl", "3", "--heartbeat-interval", "0.5"]
SMALL = ["--layers", "1", "--neurons", "8"]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def preload():
    """LD_PRELOAD for the server: faultfs, after the sanitizer runtimes
    that a sanitizer build links (they must come first)."""
    ldd = subprocess.run(["ldd", os.path.join(BUILD, "server", "spinnet-server")],
                         capture_output=True, text=True).stdout
    runtimes = re.findall(r"=> (\S*lib[almt]san\S*\.so\S*)", ldd)
    return " ".join(runtimes + [FAULTFS])


class FaultCase(unittest.TestCase):
    """A temporary directory with a small CSV (the first 100 digits), and
    the checks every fault case makes."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.csv = os.path.join(self.tmp.name, "tiny.csv")
        with open(self.csv, "w") as f:
            f.write("\n".join(digit_rows(100)) + "\n")
        self.server = None

    def tearDown(self):
        failed = any(e for _, e in getattr(self._outcome, "errors", []))
        if self.server is not None:
            self.server.stop(signal.SIGKILL)
            if failed:
                sys.stderr.write(f"--- server log ---\n{self.server.logs()[-4000:]}\n")
            self.server.log.close()
        self.tmp.cleanup()

    def job(self, job_id):
        return self.server.json("job", job_id)[0]

    def wait_end(self, job_id, timeout=60):
        return wait_for(lambda: (lambda j: j if field(j, "state") in TERMINAL
                                 else None)(self.job(job_id)),
                        timeout, f"job {job_id} to end")

    def submit(self, model, *flags):
        return field(self.server.json("train", "--dataset", "tiny", "--model",
                                      model, *SMALL, *flags)[0], "id")

    def epochs(self, job_id):
        return [field(e, "epoch") for e in
                field(self.server.json("metrics", job_id)[0], "epochs") or []]

    def versions(self, model):
        r = self.server.cli("--json", "models", model, check=False)
        if r.returncode != 0:
            return []
        return [field(m, "version") for m in
                json.loads(r.stdout).get("models", [])]

    def publish_good_model(self):
        """Uploads "tiny", trains model "good" and returns its file's
        SHA-256 as exported."""
        self.server.cli("datasets", "upload", self.csv, "--name", "tiny")
        done = self.wait_end(self.submit("good", "--epochs", "2"))
        self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED")
        return self.exported("good")

    def exported(self, model):
        out = os.path.join(self.tmp.name, f"{model}-{time.monotonic_ns()}.spnm")
        self.server.cli("models", "export", model, "--out", out)
        return sha256(out)

    def assert_serving(self, good_sha):
        """Health SERVING, the listings, and model "good" classifying with
        the bytes it was published with."""
        s = self.server
        self.assertEqual(s.cli("health").stdout.strip(), "SERVING")
        self.assertTrue(s.json("jobs"))
        self.assertIn("tiny", [field(d, "name") for d in
                               s.json("datasets")[0]["datasets"]])
        self.assertIn(1, self.versions("good"))
        answers = s.json("classify", "--model", "good", self.csv)
        self.assertEqual(sum(len(a["results"]) for a in answers), 100)
        self.assertEqual(self.exported("good"), good_sha)


class SqliteFaultCase(FaultCase):
    """A server on its own data dir under faultfs; `fault(line)` arms the
    control file, `fault(None)` lifts the fault."""

    lease = LEASE

    def setUp(self):
        super().setUp()
        self.data = os.path.join(self.tmp.name, "data")
        self.control = os.path.join(self.tmp.name, "faults")
        self.start()

    def start(self):
        self.server = Server(BUILD, "--data-dir", self.data, *self.lease,
                             log=tempfile.TemporaryFile(mode="w+"),
                             env={"LD_PRELOAD": preload(),
                                  "SPINNET_FAULTS": self.control})

    def restart(self):
        self.server.stop(signal.SIGKILL)
        self.server.log.close()
        self.start()

    def fault(self, line):
        if line is None:
            if os.path.exists(self.control):
                os.remove(self.control)
        else:
            with open(self.control + ".new", "w") as f:
                f.write(line + "\n")
            os.replace(self.control + ".new", self.control)

    def files(self, sub):
        return sorted(os.listdir(os.path.join(self.data, sub)))


class CheckpointFaultTest(SqliteFaultCase):
    def test_failed_checkpoint_writes_fail_the_job_naming_the_cause(self):
        good = self.publish_good_model()
        # Two checkpoints are written, the third fails (a checkpoint takes
        # one write and fsync and two renames: the newest to the previous,
        # the temp file to the newest).
        cases = [
            ("after=2 ops=write mode=fail errno=ENOSPC", "cannot write",
             "No space left on device"),
            ("after=2 ops=write mode=torn errno=EIO", "cannot write",
             "Input/output error"),
            ("after=2 ops=fsync mode=fail errno=EIO", "cannot fsync",
             "Input/output error"),
            ("after=4 ops=rename mode=fail errno=ENOSPC", "cannot rename",
             "No space left on device"),
        ]
        for i, (line, what, cause) in enumerate(cases):
            with self.subTest(line):
                self.fault(f"path=*/checkpoints/* {line}")
                job_id = self.submit(f"bad{i}", "--epochs", "6")
                done = self.wait_end(job_id)
                self.assertEqual(field(done, "state"), "JOB_STATE_FAILED")
                reason = field(done, "failure_reason")
                self.assertIn(what, reason)
                self.assertIn(cause, reason)
                self.assertIn("/checkpoints/", reason)
                self.assertEqual(field(done, "epochs_done"), 3)
                self.assertEqual(self.versions(f"bad{i}"), [])
                self.assert_serving(good)
                self.fault(None)
                # The job's checkpoints and temp files are gone.
                self.assertEqual(self.files("checkpoints"), [])
        self.assertIn("faultfs: rename", self.server.logs())

    def test_a_kill_in_the_middle_of_a_checkpoint_write_resumes_from_the_last(self):
        good = self.publish_good_model()
        # The third checkpoint write writes half its bytes, then the process
        # is killed (a crash or a power cut mid-write).
        self.fault("path=*/checkpoints/* ops=write mode=kill after=2 count=1")
        job_id = self.submit("k", "--epochs", "6")
        self.server.proc.wait(timeout=60)
        self.assertEqual(self.server.proc.returncode, -signal.SIGKILL)
        self.fault(None)
        torn = glob.glob(os.path.join(self.data, "checkpoints", "*.tmp.*"))
        self.assertEqual(len(torn), 1, self.files("checkpoints"))
        # The newest complete checkpoint (epoch 2's) was kept as the
        # previous one while the new one was being written.
        self.assertEqual(self.files("checkpoints"),
                         sorted([f"{job_id}.ckpt.prev", os.path.basename(torn[0])]))
        self.restart()
        done = self.wait_end(job_id)
        self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED",
                         field(done, "failure_reason"))
        self.assertEqual(self.epochs(job_id), list(range(1, 7)))
        self.assertEqual(self.versions("k"), [1])
        logs = self.server.logs()
        self.assertIn("removed 1 unfinished blob write(s)", logs)
        self.assertIn("claimed (attempt 2, epoch 2/6)", logs)
        self.assertEqual(self.files("checkpoints"), [])
        self.assert_serving(good)


class PublicationFaultTest(SqliteFaultCase):
    def test_a_model_that_cannot_be_stored_fails_its_job_and_nothing_is_published(self):
        good = self.publish_good_model()
        before = self.files("models")
        for i, (line, cause) in enumerate([
                ("ops=fsync mode=fail errno=EIO", "Input/output error"),
                ("ops=write mode=torn errno=ENOSPC", "No space left on device")]):
            with self.subTest(line):
                self.fault(f"path=*/models/* {line}")
                done = self.wait_end(self.submit(f"p{i}", "--epochs", "2"))
                self.assertEqual(field(done, "state"), "JOB_STATE_FAILED")
                reason = field(done, "failure_reason")
                self.assertTrue(reason.startswith(f"cannot publish model p{i}: "),
                                reason)
                self.assertIn(cause, reason)
                self.assertFalse(field(done, "model_version"))
                self.assertEqual(self.versions(f"p{i}"), [])
                self.assertEqual(self.files("models"), before)
                self.assert_serving(good)
        self.fault(None)
        # The disk back: the next job publishes version 1 of its model.
        done = self.wait_end(self.submit("p0", "--epochs", "2"))
        self.assertEqual(field(done, "model_version"), 1)

    def test_a_kill_in_the_middle_of_writing_the_model_publishes_it_once_later(self):
        good = self.publish_good_model()
        before = self.files("models")
        self.fault("path=*/models/* ops=write mode=kill count=1")
        job_id = self.submit("k", "--epochs", "3")
        self.server.proc.wait(timeout=60)
        self.assertEqual(self.server.proc.returncode, -signal.SIGKILL)
        self.fault(None)
        torn = [f for f in self.files("models") if f not in before]
        self.assertEqual(len(torn), 1)
        self.assertIn(".tmp.", torn[0])
        self.restart()
        # Not published before the crash: the resumed job publishes
        # version 1, once, and the torn file is gone.
        done = self.wait_end(job_id)
        self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED",
                         field(done, "failure_reason"))
        self.assertEqual(field(done, "attempt"), 2)
        self.assertEqual(self.versions("k"), [1])
        self.assertEqual(self.files("models"), sorted(before + [f"{job_id}.spnm"]))
        self.assertEqual(self.epochs(job_id), [1, 2, 3])
        self.assert_serving(good)

    def test_an_import_that_cannot_be_stored_is_refused_and_numbers_no_version(self):
        good = self.publish_good_model()
        model_file = os.path.join(self.tmp.name, "good.spnm")
        self.server.cli("models", "export", "good", "--out", model_file)
        self.fault("path=*/imported-models/* ops=write mode=fail errno=ENOSPC")
        r = self.server.cli("models", "import", "imp", model_file, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("RESOURCE_EXHAUSTED", r.stderr)
        self.assertIn("No space left on device", r.stderr)
        self.assertEqual(self.versions("imp"), [])
        self.assertEqual(self.files("imported-models"), [])
        self.assert_serving(good)
        self.fault(None)
        self.server.cli("models", "import", "imp", model_file)
        self.assertEqual(self.versions("imp"), [1])


class DatasetFaultTest(SqliteFaultCase):
    def test_an_upload_that_cannot_be_stored_is_refused_and_leaves_nothing(self):
        good = self.publish_good_model()
        self.fault("path=*/datasets/* ops=write mode=torn errno=ENOSPC")
        r = self.server.cli("datasets", "upload", self.csv, "--name", "up",
                            check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("RESOURCE_EXHAUSTED", r.stderr)
        self.assertIn("No space left on device", r.stderr)
        names = [field(d, "name") for d in self.server.json("datasets")[0]["datasets"]]
        self.assertNotIn("up", names)
        self.assertEqual(self.files("datasets"), ["tiny.csv"])
        self.assert_serving(good)
        self.fault(None)
        self.server.cli("datasets", "upload", self.csv, "--name", "up")


class DatabaseFaultTest(SqliteFaultCase):
    def test_a_full_disk_under_the_database_stalls_jobs_until_space_returns(self):
        good = self.publish_good_model()
        job_id = self.submit("d", "--epochs", "40")
        wait_for(lambda: (field(self.job(job_id), "epochs_done") or 0) >= 1, 30,
                 "the first epoch")
        # SQLite's own files: the database and its write-ahead log.
        self.fault("path=*/spinnet.db* ops=write,fsync mode=fail errno=ENOSPC")
        r = self.server.cli("train", "--dataset", "tiny", "--model", "x",
                            *SMALL, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("RESOURCE_EXHAUSTED", r.stderr)
        self.assertIn("database or disk is full", r.stderr)
        self.assert_serving(good)
        time.sleep(4)  # past a lease: the reaper cannot write either
        self.assertEqual(field(self.job(job_id), "state"), "JOB_STATE_RUNNING")
        self.fault(None)
        done = self.wait_end(job_id, timeout=120)
        self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED",
                         field(done, "failure_reason"))
        self.assertEqual(self.epochs(job_id), list(range(1, 41)))
        self.assertEqual(self.versions("d"), [1])
        self.assert_serving(good)


class SlowDiskTest(SqliteFaultCase):
    # The default lease (15 s): a commit here is one or two 2 s fsyncs (the
    # log's, and a checkpoint's of the database) plus the wait for the write
    # lock, which under load outlasts the 3 s lease of the other cases; the
    # lease then lapses and the job fails after three attempts, which is the
    # lapsed-lease case (JobRunnerTest.AJobThatKeepsKillingItsWorker...),
    # not a slow disk.
    lease = []

    def test_a_slow_disk_slows_the_writes_not_the_other_calls(self):
        good = self.publish_good_model()
        # Every fsync of the checkpoints, of the model files (and their
        # folder), or of the database and its log takes 2 s; while the job
        # waits for them, Classify, Health and the job's lookups never do.
        for i, (path, fsyncs) in enumerate([
                ("*/checkpoints/*", 3), ("*/models*", 2), ("*/spinnet.db*", 4)]):
            with self.subTest(path):
                self.fault(f"path={path} ops=fsync mode=slow delay_ms=2000")
                hits = self.server.logs().count("faultfs: fsync")
                job_id = self.submit(f"s{i}", "--epochs", "4")
                worst = {"classify": 0, "health": 0, "job": 0}

                def timed(name, *args):
                    start = time.time()
                    out = self.server.cli(*args).stdout
                    worst[name] = max(worst[name], time.time() - start)
                    return out
                while not any(state in timed("job", "--json", "job", job_id)
                              for state in TERMINAL):
                    timed("classify", "classify", "--model", "good", self.csv)
                    timed("health", "health")
                self.fault(None)
                done = self.job(job_id)
                self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED",
                                 field(done, "failure_reason"))
                self.assertEqual(self.epochs(job_id), list(range(1, 5)))
                self.assertGreaterEqual(
                    self.server.logs().count("faultfs: fsync") - hits, fsyncs)
                sys.stderr.write(f"slow disk {path}: slowest calls {worst}\n")
                for call, seconds in worst.items():
                    self.assertLess(seconds, 2.0, call)
        self.assert_serving(good)


class PgConnectionLossTest(FaultCase):
    """A server on a fresh database of a throw-away cluster. A psql session
    holds a table lock so that the server's write waits in the middle of its
    transaction; the test then kills that server connection."""

    pg = None

    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster()
        cls.pg.start()
        cls.password_file = cls.pg.password_file()

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()

    def setUp(self):
        super().setUp()
        self.db = f"t{os.getpid()}_{self._testMethodName}"[:63]
        self.pg.create_database(self.db)
        # The default lease (15 s): a write held by the lock keeps the job's
        # heartbeat waiting too, and the job must not be requeued meanwhile.
        self.server = Server(BUILD, "--store", self.pg.url(self.db),
                             "--store-password-file", self.password_file,
                             log=tempfile.TemporaryFile(mode="w+"))

    def psql(self, *args, **kwargs):
        return subprocess.Popen(
            [os.path.join(self.pg.bin, "psql"), "-X", "-q", "-tA", "-v",
             "ON_ERROR_STOP=1", "-d", self.pg.url(self.db), *args],
            env=dict(os.environ, PGPASSWORD=self.pg.password), text=True,
            stdout=subprocess.PIPE, **kwargs)

    def query(self, sql):
        out, _ = self.psql("-c", sql).communicate(timeout=30)
        return out.split()

    def waiting(self):
        """The server's connections waiting for a lock."""
        return self.query("SELECT pid FROM pg_stat_activity WHERE "
                          "application_name = 'spinnet-server' AND "
                          "wait_event_type = 'Lock'")

    def kill_while_locked(self, table, start=lambda: None, retried=True,
                          meanwhile=lambda: None):
        """Locks `table` against writes, calls start(), waits for the
        server's write to wait on the lock, kills that connection, waits for
        the retry (on a new connection) to wait too if `retried`, calls
        meanwhile() and releases the lock. Returns the killed backend's pid
        and the retry's."""
        lock = self.psql(stdin=subprocess.PIPE)
        try:
            lock.stdin.write(f"BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE; "
                             "SELECT 'locked';\n")
            lock.stdin.flush()
            self.assertEqual(lock.stdout.readline().strip(), "locked")
            start()
            killed = wait_for(self.waiting, 60, f"a write waiting on {table}")
            self.assertEqual(
                self.query("SELECT pg_terminate_backend(" + killed[0] + ")"),
                ["t"])
            retry = [None]
            if retried:
                retry = wait_for(lambda: [p for p in self.waiting()
                                          if p not in killed], 30, "the retry")
            meanwhile()
            lock.stdin.write("COMMIT;\n")
            lock.stdin.close()
            lock.wait(timeout=30)
        finally:
            if lock.poll() is None:
                lock.kill()
                lock.wait()
            lock.stdout.close()
        return killed[0], retry[0]

    def blob_keys(self):
        return sorted(self.query("SELECT key FROM blobs"))

    def test_connection_killed_mid_epoch_record_and_mid_publication_is_retried(self):
        good = self.publish_good_model()
        for table in ("epochs", "models"):
            with self.subTest(table):
                # Submitted while the table is locked: the first epoch's
                # record, or the publication at the end, waits.
                job = []
                killed, retry = self.kill_while_locked(
                    table,
                    start=lambda: job.append(
                        self.submit(f"c{table}", "--epochs", "8")),
                    meanwhile=lambda: self.assert_serving(good))
                job_id = job[0]
                done = self.wait_end(job_id)
                self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED",
                                 field(done, "failure_reason"))
                # Retried on a new connection within its lease: the same
                # attempt, every epoch once, one version, no checkpoint left.
                self.assertEqual(field(done, "attempt"), 1)
                self.assertFalse(field(done, "restarts"))
                self.assertEqual(self.epochs(job_id), list(range(1, 9)))
                self.assertEqual(self.versions(f"c{table}"), [1])
                self.assertNotEqual(killed, retry)
                keys = self.blob_keys()
                self.assertEqual([k for k in keys if job_id in k],
                                 [f"models/{job_id}.spnm"])
                self.assertEqual(
                    len(self.server.json("classify", "--model", f"c{table}",
                                         self.csv)[0]["results"]) > 0, True)
        self.assert_serving(good)

    def test_connection_killed_mid_upload_fails_it_cleanly(self):
        good = self.publish_good_model()
        upload = []

        def start():
            upload.append(subprocess.Popen(
                [os.path.join(BUILD, "client", "spinnet"), "--server",
                 self.server.address, "datasets", "upload", self.csv, "--name",
                 "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))

        def meanwhile():
            # The upload fails at once (the caller may retry UNAVAILABLE),
            # and neither its record nor its bytes are stored.
            _, err = upload[0].communicate(timeout=30)
            self.assertEqual(upload[0].returncode, 1)
            self.assertIn("UNAVAILABLE", err)
            self.assertIn("terminating connection", err)
            self.assertNotIn("up", [field(d, "name") for d in
                                    self.server.json("datasets")[0]["datasets"]])
            self.assertNotIn("datasets/up.csv", self.blob_keys())
            self.assert_serving(good)

        self.kill_while_locked("blobs", start=start, retried=False,
                               meanwhile=meanwhile)
        self.server.cli("datasets", "upload", self.csv, "--name", "up")
        self.assertIn("datasets/up.csv", self.blob_keys())

if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    FAULTFS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
