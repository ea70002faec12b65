"""Benchmark: `up`, `up` again and `down` of one site against the fake world.

Prints wall time, the length of the virtual timeline the fake modelled (how long the
same run would take on DigitalOcean, by the fake's durations), and request counts.
Run: .venv/bin/python -m bench.bench_up [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fakes.world import World
from infra.digitalocean import DigitalOcean, RequestLog
from infra.down import Teardown
from infra.site import parse_site
from infra.state import StateDir
from infra.target import Target
from infra.up import Provisioner
from steps.sites import site_data


def one_run(world: World, target: Target, index: int) -> dict:
    site = parse_site(site_data(f"bench-{index}"))
    state = StateDir(world.state_dir / f"state-{index}")
    figures = {}
    for label, action in (("up", "up"), ("up again", "up"), ("down", "down")):
        log = RequestLog()
        do = DigitalOcean(target, log)
        virtual_start, wall_start = world.clock.now(), time.perf_counter()
        if action == "up":
            operation = Provisioner(site, do, state)
            operation.up()
        else:
            operation = Teardown(site, do, state)
            operation.down()
        figures[label] = {
            "wall_s": time.perf_counter() - wall_start,
            "virtual_s": world.clock.now() - virtual_start,
            "requests": log.total,
            "mutating": log.mutating,
            "truenas": operation.node_log.total,
            "truenas_mutating": operation.node_log.mutating,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--speed", type=float, default=500.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, World(Path(scratch), speed=args.speed) as world:
        target = Target.from_world_file(world.world_file)
        runs = [one_run(world, target, i) for i in range(args.runs)]
    print(f"up/up-again/down against the fake world, clock x{args.speed:g}, {args.runs} runs")
    print(f"{'step':<10} {'wall s (median)':>16} {'virtual s':>10} {'DO req':>7} "
          f"{'mutating':>9} {'TrueNAS':>8} {'mutating':>9}")
    for label in ("up", "up again", "down"):
        rows = [run[label] for run in runs]
        print(f"{label:<10} {statistics.median(r['wall_s'] for r in rows):>16.3f} "
              f"{statistics.median(r['virtual_s'] for r in rows):>10.0f} "
              f"{statistics.median(r['requests'] for r in rows):>7.0f} "
              f"{statistics.median(r['mutating'] for r in rows):>9.0f} "
              f"{statistics.median(r['truenas'] for r in rows):>8.0f} "
              f"{statistics.median(r['truenas_mutating'] for r in rows):>9.0f}")


if __name__ == "__main__":
    main()
