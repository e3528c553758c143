#!/usr/bin/env python3
"""Several spinnet-server processes on one real PostgreSQL, driven by the CLI:
the fault tests of shared/spec/scale-out.md. Each test gets a fresh
database in a throw-away cluster (tests/pg_cluster.py) and its own replicas
with short leases (--lease-ttl 3, --heartbeat-interval 0.5).

  - kill -9 of the replica holding a lease mid-training: another resumes it
    from the checkpoint; one SUCCEEDED job, one model version, every epoch
  - a SIGSTOP'd zombie resumed after its lease was taken writes nothing
  - 3 replicas drain a few hundred short jobs: each once, on attempt 1
  - SIGTERM with jobs in flight: released and resumed elsewhere; a job still
    in a long batch at the end of the grace period is left to its lease
  - a replica down for 0 and 20 s: the job list is unchanged
  - pg_ctl stop -m immediate and start mid-run: health NOT_SERVING, then
    replicas recover by themselves; nothing stays RUNNING
  - a poison job (its worker dies on every attempt) ends FAILED
  - cancel and watch across replicas; a model published by one replica
    classified by another at once
  - bad store URLs, a wrong password, a schema from the future: one line,
    exit 1

usage: replicas_test.py BUILD_DIR
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from pg_cluster import PgCluster  # noqa: E402
from testlib import Server, digit_rows, field, wait_for  # noqa: E402

BUILD = None
LEASE = ["--lease-ttl", "3", "--heartbeat-interval", "0.5"]
TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")




def cli(address, *args, check=True, timeout=120, input=None):
    r = subprocess.run([os.path.join(BUILD, "client", "spinnet"), "--server",
                        address, *args], capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"spinnet {' '.join(args)} failed "
                             f"({r.returncode}): {r.stderr}")
    return r


def cli_json(address, *args):
    out = cli(address, "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Replica(Server):
    """A spinnet-server process on the shared store, named `name` in leases,
    its log kept in a temporary file."""

    def __init__(self, name, store, password_file, *extra):
        self.name = name
        super().__init__(
            BUILD, "--store", store,
            *(["--store-password-file", password_file] if password_file else []),
            "--worker-name", name, *LEASE, *extra,
            log=tempfile.TemporaryFile(mode="w+"))

    def send(self, sig):
        self.proc.send_signal(sig)


class FleetTest(unittest.TestCase):
    """A fresh database per test, and helpers to run replicas on it."""

    pg = None

    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster()
        cls.pg.start()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.password_file = cls.pg.password_file()
        # Small datasets: "tiny" (100 digits) for short jobs.
        cls.rows = digit_rows(100)
        cls.tiny = os.path.join(cls.tmp.name, "tiny.csv")
        with open(cls.tiny, "w") as f:
            f.write("\n".join(cls.rows) + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()
        cls.tmp.cleanup()

    def setUp(self):
        db = f"t{os.getpid()}_{self._testMethodName}"[:63]
        self.pg.create_database(db)
        self.store = self.pg.url(db)
        self.replicas = []

    def tearDown(self):
        failed = any(e for _, e in getattr(self._outcome, "errors", []))
        for r in self.replicas:
            r.stop(signal.SIGKILL)
            if failed:
                sys.stderr.write(f"--- {r.name} log ---\n{r.logs()[-4000:]}\n")
            r.log.close()

    def start(self, name, *extra):
        r = Replica(name, self.store, self.password_file, *extra)
        self.replicas.append(r)
        return r

    def all_jobs(self, address):
        return [j for page in cli_json(address, "jobs") for j in page.get("jobs", [])]

    def job(self, address, job_id):
        return cli_json(address, "job", job_id)[0]

    def submit(self, address, model, *flags):
        return field(cli_json(address, "train", "--dataset", "digits",
                              "--model", model, *flags)[0], "id")

    def wait_state(self, address, job_id, states, timeout=120):
        return wait_for(lambda: (lambda j: j if field(j, "state") in states
                                 else None)(self.job(address, job_id)),
                        timeout, f"job {job_id} in {states}")

    def epochs(self, address, job_id):
        return [field(e, "epoch") for e in
                field(cli_json(address, "metrics", job_id)[0], "epochs") or []]

    def holder(self, address, job_id, min_epochs=1, timeout=120):
        """The replica running the job once it has `min_epochs` epochs."""
        def running():
            j = self.job(address, job_id)
            if (field(j, "state") == "JOB_STATE_RUNNING"
                    and (field(j, "epochs_done") or 0) >= min_epochs):
                return field(j, "worker")
            return None
        name = wait_for(running, timeout, f"job {job_id} running")
        return next(r for r in self.replicas if r.name == name)


class LeaseTest(FleetTest):
    def test_kill_9_of_the_leaseholder_resumes_elsewhere_once(self):
        a, b = self.start("r1"), self.start("r2")
        job_id = self.submit(a.address, "k", "--epochs", "24")
        holder = self.holder(b.address, job_id, min_epochs=2)
        holder.stop(signal.SIGKILL)
        other = b if holder is a else a
        done = self.wait_state(other.address, job_id, TERMINAL)
        self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED")
        self.assertEqual(field(done, "attempt"), 2)
        self.assertGreaterEqual(field(done, "restarts"), 1)
        self.assertEqual(self.epochs(other.address, job_id), list(range(1, 25)))
        models = cli_json(other.address, "models", "k")[0]["models"]
        self.assertEqual(len(models), 1)
        self.assertIn("claimed (attempt 2", other.logs())

    def test_a_stopped_zombie_writes_nothing_after_its_lease_was_taken(self):
        a, b = self.start("r1"), self.start("r2")
        job_id = self.submit(a.address, "z", "--epochs", "40")
        zombie = self.holder(a.address, job_id, min_epochs=2)
        live = b if zombie is a else a
        zombie.send(signal.SIGSTOP)
        try:
            wait_for(lambda: field(self.job(live.address, job_id), "worker")
                     == live.name, 30, "the job to move to the live replica")
        finally:
            zombie.send(signal.SIGCONT)
        done = self.wait_state(live.address, job_id, TERMINAL)
        self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED")
        self.assertEqual(len(cli_json(live.address, "models", "z")[0]["models"]), 1)
        self.assertEqual(self.epochs(live.address, job_id), list(range(1, 41)))
        # The zombie woke, found its lease gone, and stopped.
        wait_for(lambda: "lease lost" in zombie.logs(), 30, "the zombie to stop")
        self.assertEqual(zombie.proc.poll(), None)  # still serving

    def test_a_job_that_kills_its_worker_every_time_ends_failed(self):
        # Every replica that takes the job dies (kill -9, as a crash would):
        # after --max-attempts 2 claims the reaper fails it.
        first = self.start("r1", "--max-attempts", "2")
        job_id = self.submit(first.address, "p", "--epochs", "200")
        self.holder(first.address, job_id, min_epochs=0)
        second = self.start("r2", "--max-attempts", "2")
        first.stop(signal.SIGKILL)
        wait_for(lambda: (lambda j: field(j, "attempt") == 2 and
                          field(j, "worker") == "r2")(
                              self.job(second.address, job_id)),
                 30, "the second claim")
        third = self.start("r3", "--max-attempts", "2")
        second.stop(signal.SIGKILL)
        done = self.wait_state(third.address, job_id, TERMINAL, timeout=30)
        self.assertEqual(field(done, "state"), "JOB_STATE_FAILED")
        self.assertIn("attempt 2 of 2", field(done, "failure_reason"))
        self.assertIn("r2", field(done, "failure_reason"))


class ThroughputTest(FleetTest):
    def test_three_replicas_drain_two_hundred_jobs_each_once(self):
        rs = [self.start(f"r{i}", "--training-workers", "2") for i in (1, 2, 3)]
        cli(rs[0].address, "datasets", "upload", self.tiny, "--name", "tiny")
        ids = []
        for i in range(200):
            ids.append(field(cli_json(
                rs[i % 3].address, "train", "--dataset", "tiny", "--model",
                "d", "--epochs", "1", "--layers", "1", "--neurons", "4")[0], "id"))

        def all_done():
            jobs = self.all_jobs(rs[0].address)
            return jobs if sum(field(j, "state") in TERMINAL for j in jobs) == 200 else None
        jobs = wait_for(all_done, 180, "200 jobs to end")
        self.assertEqual(sorted(field(j, "id") for j in jobs), sorted(ids))
        for j in jobs:
            self.assertEqual(field(j, "state"), "JOB_STATE_SUCCEEDED")
            self.assertEqual(field(j, "attempt"), 1)
            self.assertFalse(field(j, "restarts"))
        versions = [field(m, "version") for m in
                    cli_json(rs[1].address, "models", "d")[0]["models"]]
        self.assertEqual(sorted(versions), list(range(1, 201)))
        workers = {r.name for r in rs if f"claimed (attempt 1" in r.logs()}
        self.assertEqual(len(workers), 3, "every replica took part")


class ShutdownTest(FleetTest):
    def test_sigterm_releases_jobs_and_one_past_the_grace_is_left_to_its_lease(self):
        a = self.start("r1", "--training-workers", "2", "--shutdown-grace", "1")
        quick = self.submit(a.address, "q", "--epochs", "500")
        # One batch of this job takes seconds: it is in its second batch
        # once its progress shows the first.
        slow = self.submit(a.address, "s", "--epochs", "1", "--neurons", "1024",
                           "--batch", "64")
        wait_for(lambda: (field(self.job(a.address, slow), "progress") or 0) > 0,
                 120, "the slow job's first batch")
        self.holder(a.address, quick, min_epochs=1)
        start = time.time()
        self.assertEqual(a.stop(signal.SIGTERM), 0)
        self.assertLess(time.time() - start, 8)
        self.assertIn("did not stop within the grace period", a.logs())
        # The job that could stop was released at once: queued, its attempt
        # given back, to resume from its checkpoint...
        b = self.start("r2")
        released = self.job(b.address, quick)
        self.assertIn(field(released, "state"),
                      ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING"))
        self.assertEqual(field(released, "restarts"), 1)
        resumed = self.wait_state(b.address, quick, ("JOB_STATE_RUNNING",))
        self.assertEqual(field(resumed, "attempt"), 1)
        self.assertEqual(field(resumed, "worker"), "r2")
        # ...while the one still in its batch comes back once its lease
        # lapses (attempt 2).
        wait_for(lambda: field(self.job(b.address, slow), "state")
                 == "JOB_STATE_QUEUED" and
                 field(self.job(b.address, slow), "restarts") == 1, 30,
                 "the abandoned job to be requeued")
        for job_id in (quick, slow):
            cli(b.address, "cancel", job_id)


class StoreOutageTest(FleetTest):
    def test_database_restart_mid_run_recovers_without_losing_anything(self):
        a, b = self.start("r1"), self.start("r2")
        job_id = self.submit(a.address, "o", "--epochs", "40")
        self.holder(a.address, job_id, min_epochs=2)
        before = self.all_jobs(b.address)
        self.pg.stop("immediate")
        try:
            # Health reports the outage; calls that need the store fail
            # UNAVAILABLE with a clear message, and nothing hangs.
            wait_for(lambda: cli(a.address, "health", check=False).returncode != 0,
                     15, "health NOT_SERVING")
            r = cli(b.address, "jobs", check=False, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("UNAVAILABLE", r.stderr)
            time.sleep(2)
        finally:
            self.pg.start()
        wait_for(lambda: cli(a.address, "health", check=False).returncode == 0,
                 30, "health SERVING again")
        done = self.wait_state(b.address, job_id, TERMINAL, timeout=180)
        self.assertEqual(field(done, "state"), "JOB_STATE_SUCCEEDED",
                         field(done, "failure_reason"))
        self.assertEqual(self.epochs(a.address, job_id), list(range(1, 41)))
        self.assertEqual(len(cli_json(a.address, "models", "o")[0]["models"]), 1)
        after = {field(j, "id") for j in self.all_jobs(b.address)}
        self.assertEqual(after, {field(j, "id") for j in before})
        for r in (a, b):
            self.assertIsNone(r.proc.poll(), f"{r.name} exited")


class ReplicaDownTest(FleetTest):
    def test_a_replica_down_for_0_and_20_s_changes_nothing_in_the_job_list(self):
        a, b = self.start("r1"), self.start("r2")
        cli(a.address, "datasets", "upload", self.tiny, "--name", "tiny")
        for i in range(4):
            cli(a.address, "train", "--dataset", "tiny", "--model", "d",
                "--epochs", "1", "--layers", "1", "--neurons", "4")

        def snapshot(address):
            jobs = self.all_jobs(address)
            if any(field(j, "state") not in TERMINAL for j in jobs):
                return None
            return sorted((field(j, "id"), field(j, "state"), field(j, "attempt"),
                           field(j, "model_version")) for j in jobs)
        before = wait_for(lambda: snapshot(b.address), 60, "the jobs to end")
        self.assertEqual(len(before), 4)
        for down in (0, 20):
            a.stop(signal.SIGKILL)
            time.sleep(down)
            self.assertEqual(snapshot(b.address), before, f"down {down} s")
            a = self.start("r1")
            self.assertEqual(snapshot(a.address), before, f"after {down} s down")


class AcrossReplicasTest(FleetTest):
    def test_cancel_and_watch_from_other_replicas(self):
        a, b, c = self.start("r1"), self.start("r2"), self.start("r3")
        job_id = self.submit(a.address, "w", "--epochs", "500")
        holder = self.holder(a.address, job_id, min_epochs=1)
        watcher_replica = next(r for r in (a, b, c) if r is not holder)
        watch = subprocess.Popen(
            [os.path.join(BUILD, "client", "spinnet"), "--server",
             watcher_replica.address, "watch", job_id],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # a few epochs reach the watcher
        canceller = next(r for r in (a, b, c)
                         if r is not holder and r is not watcher_replica)
        start = time.time()
        cancelled = cli_json(canceller.address, "cancel", job_id)[0]
        self.assertEqual(field(cancelled, "state"), "JOB_STATE_CANCELLED")
        self.assertLess(time.time() - start, 5)
        out, err = watch.communicate(timeout=30)
        self.assertEqual(watch.returncode, 1)  # watch exits 1 on a cancel
        self.assertIn("CANCELLED", (out + err).upper())
        self.assertGreaterEqual(len([l for l in out.splitlines() if l.strip()]), 2,
                                out)

    def test_a_model_published_by_one_replica_is_served_by_every_other(self):
        a, b = self.start("r1"), self.start("r2")
        for version in (1, 2):
            job_id = self.submit(a.address, "m", "--epochs", "2", "--neurons", "8")
            done = self.wait_state(b.address, job_id, TERMINAL)
            self.assertEqual(field(done, "model_version"), version)
            for r in (a, b):
                answers = cli_json(r.address, "classify", "--model", "m",
                                   self.tiny)
                self.assertEqual({field(a, "model_version") for a in answers},
                                 {version}, r.name)
                self.assertEqual(sum(len(a["results"]) for a in answers), 100)
        # Deletions too: a replica that has version 2 loaded stops serving it
        # the moment another replica deletes it.
        cli(b.address, "models", "delete", "m", "2")
        answers = cli_json(a.address, "classify", "--model", "m", self.tiny)
        self.assertEqual({field(x, "model_version") for x in answers}, {1})
        cli(a.address, "models", "delete", "m", "1")
        r = cli(b.address, "classify", "--model", "m", self.tiny, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_FOUND", r.stderr)


class BadStoreTest(FleetTest):
    def start_fails(self, *args):
        r = subprocess.run([os.path.join(BUILD, "server", "spinnet-server"),
                            "--listen", "127.0.0.1:0", "--metrics-listen", "",
                            *args], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        return r.stderr

    def test_bad_urls_passwords_and_schemas_get_one_clear_line(self):
        self.assertIn("unknown store URL", self.start_fails("--store", "mysql://x/y"))
        self.assertIn("password", self.start_fails(
            "--store", self.store.replace("spinnet@", "spinnet:secret@")))
        wrong = os.path.join(self.tmp.name, "wrong")
        with open(wrong, "w") as f:
            f.write("not-the-password\n")
        err = self.start_fails("--store", self.store, "--store-password-file", wrong)
        self.assertIn("password authentication failed", err)
        err = self.start_fails("--store", "postgresql://spinnet@127.0.0.1:1/x",
                               "--store-password-file", self.password_file)
        self.assertIn("127.0.0.1", err)
        # A replica of a newer release migrated the database past this one.
        a = self.start("r1")
        a.stop()
        self.pg.psql("INSERT INTO schema_migrations (version, applied_at) "
                     "VALUES (999, now())", db=self.store.rsplit("/", 1)[1])
        err = self.start_fails("--store", self.store, "--store-password-file",
                               self.password_file)
        self.assertIn("999", err)
        self.assertIn("newer", err)


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
