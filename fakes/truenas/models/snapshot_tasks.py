"""Periodic snapshot tasks, firing on the virtual clock.

Facts followed (reference/truenas-api.md §4 Periodic snapshot tasks; pool.snapshottask.create.json):
- fields `dataset, recursive, exclude, lifetime_value (2), lifetime_unit (WEEK),
  naming_schema ("auto-%Y-%m-%d_%H-%M"), allow_empty (true), enabled (true),
  schedule`; entries add `id`, `vmware_sync` and `state`;
- `pool.snapshottask.run <id>` (not a job in 25.10) takes a snapshot now;
  `pool.snapshottask.delete <id> {fixate_removal_date}` returns true;
- zettarepl names each snapshot by the naming schema at the firing time and, on
  every run, destroys the task's snapshots (names that parse with its schema) whose
  parsed time is older than the lifetime; with allow_empty false a run that would
  snapshot an unchanged dataset is skipped.
Chosen: `state` is `{"state": "PENDING"}` before the first run, then
`{"state": "FINISHED", "datetime": $date, "last_snapshot": id}` or
`{"state": "ERROR", "datetime", "error"}` (the real state dict is zettarepl's and
was not checked). Validation attributes use the `periodic_snapshot_create.` /
`periodic_snapshot_update.` prefix middleware's plugin uses. A firing that falls
due while the clock jumps ahead is taken at its scheduled virtual time, so a jump of
two days takes 48 hourly snapshots, each named by its own hour; the runs that fall
before anything else happens on the clock are computed at once (`_take_all`).
"""

from __future__ import annotations

import errno
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models import cron, datasets, snapshots

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool
    from fakes.truenas.models.storage import NodeStorage

DEFAULTS: dict[str, Any] = {
    "recursive": False, "exclude": [], "lifetime_value": 2, "lifetime_unit": "WEEK",
    "naming_schema": "auto-%Y-%m-%d_%H-%M", "allow_empty": True, "enabled": True,
}
SCHEDULE_DEFAULTS = {"minute": "00", "hour": "*", "dom": "*", "month": "*", "dow": "*",
                     "begin": "00:00", "end": "23:59"}
UNITS = ("HOUR", "DAY", "WEEK", "MONTH", "YEAR")


@dataclass
class SnapshotTask:
    id: int
    config: dict
    state: dict = field(default_factory=lambda: {"state": "PENDING"})
    paused_by_export: bool = False
    generation: int = 0

    def entry(self) -> dict:
        return {"id": self.id, **self.config, "exclude": list(self.config["exclude"]),
                "schedule": dict(self.config["schedule"]), "vmware_sync": False,
                "state": dict(self.state)}


class SnapshotTasks:
    def __init__(self, storage: NodeStorage) -> None:
        self.storage = storage
        self.tasks: dict[int, SnapshotTask] = {}
        self._ids = itertools.count(1)

    # --- CRUD --------------------------------------------------------------
    def _validate(self, config: dict, prefix: str) -> None:
        verrors = ValidationErrors()
        if self.storage.find_dataset(config["dataset"]) is None:
            verrors.add(f"{prefix}.dataset", "Dataset not found", errno.ENOENT)
        problem = cron.schema_problem(config["naming_schema"])
        if problem:
            verrors.add(f"{prefix}.naming_schema", problem)
        if config["exclude"] and not config["recursive"]:
            verrors.add(f"{prefix}.exclude", "Excluding datasets is not necessary for "
                        "non-recursive periodic snapshot tasks")
        if config["lifetime_unit"] not in UNITS:
            verrors.add(f"{prefix}.lifetime_unit", f"Must be one of {', '.join(UNITS)}")
        if config["lifetime_value"] < 1:
            verrors.add(f"{prefix}.lifetime_value", "Must be at least 1")
        for name in ("minute", "hour", "dom", "month", "dow"):
            try:
                cron.parse_field(name, config["schedule"][name])
            except ValueError as error:
                verrors.add(f"{prefix}.schedule.{name}", f"Invalid cron field: {error}")
        for name in ("begin", "end"):
            try:
                cron.parse_hhmm(config["schedule"][name])
            except ValueError as error:
                verrors.add(f"{prefix}.schedule.{name}", str(error))
        verrors.check()

    def create(self, data: dict) -> SnapshotTask:
        config = {**DEFAULTS, **{k: v for k, v in data.items() if k != "schedule"}}
        config["schedule"] = {**SCHEDULE_DEFAULTS, **(data.get("schedule") or {})}
        self._validate(config, "periodic_snapshot_create")
        task = SnapshotTask(id=next(self._ids), config=config)
        self.tasks[task.id] = task
        self._arm(task)
        return task

    def get(self, task_id: int) -> SnapshotTask | None:
        return self.tasks.get(task_id)

    def update(self, task: SnapshotTask, data: dict) -> SnapshotTask:
        config = {**task.config, **{k: v for k, v in data.items() if k != "schedule"}}
        config["schedule"] = {**task.config["schedule"], **(data.get("schedule") or {})}
        self._validate(config, "periodic_snapshot_update")
        task.config = config
        self._arm(task)
        return task

    def delete(self, task: SnapshotTask) -> None:
        task.generation += 1
        del self.tasks[task.id]

    def run(self, task: SnapshotTask) -> None:
        self._take(task, self.storage.now())

    # --- export / import ---------------------------------------------------
    def _on_pool(self, task: SnapshotTask, pool_name: str) -> bool:
        dataset = task.config["dataset"]
        return dataset == pool_name or dataset.startswith(pool_name + "/")

    def pool_leaving(self, pool: Pool, delete: bool) -> None:
        for task in list(self.tasks.values()):
            if self._on_pool(task, pool.name):
                if delete:
                    self.delete(task)
                elif task.config["enabled"]:
                    task.config["enabled"] = False
                    task.paused_by_export = True
                    task.generation += 1

    def pool_arrived(self, pool: Pool) -> None:
        for task in self.tasks.values():
            if task.paused_by_export and self._on_pool(task, pool.name):
                task.config["enabled"] = True
                task.paused_by_export = False
                self._arm(task)

    # --- the clock ---------------------------------------------------------
    def _arm(self, task: SnapshotTask, after: float | None = None) -> None:
        task.generation += 1
        if not task.config["enabled"]:
            return
        schedule = cron.Schedule.parse(task.config["schedule"])
        due = schedule.next_after(self.storage.now() if after is None else after)
        if due is None:
            return
        generation = task.generation
        clock = self.storage.node.clock
        clock.call_later(due - clock.now(), lambda: self._fire(task, generation, due))

    def _fire(self, task: SnapshotTask, generation: int, due: float) -> None:
        if (self.storage.dead or task.generation != generation
                or self.tasks.get(task.id) is not task):
            return
        times = self._quiet_firings(task, due)
        if len(times) > 1 and self._take_all(task, times):
            self._arm(task, after=times[-1])
            return
        self._take(task, due)
        self._arm(task, after=due)

    def _quiet_firings(self, task: SnapshotTask, due: float) -> list[float]:
        """`due` and the task's later firings that fall before anything else happens
        on the clock (all of them, in a jump of days with nothing else scheduled)."""
        until = self.storage.node.clock.quiet_until()
        times = [due]
        if until <= due:
            return times
        schedule = cron.Schedule.parse(task.config["schedule"])
        following = schedule.next_after(due)
        while following is not None and following < until:
            times.append(following)
            following = schedule.next_after(following)
        return times

    def _take(self, task: SnapshotTask, at: float) -> None:
        """One run: a snapshot named for `at`, then retention, as zettarepl does."""
        config = task.config
        found = self.storage.find_dataset(config["dataset"])
        try:
            if found is None:
                raise CallError(f"Dataset {config['dataset']} does not exist", errno.ENOENT)
            pool, rel = found
            name = cron.format_name(config["naming_schema"], at)
            created = None
            if (snapshots.key(rel, name) not in pool.meta["snapshots"]
                    and (config["allow_empty"] or self._changed(pool, rel, config))):
                snapshots.create(pool, rel, name, recursive=config["recursive"],
                                 exclude=config["exclude"], now=at, task_id=task.id)
                created = f"{pool.full_name(rel)}@{name}"
            self._retention(pool, rel, config, at)
            pool.commit()
        except CallError as error:
            task.state = {"state": "ERROR", "datetime": Timestamp(at), "error": error.message}
            return
        task.state = {"state": "FINISHED", "datetime": Timestamp(at),
                      "last_snapshot": created}
        self._replicate(task)

    def _changed(self, pool: Pool, rel: str, config: dict) -> bool:
        ours = [k for k in snapshots.of_dataset(pool, rel)
                if cron.parse_name(config["naming_schema"], k.split("@", 1)[1]) is not None]
        if not ours:
            return True
        last = pool.meta["snapshots"][ours[-1]]["files"]
        return last != pool.meta["datasets"][rel]["files"]

    def _take_all(self, task: SnapshotTask, times: list[float]) -> bool:
        """Every run at `times` at once (nothing else happens between them), leaving
        what running them one by one leaves: the snapshots retention would keep at
        the last run, each as its own run made it (name, creation time, createtxg),
        the txg one per run, the objects freed, and the task's state of the last
        run; the snapshots retention removes before the end are never made, and the
        metadata is written once. False when a run might fail or collide with a
        snapshot that exists (the caller then takes the first run alone).
        tests/fakes/truenas/test_snapshot_jumps.py compares it with the runs one by one."""
        config, last = task.config, times[-1]
        found = self.storage.find_dataset(config["dataset"])
        if found is None:      # every run fails the same way; the last one's error shows
            task.state = {"state": "ERROR", "datetime": Timestamp(last),
                          "error": f"Dataset {config['dataset']} does not exist"}
            return True
        pool, rel = found
        if not config["allow_empty"] or pool.status == "UNAVAIL":
            return False        # whether a run snapshots depends on the runs before it
        schema = config["naming_schema"]
        names = [cron.format_name(schema, at) for at in times]
        made = [rel]
        if config["recursive"]:
            excluded = set(config["exclude"])
            made += [d for d in datasets.descendants(pool, rel)
                     if pool.full_name(d) not in excluded]
        snaps = pool.meta["snapshots"]
        if len(set(names)) < len(names) or any(
                snapshots.key(target, name) in snaps for name in names for target in made):
            return False
        keep_from = [cron.lifetime_start(at, config["lifetime_value"], config["lifetime_unit"])
                     for at in times]
        # A snapshot made by run i is judged by runs i..n; one that was there before,
        # by every run (a MONTH lifetime need not grow with time: Mar 31 -> Feb 28).
        latest_keep = list(keep_from)
        for i in range(len(times) - 2, -1, -1):
            latest_keep[i] = max(latest_keep[i], latest_keep[i + 1])
        self._retention_before(pool, rel, config, latest_keep[0])
        first_txg = pool.meta["txg"]
        for i, (at, name) in enumerate(zip(times, names, strict=True)):
            taken = cron.parse_name(schema, name)
            if taken is not None and taken < latest_keep[i]:
                continue
            pool.meta["txg"] = first_txg + i          # run i's snapshot gets txg + i + 1
            snapshots.create(pool, rel, name, recursive=config["recursive"],
                             exclude=config["exclude"], now=at, task_id=task.id)
        pool.meta["txg"] = first_txg + len(times) - 1
        pool.commit()
        task.state = {"state": "FINISHED", "datetime": Timestamp(last),
                      "last_snapshot": f"{pool.full_name(rel)}@{names[-1]}"}
        self._replicate(task)       # once: the run sends every snapshot that is new
        return True

    def _replicate(self, task: SnapshotTask) -> None:
        """Bound `auto` replication tasks run after their snapshot task
        (models/replication.py)."""
        from fakes.truenas.models import replication

        replication.after_snapshot_task(self.storage.node, task.id)

    def _retention(self, pool: Pool, rel: str, config: dict, at: float) -> None:
        keep_from = cron.lifetime_start(at, config["lifetime_value"], config["lifetime_unit"])
        self._retention_before(pool, rel, config, keep_from)

    def _retention_before(self, pool: Pool, rel: str, config: dict, keep_from: float) -> None:
        targets = [rel] + (datasets.descendants(pool, rel) if config["recursive"] else [])
        for target in targets:
            for snap_key in snapshots.of_dataset(pool, target):
                taken = cron.parse_name(config["naming_schema"], snap_key.split("@", 1)[1])
                if (taken is not None and taken < keep_from
                        and not snapshots.clones_of(pool, [snap_key])):
                    del pool.meta["snapshots"][snap_key]

    def retention_of(self, pool: Pool, snap_key: str) -> dict | None:
        """`retention` for pool.snapshot.query's extra.retention: when a task drops it."""
        name = snap_key.split("@", 1)[1]
        dataset = pool.full_name(snap_key.split("@", 1)[0])
        for task in self.tasks.values():
            config = task.config
            covers = dataset == config["dataset"] or (
                config["recursive"] and dataset.startswith(config["dataset"] + "/"))
            taken = cron.parse_name(config["naming_schema"], name)
            if covers and taken is not None:
                now = taken
                drop = now + (now - cron.lifetime_start(now, config["lifetime_value"],
                                                        config["lifetime_unit"]))
                return {"datetime": Timestamp(drop), "source": "periodic_snapshot_task",
                        "periodic_snapshot_task_id": task.id}
        return None
