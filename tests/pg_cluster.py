#!/usr/bin/env python3
"""A throw-away PostgreSQL cluster for tests (Debian's packages, no Docker).

As a module:
    with PgCluster() as pg:
        pg.create_database("t1")
        url = pg.url("t1")        # postgresql://spinnet@127.0.0.1:PORT/t1
        ... pg.password ... pg.password_file() ...
        pg.stop("immediate"); pg.start()   # same port, same data

As a command, around another command:
    python3 tests/pg_cluster.py run -- CMD ARGS...
starts a cluster, runs CMD with
    SPINNET_TEST_PG_URL        the URL of database "postgres" (no password)
    SPINNET_TEST_PG_PASSWORD   the password of its superuser "spinnet"
    SPINNET_TEST_PG_STOP_CMD   a shell command: stop the server at once
                               (pg_ctl -m immediate, like a crash)
    SPINNET_TEST_PG_START_CMD  a shell command: start it again
then removes the cluster and exits with CMD's code. Logins over TCP need the
password (scram-sha-256), so tests can check a wrong one; the password
reaches a store as a parameter or a password file, never in the URL.
"""

import argparse
import glob
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

USER = "spinnet"


def _bin_dir():
    """The newest installed server's binaries."""
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    dirs = [d for d in dirs if os.path.exists(os.path.join(d, "initdb"))]
    if not dirs:
        sys.exit("pg_cluster: no PostgreSQL server found under "
                 "/usr/lib/postgresql/*/bin; install it with "
                 "`apt-get install postgresql` (deploy/install-deps.sh)")
    return max(dirs, key=lambda d: int(d.split("/")[-2].split(".")[0]))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self):
        self.bin = _bin_dir()
        self.password = secrets.token_hex(12)
        self.dir = None
        self.port = None
        self.running = False
        # initdb refuses to run as root: the cluster belongs to `postgres`.
        self.as_user = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                sys.exit("pg_cluster: running as root needs the `postgres` "
                         "system user (the postgresql package creates it)")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def _ctl(self, *args):
        return self.as_user + [os.path.join(self.bin, "pg_ctl"),
                               "-D", self.data, "-w", *args]

    def _run(self, cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def ctl_command(self, action, mode="fast"):
        """pg_ctl start/stop as one shell command line."""
        if action == "start":
            cmd = self._ctl("-l", os.path.join(self.dir, "log"), "start")
        else:
            cmd = self._ctl("-m", mode, "stop")
        return shlex.join(cmd)

    def start(self):
        """Creates the cluster on first use, then starts the server."""
        if self.dir is None:
            self._create()
        self._run(shlex.split(self.ctl_command("start")))
        self.running = True

    def _create(self):
        self.dir = tempfile.mkdtemp(prefix="spinnet-pg-")
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = _free_port()
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(self.as_user + [
            os.path.join(self.bin, "initdb"), "-D", self.data, "-U", USER,
            f"--pwfile={pwfile}", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
            "--no-sync"])
        os.remove(pwfile)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "max_connections = 200\n")

    def stop(self, mode="fast"):
        if self.running:
            self._run(shlex.split(self.ctl_command("stop", mode)))
            self.running = False

    def url(self, db="postgres"):
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        env = dict(os.environ, PGPASSWORD=self.password)
        subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q",
                        "-v", "ON_ERROR_STOP=1", "-d", self.url(db),
                        "-c", sql], check=True, env=env)

    def create_database(self, name):
        self.psql(f'CREATE DATABASE "{name}"')

    def password_file(self):
        """A file holding the password, for --store-password-file; it lives
        as long as the cluster."""
        path = os.path.join(self.dir, "spinnet.pgpass")
        if not os.path.exists(path):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(self.password + "\n")
        return path

    def cleanup(self):
        """Stops the server (if a test left it running) and removes it."""
        if self.dir is None:
            return
        subprocess.run(shlex.split(self.ctl_command("stop", "immediate")),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()


class _Terminated(Exception):
    pass


def _on_signal(signum, frame):
    raise _Terminated(signum)


def run(cmd):
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    pg = PgCluster()
    child = None
    try:
        try:
            pg.start()
        except subprocess.CalledProcessError as e:
            log = os.path.join(pg.dir or "", "log")
            detail = e.stderr.decode(errors="replace") if e.stderr else ""
            if os.path.exists(log):
                with open(log) as f:
                    detail += f.read()
            sys.exit(f"pg_cluster: {shlex.join(e.cmd)} failed:\n{detail}")
        env = dict(os.environ,
                   SPINNET_TEST_PG_URL=pg.url(),
                   SPINNET_TEST_PG_PASSWORD=pg.password,
                   SPINNET_TEST_PG_STOP_CMD=pg.ctl_command("stop", "immediate"),
                   SPINNET_TEST_PG_START_CMD=pg.ctl_command("start"))
        child = subprocess.Popen(cmd, env=env)
        return child.wait()
    except _Terminated as e:
        if child is not None and child.poll() is None:
            child.terminate()
            child.wait()
        return 128 + e.args[0]
    finally:
        # No more signals: the cleanup must not be cut short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pg.cleanup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser(
        "run", help="run a command with a throw-away cluster")
    run_parser.add_argument("cmd", nargs=argparse.REMAINDER,
                            help="-- CMD ARGS...")
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("run needs a command: run -- CMD ARGS...")
    sys.exit(run(cmd))


if __name__ == "__main__":
    main()
