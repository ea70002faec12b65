"""The site's periodic snapshot tasks (`[[snapshots]]`): one per dataset and naming
schema, created or updated to the site file's schedule and retention."""

from __future__ import annotations

from infra.change import Change
from infra.events import Reporter
from infra.site import Site, SnapshotPolicy
from infra.truenas.client import TrueNASClient

CREATE = "pool.snapshottask.create"
UPDATE = "pool.snapshottask.update"


def find(client: TrueNASClient) -> list[dict]:
    return client.call("pool.snapshottask.query")


def desired(site: Site, policy: SnapshotPolicy) -> dict:
    return {
        "dataset": f"{site.truenas.pool}/{policy.dataset}",
        "recursive": policy.recursive, "exclude": [],
        "lifetime_value": policy.lifetime_value, "lifetime_unit": policy.lifetime_unit,
        "naming_schema": policy.naming_schema, "allow_empty": True, "enabled": True,
        "schedule": {"minute": policy.minute, "hour": policy.hour, "dom": policy.dom,
                     "month": policy.month, "dow": policy.dow,
                     "begin": "00:00", "end": "23:59"},
    }


def _mine(tasks: list[dict], body: dict) -> dict | None:
    found = [t for t in tasks if t["dataset"] == body["dataset"]
             and t["naming_schema"] == body["naming_schema"]]
    return found[0] if found else None


def same(task: dict, body: dict) -> bool:
    keys = ("recursive", "lifetime_value", "lifetime_unit", "naming_schema", "enabled")
    if any(task.get(k) != body[k] for k in keys):
        return False
    schedule = task.get("schedule", {})
    return all(str(schedule.get(k)) == str(v) for k, v in body["schedule"].items()
               if k in ("minute", "hour", "dom", "month", "dow"))


def diff(site: Site, tasks: list[dict]) -> list[Change]:
    changes = []
    for policy in site.snapshots:
        body = desired(site, policy)
        task = _mine(tasks, body)
        if task is None:
            changes.append(Change("create_snapshot_task", body["dataset"],
                                  body["naming_schema"], (CREATE,)))
        elif not same(task, body):
            changes.append(Change("update_snapshot_task", body["dataset"],
                                  body["naming_schema"], (UPDATE,)))
    return changes


def create_or_update(client: TrueNASClient, site: Site, policy: SnapshotPolicy,
                     tasks: list[dict], reporter: Reporter) -> str | None:
    body = desired(site, policy)
    task = _mine(tasks, body)
    if task is None:
        change = f"create snapshot task on {body['dataset']}"
        reporter.step(change)
        client.call(CREATE, body)
        return change
    if not same(task, body):
        change = f"update snapshot task on {body['dataset']}"
        reporter.step(change)
        client.call(UPDATE, task["id"], body)
        return change
    return None


def destroy(client: TrueNASClient, task: dict, reporter: Reporter) -> str:
    """Delete one periodic snapshot task (the snapshots it took stay)."""
    change = f"delete snapshot task on {task['dataset']} ({task['naming_schema']})"
    reporter.step(change)
    client.call("pool.snapshottask.delete", task["id"])
    return change
