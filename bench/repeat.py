"""Run the whole test command N times and count, per test that ever failed, its passes
and failures: a test that fails only sometimes is a defect to find.

Each run is `./dev test` (ruff, then every test, in parallel) with a JUnit report;
the script prints one line per run (exit code, wall and CPU time, pytest's closing line) and
then every test that failed at least once with its pass/fail counts.

Run inside a private network namespace:
  /work/tools/isolated .venv/bin/python -m bench.repeat [--runs 10] [-- PYTEST ARGS]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for child: the run, its workers,
    fake worlds and child runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def outcomes(junit: Path) -> dict[str, str]:
    """test id -> passed | failed | skipped, from a JUnit report."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            found[name] = "failed"
        elif case.find("skipped") is not None:
            found.setdefault(name, "skipped")
        else:
            found.setdefault(name, "passed")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    passes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    failed_runs = 0
    with tempfile.TemporaryDirectory(prefix="repeat-") as scratch:
        for run in range(1, args.runs + 1):
            junit = Path(scratch) / f"run-{run}.xml"
            start, cpu = time.monotonic(), _children_cpu()
            child = subprocess.run(["./dev", "test", "-q", f"--junitxml={junit}",
                                    *args.pytest_args], cwd=ROOT, capture_output=True,
                                   text=True, env=os.environ)
            wall, cpu = time.monotonic() - start, _children_cpu() - cpu
            lines = [line for line in child.stdout.splitlines() if line.strip()]
            print(f"run {run}: exit {child.returncode}  wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                  f"{lines[-1] if lines else child.stderr[-300:]}", flush=True)
            failed_runs += child.returncode != 0
            if not junit.exists():
                failures["(no report: the run did not get to the tests)"] += 1
                continue
            for test, outcome in outcomes(junit).items():
                if outcome == "failed":
                    failures[test] += 1
                elif outcome == "passed":
                    passes[test] += 1
    print(f"{args.runs - failed_runs} of {args.runs} runs passed")
    if failures:
        print("tests that failed at least once (passed / failed):")
        for test, count in failures.most_common():
            print(f"  {passes[test]:3d} / {count:3d}  {test}")
    else:
        print("no test failed")


if __name__ == "__main__":
    main()
