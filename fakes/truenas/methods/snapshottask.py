"""pool.snapshottask.* (reference/truenas-api.md §4 Periodic snapshot tasks;
pool.snapshottask.create.json).

create/update return the entry; delete returns true; run (not a job in 25.10)
takes a snapshot now and returns null.
"""

from __future__ import annotations

from fakes.truenas.methods.common import crud_event, instance_not_found, query_methods
from fakes.truenas.methods.params import (
    EMPTY,
    MISSING,
    NOT_GIVEN,
    Bool,
    Field,
    Int,
    List,
    Obj,
    Str,
    parse,
)
from fakes.truenas.models.snapshot_tasks import DEFAULTS, SCHEDULE_DEFAULTS, UNITS

SCHEDULE = Obj({name: Field(Str(), default) for name, default in SCHEDULE_DEFAULTS.items()})


def _task_fields(with_defaults: bool) -> dict[str, Field]:
    def default(name):
        if not with_defaults:
            return NOT_GIVEN
        value = DEFAULTS[name]
        return (lambda: list(value)) if isinstance(value, list) else value

    return {
        "recursive": Field(Bool(), default("recursive")),
        "exclude": Field(List(Str()), default("exclude")),
        "lifetime_value": Field(Int(), default("lifetime_value")),
        "lifetime_unit": Field(Str(list(UNITS)), default("lifetime_unit")),
        "naming_schema": Field(Str(), default("naming_schema")),
        "allow_empty": Field(Bool(), default("allow_empty")),
        "enabled": Field(Bool(), default("enabled")),
        "schedule": Field(SCHEDULE, EMPTY if with_defaults else NOT_GIVEN),
    }


CREATE = Obj({"dataset": Field(Str()), **_task_fields(True)})
UPDATE = Obj({"dataset": Field(Str(), NOT_GIVEN), **_task_fields(False)})
DELETE_OPTIONS = Obj({"fixate_removal_date": Field(Bool(), False)})


def _entries(node, extra: dict | None = None):
    return [task.entry() for task in sorted(node.storage.tasks.tasks.values(),
                                            key=lambda t: t.id)]


query, get_instance = query_methods(_entries, "id", Int(), "Periodic snapshot task")


def _task(node, task_id):
    task = node.storage.tasks.get(task_id)
    if task is None:
        raise instance_not_found("Periodic snapshot task", task_id)
    return task


def create(node, params, ctx):
    (data,) = parse(params, [("data", CREATE, MISSING)])
    entry = node.storage.tasks.create(data).entry()
    crud_event(node, "pool.snapshottask", "create", entry)
    return entry


def update(node, params, ctx):
    task_id, data = parse(params, [("id", Int(), MISSING), ("data", UPDATE, MISSING)])
    entry = node.storage.tasks.update(_task(node, task_id), data).entry()
    crud_event(node, "pool.snapshottask", "update", entry, task_id)
    return entry


def delete(node, params, ctx):
    task_id, _options = parse(params, [("id", Int(), MISSING),
                                       ("options", DELETE_OPTIONS, EMPTY)])
    node.storage.tasks.delete(_task(node, task_id))
    crud_event(node, "pool.snapshottask", "delete", True, task_id)
    return True


def run(node, params, ctx):
    (task_id,) = parse(params, [("id", Int(), MISSING)])
    node.storage.tasks.run(_task(node, task_id))
    return None


METHODS = {
    "pool.snapshottask.query": query,
    "pool.snapshottask.get_instance": get_instance,
    "pool.snapshottask.create": create,
    "pool.snapshottask.update": update,
    "pool.snapshottask.delete": delete,
    "pool.snapshottask.run": run,
}
