"""What the process-level server tests share: reading the CLI's JSON,
waiting for a condition, and the digits as labelled CSV rows."""
import gzip
import json
import os
import re
import signal
import subprocess
import time

DIGITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "core", "data", "digits.csv.gz")


def field(msg, name):
    """A JSON field by its proto name or its lowerCamelCase JSON name."""
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
    return msg.get(name, msg.get(camel))


def wait_for(predicate, timeout, what):
    """predicate()'s first true value within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def digit_rows(n):
    """The first n digits as CSV rows: the label, then 64 pixels / 16."""
    out = []
    for r in gzip.open(DIGITS, "rt").read().splitlines()[:n]:
        cells = r.split(",")
        out.append(",".join([cells[-1]] + [str(int(c) / 16) for c in cells[:-1]]))
    return out


class Server:
    """A spinnet-server process of build dir `build` on free loopback ports;
    `args` add flags (its store: --data-dir DIR, --store URL, ...). Its log
    (stderr) goes to `log`, a file, if given, else to a pipe; `env` adds
    environment variables; `preexec_fn` runs in the child before exec
    (resource limits, say)."""

    def __init__(self, build, *args, log=None, env=None, preexec_fn=None):
        self.build = build
        self.log = log
        self.proc = subprocess.Popen(
            [os.path.join(build, "server", "spinnet-server"), "--listen",
             "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=log or subprocess.PIPE, text=True,
            env=dict(os.environ, **(env or {})), preexec_fn=preexec_fn)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+?),.*metrics on http://(\S+?)/metrics", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not start: {line}{self.logs()}")
        self.address, self.metrics = m.group(1), m.group(2)

    def logs(self):
        if self.log is None:
            return self.proc.stderr.read()
        self.log.seek(0)
        return self.log.read()

    def cli(self, *args, check=True, token_file=None, timeout=300):
        cmd = [os.path.join(self.build, "client", "spinnet"), "--server",
               self.address, *args]
        if token_file:
            cmd += ["--token-file", token_file]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def json(self, *args):
        out = self.cli("--json", *args).stdout
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends `sig` (a frozen server is woken first) and returns the exit
        status; kills it if it has not exited within `timeout` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            if self.log is None:
                self.proc.stderr.close()
