"""Benchmark: what a receiving site costs to fill and to keep up to date.

Against the fake world: bring "origin" (production) up, write DATA_MIB of files to
its `data` dataset and snapshot it, bring "mirror" (its [[replication]]) up, which
pairs the nodes and runs the first, full replication; then change CHANGED_MIB, take
the next snapshot and run the replication again (incremental); then have a process
on origin's node delete DELETED_MIB of the first files (the world's admin API: the
TrueNAS API deletes none), snapshot and run again. Prints, for each run,
the wall time, the virtual time the fake modelled, and the bytes the run sent (from
the job's progress). No assertion: figures only.
Run: .venv/bin/python -m bench.bench_replication [--mib N] [--changed-mib N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fakes.world import World
from infra import snapshots
from infra.digitalocean import DigitalOcean
from infra.node import open_node
from infra.replication import Replication
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import Site, load_site
from infra.state import StateDir
from infra.target import Target
from infra.up import Provisioner
from steps.common import to_toml
from steps.fake_admin import FakeAdmin
from steps.sites import site_data

MIB = 1024 * 1024


def timed(world: World, action) -> tuple[object, float, float]:
    virtual, wall = world.clock.now(), time.perf_counter()
    result = action()
    return result, time.perf_counter() - wall, world.clock.now() - virtual


def write(site: Site, target: Target, state: StateDir, mib: int, prefix: str) -> None:
    do = DigitalOcean(target)
    with open_node(site, target, state, public_ipv4(find_droplet(do, site))) as client:
        for index in range(mib):
            client.upload(f"/mnt/tank/data/{prefix}-{index}.bin", os.urandom(MIB))
        snapshots.take_named_by(client, site, "data", site.snapshots[0].naming_schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=32, help="data in the dataset at first")
    parser.add_argument("--changed-mib", type=int, default=1,
                        help="data written before the incremental run")
    parser.add_argument("--deleted-mib", type=int, default=8,
                        help="data deleted before the last run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, World(Path(scratch) / "world") as world:
        root = Path(scratch)
        for name in ("origin", "mirror"):
            (root / f"{name}.toml").write_text(to_toml(site_data(name)))
        origin, mirror = load_site(root / "origin.toml"), load_site(root / "mirror.toml")
        target = Target.from_world_file(world.world_file)
        origin_state, mirror_state = StateDir(root / "origin"), StateDir(root / "mirror")
        Provisioner(origin, DigitalOcean(target), origin_state).up()
        write(origin, target, origin_state, args.mib, "first")
        rows = []
        mirror_up = Provisioner(mirror, DigitalOcean(target), mirror_state)
        _, wall, virtual = timed(world, mirror_up.up)
        rows.append(("up of the receiving site (pairing, first run)", wall, virtual, None))
        # The full run again, alone: the copy removed, the next run sends it all.
        do = DigitalOcean(target)
        with open_node(mirror, target, mirror_state,
                       public_ipv4(find_droplet(do, mirror))) as client:
            client.call("pool.dataset.delete", "tank/data", {"recursive": True})
        replication = Replication(mirror, target, mirror_state, DigitalOcean(target))
        results, wall, virtual = timed(world, replication.run_now)
        rows.append((f"full replication ({args.mib} MiB)", wall, virtual,
                     sum(r.bytes_sent for r in results)))
        write(origin, target, origin_state, args.changed_mib, "later")
        results, wall, virtual = timed(world, replication.run_now)
        rows.append((f"incremental replication ({args.changed_mib} MiB changed)", wall,
                     virtual, sum(r.bytes_sent for r in results)))
        doomed = find_droplet(do, origin)["id"]
        admin = FakeAdmin.from_world_file(world.world_file)
        for index in range(min(args.deleted_mib, args.mib)):
            admin.remove_file(doomed, f"/mnt/tank/data/first-{index}.bin")
        write(origin, target, origin_state, 0, "none")
        results, wall, virtual = timed(world, replication.run_now)
        rows.append((f"incremental replication ({args.deleted_mib} MiB deleted)", wall,
                     virtual, sum(r.bytes_sent for r in results)))
    print(f"replication against the fake world (clock x{world.clock.speed:g})")
    print(f"{'what':<52} {'wall s':>8} {'virtual s':>10} {'bytes sent':>12}")
    for label, wall, virtual, sent in rows:
        print(f"{label:<52} {_f(wall, '.2f'):>8} {_f(virtual, '.0f'):>10} "
              f"{_f(sent, 'd'):>12}")


def _f(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
