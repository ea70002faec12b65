"""Benchmark: what the spec (`pytest features/`) or the whole test command costs.

Runs pytest in a child process (N times, median) and prints its wall time and CPU
time (the child's and its children's: xdist workers, fake worlds, pebble, child runs),
the outcome counts, the 10 slowest scenarios and tests (setup + call + teardown), the
10 heaviest files, each worker's busy and idle time, and every clock jump the fake
worlds made: how far, how many events fired, its wall and CPU time. On a shared
machine wall time grows with the load and CPU time much less: compare both, measured
under the same load.

Run inside a private network namespace (the fake worlds bind loopback addresses):
  /work/tools/isolated .venv/bin/python -m bench.bench_suite [--runs 3] [--all] [-- ARGS]
`--all` runs what `./dev test` runs (every test, `-n auto --dist loadfile` unless ARGS
say `-n`); ARGS go to pytest (`-- -n 0`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(paths: list[str], extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
        out = Path(scratch) / "records.jsonl"
        env = {**os.environ, "BENCH_SUITE_OUT": str(out)}
        cpu, wall = _children_cpu(), time.monotonic()
        child = subprocess.run(
            [sys.executable, "-m", "pytest", *paths, "-q", "-rfE", "-p",
             "bench.suite_plugin", *extra], cwd=ROOT, env=env, capture_output=True, text=True)
        wall, cpu = time.monotonic() - wall, _children_cpu() - cpu
        records = [json.loads(line) for line in out.read_text().splitlines()] \
            if out.exists() else []
    tail = [line for line in child.stdout.splitlines() if line.strip()][-1:] or [""]
    failed = [line for line in child.stdout.splitlines()
              if line.startswith(("FAILED", "ERROR"))]
    if failed:      # the whole output, to read why
        kept = Path(tempfile.mkstemp(prefix="bench-suite-", suffix=".txt")[1])
        kept.write_text(child.stdout + child.stderr)
        failed.append(f"(the run's output: {kept})")
    return {"wall": wall, "cpu": cpu, "returncode": child.returncode, "summary": tail[0],
            "failed": failed, "records": records}


def report(runs: list[dict]) -> None:
    walls = [r["wall"] for r in runs]
    cpus = [r["cpu"] for r in runs]
    print(f"runs: {len(runs)}  load average now: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    for i, run in enumerate(runs, 1):
        print(f"  run {i}: wall {run['wall']:6.1f} s  cpu {run['cpu']:6.1f} s  "
              f"exit {run['returncode']}  {run['summary']}")
        for line in run["failed"]:
            print(f"    {line}")
    print(f"median: wall {statistics.median(walls):.1f} s  cpu {statistics.median(cpus):.1f} s")

    last = runs[-1]["records"]
    per_test: dict[str, float] = defaultdict(float)
    for record in last:
        if "when" in record:
            per_test[record["test"]] += record["duration"]
    scenarios = sorted(((d, t) for t, d in per_test.items() if t.startswith("features/")),
                       reverse=True)
    tests = sorted(((d, t) for t, d in per_test.items()), reverse=True)
    print("slowest 10 scenarios (setup + call + teardown, last run):"
          if scenarios else "no scenario ran (last run)")
    for duration, test in scenarios[:10]:
        print(f"  {duration:6.2f} s  {test}")
    if len(tests) > len(scenarios):
        print("slowest 10 tests (last run):")
        for duration, test in tests[:10]:
            print(f"  {duration:6.2f} s  {test}")
    _per_worker(last, runs[-1]["wall"])
    files: dict[str, float] = defaultdict(float)
    for test, duration in per_test.items():
        files[test.split("::")[0]] += duration
    print("heaviest 10 files (sum of their tests, last run):")
    for test_file, duration in sorted(files.items(), key=lambda f: -f[1])[:10]:
        print(f"  {duration:6.1f} s  {test_file}")
    jumps = [r for r in last if "jump" in r]
    print(f"clock jumps (last run): {len(jumps)}, "
          f"{sum(j['fired'] for j in jumps)} events fired")
    for jump in sorted(jumps, key=lambda j: -j["fired"])[:10]:
        print(f"  {jump['jump'] / 86400:8.2f} days  {jump['fired']:7d} events  "
              f"wall {jump['wall']:6.2f} s  cpu {jump['cpu']:6.2f} s  {jump['test']}")


def _per_worker(records: list[dict], wall: float) -> None:
    """Each worker's busy time (the sum of its tests' phases) against the span of the
    whole run's tests, and when it ran its last test: a worker that ends early idled."""
    timed = [r for r in records if "when" in r and "start" in r]
    if not timed:
        return
    begin = min(r["start"] for r in timed)
    end = max(r["stop"] for r in timed)
    workers: dict[str, list[dict]] = defaultdict(list)
    for record in timed:
        workers[record["worker"]].append(record)
    print(f"workers (last run): tests from first start to last stop {end - begin:.1f} s, "
          f"{wall - (end - begin):.1f} s of the wall outside them (start-up, collection)")
    for worker, mine in sorted(workers.items()):
        busy = sum(r["stop"] - r["start"] for r in mine)
        last = max(r["stop"] for r in mine) - begin
        files = len({r["test"].split("::")[0] for r in mine})
        print(f"  {worker}: busy {busy:6.1f} s  last test ended at {last:6.1f} s  "
              f"idle {end - begin - busy:6.1f} s  files {files}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--all", action="store_true", help="every test, not only features/")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    paths = [] if args.all else ["features/"]
    extra = list(args.pytest_args)
    if args.all and not any(arg.startswith(("-n", "--numprocesses")) for arg in extra):
        extra = ["-n", "auto", "--dist", "loadfile", *extra]     # as ./dev test runs it
    runs = [one_run(paths, extra) for _ in range(args.runs)]
    report(runs)


if __name__ == "__main__":
    main()
