#!/usr/bin/env python3
"""Roles and token reload on the real spinnet-server with the real CLI:
tokens made by `spinnet token new`, a reader's `spinnet stream` and `spinnet
watch` kept open while the server reloads its --auth-tokens-file on SIGHUP
(the reader's token revoked, a new one added, then a malformed file), the
denials, the per-client metrics, and no token in any log or metric.

usage: auth_reload_test.py BUILD_DIR
"""
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
from testlib import Server, digit_rows, wait_for  # noqa: E402

BUILD = None
# "sequence 4 (final, 64 steps): 7 (p=0.93, 15.2 pJ)"
FINAL = re.compile(r"^sequence (\d+) \(final, ", re.M)


def cli_bin():
    return os.path.join(BUILD, "client", "spinnet")


class AuthReloadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="spinnet_authz.")
        self.dir = self.tmp.name
        self.tokens_file = os.path.join(self.dir, "tokens")
        self.tokens = {}
        for client, role in [("ada", "admin"), ("tom", "trainer"),
                             ("rita", "reader")]:
            self.tokens[client] = self.new_token(client, role)
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.server = Server(BUILD, "--data-dir", os.path.join(self.dir, "data"),
                             "--auth-tokens-file", self.tokens_file,
                             log=self.log)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.server.stop()
        self.log.close()
        self.tmp.cleanup()

    def new_token(self, client, role):
        """`spinnet token new CLIENT ROLE --add-to tokens`: the token's file."""
        r = subprocess.run([cli_bin(), "token", "new", client, role, "--add-to",
                            self.tokens_file], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        self.assertRegex(token, r"^[A-Za-z0-9_-]{43}$")
        self.assertIn(f"added client {client} ({role})", r.stderr)
        self.assertNotIn(token, r.stderr)
        path = os.path.join(self.dir, client + ".token")
        with open(path, "w") as f:
            f.write(token + "\n")
        return path

    def cli(self, client, *args, check=True):
        return self.server.cli(*args, check=check, token_file=self.tokens[client])

    def start(self, client, *args, stdin=None):
        """The CLI as `client` in the background; its stdout file's path."""
        out = os.path.join(self.dir, f"{client}.{len(self.procs)}.out")
        with open(out, "w") as f:
            p = subprocess.Popen([cli_bin(), "--server", self.server.address,
                                  "--token-file", self.tokens[client], *args],
                                 stdin=stdin, stdout=f, stderr=subprocess.STDOUT,
                                 text=True)
        self.procs.append(p)
        return p, out

    def reload(self, text, expect):
        """Writes the tokens file, SIGHUPs the server and waits for its log
        line matching `expect`."""
        with open(self.tokens_file, "w") as f:
            f.write(text)
        before = self.server.logs().count("SIGHUP")
        self.server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.server.logs().count("SIGHUP") > before, 10,
                 "the server to reload")
        self.assertRegex(self.server.logs().split("SIGHUP")[-1], expect)

    def metrics(self):
        return urllib.request.urlopen(f"http://{self.server.metrics}/metrics",
                                      timeout=10).read().decode()

    def test_reload_keeps_streams_revokes_and_adds_tokens(self):
        # A trainer trains a model; a long job for a watcher to follow.
        self.cli("tom", "train", "--dataset", "digits", "--model", "m",
                 "--epochs", "1", "--neurons", "8", "--watch")
        long_job = re.search(r"^job (\S+)", self.cli(
            "tom", "train", "--dataset", "digits", "--model", "long",
            "--epochs", "5000", "--neurons", "4").stdout, re.M).group(1)

        # The reader's stream and watch.
        rows = digit_rows(6)
        stream, stream_out = self.start("rita", "stream", "--model", "m",
                                        "--sequences", stdin=subprocess.PIPE)

        def feed(i):
            stream.stdin.write(rows[i] + "\n")
            stream.stdin.flush()

        def finals():
            with open(stream_out) as f:
                return len(FINAL.findall(f.read()))

        def watched_epochs():
            with open(watch_out) as f:
                return len(re.findall(r"^\s*\d+\s", f.read(), re.M))

        watch, watch_out = self.start("rita", "watch", long_job)
        for i in range(2):
            feed(i)
        wait_for(lambda: finals() == 2, 60, "the first answers")
        wait_for(lambda: watched_epochs() >= 1, 60, "the first watched epoch")

        # The reader may read, not write.
        self.assertEqual(self.cli("rita", "models").returncode, 0)
        r = self.cli("rita", "cancel", long_job, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("PERMISSION_DENIED: client 'rita' has role reader; "
                      "spinnet.v1.TrainingService/CancelTrainingJob needs "
                      "role trainer", r.stderr)

        # Reload: rita revoked, nina added.
        with open(self.tokens_file) as f:
            lines = f.read().splitlines()
        kept = [l for l in lines if not l.startswith("rita ")]
        self.assertEqual(len(kept), 2)
        self.tokens["nina"] = os.path.join(self.dir, "nina.token")
        nina_tokens = os.path.join(self.dir, "nina.tokens")
        r = subprocess.run([cli_bin(), "token", "new", "nina", "reader"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.tokens["nina"], "w") as f:
            f.write(r.stdout)
        nina_line = r.stderr.strip()
        self.assertRegex(nina_line, r"^nina reader sha256:[0-9a-f]{64}$")
        self.reload("# rita left\n" + "\n".join(kept + [nina_line]) + "\n",
                    r": 3 auth clients\n")

        r = self.cli("rita", "models", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAUTHENTICATED: invalid bearer token", r.stderr)
        self.assertEqual(self.cli("nina", "models").returncode, 0)
        # What rita opened before goes on.
        epochs = watched_epochs()
        for i in range(2, 4):
            feed(i)
        wait_for(lambda: finals() == 4, 60, "answers after the reload")
        wait_for(lambda: watched_epochs() > epochs, 60,
                 "watched epochs after the reload")
        self.assertIsNone(watch.poll())

        # A malformed file: the old table stays.
        self.reload("\n".join(kept) + "\nnina reader " + "0" * 10 + "\n",
                    r"keeping the old auth clients: \S+/tokens:3: the third "
                    r"field must be 'sha256:'")
        self.assertEqual(self.cli("nina", "models").returncode, 0)
        self.assertEqual(self.cli("rita", "models", check=False).returncode, 1)
        self.assertEqual(self.cli("tom", "jobs").returncode, 0)
        r = self.cli("nina", "models", "delete", "m", "1", check=False)
        self.assertIn("PERMISSION_DENIED: client 'nina' has role reader; "
                      "spinnet.v1.ModelService/DeleteModel needs role admin",
                      r.stderr)

        # The stream still answers, and ends cleanly.
        for i in range(4, 6):
            feed(i)
        stream.stdin.close()
        self.assertEqual(stream.wait(timeout=60), 0)
        self.assertEqual(finals(), 6)
        self.cli("ada", "cancel", long_job)
        self.assertEqual(watch.wait(timeout=60), 1)  # a cancelled job

        # Per-client counters; no token anywhere.
        body = self.metrics()
        for client, method, code in [
                ("tom", "TrainingService/SubmitTrainingJob", "OK"),
                ("rita", "InferenceService/StreamClassify", "OK"),
                ("rita", "TrainingService/CancelTrainingJob",
                 "PERMISSION_DENIED"),
                ("unauthenticated", "ModelService/ListModels",
                 "UNAUTHENTICATED"),
                ("nina", "ModelService/ListModels", "OK"),
                ("ada", "TrainingService/CancelTrainingJob", "OK")]:
            m = re.search(r'^spinnet_client_requests_total\{(?=[^}]*client="%s")'
                          r'(?=[^}]*method="spinnet.v1.%s")(?=[^}]*code="%s")'
                          r'[^}]*\} (\S+)$' % (client, method, code), body, re.M)
            self.assertIsNotNone(m, f"{client} {method} {code}:\n{body}")
            self.assertGreaterEqual(float(m.group(1)), 1)
        logs = self.server.logs()
        self.assertIn("client tom calls spinnet.v1.TrainingService/"
                      "SubmitTrainingJob", logs)
        self.assertIn("denied: client 'nina' has role reader", logs)
        self.assertRegex(logs, r"refused spinnet.v1.ModelService/ListModels "
                               r"from \S+: invalid bearer token")
        for path in self.tokens.values():
            with open(path) as f:
                token = f.read().strip()
            self.assertNotIn(token, logs)
            self.assertNotIn(token, body)

    def test_token_file_and_bad_start(self):
        # --auth-token-file alone is an admin client named token-file.
        token = os.path.join(self.dir, "raw.token")
        with open(token, "w") as f:
            f.write("a-raw-token\n")
        s = Server(BUILD, "--data-dir", os.path.join(self.dir, "data2"),
                   "--auth-token-file", token)
        try:
            self.assertEqual(s.cli("datasets", token_file=token).returncode, 0)
            self.assertEqual(s.cli("datasets", check=False).returncode, 1)
        finally:
            s.stop()
        # A malformed tokens file stops the start, naming file and line.
        bad = os.path.join(self.dir, "bad")
        with open(bad, "w") as f:
            f.write("# ok\nalice owner sha256:" + "0" * 64 + "\n")
        r = subprocess.run([os.path.join(BUILD, "server", "spinnet-server"),
                            "--listen", "127.0.0.1:0", "--metrics-listen", "",
                            "--data-dir", os.path.join(self.dir, "data3"),
                            "--auth-tokens-file", bad],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{bad}:2: unknown role 'owner'", r.stderr)


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
