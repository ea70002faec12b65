"""A clock jump computes periodic snapshot tasks at once, and leaves exactly what
running them one by one leaves.

Two identical nodes (same clock start, same random ids) get the same datasets, files,
hand-made snapshots (one with a clone), snapshot tasks and clock jumps; one clock
coalesces (fakes/clock.py `quiet_until`, snapshot_tasks `_take_all`), the other fires
every run alone. Afterwards the pools' metadata, the tasks' entries and every byte on
the member volumes (metadata, labels, manifests, objects) must be the same.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.clock import VirtualClock
from fakes.truenas.models import cron, datasets, snapshots
from tests.budget import examples
from tests.fakes.truenas.test_storage_models import GIB, World, mirror

# Wall time must not move these clocks: at this speed a second of it is far below
# the resolution of a 2026 timestamp, so both runs see the same virtual times.
STILL = 1e-12
START = datetime(2026, 1, 30, 22, 17, tzinfo=UTC).timestamp()     # across a month's end
SCHEMA = "auto-%Y-%m-%d_%H-%M"

schedules = st.fixed_dictionaries({
    "minute": st.sampled_from(["0", "*/20", "30", "5,45"]),
    "hour": st.sampled_from(["*", "*/6", "1-5", "3", "22,23"]),
    "dom": st.sampled_from(["*", "*", "1,31"]),
    "dow": st.sampled_from(["*", "*", "1-5"]),
    "begin": st.sampled_from(["00:00", "00:00", "22:00"]),
    "end": st.sampled_from(["23:59", "23:59", "02:00"]),
})
tasks = st.fixed_dictionaries({
    "dataset": st.sampled_from(["tank/d", "tank", "tank/e"]),
    "recursive": st.booleans(),
    "allow_empty": st.sampled_from([True, True, False]),
    "lifetime_value": st.integers(1, 3),
    "lifetime_unit": st.sampled_from(["HOUR", "DAY", "WEEK", "MONTH"]),
    "schedule": schedules,
})
steps = st.lists(st.tuples(
    st.floats(600, 2 * 86400),                                     # a jump, in seconds
    st.sampled_from([None, "/mnt/tank/d/f", "/mnt/tank/d/c/g", "/mnt/tank/e/h"]),
), min_size=1, max_size=4)


@contextlib.contextmanager
def _same_random_ids():
    """Object ids, guids and partition uuids from a counter, so that two worlds built
    the same way are the same byte for byte."""
    counter = itertools.count(1)

    def next_uuid() -> uuid.UUID:
        return uuid.UUID(int=next(counter))

    with mock.patch("fakes.truenas.models.objects.uuid.uuid4", next_uuid), \
            mock.patch("fakes.truenas.models.topology.uuid.uuid4", next_uuid), \
            mock.patch("fakes.truenas.models.topology.secrets.randbits",
                       lambda _bits: next(counter)):
        yield


def _run(root: Path, coalesce: bool, configs: list[dict], early: list[int],
         plan: list[tuple[float, str | None]]) -> tuple[dict, list[dict], dict[str, bytes]]:
    world = World(root)
    world.clock = VirtualClock(speed=STILL, start=START, coalesce=coalesce)
    with _same_random_ids():
        node = world.node()
        for name in ("vol-a", "vol-b"):
            node.plug_disk(name, GIB, world.volume(name))
        storage = node.storage
        pool = mirror(node)
        now = storage.now()
        for rel in ("d", "d/c", "d/c2", "e"):
            datasets.create(pool, rel, dataset_type="FILESYSTEM", local={}, user_props={},
                            create_ancestors=False, now=now)
        pool.commit()
        storage.write_file("/mnt/tank/d/f", b"first")
        # Snapshots made by hand: some named like a task's (retention judges them by
        # their name), one of them cloned (never destroyed), one that is not.
        for i, minutes in enumerate(early):
            name = cron.format_name(SCHEMA, now - 60 * minutes)
            snapshots.create(pool, "d", name, recursive=True, exclude=[], now=now, task_id=None)
            if i == 0:
                snapshots.clone(pool, f"d@{name}", "clone", now, {})
        snapshots.create(pool, "d", "manual", recursive=False, exclude=[], now=now)
        pool.commit()
        made = [storage.tasks.create(dict(config)) for config in configs]
        for i, (seconds, path) in enumerate(plan):
            world.clock.advance(seconds)
            if path is not None:
                storage.write_file(path, f"step {i}".encode())
        files = {str(p.relative_to(root / "volumes")): p.read_bytes()
                 for p in sorted((root / "volumes").rglob("*")) if p.is_file()}
        return pool.meta, [task.entry() for task in made], files


@settings(max_examples=examples(fast=8, deep=25), deadline=None)
@given(configs=st.lists(tasks, min_size=1, max_size=2),
       early=st.lists(st.integers(1, 40 * 24 * 60), unique=True, max_size=3), plan=steps)
def test_a_jump_leaves_what_running_every_snapshot_task_run_leaves(configs, early, plan):
    root = Path(tempfile.mkdtemp(prefix="snapshot-jumps-"))
    try:
        fast = _run(root / "fast", True, configs, early, plan)
        slow = _run(root / "slow", False, configs, early, plan)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2].keys() == slow[2].keys()
    assert [k for k in fast[2] if fast[2][k] != slow[2][k]] == []


def test_a_jump_of_weeks_with_nothing_else_due_runs_the_task_once(tmp_path):
    """The point of it: 80 days of hourly snapshots kept for a day is one run."""
    world = World(tmp_path)
    world.clock = VirtualClock(speed=STILL, start=START)
    node = world.node()
    for name in ("vol-a", "vol-b"):
        node.plug_disk(name, GIB, world.volume(name))
    pool = mirror(node)
    task = node.storage.tasks.create({"dataset": "tank", "lifetime_value": 1,
                                      "lifetime_unit": "DAY", "naming_schema": SCHEMA,
                                      "schedule": {"minute": "0", "hour": "*"}})
    txg = pool.meta["txg"]
    assert world.clock.advance(80 * 86400) == 1
    assert pool.meta["txg"] == txg + 80 * 24
    kept = snapshots.of_dataset(pool, "")
    assert len(kept) == 25          # the last day's 24 hours, both ends included
    assert task.entry()["state"]["last_snapshot"] == f"tank@{kept[-1].split('@')[1]}"
