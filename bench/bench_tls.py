"""Benchmark: the front door against the fake world with its real ACME server (pebble).

For each challenge type: `up` of a new site with a [tls] section, then a forced
renewal (one issuance with everything else in place). Then the whole TLS feature
(pytest features/test_tls.py) as a subprocess. Prints wall times.
Run: .venv/bin/python -m bench.bench_tls [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fakes.world import World
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.site import parse_site
from infra.state import StateDir
from infra.target import Target
from infra.up import Provisioner
from steps.sites import site_data


def one_run(world: World, target: Target, challenge: str, index: int) -> dict[str, float]:
    data = site_data(f"tls-{challenge[:4]}-{index}")
    data["tls"] = {"challenge": challenge}
    data["access"]["admin_cidrs"] = ["127.0.0.0/24"]
    data["snapshots"] = []
    site = parse_site(data)
    state = StateDir(world.state_dir / f"state-{challenge}-{index}")
    figures = {}
    started = time.perf_counter()
    Provisioner(site, DigitalOcean(target), state).up()
    figures["up with the front door"] = time.perf_counter() - started
    started = time.perf_counter()
    Provisioner(site, DigitalOcean(target), state).renew_certificate(force=True)
    figures["forced renewal (one issuance)"] = time.perf_counter() - started
    Teardown(site, DigitalOcean(target), state).down()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch, World(Path(scratch)) as world:
        if world.acme is None:
            sys.exit(f"no ACME server: {world.acme_unavailable}")
        target = Target.from_world_file(world.world_file)
        for challenge in ("http-01", "dns-01"):
            for index in range(args.runs):
                for label, seconds in one_run(world, target, challenge, index).items():
                    results.setdefault(challenge, {}).setdefault(label, []).append(seconds)
    print(f"front door against the fake world (pebble), {args.runs} runs, median wall s")
    for challenge, figures in results.items():
        for label, values in figures.items():
            print(f"  {challenge:<8} {label:<32} {statistics.median(values):7.2f}"
                  f"   (min {min(values):.2f}, max {max(values):.2f})")
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "features/test_tls.py"], capture_output=True, text=True,
                              check=False)
    last = (finished.stdout.strip().splitlines() or ["?"])[-1]
    print(f"  features/tls.feature (pytest, own world): {time.perf_counter() - started:.2f} s"
          f" wall; {last}")


if __name__ == "__main__":
    main()
