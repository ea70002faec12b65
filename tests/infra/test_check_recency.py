"""check's snapshot recency: the newest snapshot is at most two runs old, and a node
that has just come up gets the grace of two runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.check import _recency, schedule_interval
from infra.report import CheckReport
from infra.site import SnapshotPolicy

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HOURLY = SnapshotPolicy(dataset="data")
NIGHTLY = SnapshotPolicy(dataset="data", minute="30", hour="3")


@pytest.mark.parametrize(("policy", "interval"), [
    (HOURLY, timedelta(hours=1)),
    (SnapshotPolicy(dataset="d", hour="*/6"), timedelta(hours=6)),
    (NIGHTLY, timedelta(days=1)),
    (SnapshotPolicy(dataset="d", hour="2", dow="0"), timedelta(days=7)),
    (SnapshotPolicy(dataset="d", hour="2", dom="1"), timedelta(days=31)),
])
def test_schedule_interval(policy: SnapshotPolicy, interval: timedelta) -> None:
    assert schedule_interval(policy) == interval


def _snapshot(age: timedelta) -> dict:
    return {"properties": {"creation": {"parsed": NOW - age}}}


@pytest.mark.parametrize(("policy", "ages", "uptime_h", "ok"), [
    (HOURLY, [timedelta(minutes=30)], 100, True),
    (HOURLY, [timedelta(hours=3), timedelta(hours=5)], 100, False),
    (NIGHTLY, [timedelta(hours=30)], 100, True),
    (HOURLY, [], 1, True),       # just booted: no snapshot yet is fine
    (HOURLY, [], 5, False),      # up for hours and still none: the task is not running
])
def test_recency(policy: SnapshotPolicy, ages: list, uptime_h: int, ok: bool) -> None:
    report = CheckReport("s", "fake")
    _recency(report, "tank/data", policy, [_snapshot(a) for a in ages],
             {"datetime": NOW, "uptime_seconds": uptime_h * 3600})
    assert report.ok is ok, report.findings
