#!/usr/bin/env python3
"""Hostile and broken clients against a real spinnet-server process.

While a well-behaved client (a separate process) classifies one digit after
another and records each call's latency and status, four attacks run one
after the other, each for PHASE seconds:

  a. streams: more StreamClassify calls than --max-streams, each sending
     steps as fast as flow control lets it and never reading an answer;
  b. slowloris: sockets trickling one byte a second, half of them the HTTP/2
     preface (the server must close them after --handshake-timeout), half a
     Classify call whose 1 MiB message never finishes arriving;
  c. connections: thousands of TCP connections (HTTP/2 preface and SETTINGS
     sent) against a server whose open-files limit is 1024, Debian's
     default; the server must refuse the excess at once and accept again
     afterwards;
  d. big messages: threads sending Classify requests of the largest size
     the server accepts (answered INVALID_ARGUMENT: the last value is NaN)
     and just over it (RESOURCE_EXHAUSTED), in a loop;
  e. pings and headers: keepalive pings every second on an open stream
     (GOAWAY too_many_pings: UNAVAILABLE "Too many pings"), and calls with
     8 KiB (OK) and 20 KiB (RESOURCE_EXHAUSTED) of headers.

The server's RSS is sampled from /proc/PID/status all along. Asserted: the
well-behaved client gets every answer (OK, no other code), each attack gets
only the codes expected of it, no attack raises the server's RSS by more
than 2 x --grpc-memory-bytes over what it was when the attack began (gRPC's
accounted buffers, and as much again for what leaves them: parsed messages
in flight, stacks; the RSS at each start includes what malloc kept of the
attacks before), the
stream and connection limits hold and free up, and the server is alive and
SERVING at the end and exits 0 on SIGTERM. Latencies and RSS figures are
printed (README "Hostile and broken clients"), never asserted.

usage: hostile_clients_test.py BUILD_DIR [--long] [--only abcde] [--json FILE]
       (internal) hostile_clients_test.py --probe BUILD_DIR ADDRESS LOG
"""
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from testlib import Server, digit_rows  # noqa: E402

MIB = 1 << 20
# The server under attack: small limits, so that each one is reached.
MAX_MESSAGE = 4 * MIB
GRPC_MEMORY = 64 * MIB
MAX_STREAMS = 100
HANDSHAKE_TIMEOUT = 2.0
SERVER_FILES = 1024  # RLIMIT_NOFILE, soft and hard: Debian's default soft

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = bytes.fromhex("000000040000000000")


def import_stubs(build):
    sys.path.insert(0, os.path.join(build, "client", "python"))
    global grpc, pb, pb_grpc, mpb, mpb_grpc
    import grpc  # noqa: F401
    from spinnet._proto import inference_pb2 as pb  # noqa: F401
    from spinnet._proto import inference_pb2_grpc as pb_grpc  # noqa: F401
    from spinnet._proto import metrics_pb2 as mpb  # noqa: F401
    from spinnet._proto import metrics_pb2_grpc as mpb_grpc  # noqa: F401


def one_digit():
    row = digit_rows(1)[0].split(",")
    return [float(v) for v in row[1:]]


# ---------------------------------------------------------------------------
# The well-behaved client: its own process, so that the attacks' Python
# threads do not stall it. One line per call: wall time, latency, code.
def probe_main(build, address, log_path):
    import_stubs(build)
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.InferenceServiceStub(channel)
    request = pb.ClassifyRequest(model="m",
                                 sequences=[pb.Sequence(values=one_digit())])
    with open(log_path, "w", buffering=1) as log:
        while not os.path.exists(log_path + ".stop"):
            start = time.time()
            try:
                stub.Classify(request, timeout=10)
                code = "OK"
            except grpc.RpcError as e:
                code = f"{e.code().name}:{e.details()}".replace(" ", "_")
            log.write(f"{start:.6f} {time.time() - start:.6f} {code}\n")
            time.sleep(0.01)  # ~100 calls/s: a client, not a load test


class Probe:
    def __init__(self, build, address, tmp):
        self.log = os.path.join(tmp, "probe.log")
        self.proc = subprocess.Popen([sys.executable, __file__, "--probe",
                                      build, address, self.log])

    def calls(self, since, until):
        out = []
        with open(self.log) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and since <= float(parts[0]) < until:
                    out.append((float(parts[1]), parts[2]))
        return out

    def stop(self):
        open(self.log + ".stop", "w").close()
        self.proc.wait(timeout=30)


class RssSampler:
    """VmRSS of `pid` every 50 ms; peak() since the last mark()."""

    def __init__(self, pid):
        self.pid = pid
        self.lock = threading.Lock()
        self.peak_kib = 0
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def status(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{self.pid}/status")

    def run(self):
        while not self.stopped:
            try:
                rss = self.status("VmRSS")
            except (OSError, AssertionError):
                return
            with self.lock:
                self.peak_kib = max(self.peak_kib, rss)
            time.sleep(0.05)

    def mark(self):
        with self.lock:
            self.peak_kib = self.status("VmRSS")

    def peak(self):
        with self.lock:
            return self.peak_kib


def percentile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# ---------------------------------------------------------------------------
# The attacks. Each runs for `seconds` and returns what it saw; failures of
# what it expects raise AssertionError.

def attack_streams(address, seconds, stats):
    """MAX_STREAMS + 20 StreamClassify calls that send and never read."""
    extra = 20
    stop = threading.Event()
    digit = one_digit()

    def requests():
        yield pb.StreamClassifyRequest(open=pb.StreamOpen(model="m"))
        steps = pb.StreamClassifyRequest(
            steps=pb.StreamSteps(values=digit, end_of_sequence=True))
        while not stop.is_set():
            yield steps

    channels = [grpc.insecure_channel(address) for _ in range(4)]
    calls = []
    for i in range(MAX_STREAMS + extra):
        stub = pb_grpc.InferenceServiceStub(channels[i % len(channels)])
        calls.append(stub.StreamClassify(requests()))
        time.sleep(0.005)  # in order, so that the last ones are the extra
    time.sleep(seconds)
    ended = [c for c in calls if c.done()]
    # Past --max-streams: refused at open. Admitted ones may be reset later
    # by gRPC's memory reclaimer (RESOURCE_EXHAUSTED too) when the quota is
    # reached; nothing else may end them.
    refused = [c for c in ended if "too many stream sessions" in c.details()]
    reclaimed = [c for c in ended if c not in refused]
    codes = sorted({c.code().name for c in ended})
    active = stats().active_streams
    stop.set()
    for c in calls:
        c.cancel()
    deadline = time.time() + 15
    while stats().active_streams != 0 and time.time() < deadline:
        time.sleep(0.2)
    left = stats().active_streams
    for ch in channels:
        ch.close()
    assert len(refused) == extra and codes == ["RESOURCE_EXHAUSTED"], \
        (f"{len(refused)} streams refused, {len(ended)} ended ({codes}); "
         f"expected {extra} refused")
    assert active == MAX_STREAMS - len(reclaimed), \
        f"{active} streams active, {len(reclaimed)} reclaimed"
    assert left == 0, f"{left} streams still active after the cancel"
    return {"opened": len(calls), "refused": len(refused),
            "reclaimed": len(reclaimed), "active": active}


def hpack_literal(name, value):
    """HPACK literal header field without indexing, new name, no Huffman."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def frame(kind, flags, stream, payload, length=None):
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def stalled_call_prefix():
    """A Classify call whose DATA frame announces 16 KiB and whose gRPC
    message announces 1 MiB: what follows is trickled."""
    headers = b"".join(hpack_literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"),
        (":path", "/spinnet.v1.InferenceService/Classify"),
        (":authority", "localhost"), ("content-type", "application/grpc"),
        ("te", "trailers")])
    return (PREFACE + EMPTY_SETTINGS + frame(1, 4, 1, headers) +
            frame(0, 0, 1, b"", length=16384) + b"\x00" +
            struct.pack(">I", MIB))


def attack_slowloris(host, port, seconds, sockets):
    """`sockets` connections trickling a byte a second: half the preface,
    half the body of a stalled Classify call."""
    conns = []
    for i in range(sockets):
        s = socket.create_connection((host, port), timeout=5)
        s.setblocking(False)
        stalled = i % 2 == 1
        if stalled:
            s.sendall(stalled_call_prefix())
        conns.append({"sock": s, "stalled": stalled, "sent": 0,
                      "closed_at": None})
    start = time.time()
    while time.time() - start < seconds:
        for c in conns:
            if c["closed_at"] is not None:
                continue
            s = c["sock"]
            try:
                while select.select([s], [], [], 0)[0]:
                    if not s.recv(65536):  # the server closed it
                        raise ConnectionResetError
                byte = PREFACE[c["sent"] % len(PREFACE):][:1] \
                    if not c["stalled"] else b"\x01"
                s.send(byte)
                c["sent"] += 1
            except (ConnectionResetError, BrokenPipeError):
                c["closed_at"] = time.time() - start
        time.sleep(1.0)
    for c in conns:
        c["sock"].close()
    preface = [c for c in conns if not c["stalled"]]
    stalled = [c for c in conns if c["stalled"]]
    late = [c for c in preface
            if c["closed_at"] is None or
            c["closed_at"] > HANDSHAKE_TIMEOUT + 2.5]
    assert not late, (f"{len(late)} of {len(preface)} trickling-preface "
                      f"connections outlived --handshake-timeout "
                      f"{HANDSHAKE_TIMEOUT}s")
    return {"preface_sockets": len(preface),
            "preface_closed_by_s": max(c["closed_at"] for c in preface),
            "stalled_sockets": len(stalled),
            "stalled_closed": sum(c["closed_at"] is not None
                                  for c in stalled)}


def fresh_call(address, stats_timeout=3.0):
    """GetServerStats on a new channel: (code, seconds). A new channel is a
    new connection, which is what the connection flood competes for."""
    channel = grpc.insecure_channel(address)
    start = time.time()
    try:
        mpb_grpc.MetricsServiceStub(channel).GetServerStats(
            mpb.GetServerStatsRequest(), timeout=stats_timeout)
        code = "OK"
    except grpc.RpcError as e:
        code = e.code().name
    channel.close()
    return code, time.time() - start


def attack_connections(host, port, address, seconds, count):
    """`count` connections held open; a new client meanwhile must be told
    at once (not hang), and served once they are gone."""
    conns, failed = [], 0
    for _ in range(count):
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(PREFACE + EMPTY_SETTINGS)
            conns.append(s)
        except OSError:
            failed += 1
    time.sleep(1.0)
    alive = 0
    for s in conns:  # the refused ones read EOF at once
        s.setblocking(False)
        try:
            data = s.recv(65536)
            alive += bool(data)
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    during = fresh_call(address)
    time.sleep(max(0.0, seconds - 2))
    for s in conns:
        s.close()
    after = ("", 0.0)
    deadline = time.time() + 10
    while time.time() < deadline:
        after = fresh_call(address)
        if after[0] == "OK":
            break
        time.sleep(0.5)
    assert during[0] in ("OK", "UNAVAILABLE") and during[1] < 3.0, \
        f"a new client during the flood: {during[0]} after {during[1]:.1f}s"
    assert alive < SERVER_FILES, f"{alive} connections held; limit {SERVER_FILES}"
    assert after[0] == "OK", f"a new client after the flood: {after[0]}"
    return {"attempted": count, "connect_failed": failed, "held": alive,
            "new_client_during": f"{during[0]} in {during[1]:.2f}s",
            "new_client_after": f"{after[0]} in {after[1]:.2f}s"}


def attack_big_messages(address, seconds, threads):
    """Threads (each on its own connection) sending the largest accepted
    Classify request (INVALID_ARGUMENT: a NaN) and one just over the limit
    (RESOURCE_EXHAUSTED), in a loop."""
    values = (MAX_MESSAGE - 64) // 8
    at_limit = pb.ClassifyRequest(model="m", sequences=[pb.Sequence(
        values=[0.5] * (values - 1) + [float("nan")])]).SerializeToString()
    assert len(at_limit) <= MAX_MESSAGE, len(at_limit)
    over = pb.ClassifyRequest(model="m", sequences=[pb.Sequence(
        values=[0.5] * (values + 1024))]).SerializeToString()
    assert len(over) > MAX_MESSAGE
    codes, lock = {}, threading.Lock()
    stop = time.time() + seconds

    def run():
        channel = grpc.insecure_channel(address)
        call = channel.unary_unary("/spinnet.v1.InferenceService/Classify")
        i = 0
        while time.time() < stop:
            body = at_limit if i % 2 == 0 else over
            i += 1
            try:
                call(body, timeout=30)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
                if code not in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"):
                    code += ": " + e.details()
            with lock:
                codes[code] = codes.get(code, 0) + 1
        channel.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert set(codes) <= {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"} and \
        codes.get("INVALID_ARGUMENT", 0) > 0, f"big messages answered {codes}"
    return {"threads": threads, "message_bytes": len(at_limit),
            "codes": codes}


def attack_pings_and_headers(address):
    """A client pinging every second with no regard for
    --min-ping-interval, and calls with 20 KiB of headers (over
    --max-metadata-bytes, 16 KiB)."""
    big = mpb_grpc.MetricsServiceStub(grpc.insecure_channel(address))
    codes = {}
    for n in (8 << 10, 20 << 10):
        try:
            big.GetServerStats(mpb.GetServerStatsRequest(), timeout=5,
                               metadata=(("x-pad", "a" * n),))
            codes[n] = "OK"
        except grpc.RpcError as e:
            codes[n] = e.code().name
    pinger = grpc.insecure_channel(address, options=[
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0)])
    stop = threading.Event()

    def requests():
        yield pb.StreamClassifyRequest(open=pb.StreamOpen(model="m"))
        stop.wait(30)

    call = pb_grpc.InferenceServiceStub(pinger).StreamClassify(requests(),
                                                               timeout=30)
    start = time.time()
    ended = ""
    try:
        for _ in call:
            pass
    except grpc.RpcError as e:
        ended = f"{e.code().name} {e.details()}"
    took = time.time() - start
    stop.set()
    pinger.close()
    assert codes == {8 << 10: "OK", 20 << 10: "RESOURCE_EXHAUSTED"}, codes
    assert ended == "UNAVAILABLE Too many pings" and took < 15, \
        f"the pinging client: '{ended}' after {took:.1f}s"
    return {"headers": codes, "pinger": f"{ended} after {took:.1f}s"}


# ---------------------------------------------------------------------------
def sanitizer_of(build):
    """SPINNET_SANITIZE of the build dir ("" for a plain build)."""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("SPINNET_SANITIZE:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


def main():
    if sys.argv[1] == "--probe":
        probe_main(*sys.argv[2:5])
        return 0
    build = sys.argv[1]
    long_run = "--long" in sys.argv
    json_out = sys.argv[sys.argv.index("--json") + 1] \
        if "--json" in sys.argv else None
    import_stubs(build)
    phase = 30.0 if long_run else 8.0
    big_threads = int(sys.argv[sys.argv.index("--big-threads") + 1]) \
        if "--big-threads" in sys.argv else 4

    # This process holds the flood's sockets: raise its own limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 12000 if long_run else 4000
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 200), hard))
    flood = min(want, min(hard, want + 200) - 200)

    def server_limits():
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (SERVER_FILES, SERVER_FILES))

    tmp = tempfile.TemporaryDirectory()
    log = open(os.path.join(tmp.name, "server.log"), "w+")
    server = Server(build, "--data-dir", os.path.join(tmp.name, "data"),
                    "--max-message-bytes", str(MAX_MESSAGE),
                    "--grpc-memory-bytes", str(GRPC_MEMORY),
                    "--max-streams", str(MAX_STREAMS),
                    "--max-rpc-threads", "32", "--max-watchers", "8",
                    "--handshake-timeout", str(HANDSHAKE_TIMEOUT),
                    log=log, preexec_fn=server_limits)
    host, port = server.address.rsplit(":", 1)
    port = int(port)
    results = {"phase_seconds": phase, "grpc_memory_bytes": GRPC_MEMORY,
               "max_message_bytes": MAX_MESSAGE, "server_files": SERVER_FILES}
    failures = []
    try:
        server.cli("train", "--dataset", "digits", "--model", "m",
                   "--epochs", "1", "--layers", "1", "--neurons", "4",
                   "--watch")
        stats_channel = grpc.insecure_channel(server.address)
        stats_stub = mpb_grpc.MetricsServiceStub(stats_channel)

        def stats():
            return stats_stub.GetServerStats(mpb.GetServerStatsRequest(),
                                             timeout=10)

        rss = RssSampler(server.proc.pid)
        probe = Probe(build, server.address, tmp.name)
        time.sleep(2.0)  # the probe connects and warms up
        results["rss_after_setup_mib"] = round(rss.status("VmRSS") / 1024, 1)
        growth_bound_kib = 2 * GRPC_MEMORY // 1024
        results["rss_growth_bound_mib"] = growth_bound_kib // 1024
        # Under AddressSanitizer freed memory waits in a quarantine (256 MiB)
        # and every block has redzones, so the RSS says nothing about the
        # server's bounds there: it is reported, not checked.
        sanitizer = sanitizer_of(build)
        results["rss_bound_checked"] = not sanitizer

        attacks = [
            ("baseline", lambda: time.sleep(phase) or {}),
            ("a_streams_never_read",
             lambda: attack_streams(server.address, phase, stats)),
            ("b_slowloris",
             lambda: attack_slowloris(host, port, phase,
                                      400 if long_run else 200)),
            ("c_connections",
             lambda: attack_connections(host, port, server.address, phase,
                                        flood)),
            ("d_big_messages",
             lambda: attack_big_messages(server.address, phase, big_threads)),
            ("e_pings_and_headers",
             lambda: attack_pings_and_headers(server.address)),
        ]
        only = sys.argv[sys.argv.index("--only") + 1] \
            if "--only" in sys.argv else None
        for name, attack in attacks:
            if only and name != "baseline" and name[0] not in only:
                continue
            rss.mark()
            before_kib = rss.status("VmRSS")
            start = time.time()
            try:
                seen = attack()
            except AssertionError as e:
                seen = {"failed": str(e)}
                failures.append(f"{name}: {e}")
            end = time.time()
            time.sleep(1.0)
            calls = probe.calls(start, end)
            latencies = [t for t, code in calls if code == "OK"]
            bad = {}
            for _, code in calls:
                if code != "OK":
                    bad[code] = bad.get(code, 0) + 1
            peak_kib = rss.peak()
            row = {
                "attack": seen,
                "rss_before_mib": round(before_kib / 1024, 1),
                "rss_peak_mib": round(peak_kib / 1024, 1),
                "rss_after_mib": round(rss.status("VmRSS") / 1024, 1),
                "probe_calls": len(calls),
                "probe_errors": bad,
                "probe_p50_ms": round(percentile(latencies, 0.5) * 1e3, 2),
                "probe_p99_ms": round(percentile(latencies, 0.99) * 1e3, 2),
            }
            results[name] = row
            print(name, json.dumps(row), flush=True)
            if bad:
                failures.append(f"{name}: the well-behaved client got {bad}")
            if len(latencies) < 10:
                failures.append(f"{name}: the well-behaved client got only "
                                f"{len(latencies)} answers")
            if not sanitizer and peak_kib - before_kib > growth_bound_kib:
                failures.append(
                    f"{name}: RSS grew from {before_kib // 1024} to "
                    f"{peak_kib // 1024} MiB, more than "
                    f"{growth_bound_kib // 1024} MiB")
            if server.proc.poll() is not None:
                failures.append(f"{name}: the server exited "
                                f"({server.proc.returncode})")
                break
        results["vm_hwm_mib"] = round(rss.status("VmHWM") / 1024, 1)
        probe.stop()
        health = server.cli("health", check=False)
        if health.stdout.strip() != "SERVING":
            failures.append(f"health at the end: {health.stdout}{health.stderr}")
        rss.stopped = True
        stats_channel.close()
    finally:
        code = server.stop()
    if code != 0:
        failures.append(f"the server exited {code} on SIGTERM")
    results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(results, f, indent=1)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        print(server.logs()[-4000:])
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
