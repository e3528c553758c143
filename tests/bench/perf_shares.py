#!/usr/bin/python3
"""Where a streamed step's CPU goes: a perf profile's samples in buckets.

Reads `perf record -F 999 -g -p <stream_load pid> -o DATA -- sleep SECONDS`
(taken inside one phase of tests/bench/stream_load, which prints "S=256
spinnet..." and "S=256 echo..." on stderr as each phase starts) and prints
the share of samples and the CPU µs per answered step of each bucket: gRPC,
kernel TCP, the network's maths, locks, protobuf, malloc, metrics... Each
sample goes to the bucket of its leaf frame (kernel samples by their call
chain). STEPS_PER_SECOND is the phase's throughput from stream_load.

usage: python3 tests/bench/perf_shares.py DATA STEPS_PER_SECOND [SECONDS=5]
"""
import collections
import re
import subprocess
import sys

if len(sys.argv) < 3:
    sys.exit(__doc__)
data, sps = sys.argv[1], float(sys.argv[2])
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso"],
                     capture_output=True, text=True).stdout
samples = []  # list of stacks (leaf first): [(sym, dso)]
cur = []
for line in out.splitlines():
    line = line.strip()
    if not line:
        if cur: samples.append(cur)
        cur = []
        continue
    m = re.match(r"([0-9a-f]+)\s+(.*)\s+\((.*)\)$", line)
    if m: cur.append((m.group(2), m.group(3)))
if cur: samples.append(cur)

def cat(stack):
    sym, dso = stack[0]
    chain = " ".join(s for s, _ in stack[:40])
    if "kernel" in dso:
        if re.search(r"futex", chain): return "kernel: futex (lock/wake)"
        if re.search(r"tcp|sock|ip_|skb|net_rx|__dev_queue|do_softirq|loopback", chain): return "kernel: TCP loopback"
        if re.search(r"epoll|poll", chain): return "kernel: epoll"
        if re.search(r"schedule|switch|wake", chain): return "kernel: scheduling"
        return "kernel: other"
    if re.search(r"Eigen::|spinnet::Network|StreamingSession|Softmax|MakeClassification|spinnet::Classify", sym) or "libm." in dso:
        return "network maths (Feed, Current)"
    if re.search(r"ServerMetrics|RpcMetricsInterceptor|prometheus", sym) or "prometheus" in dso:
        return "metrics (prometheus, interceptor)"
    if re.search(r"Interceptor", sym): return "grpc++ interceptor machinery"
    if "libprotobuf" in dso or re.search(r"google::protobuf|spinnet::v1::|spinnet::bench::|ToProto", sym):
        return "protobuf (build, serialize, parse)"
    if re.search(r"malloc|free|operator new|operator delete|_int_|tcache|cfree|arena", sym):
        return "malloc/free"
    if "absl_synchronization" in dso or "graphcycles" in dso or re.search(r"pthread_mutex|pthread_cond|Mutex|lll_", sym):
        return "locks (absl::Mutex, pthread)"
    if re.search(r"Stream(Protocol)?::|InferenceServiceImpl|EchoReactor", sym): return "server reactor/protocol code"
    if re.search(r"Session<", sym): return "bench client code"
    if "vdso" in dso: return "clock_gettime"
    if re.search(r"grpc|gpr", dso) or re.search(r"grpc", sym): return "gRPC (core, C++)"
    if "libc" in dso: return "libc other"
    return "other: " + dso
counts = collections.Counter(cat(s) for s in samples)
n = len(samples)
steps = sps * seconds
print(f"{data}: {n} samples ({n/999/seconds:.2f} CPUs), {sps:.0f} steps/s -> {n/999/steps*1e6:.1f} µs CPU per step")
for k, v in counts.most_common():
    print(f"  {100*v/n:5.1f}%  {v/999/steps*1e6:6.2f} µs/step  {k}")
