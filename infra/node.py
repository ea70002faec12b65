"""The TrueNAS side of `up` and `check`: the pool, its datasets, its snapshot tasks.

The pool is a MIRROR of exactly the site's two volumes, found by serial (the
volume's name, reference/truenas-api.md §7), never the boot disk. Before creating a pool,
`up` looks for one of the site's name on those disks (`pool.import_find`): volumes
that already hold the site's pool (a droplet that was replaced, a re-run after a
crash) are imported, never overwritten.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra import desired
from infra.errors import InfraError, SiteFileError
from infra.events import Reporter
from infra.secrets import Secret
from infra.site import Site, SnapshotPolicy
from infra.state import DEFAULT_ROOT, StateDir
from infra.target import Target
from infra.tls_probe import probe_tls
from infra.truenas import credentials
from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient
from infra.truenas.connect import connect_node, wait_until_ready
from infra.truenas.errors import TrueNASUnavailable
from infra.truenas.pinning import fingerprint

POOL_CREATE_SECONDS = 600
IMPORT_SECONDS = 900


class NodeProblem(InfraError):
    """The node is not in a state `up` can build on (a missing disk, a foreign pool)."""


def api_key_for(site: Site, target: Target, site_file_dir: Path | None = None,
                state: StateDir | None = None) -> Secret:
    """The node's API key: the site's key file, else TRUENAS_API_KEY, else the target's,
    else the one an earlier `up` created on a fresh node (infra/truenas/credentials.py)."""
    if site.truenas.api_key_file:
        path = Path(site.truenas.api_key_file)
        if not path.is_absolute() and site_file_dir is not None:
            path = site_file_dir / path
        try:
            mode = path.stat().st_mode
            key = path.read_text().strip()
        except OSError as exc:
            raise SiteFileError([f"truenas.api_key_file: cannot read {path} "
                                 f"({exc.strerror})"]) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SiteFileError([f"truenas.api_key_file: {path} is readable by others; "
                                 "chmod 600 it"])
        if not key:
            raise SiteFileError([f"truenas.api_key_file: {path} is empty"])
        return Secret(key)
    if os.environ.get("TRUENAS_API_KEY"):
        return Secret(os.environ["TRUENAS_API_KEY"])
    if target.truenas_api_key is not None:
        return target.truenas_api_key
    if state is not None and (stored := credentials.stored_api_key(state.path)) is not None:
        return stored
    raise SiteFileError(["truenas.api_key_file: no TrueNAS API key: name a key file in the "
                         "site file or export TRUENAS_API_KEY (on a fresh node, export "
                         f"{credentials.PASSWORD_ENV} or name truenas.admin_password_file "
                         "and `up` creates the key)"])


def check_node_credentials(site: Site, target: Target, state_path: Path | None = None) -> None:
    """SiteFileError unless a run can log in to the node: an API key (the site's file,
    TRUENAS_API_KEY, the target's, or the one stored in the state directory at
    `state_path`, by default the site's), or a fresh node's admin password."""
    try:
        api_key_for(site, target)
    except SiteFileError:
        path = state_path if state_path is not None else DEFAULT_ROOT / site.name
        if credentials.stored_api_key(path) is not None:
            return
        if credentials.admin_password(site.truenas.admin_password_file) is not None:
            return
        raise


RENEWAL_PROBE_SECONDS = 10.0


def site_certificate_test(site: Site, target: Target, address: str,
                          port: int) -> Callable[[str], bool] | None:
    """For a site with a front door: whether a certificate the node's UI presents at
    address:port is the site certificate (it chains to the target's ACME root, names
    one of the site's hostnames, is valid on the target's clock): a renewal, which a
    pin follows, rather than someone in the middle."""
    if site.tls is None:
        return None

    def renewed(pem: str) -> bool:
        wanted = fingerprint(pem)
        for hostname in site.dns.hostnames:
            probe = probe_tls(address, port, hostname, target.acme_root_ca,
                              timeout=target.timing.deadline(RENEWAL_PROBE_SECONDS),
                              now=target.now())
            if probe.ok and probe.certificate and probe.certificate.fingerprint == wanted:
                return True
        return False

    return renewed


def connect_site_node(site: Site, target: Target, state: StateDir, address: str,
                      log: CallLog | None = None, repin: bool = False,
                      credential: Secret | None = None) -> TrueNASClient:
    """One attempt to log in to the site's node: on the admin port, where a converged
    node serves its UI (the public 443 belongs to the ingress), else on 443, where a
    fresh one does. TrueNASUnavailable when neither answers. `credential`: the admin
    password of a fresh node, instead of the site's API key."""
    key = credential or api_key_for(site, target, state=state)
    unavailable: TrueNASUnavailable | None = None
    for port in (target.node_port(site.access.truenas_admin_port), target.truenas_https_port):
        try:
            return connect_node(address, key, site.truenas.username, state.path,
                                target.timing, port=port, log=log, repin=repin,
                                read_only=getattr(state, "read_only", False),
                                renewal=site_certificate_test(site, target, address, port))
        except TrueNASUnavailable as exc:
            unavailable = exc
    assert unavailable is not None
    raise unavailable


def open_node(site: Site, target: Target, state: StateDir, address: str,
              log: CallLog | None = None, reporter: Reporter | None = None,
              repin: bool = False) -> TrueNASClient:
    """A logged-in client to the node at `address`, once its middleware is READY.

    `repin`: the node was rebuilt on purpose (failover), so the certificate it
    presents now replaces whatever was pinned for that address.
    """
    password = None
    try:
        api_key_for(site, target, state=state)   # a missing key is refused before waiting
    except SiteFileError:
        # A fresh node: its admin password makes the site's key, unless this run may
        # not write the state directory (a read-only check keeps no key).
        if getattr(state, "read_only", False):
            raise
        password = credentials.admin_password(site.truenas.admin_password_file)
        if password is None:
            raise
    reporter = reporter or Reporter()
    first = [repin]

    def factory(credential: Secret | None = None) -> TrueNASClient:
        client = connect_site_node(site, target, state, address, log, repin=first[0],
                                   credential=credential)
        first[0] = False  # re-pin once, then hold the new node to its certificate
        return client

    with reporter.waiting(f"TrueNAS on {address} to be ready"):
        if password is not None:
            # A fresh node: the password once, for the site's own key.
            reporter.step(f"create the site's TrueNAS API key on {address}")
            credentials.provision_api_key(
                lambda secret: wait_until_ready(lambda: factory(secret), target.timing,
                                                what=f"TrueNAS on {address}"),
                state.path, site.name, site.truenas.username, password)
        return wait_until_ready(factory, target.timing, what=f"TrueNAS on {address}")


@dataclass
class PoolReport:
    name: str
    exists: bool
    status: str | None = None
    healthy: bool = False
    layout: str | None = None
    member_serials: list[str] | None = None
    scan: dict | None = None


def _member_serials(pool: dict, disks: dict[str, dict]) -> list[str]:
    serials = []
    for vdev in pool.get("topology", {}).get("data", []):
        leaves = vdev.get("children") or [vdev]
        for leaf in leaves:
            disk = disks.get(leaf.get("disk") or "")
            serials.append(disk["serial"] if disk else f"missing:{leaf.get('guid')}")
    return serials


def pool_report(client: TrueNASClient, site: Site) -> PoolReport:
    pools = client.call("pool.query", [["name", "=", site.truenas.pool]])
    if not pools:
        return PoolReport(site.truenas.pool, exists=False)
    pool = pools[0]
    disks = {d["name"]: d for d in client.call("disk.query")}
    data = pool.get("topology", {}).get("data", [])
    return PoolReport(
        name=pool["name"], exists=True, status=pool.get("status"),
        healthy=bool(pool.get("healthy")),
        layout=data[0]["type"] if len(data) == 1 else f"{len(data)} vdevs",
        member_serials=_member_serials(pool, disks), scan=pool.get("scan"),
    )


class NodeSetup:
    def __init__(self, site: Site, client: TrueNASClient, reporter: Reporter | None = None) -> None:
        self.site = site
        self.client = client
        self.reporter = reporter or Reporter()
        self.changes: list[str] = []

    def _change(self, text: str) -> None:
        self.reporter.step(text)
        self.changes.append(text)

    def converge(self) -> list[str]:
        self._pool()
        self._datasets()
        self._snapshot_tasks()
        return self.changes

    # --- the pool ---------------------------------------------------------------
    def _site_disks(self) -> list[dict]:
        disks = {d["serial"]: d for d in self.client.call("disk.query")}
        wanted = desired.volume_names(self.site)
        missing = [serial for serial in wanted if serial not in disks]
        if missing:
            raise NodeProblem(f"the node does not see volume(s) {', '.join(missing)}; are "
                              "they attached to its droplet?")
        return [disks[serial] for serial in wanted]

    def _pool(self) -> None:
        name = self.site.truenas.pool
        if self.client.call("pool.query", [["name", "=", name]]):
            return
        disks = self._site_disks()
        found = self.client.call_job("pool.import_find", real_seconds=IMPORT_SECONDS)
        importable = [p for p in found if p.get("name") == name]
        if importable:
            self._change(f"import pool {name} from the site's volumes")
            self.client.call_job("pool.import_pool", {"guid": importable[0]["guid"]},
                                 real_seconds=IMPORT_SECONDS)
            return
        foreign = [d["name"] for d in disks if d.get("pool")]
        if foreign:
            raise NodeProblem(f"disks {', '.join(foreign)} belong to another pool; not touched")
        devices = [d["name"] for d in disks]
        self._change(f"create pool {name} as a MIRROR of {', '.join(devices)} "
                     f"({', '.join(desired.volume_names(self.site))})")
        self.client.call_job("pool.create", {
            "name": name, "encryption": False,
            "topology": {"data": [{"type": "MIRROR", "disks": devices}]},
        }, real_seconds=POOL_CREATE_SECONDS)

    # --- datasets and snapshot tasks --------------------------------------------
    def _datasets(self) -> None:
        pool = self.site.truenas.pool
        existing = {d["name"] for d in self.client.call(
            "pool.dataset.query", [["pool", "=", pool]])}
        for relative in self.site.truenas.datasets:
            parts = relative.split("/")
            for depth in range(1, len(parts) + 1):  # parents first
                full = f"{pool}/{'/'.join(parts[:depth])}"
                if full not in existing:
                    self._change(f"create dataset {full}")
                    self.client.call("pool.dataset.create", {"name": full, "type": "FILESYSTEM"})
                    existing.add(full)

    def _task_body(self, policy: SnapshotPolicy) -> dict:
        return {
            "dataset": f"{self.site.truenas.pool}/{policy.dataset}",
            "recursive": policy.recursive, "exclude": [],
            "lifetime_value": policy.lifetime_value, "lifetime_unit": policy.lifetime_unit,
            "naming_schema": policy.naming_schema, "allow_empty": True, "enabled": True,
            "schedule": {"minute": policy.minute, "hour": policy.hour, "dom": policy.dom,
                         "month": policy.month, "dow": policy.dow,
                         "begin": "00:00", "end": "23:59"},
        }

    def _snapshot_tasks(self) -> None:
        tasks = self.client.call("pool.snapshottask.query")
        for policy in self.site.snapshots:
            body = self._task_body(policy)
            mine = [t for t in tasks if t["dataset"] == body["dataset"]
                    and t["naming_schema"] == body["naming_schema"]]
            if not mine:
                self._change(f"create snapshot task on {body['dataset']}")
                self.client.call("pool.snapshottask.create", body)
            elif not _same_task(mine[0], body):
                self._change(f"update snapshot task on {body['dataset']}")
                self.client.call("pool.snapshottask.update", mine[0]["id"], body)


def _same_task(task: dict, body: dict) -> bool:
    keys = ("recursive", "lifetime_value", "lifetime_unit", "naming_schema", "enabled")
    if any(task.get(k) != body[k] for k in keys):
        return False
    schedule = task.get("schedule", {})
    return all(str(schedule.get(k)) == str(v) for k, v in body["schedule"].items()
               if k in ("minute", "hour", "dom", "month", "dow"))
