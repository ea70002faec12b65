"""Benchmark: fake API throughput for a create/get/delete cycle over keep-alive HTTPS.

Each cycle is POST /v2/tags, GET /v2/tags/{name}, DELETE /v2/tags/{name} on one
requests.Session (one TLS connection). Prints requests per second.
Run: .venv/bin/python -m bench.bench_api_throughput [--cycles N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests

from fakes.world import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, World(Path(scratch)) as world:
        with world.backend.lock:
            world.digitalocean.limiter.configure(per_hour=10**9, per_minute=10**9)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {world.token}"
        verify = str(world.ca.ca_path)
        base = world.endpoint + "/v2/tags"
        started = time.perf_counter()
        for i in range(args.cycles):
            name = f"bench-{i}"
            assert session.post(base, json={"name": name}, verify=verify).status_code == 201
            assert session.get(f"{base}/{name}", verify=verify).status_code == 200
            assert session.delete(f"{base}/{name}", verify=verify).status_code == 204
        elapsed = time.perf_counter() - started
    total = args.cycles * 3
    print(f"{args.cycles} create/get/delete cycles, {total} requests over one keep-alive "
          f"HTTPS connection in {elapsed:.2f} s: {total / elapsed:.0f} requests/s, "
          f"{elapsed / args.cycles * 1000:.1f} ms per cycle")


if __name__ == "__main__":
    main()
