"""A receiving site's `[[replication]]`: what it makes on the SOURCE node, with
TrueNAS SCALE 25.10's own API (reference/truenas-api.md "Replication" and "SSH
connection setup"; schemas in reference/truenas-schemas/keychaincredential.*,
replication.*):

- an SSH key pair `<site>-replication-key` and an SSH connection
  `<site>-replication` to this site's node (`keychaincredential.setup_ssh_connection`,
  SEMI-AUTOMATIC: the source node logs in to this node's API with a single-use token
  this run generates there, and pairs its key with this site's TrueNAS user, with
  passwordless sudo for zfs);
- one PUSH replication task `<site>:<dataset>` per dataset, over SSH, bound to the
  source's periodic snapshot tasks of that dataset (or on a schedule of its own),
  `allow_from_scratch` false, `readonly` SET while the copy is read-only, the
  site's retention;
- its first run (`replication.run`, a job, awaited through infra/wait.py).

Port 22 of this site's firewall opens to the source droplet's address only (and the
admin port, which the semi-automatic setup logs in through): infra/desired.py's
`firewall_rules` with `source_addresses`. `destroy` removes the tasks and the
credentials named after this site, and nothing else of the source's.

A promoted copy (`truenas-site promote`, recorded in this site's state directory)
keeps its tasks disabled: `up` does not start replicating over it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from infra.change import Change
from infra.digitalocean import DigitalOcean
from infra.errors import InfraError
from infra.events import Reporter
from infra.resources import droplet, ui
from infra.secrets import Secret
from infra.site import ReplicationSpec, Site, load_site
from infra.state import DEFAULT_ROOT, StateDir
from infra.truenas import rpc
from infra.truenas.client import TrueNASClient
from infra.wait import Pending, wait_for

SETUP = "keychaincredential.setup_ssh_connection"
TOKEN = "auth.generate_token"
CREATE = "replication.create"
UPDATE = "replication.update"
RUN = "replication.run"
DELETE = "replication.delete"
DELETE_CREDENTIAL = "keychaincredential.delete"
# A first replication of a large dataset takes long: hours on a real link.
RUN_SECONDS = 6 * 3600
# The token the source node logs in to this node with: short-lived and single-use
# (auth.generate_token's ttl and single_use), usable from another address than this
# run's (match_origin false: the source node uses it, not this machine).
TOKEN_SECONDS = 600
# The pairing's answer: a key generated, a login to this node, an SSH host key scan
# and an SSH handshake (connect_timeout 10 s each on a real node). Wall time on any
# target: a fake world's virtual clock does not make key generation or handshakes
# faster, and a loaded machine makes them slow.
SETUP_SECONDS = 120
SETUP_WALL_SECONDS = 120.0


def ssh_user(site: Site) -> tuple[str, bool]:
    """Who the source logs in as on this site's node, and whether through sudo: the
    site's TrueNAS user (truenas_admin), which the semi-automatic setup with `sudo`
    gives passwordless sudo for /usr/sbin/zfs, and the task's `sudo` has zettarepl
    run the remote zfs commands through (reference/truenas-api.md "SSH connection
    setup"; zettarepl transport/base_ssh.py). root needs no sudo."""
    username = site.truenas.username
    return username, username != "root"

# zettarepl's states of a task (replication.query `state.state`).
DONE = "FINISHED"
RUNNING = "RUNNING"
PROMOTED = "promoted"     # the state directory's record of a promoted dataset


@dataclass(frozen=True)
class Source:
    """One `[[replication]]`: its section, the source site, and that site's state
    directory (its node's API key and certificate pin)."""

    spec: ReplicationSpec
    site: Site
    state: StateDir

    @property
    def file(self) -> Path:
        return Path(self.spec.source)

    def dataset(self, name: str) -> str:
        return f"{self.site.truenas.pool}/{name}"


def sources(site: Site, *, read_only: bool) -> list[Source]:
    """The site's sources, each site file loaded (without following its own
    replication) and its state directory opened (read-only for plan and check)."""
    found = []
    for spec in site.replication:
        source = load_site(Path(spec.source), follow_replication=False)
        path = Path(spec.source_state_dir) if spec.source_state_dir else \
            DEFAULT_ROOT / source.name
        found.append(Source(spec, source, StateDir(path, read_only=read_only)))
    return found


def source_address(do: DigitalOcean, source: Site) -> str | None:
    """The source site's droplet's public address, or None when it has none."""
    found = droplet.find(do, source)
    return droplet.public_ipv4(found) if found else None


def source_addresses(do: DigitalOcean, site: Site) -> list[str]:
    """Where the site's sources push from: what port 22 of its firewall opens to."""
    if not site.replication:
        return []
    addresses = {address for source in sources(site, read_only=True)
                 if (address := source_address(do, source.site))}
    return sorted(addresses)


# --- names -----------------------------------------------------------------------
# What a receiving site called `<name>` makes on a source node is named after it; the
# source's side (infra/receivers.py) reads a receiver's name back from these.
KEY_SUFFIX = "-replication-key"
CONNECTION_SUFFIX = "-replication"
TASK_SEPARATOR = ":"


def key_name(site: Site) -> str:
    return f"{site.name}{KEY_SUFFIX}"


def connection_name(site: Site) -> str:
    return f"{site.name}{CONNECTION_SUFFIX}"


def task_name(site: Site, dataset: str) -> str:
    return f"{site.name}{TASK_SEPARATOR}{dataset}"


def target_dataset(site: Site, dataset: str) -> str:
    return f"{site.truenas.pool}/{dataset}"


def received(site: Site) -> list[str]:
    """The datasets (relative to the pool) the site receives."""
    return [name for spec in site.replication for name in spec.datasets]


# --- find ------------------------------------------------------------------------
@dataclass
class OnSource:
    """What the source node holds of this site's replication."""

    credentials: list[dict] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)
    snapshot_tasks: list[dict] = field(default_factory=list)

    def credential(self, name: str) -> dict | None:
        return next((c for c in self.credentials if c.get("name") == name), None)

    def task(self, name: str) -> dict | None:
        return next((t for t in self.tasks if t.get("name") == name), None)


def find(client: TrueNASClient, site: Site) -> OnSource:
    names = [key_name(site), connection_name(site)]
    prefix = f"{site.name}{TASK_SEPARATOR}"
    return OnSource(
        credentials=client.call("keychaincredential.query", [["name", "in", names]]),
        tasks=[t for t in client.call("replication.query")
               if str(t.get("name", "")).startswith(prefix)],
        snapshot_tasks=client.call("pool.snapshottask.query"),
    )


# --- desired ---------------------------------------------------------------------
def desired_task(site: Site, source: Source, dataset: str, credential_id: int | None,
                 snapshot_tasks: list[dict], promoted: bool = False) -> dict:
    """The replication task for one dataset (replication.create's fields)."""
    spec = source.spec
    # The source's tasks whose snapshots include the dataset: its own, or a recursive
    # one of a dataset above it (infra/site.py SnapshotPolicy.covers).
    full = source.dataset(dataset)
    mine = [t for t in snapshot_tasks if t.get("dataset") == full or (
        t.get("recursive") and full.startswith(f"{t.get('dataset')}/"))]
    body: dict = {
        "name": task_name(site, dataset), "direction": "PUSH", "transport": "SSH",
        "ssh_credentials": credential_id, "sudo": ssh_user(site)[1],
        "source_datasets": [source.dataset(dataset)],
        "target_dataset": target_dataset(site, dataset),
        "recursive": spec.recursive, "auto": True, "allow_from_scratch": False,
        "readonly": "SET" if spec.readonly and not promoted else "IGNORE",
        "retention_policy": spec.retention.upper(),
        "lifetime_value": spec.lifetime_value, "lifetime_unit": spec.lifetime_unit,
        "enabled": not promoted, "speed_limit": spec.speed_limit,
    }
    if spec.schedule is None:
        # Run after each of the source's snapshot tasks of the dataset, sending theirs.
        body["periodic_snapshot_tasks"] = sorted(t["id"] for t in mine)
        body["schedule"] = None
        body["also_include_naming_schema"] = []
    else:
        # "Only auto replication tasks without bound periodic snapshot tasks can have
        # a schedule" (replication.query's schema): the snapshots sent are named by
        # the source's tasks' naming schemas instead.
        body["periodic_snapshot_tasks"] = []
        body["schedule"] = {**spec.cron(), "begin": "00:00", "end": "23:59"}
        body["also_include_naming_schema"] = sorted({t["naming_schema"] for t in mine})
    return body


def _same(task: dict, body: dict) -> bool:
    """Whether an existing task (as replication.query shows it: credentials and
    snapshot tasks as whole entries) is the wanted one."""
    for key, wanted in body.items():
        have = task.get(key)
        if key == "ssh_credentials":
            have = have.get("id") if isinstance(have, dict) else have
        elif key == "periodic_snapshot_tasks":
            have = sorted(t["id"] if isinstance(t, dict) else t for t in have or [])
        elif key == "schedule" and isinstance(have, dict) and isinstance(wanted, dict):
            have = {k: str(have.get(k)) for k in wanted}
            wanted = {k: str(v) for k, v in wanted.items()}
        elif key in ("lifetime_value", "lifetime_unit") and body["retention_policy"] != "CUSTOM":
            continue
        elif key == "also_include_naming_schema":
            have = sorted(have or [])
        if have != wanted:
            return False
    return True


def state_of(task: dict) -> str:
    state = task.get("state")
    return str(state.get("state")) if isinstance(state, dict) else str(state or "PENDING")


def _connection_host(credential: dict) -> str | None:
    attributes = credential.get("attributes")
    return attributes.get("host") if isinstance(attributes, dict) else None


# --- diff ------------------------------------------------------------------------
def diff(site: Site, source: Source, seen: OnSource, target_address: str,
         promoted: set[str]) -> list[Change]:
    """The changes on the source node for one `[[replication]]`: the SSH connection
    (once per site, with the first source), each task, each first run."""
    where = f"on {source.site.name}'s node"
    changes: list[Change] = []
    connection = seen.credential(connection_name(site))
    if connection is None or _connection_host(connection) != target_address:
        requests = [TOKEN, SETUP]
        if connection is not None:     # this node moved (failover): pair it again
            requests.insert(0, DELETE_CREDENTIAL)
        elif seen.credential(key_name(site)) is not None:
            pass                          # a key pair left from an interrupted setup: reused
        changes.append(Change("setup_ssh_connection", connection_name(site),
                              f"{where}, to {target_address}:22", tuple(requests)))
    credential_id = connection["id"] if connection else None
    for name in source.spec.datasets:
        is_promoted = name in promoted
        body = desired_task(site, source, name, credential_id, seen.snapshot_tasks,
                            is_promoted)
        task = seen.task(body["name"])
        route = f"{source.dataset(name)} -> {body['target_dataset']}"
        if task is None:
            if is_promoted:
                continue      # promoted, and its task deleted since: nothing to replicate
            changes.append(Change("create_replication", body["name"], f"{where}, {route}",
                                  (CREATE,)))
            changes.append(Change("run_replication", body["name"], "the first run", (RUN,)))
            continue
        if connection is None or not _same(task, body):
            changes.append(Change("update_replication", body["name"], f"{where}, {route}",
                                  (UPDATE,)))
        if not is_promoted and state_of(task) not in (DONE, RUNNING):
            changes.append(Change("run_replication", body["name"],
                                  f"its last run: {state_of(task)}", (RUN,)))
    return changes


# --- create / update / run ---------------------------------------------------------
def setup_connection(source_client: TrueNASClient, target_client: TrueNASClient, site: Site,
                     target_address: str, seen: OnSource, reporter: Reporter) -> dict:
    """The source node's SSH connection to this site's node, SEMI-AUTOMATIC: a
    single-use token from this node, with which the source logs in to this node's
    API (its UI port), pairs its key with this site's TrueNAS user (`ssh_user`) and
    keeps this node's host keys. A stale connection (this node moved) is
    deleted first; a key pair left by an interrupted setup is reused."""
    stale = seen.credential(connection_name(site))
    if stale is not None:
        reporter.step(f"delete SSH connection {stale['name']} (it points at "
                      f"{_connection_host(stale)})")
        source_client.call(DELETE_CREDENTIAL, stale["id"], {"cascade": False})
    port = ui.find(target_client).get("ui_httpsport") or 443
    reporter.step(f"pair {site.name}'s node ({target_address}) with the source node over SSH")
    token = Secret(target_client.call(TOKEN, TOKEN_SECONDS, {}, False, True))
    key = seen.credential(key_name(site))
    private_key = ({"generate_key": False, "existing_key_id": key["id"]} if key else
                   {"generate_key": True, "name": key_name(site)})
    # verify_ssl false: the source reaches this node by address, which no certificate
    # of the site names; what crosses is a single-use token that expires in minutes.
    return source_client.call(SETUP, {
        "private_key": private_key, "connection_name": connection_name(site),
        "setup_type": "SEMI-AUTOMATIC",
        "semi_automatic_setup": {
            "url": f"https://{target_address}:{port}", "token": token,
            "verify_ssl": False, "username": ssh_user(site)[0], "sudo": ssh_user(site)[1],
        },
    }, timeout=max(source_client.timing.deadline(SETUP_SECONDS), SETUP_WALL_SECONDS))


def create_or_update(source_client: TrueNASClient, site: Site, source: Source,
                     credential_id: int, promoted: set[str],
                     reporter: Reporter) -> list[tuple[str, dict, bool]]:
    """Each dataset's task as wanted: (change made or "", the task, whether new)."""
    seen = find(source_client, site)
    out = []
    for name in source.spec.datasets:
        body = desired_task(site, source, name, credential_id, seen.snapshot_tasks,
                            name in promoted)
        task = seen.task(body["name"])
        if task is None:
            if name in promoted:
                continue
            reporter.step(f"create replication {body['name']} on {source.site.name}'s node")
            out.append((f"create replication {body['name']}",
                        source_client.call(CREATE, body), True))
        elif not _same(task, body):
            reporter.step(f"update replication {body['name']} on {source.site.name}'s node")
            update = {k: v for k, v in body.items() if k != "name"}
            out.append((f"update replication {body['name']}",
                        source_client.call(UPDATE, task["id"], update), False))
        else:
            out.append(("", task, False))
    return out


@dataclass(frozen=True)
class RunResult:
    """One run: the task's name, the job's record, and the bytes its progress showed
    sent (per snapshot, the most seen; zettarepl reports each stream's progress as
    "Sending N of M: <snapshot> (sent / total)")."""

    task: str
    job: dict
    bytes_sent: int


def run(source_client: TrueNASClient, task: dict, reporter: Reporter) -> RunResult:
    """Run the task now (replication.run, a job) and wait for it with its progress.
    JobFailed when the run fails (a refused or cut-off transfer)."""
    reporter.step(f"replicate {task['name']}")
    job_id = source_client.call(RUN, task["id"])
    return wait_job(source_client, job_id, task["name"], reporter)


# The fake node's last report of a run ("Sent <n> snapshots, <bytes> B"); what real
# middleware reports at the end of a run is not known, so the sum of the streams'
# reports stands when it is absent.
SENT = re.compile(r"^Sent \d+ snapshots?, (?P<bytes>\d+) B$")
SENDING = re.compile(r"Sending \d+ of \d+: (?P<snapshot>\S+) \((?P<sent>\d+) B / "
                     r"(?P<total>\d+) B\)")


def _sent(progress: dict, seen: dict[str, int]) -> None:
    """Note the bytes one progress report shows for its snapshot in `seen`."""
    extra = progress.get("extra") if isinstance(progress.get("extra"), dict) else {}
    snapshot, sent = extra.get("snapshot"), extra.get("bytes_sent")
    if snapshot is None and (match := SENDING.search(str(progress.get("description") or ""))):
        snapshot, sent = match["snapshot"], int(match["sent"])
    if isinstance(snapshot, str) and isinstance(sent, int):
        seen[snapshot] = max(seen.get(snapshot, 0), sent)


def wait_job(client: TrueNASClient, job_id: int, name: str, reporter: Reporter) -> RunResult:
    seen: dict[str, int] = {}

    def ended() -> dict | Pending:
        job = client.job(job_id)
        state = job.get("state")
        progress = job.get("progress") if isinstance(job.get("progress"), dict) else {}
        _sent(progress, seen)
        if state == "SUCCESS":
            return job
        if state in ("FAILED", "ABORTED"):
            raise rpc.job_error(RUN, job, client.scrub)
        percent = progress.get("percent")
        detail = " ".join(str(p) for p in (f"{percent:.0f}%" if isinstance(
            percent, int | float) else "", progress.get("description") or "") if p)
        return Pending(f"{state}{', ' + detail if detail else ''}")

    job = wait_for(f"replication {name} (job {job_id})", ended, client.timing,
                   RUN_SECONDS, reporter=reporter)
    progress = job.get("progress") if isinstance(job.get("progress"), dict) else {}
    if match := SENT.match(str(progress.get("description") or "")):
        return RunResult(name, job, int(match["bytes"]))
    return RunResult(name, job, sum(seen.values()))


# --- destroy -----------------------------------------------------------------------
def destroy(source_client: TrueNASClient, site: Site, reporter: Reporter) -> list[str]:
    """This site's tasks and credentials on the source node; nothing else."""
    seen = find(source_client, site)
    done = []
    for task in seen.tasks:
        reporter.step(f"delete replication {task['name']}")
        source_client.call(DELETE, task["id"])
        done.append(f"delete replication {task['name']}")
    # The connection first: the key pair is in use while it exists.
    for name in (connection_name(site), key_name(site)):
        credential = seen.credential(name)
        if credential is not None:
            reporter.step(f"delete {credential['type']} {name}")
            source_client.call(DELETE_CREDENTIAL, credential["id"], {"cascade": False})
            done.append(f"delete {name}")
    return done


# --- promotion ---------------------------------------------------------------------
def promoted(state: StateDir) -> set[str]:
    return set(state.created(PROMOTED))


def app_sources(site: Site) -> dict[str, StateDir]:
    """App -> the state directory (read-only) of the site its data (`apps/<app>`) is
    received from: the chart's generated secrets come from there
    (infra/charts/secretstore.py)."""
    from infra.charts.render import APPS_DATASET

    found = {}
    for source in sources(site, read_only=True) if site.replication else []:
        for name in source.spec.datasets:
            parts = name.split("/")
            if len(parts) == 2 and parts[0] == APPS_DATASET:
                found[parts[1]] = source.state
    return found


def waiting_apps(site: Site, state: StateDir) -> dict[str, str]:
    """The apps whose data the site receives (`apps/<app>`, infra/site.py
    received_app_problems) and has not promoted: app -> why it waits. Their charts
    are neither created nor written into until `promote`: the deploy writes files
    into the app's datasets and GoCD rewrites its config at start, so on the copy
    they would fail (read-only) or, on a copy kept writable, part it from the
    source's history (the next run refused, or rolled back over the app's writes)."""
    from infra.charts.render import APPS_DATASET

    done = promoted(state)
    waiting = {}
    for spec in site.replication:
        for name in spec.datasets:
            parts = name.split("/")
            if len(parts) == 2 and parts[0] == APPS_DATASET and name not in done:
                waiting[parts[1]] = (f"waits for `truenas-site promote`: its data "
                                     f"{target_dataset(site, name)} is a copy received from "
                                     f"{Path(spec.source).stem}")
    return waiting


class ReplicationProblem(InfraError):
    """The replication cannot be set up or run (no source droplet, a refused run)."""
