"""Benchmark: a full and an incremental replication between two fake TrueNAS droplets.

Two droplets on one fake world, driven over JSON-RPC/WSS the way infra/ drives them:
semi-automatic SSH setup, a PUSH task over SSH through the target's firewall, a full
send of MIB MiB, then an incremental after CHANGED MiB of one file changed. Prints,
for each run, the stream bytes that crossed the SSH connection, the wall time of the
job (from replication.run to its end) and the virtual time the clock moved meanwhile.
Run inside a private network namespace (the world binds loopback addresses):
  /work/tools/isolated .venv/bin/python -m bench.bench_replication_fake [--mib 20] [--changed 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fakes.world import World
from tests.fake_clients import connect
from tests.fakes.truenas.nodes import logged_in, truenas_droplet
from tests.fakes.truenas.test_replication_wire import SCHEMA, Site, firewall_body

MIB = 2**20


def _run(world: World, source: Site, task_id: int) -> tuple[float, float, int]:
    virtual, wall = world.clock.now(), time.perf_counter()
    job_id = source.rpc.result("replication.run", task_id)
    while True:
        [job] = source.rpc.result("core.get_jobs", [["id", "=", job_id]])
        if job["state"] in ("SUCCESS", "FAILED", "ABORTED"):
            break
        time.sleep(0.005)
    assert job["state"] == "SUCCESS", job
    return time.perf_counter() - wall, world.clock.now() - virtual, source.sent()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--changed", type=int, default=1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, World(Path(root), speed=1.0) as world, \
            connect(world) as client:
        _bench(world, client, options.mib, options.changed)


def _bench(world: World, client, mib: int, changed: int) -> None:
    prod = truenas_droplet(world, client, "prod")
    stag = truenas_droplet(world, client, "stag")
    with logged_in(world, prod["id"]) as prod_rpc, logged_in(world, stag["id"]) as stag_rpc:
        source, target = Site(world, prod, prod_rpc), Site(world, stag, stag_rpc)
        source.pool()
        target.pool()
        source.rpc.result("pool.dataset.create", {"name": "tank/data"})
        client.firewalls.create(body=firewall_body(target, source, ssh=True))
        token = target.rpc.result("auth.generate_token", 600, {}, False, True)
        credential = source.rpc.result("keychaincredential.setup_ssh_connection", {
            "private_key": {"generate_key": True, "name": "bench-key"},
            "connection_name": "bench", "setup_type": "SEMI-AUTOMATIC",
            "semi_automatic_setup": {"url": f"https://{target.address}", "token": token,
                                     "verify_ssl": False}})
        task = source.rpc.result("replication.create", {
            "name": "bench", "direction": "PUSH", "transport": "SSH",
            "ssh_credentials": credential["id"], "source_datasets": ["tank/data"],
            "target_dataset": "tank/data", "recursive": False, "auto": False,
            "also_include_naming_schema": [SCHEMA], "retention_policy": "NONE"})
        data = bytearray(os.urandom(mib * MIB))
        source.write("/mnt/tank/data/blob.bin", bytes(data))
        source.rpc.result("pool.snapshot.create", {"dataset": "tank/data",
                                                   "naming_schema": SCHEMA})
        full = _run(world, source, task["id"])
        data[MIB:MIB + changed * MIB] = os.urandom(changed * MIB)
        source.write("/mnt/tank/data/blob.bin", bytes(data))
        with world.backend.lock:
            world.clock.advance(60)
        source.rpc.result("pool.snapshot.create", {"dataset": "tank/data",
                                                   "naming_schema": SCHEMA})
        incremental = _run(world, source, task["id"])
    for label, (wall, virtual, sent) in (("full", full), ("incremental", incremental)):
        print(f"{label:12} {sent:>12} B sent  {wall:7.3f} s wall  {virtual:7.1f} s virtual")


if __name__ == "__main__":
    main()
