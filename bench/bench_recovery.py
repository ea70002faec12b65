"""Benchmark: what a user waits for when storage or the droplet fails.

Against the fake world: up a site, write DATA_MIB of files, then (1) lose a volume
and repair it (delete + replace + resilver), (2) destroy the droplet and fail over.
Prints wall time and the virtual time the fake modelled for each, i.e. the
recovery time a real user would see if DigitalOcean and TrueNAS took as long as
the fake's durations say.
Run: .venv/bin/python -m bench.bench_recovery [--mib N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fakes.world import World
from infra import faults
from infra.digitalocean import DigitalOcean
from infra.failover import Failover
from infra.node import open_node
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import parse_site
from infra.state import StateDir
from infra.storage import Repair
from infra.target import Target
from infra.up import Provisioner
from steps.sites import site_data


def timed(world: World, action) -> tuple[float, float]:
    virtual, wall = world.clock.now(), time.perf_counter()
    action()
    return time.perf_counter() - wall, world.clock.now() - virtual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=32, help="data written before the faults")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, World(Path(scratch)) as world:
        target = Target.from_world_file(world.world_file)
        site = parse_site(site_data("bench"))
        state = StateDir(Path(scratch) / "state")
        do = DigitalOcean(target)
        rows = [("up", *timed(world, lambda: Provisioner(site, do, state).up()))]

        def node():
            return open_node(site, target, state, public_ipv4(find_droplet(do, site)))

        with node() as client:
            chunk = os.urandom(1024 * 1024)
            for index in range(args.mib):
                client.upload(f"/mnt/tank/data/blob-{index}.bin", chunk)

        def lose_and_repair() -> None:
            faults.delete_volume(do, site, "bench-pool-b")
            with node() as client:
                Repair(site, do, client, state).run()

        rows.append((f"replace a lost volume ({args.mib} MiB resilver)",
                     *timed(world, lose_and_repair)))

        def lose_droplet_and_fail_over() -> None:
            faults.destroy_droplet(do, find_droplet(do, site)["id"])
            Failover(site, do, state).run()

        rows.append(("failover after losing the droplet",
                     *timed(world, lose_droplet_and_fail_over)))
    print(f"recovery against the fake world (clock x{world.clock.speed:g})")
    print(f"{'what':<42} {'wall s':>8} {'virtual s':>10}")
    for label, wall, virtual in rows:
        print(f"{label:<42} {wall:>8.2f} {virtual:>10.0f}")


if __name__ == "__main__":
    main()
