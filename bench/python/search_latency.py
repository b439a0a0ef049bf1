#!/usr/bin/env python3
"""Search latency as a Python service sees it: grpcio against a running reelforge-server.

Compiles the protos with grpcio-tools into a temporary directory, then runs searches one
after another (or from N threads, each with its own channel) and prints the caller's
p50/p99 beside the server's own total (its `stats` message), so a gap between the two
(e.g. Nagle's algorithm meeting delayed ACKs: ~40 ms a call) shows.

    python3 -m venv .venv-bench && .venv-bench/bin/pip install grpcio grpcio-tools
    .venv-bench/bin/python bench/python/search_latency.py --addr 127.0.0.1:50051 \
        --searches 200 --callers 1
"""

import argparse
import importlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc


def stubs(proto_root):
    out = tempfile.mkdtemp(prefix="reelforge-py-")
    files = [os.path.join("reelforge/v1", f) for f in os.listdir(os.path.join(proto_root, "reelforge/v1"))]
    code = protoc.main(["protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}", *files])
    if code != 0:
        sys.exit(f"protoc failed ({code})")
    sys.path.insert(0, out)
    return (importlib.import_module("reelforge.v1.search_pb2"),
            importlib.import_module("reelforge.v1.search_pb2_grpc"))


WORDS = ("goal striker keeper penalty referee chef onion garlic skillet bike rider pedal "
         "climb guitar drummer singer stage crowd lion elephant storm lightning thunder "
         "rain dunk rebound court hoop seed soil compost motion loud audio scene cut").split()


def percentile(values, p):
    values = sorted(values)
    return values[round((len(values) - 1) * p)] if values else 0.0


def caller(addr, pb, rpc, n, seed, out):
    rng = random.Random(seed)
    channel = grpc.insecure_channel(addr)
    stub = rpc.SearchStub(channel)
    for _ in range(n):
        query = " ".join(rng.sample(WORDS, 3))
        started = time.perf_counter()
        server_ms = None
        for message in stub.Search(pb.SearchRequest(query=query, top_k=10)):
            if message.HasField("stats"):
                server_ms = message.stats.total_ms
        out.append(((time.perf_counter() - started) * 1000.0, server_ms))
    channel.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:50051")
    ap.add_argument("--searches", type=int, default=200, help="per caller")
    ap.add_argument("--callers", type=int, default=1)
    ap.add_argument("--protos", default=os.path.join(os.path.dirname(__file__), "../../proto"))
    a = ap.parse_args()
    pb, rpc = stubs(os.path.abspath(a.protos))
    caller(a.addr, pb, rpc, 5, 0, [])  # warm up
    out = []
    started = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(a.addr, pb, rpc, a.searches, i + 1, out))
               for i in range(a.callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    client = [c for c, _ in out]
    server = [s for _, s in out if s is not None]
    gap = [c - s for c, s in out if s is not None]
    print(f"{len(out)} searches from {a.callers} caller(s) in {wall:.1f} s: {len(out) / wall:.1f}/s")
    print(f"caller  p50 {percentile(client, 0.5):7.2f} ms  p99 {percentile(client, 0.99):7.2f} ms")
    print(f"server  p50 {percentile(server, 0.5):7.2f} ms  p99 {percentile(server, 0.99):7.2f} ms")
    print(f"gap     p50 {percentile(gap, 0.5):7.2f} ms  mean {statistics.mean(gap):7.2f} ms")


if __name__ == "__main__":
    main()
