#!/usr/bin/env python3
"""`spinnet stream` across two server replicas: the replica holding the
stream dies mid-sequence, the CLI reconnects to the other one through its
round_robin channel and sends the unfinished sequence again from its first
step; every input row gets exactly one final answer.

usage: stream_failover_test.py BUILD_DIR
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
from testlib import Server as ServerProcess, digit_rows, wait_for  # noqa: E402

BUILD = None
ROWS = 10       # sequences streamed
FROZEN_ROW = 4  # sent while its replica is frozen, then restarted elsewhere


def cli_bin():
    return os.path.join(BUILD, "client", "spinnet")


class Server(ServerProcess):
    """A server on its own SQLite data dir."""

    def __init__(self, data_dir):
        super().__init__(BUILD, "--data-dir", data_dir)

    def streams_active(self):
        body = urllib.request.urlopen(f"http://{self.metrics}/metrics",
                                      timeout=5).read().decode()
        m = re.search(r"^spinnet_stream_sessions_active (\S+)$", body, re.M)
        return int(float(m.group(1))) if m else 0

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=30)


def stopped(pid):
    """Whether process `pid` is stopped (SIGSTOP has taken effect on every
    thread: state T in /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def bytes_waiting(port):
    """Bytes the kernel holds unread on the TCP connections accepted on
    `port` (a frozen server's socket still receives)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cells = line.split()
            # local_address rem_address st tx_queue:rx_queue; 01: established
            if int(cells[1].rsplit(":", 1)[1], 16) == port and cells[3] == "01":
                total += int(cells[4].split(":")[1], 16)
    return total



# "sequence 4 (final, 64 steps): 7 (p=0.93, 15.2 pJ)"
FINAL = re.compile(r"^sequence (\d+) \(final, (\d+) steps\): (\S+) \(p=([\d.]+)", re.M)
# "row 5: 7 (p=0.93, 15.2 pJ)"
ROW = re.compile(r"^row (\d+): (\S+) \(p=([\d.]+)", re.M)


class StreamFailoverTest(unittest.TestCase):
    def test_replica_lost_mid_sequence_the_cli_reconnects_and_restarts_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            servers = [Server(os.path.join(tmp, f"data{i}")) for i in (1, 2)]
            cli = None
            try:
                # The same model on each replica (training is deterministic).
                for s in servers:
                    s.cli("train", "--dataset", "digits", "--model", "m",
                          "--epochs", "2", "--neurons", "8", "--watch")
                rows = digit_rows(ROWS)
                csv = os.path.join(tmp, "rows.csv")
                with open(csv, "w") as f:
                    f.write("\n".join(rows) + "\n")
                expected = {int(m.group(1)) - 1: (m.group(2), m.group(3)) for m in
                            ROW.finditer(servers[0].cli("classify", "--model", "m", csv).stdout)}
                self.assertEqual(len(expected), ROWS)

                target = "ipv4:" + ",".join(s.address for s in servers)
                out_path = os.path.join(tmp, "stdout")
                err_path = os.path.join(tmp, "stderr")
                with open(out_path, "w") as out, open(err_path, "w") as err:
                    cli = subprocess.Popen(
                        [cli_bin(), "--server", target, "stream", "--model", "m",
                         "--sequences"],
                        stdin=subprocess.PIPE, stdout=out, stderr=err, text=True)

                def feed(i):
                    cli.stdin.write(rows[i] + "\n")
                    cli.stdin.flush()

                def finals():
                    with open(out_path) as f:
                        return {int(m.group(1)) for m in FINAL.finditer(f.read())}

                start = time.time()
                for i in range(FROZEN_ROW):
                    feed(i)
                    time.sleep(0.1)
                wait_for(lambda: len(finals()) == FROZEN_ROW, 30, "the first answers")
                # The replica holding the stream: freeze it, so that the next
                # row is sent but never answered, then kill it.
                holder = wait_for(
                    lambda: [s for s in servers if s.streams_active() == 1], 10,
                    "the stream's replica")[0]
                survivor = servers[1] if holder is servers[0] else servers[0]
                self.assertEqual(survivor.streams_active(), 0)
                holder.kill(signal.SIGSTOP)
                # A loaded machine may take a moment to stop every thread;
                # the row must not reach a replica still running.
                wait_for(lambda: stopped(holder.proc.pid), 10,
                         "the stream's replica to stop")
                feed(FROZEN_ROW)
                port = int(holder.address.rsplit(":", 1)[1])
                wait_for(lambda: bytes_waiting(port) > 0, 10,
                         "the row sent to the frozen replica")
                time.sleep(0.2)  # the rest of its steps
                self.assertEqual(finals(), set(range(FROZEN_ROW)))
                holder.kill(signal.SIGKILL)
                killed_at = time.time()
                wait_for(lambda: FROZEN_ROW in finals(), 30, "the restarted sequence's answer")
                failover_seconds = time.time() - killed_at
                self.assertEqual(survivor.streams_active(), 1)
                for i in range(FROZEN_ROW + 1, ROWS):
                    feed(i)
                    time.sleep(0.1)
                cli.stdin.close()
                rc = cli.wait(timeout=60)
                with open(out_path) as f:
                    stdout = f.read()
                with open(err_path) as f:
                    stderr = f.read()
                print(f"\nstream: {time.time() - start:.1f}s, answer after the kill in "
                      f"{failover_seconds:.2f}s; stderr:\n{stderr}", file=sys.stderr)

                self.assertEqual(rc, 0, stderr)
                self.assertRegex(
                    stderr, r"spinnet: stream: replica lost \(UNAVAILABLE: [^\n]*\); "
                    rf"reconnected, sequence {FROZEN_ROW} restarted from its first step\n")
                self.assertEqual(stderr.count("reconnected"), 1, stderr)
                answers = [(int(m.group(1)), int(m.group(2)), m.group(3), m.group(4))
                           for m in FINAL.finditer(stdout)]
                # One final answer per row, in order, numbered across streams.
                self.assertEqual([a[0] for a in answers], list(range(ROWS)), stdout)
                steps = answers[0][1]
                for seq, n, label, p in answers:
                    # The restarted sequence was fed whole on the new replica.
                    self.assertEqual(n, steps, stdout)
                    self.assertEqual((label, p), expected[seq], f"sequence {seq}")
                self.assertRegex(stdout, rf"\naccuracy: [\d.]+% \(\d+/{ROWS}\)\n")
            finally:
                if cli is not None and cli.poll() is None:
                    cli.kill()
                    cli.wait()
                for s in servers:
                    s.stop()


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
