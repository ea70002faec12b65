"""replication.* (reference/truenas-api.md "Replication"; replication.*.json; middleware
plugins/replication.py and plugins/zettarepl.py @ af2c5ab).

create/update return the entry, delete returns true. `replication.run <id>` is a job
(`@job(logs=True)`) that fails with "Task is not enabled" / "Task is already
running" before anything moves; `replication.run_onetime {...}` runs a task that is
not stored. A scheduled run (bound snapshot task fired, or the task's own cron) is
the same job, started as zettarepl starts it: `replication.run(id, False)` with no
caller. The run itself (models/replication.py) goes on a thread of its own, with the
world's lock taken only around model reads and writes: the transfer is real bytes
over a real SSH connection to the other node (fakes/truenas/ssh.py), which needs
that lock too. Progress: the job's `progress` ("Sending 1 of 2: pool/ds@snap (n B /
m B)") and the task's `state.progress`, as zettarepl's observer reports them.
"""

from __future__ import annotations

import threading
from typing import Any

from fakes.truenas.errors import CallError
from fakes.truenas.methods.common import crud_event, instance_not_found, query_methods, submit
from fakes.truenas.methods.params import (
    MISSING,
    NOT_GIVEN,
    AnyValue,
    Bool,
    Field,
    Int,
    List,
    Obj,
    Str,
    parse,
)
from fakes.truenas.models import keychain, replication, zfs_cli, zstream

CRON = Obj({"minute": Field(Str(), "00"), "hour": Field(Str(), "*"), "dom": Field(Str(), "*"),
            "month": Field(Str(), "*"), "dow": Field(Str(), "*"),
            "begin": Field(Str(), "00:00"), "end": Field(Str(), "23:59")}, nullable=True)
_FIELDS: dict[str, Field] = {
    "name": Field(Str(min_length=1)),
    "direction": Field(Str(["PUSH", "PULL"])),
    "transport": Field(Str(["SSH", "SSH+NETCAT", "LOCAL"])),
    "ssh_credentials": Field(Int(nullable=True), None),
    "netcat_active_side": Field(Str(["LOCAL", "REMOTE"], nullable=True), None),
    "netcat_active_side_listen_address": Field(Str(nullable=True), None),
    "netcat_active_side_port_min": Field(Int(nullable=True), None),
    "netcat_active_side_port_max": Field(Int(nullable=True), None),
    "netcat_passive_side_connect_address": Field(Str(nullable=True), None),
    "sudo": Field(Bool(), False),
    "source_datasets": Field(List(Str())),
    "target_dataset": Field(Str()),
    "recursive": Field(Bool()),
    "exclude": Field(List(Str()), list),
    "properties": Field(Bool(), True),
    "properties_exclude": Field(List(Str(min_length=1)), list),
    "properties_override": Field(AnyValue(), dict),
    "replicate": Field(Bool(), False),
    "encryption": Field(Bool(), False),
    "encryption_inherit": Field(Bool(nullable=True), None),
    "encryption_key": Field(Str(nullable=True), None),
    "encryption_key_format": Field(Str(["HEX", "PASSPHRASE"], nullable=True), None),
    "encryption_key_location": Field(Str(nullable=True), None),
    "periodic_snapshot_tasks": Field(List(Int()), list),
    "naming_schema": Field(List(Str()), list),
    "also_include_naming_schema": Field(List(Str()), list),
    "name_regex": Field(Str(nullable=True, min_length=1), None),
    "auto": Field(Bool()),
    "schedule": Field(CRON, None),
    "restrict_schedule": Field(CRON, None),
    "only_matching_schedule": Field(Bool(), False),
    "allow_from_scratch": Field(Bool(), False),
    "readonly": Field(Str(["SET", "REQUIRE", "IGNORE"]), "SET"),
    "hold_pending_snapshots": Field(Bool(), False),
    "retention_policy": Field(Str(["SOURCE", "CUSTOM", "NONE"])),
    "lifetime_value": Field(Int(nullable=True, minimum=1), None),
    "lifetime_unit": Field(Str(["HOUR", "DAY", "WEEK", "MONTH", "YEAR"], nullable=True), None),
    "lifetimes": Field(List(AnyValue()), list),
    "compression": Field(Str(["LZ4", "PIGZ", "PLZIP"], nullable=True), None),
    "speed_limit": Field(Int(nullable=True, minimum=1), None),
    "large_block": Field(Bool(), True),
    "embed": Field(Bool(), False),
    "compressed": Field(Bool(), True),
    "retries": Field(Int(minimum=1), 5),
    "logging_level": Field(Str(["DEBUG", "INFO", "WARNING", "ERROR"], nullable=True), None),
    "enabled": Field(Bool(), True),
}
CREATE = Obj(_FIELDS)
UPDATE = Obj({name: Field(f.spec, NOT_GIVEN) for name, f in _FIELDS.items()})
ONETIME = Obj({**{name: f for name, f in _FIELDS.items()
                  if name not in ("name", "auto", "schedule", "only_matching_schedule",
                                  "enabled")},
               "exclude_mountpoint_property": Field(Bool(), True),
               "only_from_scratch": Field(Bool(), False), "mount": Field(Bool(), True)})
REPORT_EVERY = 1024 * 1024          # bytes between progress reports


def _entries(node, extra=None):
    return [replication.entry(node, config) for config in replication.configs(node)]


query, get_instance = query_methods(_entries, "id", Int(), "Replication task")


def create(node, params, ctx):
    (data,) = parse(params, [("replication_create", CREATE, MISSING)])
    entry = replication.create(node, data)
    crud_event(node, "replication", "create", entry)
    return entry


def update(node, params, ctx):
    ident, data = parse(params, [("id", Int(), MISSING), ("replication_update", UPDATE, MISSING)])
    if replication.get_config(node, ident) is None:
        raise instance_not_found("Replication task", ident)
    entry = replication.update(node, ident, data)
    crud_event(node, "replication", "update", entry, ident)
    return entry


def delete(node, params, ctx):
    (ident,) = parse(params, [("id", Int(), MISSING)])
    if replication.get_config(node, ident) is None:
        raise instance_not_found("Replication task", ident)
    replication.delete(node, ident)
    crud_event(node, "replication", "delete", True, ident)
    return True


def run(node, params, ctx):
    (ident,) = parse(params, [("id", Int(), MISSING)])
    if replication.get_config(node, ident) is None:
        raise instance_not_found("Replication task", ident)
    return submit(node, ctx, "replication.run", [ident],
                  lambda job: _start(node, ident, job, really_run=True))


def run_onetime(node, params, ctx):
    (data,) = parse(params, [("replication_run_onetime", ONETIME, MISSING)])

    def start(job):
        config = {**replication.DEFAULTS, **data,
                  "name": f"Temporary replication task for job {job.id}", "schedule": None,
                  "only_matching_schedule": False, "auto": False, "enabled": True, "id": None}
        _launch(node, config, job)

    return submit(node, ctx, "replication.run_onetime", params, start)


def _start(node, ident: int, job, really_run: bool) -> None:
    config = replication.get_config(node, ident)
    if config is None:
        raise CallError(f"Replication task {ident} does not exist")
    state = replication.entry(node, config)["state"]
    if really_run:
        if not config["enabled"]:
            raise CallError("Task is not enabled")
        if state.get("state") == "RUNNING":
            raise CallError("Task is already running")
    elif state.get("state") == "RUNNING":
        job.succeed(None)               # the scheduler's run: one is enough
        return
    replication.set_state(node, ident, {"state": "RUNNING",
                                        "datetime": _timestamp(node)})
    replication._runtime(node)["jobs"][ident] = job
    _launch(node, dict(config), job)


def _timestamp(node):
    from fakes.truenas.ejson import Timestamp

    return Timestamp(node.storage.now())


def _launch(node, config: dict, job) -> None:
    threading.Thread(target=_work, args=(node, config, job), daemon=True,
                     name=f"replication-{node.address}-{config['id']}").start()


class LocalShell:
    """The LOCAL transport: the commands run on this very node, as root."""

    def __init__(self, node) -> None:
        self.node = node

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def exec(self, command, stdin=b"", on_sent=None):
        with self.node.lock:
            result = zfs_cli.run(self.node, "root", command, stdin)
        if on_sent is not None and stdin:
            on_sent(len(stdin))
        return result


def _shell(node, config: dict):
    from fakes.truenas import ssh

    if config["transport"] == "LOCAL":
        return LocalShell(node)
    credential = keychain.get(node, config["ssh_credentials"])
    if credential is None:
        raise CallError("SSH Credentials do not exist")
    attributes = credential["attributes"]
    pair = keychain.key_pair_with_private_key(node, attributes["private_key"])
    if pair is None:
        raise CallError(f"Private key {attributes['private_key']} does not exist")
    return ssh.SshShell(node, attributes["host"], attributes["port"], attributes["username"],
                        pair["attributes"]["private_key"], attributes["remote_host_key"],
                        attributes.get("connect_timeout", 10), sudo=config["sudo"])


def _work(node, config: dict, job) -> None:
    from fakes.truenas import ssh

    lock = node.lock
    ident = config["id"]
    last_report = [-REPORT_EVERY]

    def report(percent: float, text: str, progress: dict) -> None:
        sent = progress["bytes_sent"]
        if sent - last_report[0] < REPORT_EVERY and sent != progress["bytes_total"]:
            return
        last_report[0] = sent
        with lock:
            job.set_progress(percent, text)
            if ident is not None:
                replication.set_state(node, ident, {"state": "RUNNING",
                                                    "datetime": _timestamp(node),
                                                    "progress": progress})

    progress = replication.Progress(report)
    try:
        with lock:
            shell = _shell(node, config)
        with shell:
            last = replication.run(node, config, shell, lock, progress,
                                   speed_limit=config.get("speed_limit"))
    except (CallError, ssh.SshError, zstream.StreamError, OSError) as exc:
        message = exc.message if isinstance(exc, CallError) else str(exc)
        with lock:
            if ident is not None:
                replication.failed(node, ident, message, node.storage.now())
            job.logs_excerpt = message
            job.fail(CallError(message))
        return
    with lock:
        if ident is not None:
            replication.finished(node, ident, last, node.storage.now())
        job.set_progress(100, f"Sent {progress.snapshots_sent} snapshots, "
                              f"{progress.bytes_sent} B")
        job.result = None
        job.succeed(None)
    _sent_bytes(node).append(progress.bytes_sent)


def _sent_bytes(node) -> list:
    """Bytes each finished run sent, newest last (for the admin API and bench/)."""
    return node.__dict__.setdefault("_replication_bytes", [])


def _scheduled(node, ident: int) -> None:
    """zettarepl's scheduler starts `replication.run(id, False)` (plugins/zettarepl.py);
    a task still running is left to finish (zettarepl queues no second run of it)."""
    config = replication.get_config(node, ident)
    if config is None or replication.entry(node, config)["state"].get("state") == "RUNNING":
        return
    node.jobs.submit("replication.run", [ident, False],
                     lambda job: _start(node, ident, job, really_run=False))


replication.set_starter(_scheduled)

METHODS: dict[str, Any] = {
    "replication.query": query,
    "replication.get_instance": get_instance,
    "replication.create": create,
    "replication.update": update,
    "replication.delete": delete,
    "replication.run": run,
    "replication.run_onetime": run_onetime,
}
