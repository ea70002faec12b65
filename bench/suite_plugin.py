"""A pytest plugin for bench/bench_suite.py: what each test cost and what each clock
jump fired, appended as JSON lines to the file env BENCH_SUITE_OUT names.

Loaded with `-p bench.suite_plugin` (xdist passes it to every worker): the test
durations come from the process that reports outcomes (the controller under xdist),
the clock jumps from the process whose fake world jumped. Each test record names the
worker that ran it and when its phase started and stopped (epoch seconds), for the
per-worker timeline. Without BENCH_SUITE_OUT it records nothing.
"""

from __future__ import annotations

import json
import os
import time

import pytest

OUT = os.environ.get("BENCH_SUITE_OUT")


def _write(record: dict) -> None:
    if OUT:
        with open(OUT, "a") as handle:        # one short line per write: O_APPEND
            handle.write(json.dumps(record) + "\n")


def _watch_jumps() -> None:
    from fakes.clock import VirtualClock

    advance = VirtualClock.advance

    def recorded(self: VirtualClock, seconds: float) -> int:
        wall, cpu = time.perf_counter(), time.process_time()
        fired = advance(self, seconds)
        _write({"jump": seconds, "fired": fired, "wall": time.perf_counter() - wall,
                "cpu": time.process_time() - cpu, "test": os.environ.get(
                    "PYTEST_CURRENT_TEST", "").split(" ")[0]})
        return fired

    VirtualClock.advance = recorded


_reports = {"on": False}


def pytest_configure(config: pytest.Config) -> None:
    if OUT:
        _watch_jumps()
        # under xdist a worker's reports reach the controller, which records them
        _reports["on"] = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _reports["on"]:
        node = getattr(report, "node", None)      # xdist: the worker that ran it
        worker = getattr(node, "gateway", None)
        _write({"test": report.nodeid, "when": report.when, "outcome": report.outcome,
                "duration": report.duration, "start": report.start, "stop": report.stop,
                "worker": worker.id if worker is not None else "main"})
