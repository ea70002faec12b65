"""Replication tasks and zettarepl's run of one, on the pools' real bytes.

Facts followed (reference/truenas-api.md "Replication"; middleware plugins/replication.py
and plugins/zettarepl.py @ af2c5ab; zettarepl replication/run.py,
replication/snapshots_to_send.py, dataset/data.py, replication/task/dataset.py @
bbf2526, stable/goldeye):
- fields and defaults are ReplicationCreate's (api/v25_10_2/replication.py); entries
  show `ssh_credentials` as the keychain entry, `periodic_snapshot_tasks` as the
  tasks' DB entries, `state`, `job` and `has_encrypted_dataset_keys`; for PUSH the
  stored `naming_schema` is shown as `also_include_naming_schema`;
- validation (plugins/replication.py `_validate`): unique name; PUSH needs a bound
  periodic snapshot task, `also_include_naming_schema` or `name_regex`; an `auto` PUSH
  needs bound tasks or a `schedule`; non-LOCAL transports need SSH_CREDENTIALS;
  `exclude` only with `recursive`;
- `state` is `{"state": "PENDING"}` until a run; then RUNNING `{datetime, progress}`,
  FINISHED `{datetime, last_snapshot}` or ERROR `{datetime, error}` (zettarepl.py's
  observer); `job` is the running job's entry or null;
- a run (zettarepl run.py `run_replication_steps`): per source dataset (and its
  descendants when `recursive`, minus `exclude`), mapped under `target_dataset` by
  its path below the source datasets' common base (`get_target_dataset`); the
  snapshots that match the naming schemas (bound tasks' and
  `also_include_naming_schema`) or `name_regex`; the incremental base is the newest
  snapshot present on both sides by name; a resume token on the target is resumed
  first ("Resuming replication for destination dataset"); no base and target
  snapshots present: `allow_from_scratch` destroys the target, else "No incremental
  base on dataset ... and replication from scratch is not allowed"; no base, no
  target snapshots, target holding files: "... Refusing to overwrite existing
  data." unless `allow_from_scratch`; `readonly` REQUIRE refuses a target without
  readonly=on before sending, SET/REQUIRE set readonly=on after (`handle_readonly`);
  then retention on the target: SOURCE destroys target snapshots (of the task's
  schemas) missing on the source, CUSTOM those older than the lifetime, NONE none;
  the newest snapshot both sides share is never destroyed.
- the transport is a shell on the other node (models/zfs_cli.py commands): SSH
  (fakes/truenas/ssh.py) or LOCAL (this node). `speed_limit` (bytes per second)
  throttles the send.
Not modelled: PULL, SSH+NETCAT, `replicate` (-R), encryption, properties,
`restrict_schedule`, `only_matching_schedule`, `lifetimes`, `hold_pending_snapshots`,
`retries` (a run is tried once; the next run resumes), compression.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models import cron, datasets, keychain, snapshots, zstream

if TYPE_CHECKING:
    from fakes.truenas.node import TrueNASNode

DEFAULTS: dict[str, Any] = {
    "ssh_credentials": None, "netcat_active_side": None,
    "netcat_active_side_listen_address": None, "netcat_active_side_port_min": None,
    "netcat_active_side_port_max": None, "netcat_passive_side_connect_address": None,
    "sudo": False, "exclude": [], "properties": True, "properties_exclude": [],
    "properties_override": {}, "replicate": False, "encryption": False,
    "encryption_inherit": None, "encryption_key": None, "encryption_key_format": None,
    "encryption_key_location": None, "periodic_snapshot_tasks": [], "naming_schema": [],
    "also_include_naming_schema": [], "name_regex": None, "schedule": None,
    "restrict_schedule": None, "only_matching_schedule": False, "allow_from_scratch": False,
    "readonly": "SET", "hold_pending_snapshots": False, "lifetime_value": None,
    "lifetime_unit": None, "lifetimes": [], "compression": None, "speed_limit": None,
    "large_block": True, "embed": False, "compressed": True, "retries": 5,
    "logging_level": None, "enabled": True,
}
REQUIRED = ("name", "direction", "transport", "source_datasets", "target_dataset",
            "recursive", "auto", "retention_policy")
CHUNK = 64 * 1024


class Shell(Protocol):
    """The other node's shell: `exec(command, stdin)` -> (status, stdout, stderr);
    raises ConnectionError when the connection is lost."""

    def exec(self, command: str, stdin: bytes = b"",
             on_sent: Callable[[int], None] | None = None) -> tuple[int, bytes, bytes]: ...


class ReplicationError(CallError):
    pass


# --- the store ----------------------------------------------------------------
def _store(node: TrueNASNode) -> dict:
    found = node.boot_state.get("replication")
    if found is None:
        found = node.boot_state["replication"] = {"next_id": 1, "tasks": {}}
    return found


def _runtime(node: TrueNASNode) -> dict:
    """Run state (zettarepl's, in memory: a reboot starts again from PENDING)."""
    return node.__dict__.setdefault("_replication", {"state": {}, "jobs": {}})


def configs(node: TrueNASNode) -> list[dict]:
    tasks = node.boot_state.get("replication", {}).get("tasks", {})
    return [tasks[k] for k in sorted(tasks, key=int)]


def get_config(node: TrueNASNode, task_id: int) -> dict | None:
    return _store(node)["tasks"].get(str(task_id))


def entry(node: TrueNASNode, config: dict) -> dict:
    shown = {**DEFAULTS, **config}
    credential = keychain.get(node, config["ssh_credentials"]) \
        if config.get("ssh_credentials") is not None else None
    tasks = []
    for task_id in config["periodic_snapshot_tasks"]:
        task = node.storage.tasks.get(task_id)
        if task is not None:
            # the task's database row (PoolSnapshotTaskDBEntry): `state` is the
            # `task_state` text column, '{}' by default (plugins/snapshot.py); the live
            # state is zettarepl's and shows in pool.snapshottask.query only
            db = {k: v for k, v in task.entry().items() if k != "vmware_sync"}
            db["state"] = "{}"
            tasks.append(db)
    runtime = _runtime(node)
    job = runtime["jobs"].get(config["id"])
    shown.update({
        "ssh_credentials": credential, "periodic_snapshot_tasks": tasks,
        "state": dict(runtime["state"].get(config["id"], {"state": "PENDING"})),
        "job": job.to_dict() if job is not None and not job.finished else None,
        "has_encrypted_dataset_keys": False,
    })
    if shown["direction"] == "PUSH":
        shown["also_include_naming_schema"] = list(config["also_include_naming_schema"])
        shown["naming_schema"] = []
    return shown


def _validate(node: TrueNASNode, data: dict, schema: str, task_id: int | None) -> None:
    verrors = ValidationErrors()
    for other in configs(node):
        if other["name"] == data["name"] and other["id"] != task_id:
            verrors.add(f"{schema}.name", "Replication task with this name already exists",
                        errno.EEXIST)
    bound = []
    for i, ident in enumerate(data["periodic_snapshot_tasks"]):
        task = node.storage.tasks.get(ident)
        if task is None:
            verrors.add(f"{schema}.periodic_snapshot_tasks.{i}",
                        "Periodic snapshot task does not exist", errno.ENOENT)
        else:
            bound.append(task)
    if data["direction"] == "PUSH":
        if data["naming_schema"]:
            verrors.add(f"{schema}.naming_schema", "This field has no sense for push replication")
        if not bound and not data["also_include_naming_schema"] and not data["name_regex"]:
            verrors.add(f"{schema}.periodic_snapshot_tasks",
                        "You must at least either bind a periodic snapshot task or provide "
                        "\"Also Include Naming Schema\" or \"Name Regex\" for push replication "
                        "task")
        if data["schedule"] is None and data["auto"] and not data["periodic_snapshot_tasks"]:
            verrors.add(f"{schema}.auto", "Push replication that runs automatically must be "
                        "either bound to a periodic snapshot task or have a schedule")
    else:
        verrors.add(f"{schema}.direction", "The fake TrueNAS runs PUSH replication only "
                    "(PULL is not modelled)")
    if data["transport"] == "LOCAL":
        if data["ssh_credentials"] is not None:
            verrors.add(f"{schema}.ssh_credentials",
                        "Remote credentials have no sense for local replication")
    elif data["transport"] == "SSH":
        if data["ssh_credentials"] is None:
            verrors.add(f"{schema}.ssh_credentials",
                        "SSH Credentials are required for non-local replication")
        else:
            credential = keychain.get(node, data["ssh_credentials"])
            if credential is None:
                verrors.add(f"{schema}.ssh_credentials", "Credential does not exist")
            elif credential["type"] != "SSH_CREDENTIALS":
                verrors.add(f"{schema}.ssh_credentials",
                            "Credential is not of type SSH_CREDENTIALS")
    else:
        verrors.add(f"{schema}.transport", "The fake TrueNAS runs SSH and LOCAL transports "
                    "only (SSH+NETCAT is not modelled)")
    if not data["recursive"] and data["exclude"]:
        verrors.add(f"{schema}.exclude",
                    "Excluding child datasets is only supported for recursive replication")
    if data["retention_policy"] == "CUSTOM" and (
            data["lifetime_value"] is None or data["lifetime_unit"] is None):
        verrors.add(f"{schema}.retention_policy", "You must specify snapshot lifetime for "
                    "custom retention policy")
    for name in data.get("also_include_naming_schema", []):
        problem = cron.schema_problem(name)
        if problem:
            verrors.add(f"{schema}.also_include_naming_schema", problem)
    verrors.check()


def create(node: TrueNASNode, data: dict) -> dict:
    config = {**DEFAULTS, **data}
    _validate(node, config, "replication_create", None)
    store = _store(node)
    config["id"] = store["next_id"]
    store["next_id"] += 1
    store["tasks"][str(config["id"])] = config
    _arm(node, config)
    return entry(node, config)


def update(node: TrueNASNode, task_id: int, data: dict) -> dict:
    old = get_config(node, task_id)
    if old is None:
        raise CallError(f"Replication task {task_id} does not exist", errno.ENOENT)
    new = {**old, **data}
    _validate(node, new, "replication_update", task_id)
    _store(node)["tasks"][str(task_id)] = new
    _arm(node, new)
    return entry(node, new)


def delete(node: TrueNASNode, task_id: int) -> None:
    if _store(node)["tasks"].pop(str(task_id), None) is None:
        raise CallError(f"Replication task {task_id} does not exist", errno.ENOENT)
    _runtime(node)["state"].pop(task_id, None)


def unbind_credentials(node: TrueNASNode, task_id: int) -> None:
    """keychaincredential.delete with cascade (plugins/keychain.py)."""
    config = get_config(node, task_id)
    if config is not None:
        config.update({"enabled": False, "ssh_credentials": None})


def set_state(node: TrueNASNode, task_id: int, state: dict) -> None:
    _runtime(node)["state"][task_id] = state


# --- which snapshots (zettarepl replication/snapshots_to_send.py) ---------------
def naming_schemas(node: TrueNASNode, config: dict) -> list[str]:
    schemas = list(config["also_include_naming_schema"])
    for task_id in config["periodic_snapshot_tasks"]:
        task = node.storage.tasks.get(task_id)
        if task is not None:
            schemas.append(task.config["naming_schema"])
    return schemas


def matching(names: list[str], config: dict, schemas: list[str]) -> list[str]:
    """The names the task replicates, oldest first (`names` in createtxg order)."""
    if config["name_regex"]:
        pattern = re.compile(config["name_regex"])
        return [n for n in names if pattern.fullmatch(n)]
    parsed = []
    for position, name in enumerate(names):
        for schema in schemas:
            when = cron.parse_name(schema, name)
            if when is not None:
                parsed.append((when, position, name))
                break
    return [name for _, _, name in sorted(parsed)]


def source_base(sources: list[str]) -> str:
    """zettarepl replication/task/dataset.py `get_source_dataset_base`."""
    common = os.path.commonpath(sources).rstrip("/")
    if not all(s == common or s.startswith(common + "/") for s in sources):
        common = common[:common.rfind("/") + 1]
    return common


def target_of(config: dict, source: str) -> str:
    base = source_base(config["source_datasets"])
    return os.path.normpath(os.path.join(config["target_dataset"],
                                         os.path.relpath(source, base)))


# --- a run ----------------------------------------------------------------------
@dataclass
class Progress:
    """What a run reports as it goes (the job's progress, the task's state)."""

    report: Callable[[float, str, dict], None]
    bytes_sent: int = 0
    snapshots_sent: int = 0
    snapshots_total: int = 0


def _check(result: tuple[int, bytes, bytes], what: str) -> str:
    status, out, err = result
    if status != 0:
        raise ReplicationError((err or out).decode(errors="replace").strip()
                               or f"{what} failed with exit status {status}")
    return out.decode()


@dataclass
class Step:
    source: str          # full dataset name on this node
    target: str          # full dataset name on the other
    immediate: bool


def _steps(node: TrueNASNode, config: dict) -> list[Step]:
    steps = []
    excluded = set(config["exclude"])
    for source in config["source_datasets"]:
        found = node.storage.find_dataset(source)
        if found is None:
            raise ReplicationError(f"Dataset {source!r} does not exist")
        pool, rel = found
        names = [source]
        if config["recursive"]:
            names += [pool.full_name(d) for d in datasets.descendants(pool, rel)
                      if not any(pool.full_name(d) == e or pool.full_name(d).startswith(e + "/")
                                 for e in excluded)]
        steps += [Step(name, target_of(config, name), name == source) for name in names]
    return steps


def _source_snapshots(node: TrueNASNode, dataset: str) -> list[str]:
    pool, rel = node.storage.find_dataset(dataset)
    return [k.split("@", 1)[1] for k in snapshots.of_dataset(pool, rel)]


def run(node: TrueNASNode, config: dict, shell: Shell, lock: Any, progress: Progress,
        speed_limit: int | None = None, now: Callable[[], float] | None = None) -> str | None:
    """One run of the task against the other node's shell. Returns the last snapshot
    sent (full name on the source) or None; raises ReplicationError. Takes `lock`
    only around reads of this node's model, never while waiting on the network."""
    with lock:
        steps = _steps(node, config)
        schemas = naming_schemas(node, config)
        source_snaps = {s.source: _source_snapshots(node, s.source) for s in steps}
        clock_now = (now or node.storage.now)()
    targets: dict[str, dict] = {}
    for top in [s.target for s in steps if s.immediate]:
        targets.update(_list_target(shell, top))
    if config["readonly"] == "REQUIRE":
        for step in steps:
            if step.target in targets and not targets[step.target]["readonly"]:
                raise ReplicationError(
                    f"Target dataset {step.target!r} exists and does not have readonly=on "
                    "property, but replication task is set up to require this property. "
                    "Refusing to replicate.")
    last = None
    plans = []
    for step in steps:
        mine = matching(source_snaps[step.source], config, schemas)
        target = targets.get(step.target)
        theirs = target["snapshots"] if target else []
        if target and target["token"]:
            last = _resume(node, step, target, shell, lock, progress, speed_limit) or last
            theirs = _list_snapshots(shell, step.target)
        common = [name for name in mine if name in theirs]
        base = common[-1] if common else None
        to_send = mine[mine.index(base) + 1:] if base else list(mine)
        if base is None and to_send:
            if theirs:
                if not config["allow_from_scratch"]:
                    raise ReplicationError(
                        f"No incremental base on dataset {step.source!r} and replication "
                        "from scratch is not allowed")
                _check(shell.exec(f"zfs destroy -r {step.target}"), "zfs destroy")
                theirs = []
            elif target is not None and step.immediate and not config["allow_from_scratch"]:
                status, out, _ = shell.exec(f"ls -1A /mnt/{step.target}")
                index = out.decode().split() if status == 0 else []
                if index:
                    raise ReplicationError(
                        f"Target dataset {step.target!r} does not have matching snapshots but "
                        f"has data (e.g. {index[0]!r}) and replication from scratch is not "
                        "allowed. Refusing to overwrite existing data.")
        if not to_send and base is None and step.immediate:
            raise ReplicationError(f"Dataset {step.source!r} does not have any matching "
                                   "snapshots to replicate")
        plans.append((step, base, to_send))
        progress.snapshots_total += len(to_send)
    readonly_now = {name: found["readonly"] for name, found in targets.items()}
    for step, base, to_send in plans:
        if to_send and step.immediate and "/" in os.path.dirname(step.target):
            _check(shell.exec(f"zfs create -p {os.path.dirname(step.target)}"), "zfs create")
        previous = base
        for name in to_send:
            with lock:
                pool, rel = node.storage.find_dataset(step.source)
                stream = zstream.build(pool, rel, name, previous)
            _send(shell, step, f"{step.source}@{name}", stream, progress, speed_limit)
            previous = name
            last = f"{step.source}@{name}"
        if config["readonly"] in ("SET", "REQUIRE"):
            # handle_readonly: set it unless a replicated parent has it by now
            # (children then inherit it)
            parent = os.path.dirname(step.target)
            if not readonly_now.get(parent, False):
                _check(shell.exec(f"zfs set readonly=on {step.target}"), "zfs set")
            readonly_now[step.target] = True
    _retention(node, config, steps, shell, lock, schemas, clock_now)
    return last


def _list_target(shell: Shell, top: str) -> dict[str, dict]:
    """The target's datasets under `top` with readonly, resume token and snapshots
    (zettarepl run.py: list_datasets_with_properties, list_snapshots_for_datasets)."""
    listed = shell.exec(f"zfs list -H -p -o name,readonly,receive_resume_token "
                        f"-t filesystem,volume -r {top}")
    found: dict[str, dict] = {}
    if listed[0] != 0:
        if b"does not exist" not in listed[2]:
            _check(listed, "zfs list")
        return found
    for line in listed[1].decode().splitlines():
        name, readonly, token = line.split("\t")
        found[name] = {"readonly": readonly == "on",
                       "token": None if token == "-" else token, "snapshots": []}
    for line in _check(shell.exec(f"zfs list -H -p -o name -t snapshot -r {top}"),
                       "zfs list").splitlines():
        dataset, snap = line.split("@", 1)
        if dataset in found:
            found[dataset]["snapshots"].append(snap)
    return found


def _list_snapshots(shell: Shell, dataset: str) -> list[str]:
    status, out, _ = shell.exec(f"zfs list -H -p -o name -t snapshot -d 1 {dataset}")
    if status != 0:
        return []
    return [line.split("@", 1)[1] for line in out.decode().splitlines() if "@" in line]


def _resume(node: TrueNASNode, step: Step, target: dict, shell: Shell, lock: Any,
            progress: Progress, speed_limit: int | None) -> str | None:
    """Resuming replication for destination dataset (zettarepl run.py resume_replications)."""
    info = zstream.decode_token(target["token"])
    try:
        with lock:
            pool, rel = node.storage.find_dataset(step.source)
            stream = zstream.resume(pool, rel, target["token"])
    except zstream.StreamError as exc:
        if "no longer exists" not in exc.message:
            raise
        _check(shell.exec(f"zfs recv -A {step.target}"), "zfs recv -A")
        return None
    name = f"{step.source}@{info.get('toname')}"
    progress.snapshots_total += 1
    _send(shell, step, name, stream, progress, speed_limit)
    return name


def _send(shell: Shell, step: Step, name: str, stream: bytes, progress: Progress,
          speed_limit: int | None) -> None:
    started = progress.bytes_sent
    start = time.monotonic()

    def on_sent(count: int) -> None:
        progress.bytes_sent = started + count
        if speed_limit:
            ahead = count / speed_limit - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        progress.report(100 * (progress.snapshots_sent + count / max(1, len(stream)))
                        / max(1, progress.snapshots_total),
                        f"Sending {progress.snapshots_sent + 1} of {progress.snapshots_total}: "
                        f"{name} ({count} B / {len(stream)} B)",
                        {"dataset": step.source, "snapshot": name.split("@", 1)[1],
                         "snapshots_sent": progress.snapshots_sent,
                         "snapshots_total": progress.snapshots_total,
                         "bytes_sent": count, "bytes_total": len(stream),
                         "current": count, "total": len(stream)})

    result = shell.exec(f"zfs recv -s -F {step.target}", stream, on_sent=on_sent)
    progress.bytes_sent = started + len(stream)
    _check(result, "zfs recv")
    progress.snapshots_sent += 1


def _retention(node: TrueNASNode, config: dict, steps: list[Step], shell: Shell, lock: Any,
               schemas: list[str], now: float) -> None:
    """zettarepl's retention of the target after a PUSH (zettarepl/zettarepl.py
    `_run_remote_retention`): only snapshots the task's schemas parse are judged."""
    policy = config["retention_policy"]
    if policy == "NONE":
        return
    for step in steps:
        theirs = _list_snapshots(shell, step.target)
        with lock:
            mine = _source_snapshots(node, step.source) \
                if node.storage.find_dataset(step.source) else []
        ours = matching(theirs, config, schemas)
        common = [n for n in matching(mine, config, schemas) if n in theirs]
        keep = {common[-1]} if common else set()
        if policy == "SOURCE":
            doomed = [n for n in ours if n not in mine and n not in keep]
        else:
            start = cron.lifetime_start(now, config["lifetime_value"], config["lifetime_unit"])
            doomed = [n for n in ours if n not in keep and _taken(n, schemas, config) < start]
        if doomed:
            _check(shell.exec(f"zfs destroy {step.target}@{','.join(doomed)}"), "zfs destroy")


def _taken(name: str, schemas: list[str], config: dict) -> float:
    for schema in schemas:
        when = cron.parse_name(schema, name)
        if when is not None:
            return when
    return float("inf")           # name_regex snapshots carry no time: kept


# --- scheduling (zettarepl's scheduler, on the virtual clock) ---------------------
Starter = Callable[["TrueNASNode", int], None]


def _arm(node: TrueNASNode, config: dict) -> None:
    """A task with its own `schedule` fires on its cron (middleware zettarepl.py turns
    it into a zettarepl schedule); bound tasks fire after their snapshot tasks
    (`after_snapshot_task`)."""
    runtime = _runtime(node)
    generation = runtime.setdefault("generation", {})
    generation[config["id"]] = generation.get(config["id"], 0) + 1
    if not (config["enabled"] and config["auto"] and config["schedule"]
            and not config["periodic_snapshot_tasks"]):
        return
    mine = generation[config["id"]]
    schedule = cron.Schedule.parse({"minute": "00", "hour": "*", "dom": "*", "month": "*",
                                    "dow": "*", "begin": "00:00", "end": "23:59",
                                    **config["schedule"]})
    due = schedule.next_after(node.storage.now())
    if due is None:
        return
    clock = node.clock

    def fire() -> None:
        current = get_config(node, config["id"])
        if current is None or runtime["generation"].get(config["id"]) != mine \
                or node.state != "READY":
            return
        # a jump that passes several firings with nothing else happening runs once:
        # each run sends every snapshot that is new, so one run leaves what several do
        start_run(node, config["id"])
        following = schedule.next_after(max(due, clock.quiet_until()))
        if following is not None:
            _rearm(node, current, schedule, following, mine)

    clock.call_later(due - clock.now(), fire)


def _rearm(node: TrueNASNode, config: dict, schedule: Any, due: float, mine: int) -> None:
    runtime = _runtime(node)
    clock = node.clock

    def fire() -> None:
        if get_config(node, config["id"]) is None \
                or runtime["generation"].get(config["id"]) != mine or node.state != "READY":
            return
        start_run(node, config["id"])
        following = schedule.next_after(max(due, clock.quiet_until()))
        if following is not None:
            _rearm(node, config, schedule, following, mine)

    clock.call_later(max(0.0, due - clock.now()), fire)


def at_boot(node: TrueNASNode) -> None:
    """middleware hands zettarepl its tasks when it starts: own schedules are armed
    again (the run state starts from PENDING, zettarepl's is in memory)."""
    for config in configs(node):
        _arm(node, config)


def after_snapshot_task(node: TrueNASNode, snapshot_task_id: int) -> None:
    """A periodic snapshot task ran: start the `auto` tasks bound to it
    (zettarepl runs a bound replication task right after its snapshot task)."""
    for config in configs(node):
        if config["enabled"] and config["auto"] \
                and snapshot_task_id in config["periodic_snapshot_tasks"]:
            start_run(node, config["id"])


_STARTERS: list[Starter] = []


def start_run(node: TrueNASNode, task_id: int) -> None:
    """Start a run as `replication.run` would, with no caller (the adapter says how:
    fakes/truenas/methods/replication.py registers itself)."""
    for starter in _STARTERS:
        starter(node, task_id)


def set_starter(starter: Starter) -> None:
    _STARTERS[:] = [starter]


def finished(node: TrueNASNode, task_id: int, last: str | None, at: float) -> None:
    previous = _runtime(node)["state"].get(task_id, {})
    set_state(node, task_id, {"state": "FINISHED", "datetime": Timestamp(at),
                              "last_snapshot": last or previous.get("last_snapshot")})


def failed(node: TrueNASNode, task_id: int, error: str, at: float) -> None:
    message = error.strip()
    if message and message[-1] not in ".!?":
        message += "."                      # middleware's make_sentence
    set_state(node, task_id, {"state": "ERROR", "datetime": Timestamp(at), "error": message})
