"""Benchmark: the CPU the fakes' background threads burn while nothing happens.

Two figures, each the process CPU (user+sys) over N seconds of wall time with nothing
asked of the fakes: a started World (its clock ticker, servers, DNS; no ACME server),
and M app-process mount mirrors (fakes/truenas/apps/process.py MountMirror, each over a
pool of F files, no process behind them) left running as a container's mirror runs.
CPU, not wall: compare runs made back to back (the machine's other load moves it less).
Run: .venv/bin/python -m bench.bench_idle [--seconds N] [--mirrors M] [--files F]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from fakes.truenas.apps.process import MirrorThread, Mount, MountMirror
from fakes.world import World


def idle_cpu(seconds: float) -> float:
    start = time.process_time()
    time.sleep(seconds)
    return time.process_time() - start


def bench_world(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as state, World(Path(state), acme=False) as world:
        time.sleep(0.5)                     # let start-up settle
        cpu = idle_cpu(seconds)
        print(f"idle world, {seconds:.0f} s: {cpu * 1000:.0f} ms CPU "
              f"({cpu / seconds * 100:.2f}% of a core; {world.clock.fired} events fired)")


def bench_mirrors(seconds: float, count: int, files: int) -> None:
    pool = {f"/mnt/tank/app/data/dir{i % 10}/file{i}": f"content {i}".encode()
            for i in range(files)}

    def list_pool(source: str) -> dict[str, str]:
        prefix = source.rstrip("/") + "/"
        return {p[len(prefix):]: hashlib.sha1(d).hexdigest()
                for p, d in pool.items() if p.startswith(prefix)}

    def write_pool(path: str, data: bytes) -> None:
        pool[path] = data

    with tempfile.TemporaryDirectory() as work:
        threads = []
        for n in range(count):
            mirror = MountMirror(Path(work) / str(n), [Mount("/data", "/mnt/tank/app/data",
                                                             read_only=False)],
                                 list_pool, pool.get, write_pool)
            mirror.sync()
            threads.append(MirrorThread(mirror.sync, f"bench-mirror-{n}").start())
        try:
            time.sleep(0.5)
            cpu = idle_cpu(seconds)
        finally:
            for thread in threads:
                thread.stop()
    print(f"{count} idle mount mirrors of {files} files, {seconds:.0f} s: "
          f"{cpu * 1000:.0f} ms CPU ({cpu / seconds * 100:.2f}% of a core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mirrors", type=int, default=4)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    bench_world(args.seconds)
    bench_mirrors(args.seconds, args.mirrors, args.files)


if __name__ == "__main__":
    main()
