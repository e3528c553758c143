#!/usr/bin/env python3
"""The monitoring setup against real servers and a real Prometheus.

Starts two spinnet-server replicas on one throw-away PostgreSQL
(tests/pg_cluster.py; one server on SQLite where PostgreSQL is not
installed), drives traffic over both with the spinnet CLI (round_robin over
ipv4:A,B) so that every metric family has series, then runs Debian's
prometheus with deploy/prometheus/prometheus.yml (its own targets file
listing the test servers, scrape interval 1 s) and checks that:
  - the "spinnet" job's targets are up and the spinnet_ series arrive;
  - every PromQL expression of deploy/grafana/dashboards/spinnet.json
    (Grafana's variables replaced) evaluates and returns at least one series
    with a finite value, so a misspelt metric, label or aggregation fails;
    a panel that aggregates `by (instance)` has a series per replica;
  - the store-wide counts (spinnet_training_jobs, the queue depth) are the
    same on every replica, and the dashboard's panel shows the store's
    count, not the sum over replicas;
  - every template variable's label_values() query finds its label.

usage: monitoring_test.py BUILD_DIR SOURCE_DIR
Needs /usr/bin/prometheus (Debian package prometheus) and, for the
replicas, PostgreSQL's server (package postgresql).
"""
import glob
import gzip
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

BUILD = None
SOURCE = None
REPLICAS = 2  # on PostgreSQL; 1 on SQLite

# Every family of server/metrics.cc, as Prometheus stores it.
HISTOGRAMS = [
    "spinnet_grpc_request_duration_seconds",
    "spinnet_training_epoch_duration_seconds",
    "spinnet_stream_step_latency_seconds",
    "spinnet_classification_energy_joules",
]
SIMPLE = [
    "spinnet_grpc_requests_total",
    "spinnet_training_jobs",
    "spinnet_training_queue_depth",
    "spinnet_training_jobs_active",
    "spinnet_training_samples_per_second",
    "spinnet_stream_sessions_active",
    "spinnet_streamed_samples_total",
    "spinnet_classifications_total",
]
EXPECTED_SERIES = sorted(
    SIMPLE + [h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")])

CLI_TIMEOUT = 60


def wait_for(predicate, timeout, what):
    """predicate()'s first truthy value, polled until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError) as e:  # not up yet
            last_error = e
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def stop(proc, timeout=15):
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def substitute_grafana_variables(expr):
    """Grafana's interval variables become 1m, every other variable .*"""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?", "1m", expr)
    expr = re.sub(r"\$\{(\w+)(:\w+)?\}", ".*", expr)
    expr = re.sub(r"\[\[(\w+)(:\w+)?\]\]", ".*", expr)
    return re.sub(r"\$(\w+)", ".*", expr)


def dashboard_panels(panels):
    """Every panel, also those nested in (collapsed) rows."""
    for p in panels:
        yield p
        yield from dashboard_panels(p.get("panels", []))


def postgresql_cluster():
    """A started tests/pg_cluster.py cluster with database "spinnet", or
    None where PostgreSQL's server is not installed."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return None
    sys.path.insert(0, os.path.join(SOURCE, "tests"))
    from pg_cluster import PgCluster
    pg = PgCluster()
    try:
        pg.start()
        pg.create_database("spinnet")
    except BaseException:
        pg.cleanup()
        raise
    return pg


class MonitoringTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="spinnet-monitoring-")
        self.servers = []
        self.prometheus = None
        self.pg = None
        self.prom_log = os.path.join(self.tmp.name, "prometheus.log")

    def tearDown(self):
        try:
            stop(self.prometheus)
            for server in self.servers:
                stop(server)
        finally:
            for server in self.servers:
                server.stdout.close()
            if self.pg is not None:
                self.pg.cleanup()
            self.tmp.cleanup()

    def server_log(self, i):
        return os.path.join(self.tmp.name, f"server{i}.log")

    def dump_logs(self):
        logs = [self.server_log(i) for i in range(len(self.servers))]
        for log in logs + [self.prom_log]:
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    tail = f.read()[-4000:]
                print(f"--- {os.path.basename(log)} (tail) ---\n{tail}", file=sys.stderr)

    # --- the server -------------------------------------------------------

    def start_servers(self):
        """REPLICAS servers on one PostgreSQL database, or one on SQLite."""
        self.pg = postgresql_cluster()
        if self.pg is None:
            print("PostgreSQL's server is not installed: one replica on SQLite")
            stores = [["--data-dir", os.path.join(self.tmp.name, "data")]]
        else:
            stores = [["--store", self.pg.url("spinnet"),
                       "--store-password-file", self.pg.password_file(),
                       "--worker-name", f"replica-{i}"] for i in range(REPLICAS)]
        self.addresses, self.metrics_addresses = [], []
        for i, store in enumerate(stores):
            address, metrics_address = self.start_server(i, store)
            self.addresses.append(address)
            self.metrics_addresses.append(metrics_address)
        # round_robin over every replica (the CLI's policy for ipv4:A,B).
        self.address = "ipv4:" + ",".join(self.addresses)

    def start_server(self, i, store):
        server_bin = os.path.join(BUILD, "server", "spinnet-server")
        self.assertTrue(os.access(server_bin, os.X_OK), f"no {server_bin}")
        log = open(self.server_log(i), "w")
        server = subprocess.Popen(
            [server_bin, "--listen", "127.0.0.1:0", "--metrics-listen",
             "127.0.0.1:0", *store],
            stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        self.servers.append(server)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(server.stdout.readline()),
                         daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            self.fail("spinnet-server printed nothing in 30 s")
        m = re.search(r"listening on (\S+?), metrics on http://(\S+?)/metrics", line)
        self.assertIsNotNone(m, f"spinnet-server did not start: {line!r}")
        return m.group(1), m.group(2)

    def cli(self, *args, stdin=None, expect_rc=0, server=None):
        cmd = [os.path.join(BUILD, "client", "spinnet"), "--server",
               server or self.address, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=stdin,
                           timeout=CLI_TIMEOUT)
        self.assertEqual(r.returncode, expect_rc,
                         f"spinnet {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def write_digits(self, n):
        """The first n digits in the core CSV format: label, 64 pixels / 16."""
        path = os.path.join(self.tmp.name, "few.csv")
        src = os.path.join(SOURCE, "core", "data", "digits.csv.gz")
        with gzip.open(src, "rt") as f, open(path, "w") as out:
            for line in f.read().splitlines()[:n]:
                cells = line.split(",")
                out.write(",".join([cells[-1]] + [str(int(c) / 16) for c in cells[:-1]]) + "\n")
        return path

    def classify_and_stream(self, csv):
        # On every replica: round robin alone may send both calls to one,
        # and the per-model series exist only where a model classified.
        for address in self.addresses:
            self.cli("classify", "--model", "m", csv, server=address)
        with open(csv) as f:
            self.cli("stream", "--model", "m", "--every", "8", "--sequences", stdin=f)

    def drive_traffic(self, csv, first):
        for address in self.addresses:   # every replica serves some calls
            self.cli("health", server=address)
        if first:
            # The Kubernetes readiness probe asks for this service.
            self.cli("health", "spinnet.v1.InferenceService")
            self.cli("models")
        r = self.cli("job", "nope", expect_rc=1)
        self.assertIn("NOT_FOUND", r.stderr)
        self.cli("train", "--dataset", "digits", "--model", "m", "--epochs", "1",
                 "--neurons", "8", "--watch")
        self.classify_and_stream(csv)

    def server_metrics(self, i):
        return http_get(f"http://{self.metrics_addresses[i]}/metrics")

    def exposed_total(self, name):
        """NAME's value summed over the replicas' /metrics."""
        total = 0.0
        for i in range(len(self.servers)):
            m = re.search(rf"(?m)^{name} (\S+)", self.server_metrics(i))
            total += float(m.group(1)) if m else 0.0
        return total

    # --- Prometheus -------------------------------------------------------

    def prometheus_config(self):
        """deploy/prometheus with our targets file and 1 s intervals."""
        with open(os.path.join(SOURCE, "deploy", "prometheus", "prometheus.yml")) as f:
            config = f.read()
        self.assertIn("targets/spinnet.json", config,
                      "prometheus.yml should read its target from targets/spinnet.json")
        self.assertRegex(config, r"job_name:\s*['\"]?spinnet['\"]?\s*\n")
        config, n = re.subn(r"(?m)^(\s*(scrape|evaluation)_interval:\s*)\S+", r"\g<1>1s", config)
        self.assertGreater(n, 0, "no scrape_interval in prometheus.yml")
        config_dir = os.path.join(self.tmp.name, "prometheus")
        os.makedirs(os.path.join(config_dir, "targets"))
        config_file = os.path.join(config_dir, "prometheus.yml")
        with open(config_file, "w") as f:
            f.write(config)
        with open(os.path.join(config_dir, "targets", "spinnet.json"), "w") as f:
            json.dump([{"targets": self.metrics_addresses}], f)
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "config", config_file],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, f"promtool: {r.stdout}{r.stderr}")
        return config_file

    def start_prometheus(self, config_file):
        prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.assertTrue(os.access(prometheus, os.X_OK),
                        "no prometheus: install Debian's package prometheus "
                        "(deploy/install-deps.sh)")
        for attempt in range(3):  # the free port may be taken meanwhile
            port = free_port()
            with open(self.prom_log, "a") as log:
                self.prometheus = subprocess.Popen(
                    [prometheus, "--config.file", config_file,
                     "--storage.tsdb.path", os.path.join(self.tmp.name, f"tsdb{attempt}"),
                     "--web.listen-address", f"127.0.0.1:{port}"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.prom_url = f"http://127.0.0.1:{port}"

            def ready():
                if self.prometheus.poll() is not None:
                    return "exited"
                try:
                    http_get(self.prom_url + "/-/ready", timeout=2)
                    return "ready"
                except urllib.error.HTTPError:  # 503 while starting
                    return None

            if wait_for(ready, 30, "prometheus to be ready") == "ready":
                return
        self.fail("prometheus did not start (see prometheus.log)")

    def api(self, path, **params):
        url = f"{self.prom_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            return json.loads(http_get(url))
        except urllib.error.HTTPError as e:  # 400/422 carry a JSON error
            return json.loads(e.read().decode())

    def query(self, expr):
        return self.api("query", query=expr)

    def spinnet_targets(self):
        """The spinnet job's targets once every one is up, else None."""
        targets = [t for t in self.api("targets")["data"]["activeTargets"]
                   if t["labels"].get("job") == "spinnet"]
        if len(targets) == len(self.servers) and all(t["health"] == "up" for t in targets):
            return targets
        return None

    def scraped_value(self, expr):
        r = self.query(f"sum({expr})")
        if r["status"] != "success" or not r["data"]["result"]:
            return None
        return float(r["data"]["result"][0]["value"][1])

    # --- the test ---------------------------------------------------------

    def test_prometheus_scrapes_and_every_dashboard_query_has_data(self):
        try:
            self.check_monitoring()
        except BaseException:
            self.dump_logs()
            raise

    def check_monitoring(self):
        started = time.monotonic()
        self.start_servers()
        replicas = len(self.servers)
        csv = self.write_digits(10)
        self.drive_traffic(csv, first=True)

        for i in range(replicas):
            exposed = self.server_metrics(i)
            for name in SIMPLE:
                self.assertRegex(exposed, rf"(?m)^{name}[{{ ]", f"/metrics lacks {name}")
        exposed = "".join(self.server_metrics(i) for i in range(replicas))
        for name in [h + "_count" for h in HISTOGRAMS]:
            self.assertRegex(exposed, rf"(?m)^{name}[{{ ]", f"/metrics lacks {name}")

        self.start_prometheus(self.prometheus_config())
        targets = wait_for(self.spinnet_targets, 30, "every spinnet target to be up")
        self.assertEqual(sorted(t["scrapeUrl"] for t in targets),
                         sorted(f"http://{a}/metrics" for a in self.metrics_addresses))
        wait_for(lambda: self.query("spinnet_grpc_requests_total")["data"]["result"],
                 30, "spinnet_grpc_requests_total in Prometheus")

        # A second round after the first scrape, so that counters grow within
        # the rate windows; then wait until Prometheus has scraped its end.
        self.drive_traffic(csv, first=False)
        streamed = self.exposed_total("spinnet_streamed_samples_total")
        epochs = self.exposed_total("spinnet_training_epoch_duration_seconds_count")
        wait_for(lambda: self.scraped_value("spinnet_streamed_samples_total") == streamed
                 and self.scraped_value("spinnet_training_epoch_duration_seconds_count")
                 == epochs, 30, "Prometheus to scrape the second round")
        time.sleep(1.5)  # one more scrape: every counter's latest value stored

        # Store-wide counts: two jobs succeeded in the store, and every
        # replica says so (each refreshes them on its heartbeat).
        def succeeded_everywhere():
            r = self.query('spinnet_training_jobs{job="spinnet", state="succeeded"}')
            values = [float(x["value"][1]) for x in r["data"]["result"]]
            return len(values) == replicas and set(values) == {2.0}
        wait_for(succeeded_everywhere, 30,
                 "every replica to report the store's 2 succeeded jobs")

        names = self.query('count by (__name__) ({__name__=~"spinnet_.+", job="spinnet"})')
        self.assertEqual(names["status"], "success", names)
        arrived = sorted(s["metric"]["__name__"] for s in names["data"]["result"])
        print("spinnet series in Prometheus:", ", ".join(arrived))
        for name in EXPECTED_SERIES:
            self.assertIn(name, arrived, f"{name} did not arrive in Prometheus")

        with open(os.path.join(SOURCE, "deploy", "grafana", "dashboards", "spinnet.json")) as f:
            dashboard = json.load(f)
        checked = 0
        for panel in dashboard_panels(dashboard.get("panels", [])):
            if panel.get("type") == "row":
                continue
            title = panel.get("title", "?")
            targets = panel.get("targets", [])
            with self.subTest(panel=title):
                self.assertTrue(targets, f"panel {title!r} has no query")
                self.assertEqual(panel.get("datasource", {}).get("uid"), "prometheus", title)
            for t in targets:
                expr = substitute_grafana_variables(t.get("expr", ""))
                with self.subTest(panel=title, refId=t.get("refId"), expr=expr):
                    self.assertEqual(t.get("datasource", {}).get("uid"), "prometheus")
                    r = self.query(expr)
                    self.assertEqual(r["status"], "success", r.get("error"))
                    result = r["data"]["result"]
                    self.assertIsInstance(result, list, "not an instant vector")
                    self.assertTrue(result, "no series: a misspelt metric or label?")
                    values = [float(s["value"][1]) for s in result]
                    self.assertTrue(any(math.isfinite(v) for v in values),
                                    f"no finite value: {values}")
                    if re.search(r"\bby \(instance\)", expr):
                        self.assertEqual(sorted(s["metric"].get("instance") for s in result),
                                         sorted(self.metrics_addresses),
                                         "not a series per replica")
                    if "spinnet_training_jobs{" in expr:
                        succeeded = [float(s["value"][1]) for s in result
                                     if s["metric"].get("state") == "succeeded"]
                        self.assertEqual(succeeded, [2.0],
                                         "the store's 2 succeeded jobs, once "
                                         "(max over replicas, not sum)")
                    print(f"ok  {title} [{t.get('refId')}]: {len(result)} series, "
                          f"e.g. {values[0]:.4g}")
                checked += 1
        self.assertGreaterEqual(checked, 15, "fewer dashboard queries than expected")

        variables = dashboard.get("templating", {}).get("list", [])
        for v in variables:
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", q or "")
            with self.subTest(variable=v.get("name"), query=q):
                self.assertIsNotNone(m, "expected label_values(selector, label)")
                self.assertEqual(v.get("datasource", {}).get("uid"), "prometheus")
                r = self.query(substitute_grafana_variables(m.group(1)))
                self.assertEqual(r["status"], "success", r.get("error"))
                found = {s["metric"].get(m.group(2)) for s in r["data"]["result"]} - {None}
                self.assertTrue(found, f"no values for label {m.group(2)}")
                print(f"ok  variable {v['name']}: {sorted(found)}")

        print(f"{checked} dashboard queries and {len(variables)} variables checked "
              f"in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: monitoring_test.py BUILD_DIR SOURCE_DIR")
    BUILD = os.path.abspath(sys.argv[1])
    SOURCE = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
