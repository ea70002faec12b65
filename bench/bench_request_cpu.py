"""Benchmark: CPU per DigitalOcean request, infra's client and the fake's server apart.

Sends N requests to the fake world in this process and prints the CPU time (user+sys)
per request of the whole process, of the client thread, and the rest (the fake's
serving: uvicorn, Starlette, the handler). The clients: infra/digitalocean.py
(pydo, azure-core, requests) getting the account and listing sizes; pydo's default setup
(a `pydo.Client` with its own transport, which reads the environment on every request:
what infra used before it read it once per client and shared connections); a bare
requests.Session getting the account, to show what pydo and azure-core add; a new
client per request (as steps and commands make them); and the target's clock
(`Target.now`) against a `requests.get` per call. CPU, not
wall: it does not depend on the clock speed, and it moves far less than wall time with
the machine's other load; compare runs made back to back.
Run: .venv/bin/python -m bench.bench_request_cpu [--requests N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydo
import requests

from fakes.world import World
from infra.digitalocean import DigitalOcean
from infra.target import Target


def pydo_default(target: Target) -> pydo.Client:
    """The client as infra/digitalocean.py made it before (issue 14)."""
    return pydo.Client(target.do_token.reveal(), endpoint=target.do_endpoint,
                       connection_verify=target.ca_bundle or True, retry_total=0,
                       timeout=60, logging_enable=False)


def measure(label: str, send: Callable[[], object], count: int) -> None:
    send()  # the connection is open and every import done before measuring
    process, thread = time.process_time(), time.thread_time()
    for _ in range(count):
        send()
    process, thread = time.process_time() - process, time.thread_time() - thread
    print(f"{label:<30} {process / count * 1e6:8.0f} {thread / count * 1e6:8.0f} "
          f"{(process - thread) / count * 1e6:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, World(Path(scratch), acme=False) as world:
        with world.backend.lock:
            world.digitalocean.limiter.configure(per_hour=10**9, per_minute=10**9)
        target = Target.from_world_file(world.world_file)
        do = DigitalOcean(target)
        default = pydo_default(target)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {world.token}"
        ca = str(world.ca.ca_path)
        print(f"{args.requests} requests each; CPU us per request")
        print(f"{'request':<30} {'process':>8} {'client':>8} {'server':>8}")
        measure("GET /v2/account (infra)", lambda: do.call("get account", do.client.account.get),
                args.requests)
        measure("GET /v2/sizes (infra)",
                lambda: do.list_all("list sizes", do.client.sizes.list, "sizes"), args.requests)
        measure("GET /v2/account (pydo default)", default.account.get, args.requests)
        measure("GET /v2/account (requests)",
                lambda: session.get(world.endpoint + "/v2/account", verify=ca), args.requests)
        fewer = max(1, args.requests // 5)
        measure("new client + GET (infra)",
                lambda: DigitalOcean(target).client.account.get(), fewer)
        measure("new client + GET (pydo default)",
                lambda: pydo_default(target).account.get(), fewer)
        if target.own_clock:
            measure("Target.now", target.now, args.requests)
            measure("Date by requests.get",
                    lambda: requests.get(world.endpoint + "/v2/account", timeout=10,
                                         verify=ca).headers["Date"], fewer)


if __name__ == "__main__":
    main()
