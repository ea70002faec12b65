"""Deploying rendered charts to a TrueNAS node over its JSON-RPC API
(reference/truenas-api.md §4 "Apps"; truenas-schemas/app.*.json, docker.*.json).

Order, each step only when something differs (a second `up` of an unchanged site
sends no mutating call). First, read-only: no app may publish a port the TrueNAS web
UI listens on (`system.general.config`), nor one another app holds.
1. Docker on the site pool: `docker.config` says where it is; `docker.update
   {"pool"}` (a job) when it is elsewhere or nowhere; then `docker.status` must
   reach RUNNING.
2. The apps' datasets (`<pool>/apps/<app>/...`), parents first.
3. Each app's files (`filesystem.put`), after reading the current bytes back
   (`filesystem.get`) so that an unchanged file is not written again; a file marked
   `on_change = "create"` only when it is not there at all. Then ownership, AFTER the
   files: `filesystem.put` makes the file and its missing directories as root
   (middleware plugins/filesystem.py), so a dataset owned by the service's user is
   chowned (recursively) once its files are in, and each file with an owner is checked
   with the directories between it and its dataset (`filesystem.stat`, then
   `filesystem.chown` of what differs).
4. `app.create` (custom_app + custom_compose_config) for a new app, `app.update` when
   the rendered project's hash differs from the deployed one (read from the
   project's `x-truenas-site` extension via `app.query` with `retrieve_config`, or
   from the state directory), then wait, bounded, for RUNNING; CRASHED is an error
   naming the app and what its containers say.
Before 3, apps of this site that the site no longer runs are deleted (`app.delete`),
so that their ports are free for the others.
Apps that are not this site's are never touched: their ports only count as taken.
"""

from __future__ import annotations

import errno
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from infra.charts.errors import AppCrashed, AppDeployError
from infra.charts.ports import published_ports
from infra.charts.render import EXTENSION, RenderedApp
from infra.errors import WaitTimeout
from infra.events import Reporter
from infra.site import Site
from infra.state import StateDir
from infra.truenas.client import TrueNASClient
from infra.truenas.errors import JobFailed, TransferFailed, TrueNASCallError, TrueNASError
from infra.wait import Pending, wait_for

DOCKER_SECONDS = 900.0      # docker.update sets up ix-apps on the pool and starts dockerd
APP_JOB_SECONDS = 900.0     # app.create/update pull images and start the project
APP_RUNNING_SECONDS = 900.0  # health checks passing after the job ended
CHOWN_SECONDS = 300.0       # a recursive chown of a dataset that may already hold data
STATE_KIND = "apps"         # state directory: app name -> {"hash", "chart_version"}
DETAIL_KEYS = ("reason", "error", "message", "status", "health")


def _extension(entry: dict) -> dict:
    config = entry.get("config")
    if isinstance(config, dict) and isinstance(config.get(EXTENSION), dict):
        return config[EXTENSION]
    return {}


def crash_reasons(entry: dict) -> list[str]:
    """What an app's containers say about why it is not running."""
    reasons = []
    for container in (entry.get("active_workloads") or {}).get("container_details") or []:
        state = container.get("state")
        if state == "running":
            continue
        detail = "; ".join(f"{key}: {container[key]}" for key in DETAIL_KEYS
                           if container.get(key))
        reasons.append(f"service {container.get('service_name', '?')} "
                       f"({container.get('image', '?')}) is {state}"
                       + (f" ({detail})" if detail else ""))
    return reasons


@dataclass
class AppReport:
    """What `check` says about one app (read-only: app.query only)."""
    name: str
    state: str                      # RUNNING, DEPLOYING, CRASHED, ... or MISSING
    up_to_date: bool                # the deployed project's hash is the rendered one
    deployed_chart_version: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.state == "RUNNING" and self.up_to_date


class ChartDeployer:
    def __init__(self, site: Site, client: TrueNASClient, state: StateDir,
                 reporter: Reporter | None = None) -> None:
        self.site = site
        self.client = client
        self.state = state
        self.reporter = reporter or Reporter()
        self.timing = client.timing
        self.changes: list[str] = []
        self._known: list[RenderedApp] = []  # whose secrets are scrubbed from errors

    def _scrub(self, text: str) -> str:
        for app in self._known:
            text = app.scrub(text)
        return text

    def _change(self, text: str) -> None:
        self.reporter.step(text)
        self.changes.append(text)

    # --- the whole run -----------------------------------------------------------
    def converge(self, apps: list[RenderedApp], *, prune: bool = True,
                 keep: Collection[str] = ()) -> list[str]:
        """Make the node run exactly `apps` (validated already); the changes made.
        `keep`: apps of the site left as they are, neither deployed nor deleted (an app
        whose data is a replication's read-only copy waits for `promote`)."""
        self._known = list(apps)
        self._ui_ports(apps)
        self.ensure_docker()
        self._datasets(apps)
        existing = {entry["name"]: entry for entry in self.query()}
        self._foreign_ports(apps, existing)
        if prune:  # first, so that the ports of an app the site dropped are free again
            wanted = {app.name for app in apps} | set(keep)
            for name in sorted(set(self.owned(existing)) - wanted):
                self._delete(name)
        for app in apps:
            self._files(app)
            self._ownership(app)
            self._app(app, existing.get(app.name))
        return self.changes

    def remove(self) -> list[str]:
        """`down`: delete every app of this site on the node (data stays on the pool)."""
        if not self._docker_configured():
            return self.changes
        for name in sorted(self.owned({e["name"]: e for e in self.query()})):
            self._delete(name)
        return self.changes

    def report(self, apps: list[RenderedApp]) -> list[AppReport]:
        """The state of each app on the node, changing nothing."""
        self._known = list(apps)
        existing = {e["name"]: e for e in self.query()} if self._docker_configured() else {}
        reports = []
        for app in apps:
            entry = existing.get(app.name)
            if entry is None:
                reports.append(AppReport(app.name, "MISSING", False))
                continue
            state = str(entry.get("state"))
            reasons = [] if state == "RUNNING" else [self._scrub(r) for r in crash_reasons(entry)]
            reports.append(AppReport(app.name, state, self.deployed_hash(entry) == app.hash,
                                     _extension(entry).get("chart_version"), reasons))
        return reports

    # --- Docker ----------------------------------------------------------------
    def _docker_configured(self) -> bool:
        return self.client.call("docker.config").get("pool") == self.site.truenas.pool

    def ensure_docker(self) -> None:
        pool = self.site.truenas.pool
        current = self.client.call("docker.config").get("pool")
        if current != pool:
            where = f"from pool {current}" if current else "(Docker has no pool yet)"
            self._change(f"point Docker at pool {pool} {where}")
            self.client.call_job("docker.update", {"pool": pool}, real_seconds=DOCKER_SECONDS)
        self._wait_docker()

    def _wait_docker(self) -> None:
        def running() -> bool | Pending:
            status = self.client.call("docker.status")
            state = status.get("status")
            if state == "RUNNING":
                return True
            if state in ("FAILED", "MIGRATION_FAILED", "UNCONFIGURED"):
                raise AppDeployError(f"Docker on pool {self.site.truenas.pool} is {state}: "
                                     f"{status.get('description') or 'no description'}")
            return Pending(f"it is {state}")

        wait_for("Docker to be running", running, self.timing, DOCKER_SECONDS,
                 reporter=self.reporter,
                 timeout=lambda limit, status: WaitTimeout(
                     f"gave up waiting for Docker to be RUNNING after {limit:.1f} s; {status}"))

    # --- datasets and files -------------------------------------------------------
    def _datasets(self, apps: list[RenderedApp]) -> None:
        existing = {d["name"] for d in self.client.call(
            "pool.dataset.query", [["pool", "=", self.site.truenas.pool]])}
        for app in apps:
            for name in app.datasets:  # parents first
                if name not in existing:
                    self._change(f"create dataset {name}")
                    self.client.call("pool.dataset.create", {"name": name, "type": "FILESYSTEM"})
                    existing.add(name)

    def _ownership(self, app: RenderedApp) -> None:
        """After the files are written: datasets (recursively), then each owned file
        and the directories filesystem.put may have made for it as root."""
        for name, (uid, gid) in app.owners.items():
            self._own(f"/mnt/{name}", uid, gid)
        for rendered in app.files:
            if rendered.owner is None:
                continue
            uid, gid = rendered.owner
            base = rendered.dataset_path.rstrip("/")
            inner = rendered.path[len(base) + 1:].split("/") if rendered.path.startswith(
                base + "/") else [rendered.path.rsplit("/", 1)[-1]]
            for depth in range(1, len(inner) + 1):
                self._own_one(base + "/" + "/".join(inner[:depth]), uid, gid)

    def _own_one(self, path: str, uid: int, gid: int) -> None:
        stat = self.client.call("filesystem.stat", path)
        if (stat.get("uid"), stat.get("gid")) == (uid, gid):
            return
        self._change(f"give {path} to {uid}:{gid}")
        self.client.call_job("filesystem.chown", {"path": path, "uid": uid, "gid": gid,
                                                  "options": {"recursive": False,
                                                              "traverse": False}},
                             real_seconds=CHOWN_SECONDS)

    def _own(self, path: str, uid: int, gid: int) -> None:
        """The service's user owns its dataset (filesystem.chown, a job; checked with
        filesystem.stat first, so a converged site sends nothing)."""
        stat = self.client.call("filesystem.stat", path)
        if (stat.get("uid"), stat.get("gid")) == (uid, gid):
            return
        self._change(f"give {path} to {uid}:{gid}")
        self.client.call_job("filesystem.chown", {"path": path, "uid": uid, "gid": gid,
                                                  "options": {"recursive": True,
                                                              "traverse": False}},
                             real_seconds=CHOWN_SECONDS)

    def _current_bytes(self, path: str) -> bytes | None:
        try:
            return self.client.download(path)
        except (JobFailed, TransferFailed, TrueNASCallError):
            return None  # not there yet (ENOENT), or unreadable: write it

    def _exists(self, path: str) -> bool:
        """Whether `path` is on the node (filesystem.stat; ENOENT: not there). Any other
        failure propagates: a file the service owns is never overwritten on a guess."""
        try:
            self.client.call("filesystem.stat", path)
        except TrueNASCallError as exc:
            if exc.errno == errno.ENOENT or exc.errname == "ENOENT":
                return False
            raise
        return True

    def _files(self, app: RenderedApp) -> None:
        for rendered in app.files:
            if rendered.on_change == "create":
                if self._exists(rendered.path):
                    continue  # a seed the service now owns (and may have rewritten)
            elif self._current_bytes(rendered.path) == rendered.content:
                continue
            self._change(f"write {rendered.path} ({len(rendered.content)} bytes)")
            try:
                self.client.upload(rendered.path, rendered.content, mode=rendered.mode)
            except TrueNASError as exc:
                raise AppDeployError(self._scrub(f"writing {rendered.path} for app "
                                                 f"{app.name} failed: {exc}")) from None

    # --- apps ------------------------------------------------------------------------
    def query(self, name: str | None = None) -> list[dict]:
        filters = [["name", "=", name]] if name else []
        return self.client.call("app.query", filters, {"extra": {"retrieve_config": True}})

    def owned(self, existing: dict[str, dict]) -> list[str]:
        """Names of the apps on the node that belong to this site."""
        recorded = self.state.created(STATE_KIND)
        return [name for name, entry in existing.items()
                if _extension(entry).get("site") == self.site.name or name in recorded]

    def deployed_hash(self, entry: dict) -> str | None:
        found = _extension(entry).get("hash")
        if found:
            return found
        record = self.state.created(STATE_KIND).get(entry["name"])
        return record.get("hash") if isinstance(record, dict) else None

    def _foreign_ports(self, apps: list[RenderedApp], existing: dict[str, dict]) -> None:
        ours = {app.name for app in apps} | set(self.owned(existing))
        taken: dict[tuple[int, str], str] = {}
        for name, entry in existing.items():
            if name in ours:
                continue
            for used in (entry.get("active_workloads") or {}).get("used_ports") or []:
                for host in used.get("host_ports") or []:
                    taken[(int(host["host_port"]), str(used.get("protocol", "tcp")))] = name
        problems = [
            f"app {app.name}: host port {port.port}/{port.protocol} is already used by app "
            f"{taken[(port.port, port.protocol)]}, which is not this site's"
            for app in apps for port in published_ports(app.compose)
            if (port.port, port.protocol) in taken
        ]
        if problems:
            raise AppDeployError("; ".join(problems))

    def _ui_ports(self, apps: list[RenderedApp]) -> None:
        """The web UI listens on ui_port/ui_httpsport (80/443 on a fresh node): an app
        publishing one of them would fail in `docker compose up`, with nothing better
        than "Failed 'up' action" to say why. Say it before changing anything."""
        config = self.client.call("system.general.config")
        held = {int(config[key]): key for key in ("ui_port", "ui_httpsport")
                if isinstance(config.get(key), int)}
        problems = [
            f"app {app.name}: host port {port.port} is held by the TrueNAS web UI "
            f"(system.general {held[port.port]}); move the UI to the admin port "
            f"({self.site.access.truenas_admin_port}) first"
            for app in apps for port in published_ports(app.compose)
            if port.protocol == "tcp" and port.port in held
        ]
        if problems:
            raise AppDeployError("; ".join(problems))

    def _describe(self, app: RenderedApp) -> str:
        return (f"app {app.name} (chart {app.chart.name} {app.chart.chart_version}, "
                f"{app.chart.app_version})")

    def _app(self, app: RenderedApp, entry: dict | None) -> None:
        if entry is None:
            self._change(f"create {self._describe(app)}")
            self._job(app, "app.create", {"app_name": app.name, "custom_app": True,
                                          "custom_compose_config": app.compose})
        elif self.deployed_hash(entry) != app.hash:
            self._change(f"update {self._describe(app)}")
            self._job(app, "app.update", app.name, {"custom_compose_config": app.compose})
        elif entry.get("state") == "STOPPED":
            self._change(f"start app {app.name}")
            self._job(app, "app.start", app.name)
        elif entry.get("state") == "CRASHED":
            self._change(f"redeploy crashed app {app.name}")
            self._job(app, "app.redeploy", app.name)
        elif entry.get("state") == "RUNNING":
            self._record(app)
            return
        self.wait_running(app.name)
        self._record(app)

    def _job(self, app: RenderedApp, method: str, *params: Any) -> None:
        try:
            self.client.call_job(method, *params, real_seconds=APP_JOB_SECONDS)
        except WaitTimeout as exc:
            # `docker compose up` still waiting: on a dependency that keeps crashing,
            # typically; say what the containers say
            found = self.client.call("app.query", [["name", "=", app.name]])
            reasons = [self._scrub(r) for r in crash_reasons(found[0])] if found else []
            if not reasons:
                raise
            raise WaitTimeout(f"{exc} ({'; '.join(reasons)})") from None
        except TrueNASCallError as exc:
            # the node may echo the project back; it holds the app's secrets
            raise AppDeployError(self._scrub(f"{method} of app {app.name} failed: {exc}")) \
                from None

    def _record(self, app: RenderedApp) -> None:
        record = {"hash": app.hash, "chart_version": app.chart.chart_version}
        if self.state.created(STATE_KIND).get(app.name) != record:
            self.state.record_created(STATE_KIND, app.name, record)

    def wait_running(self, name: str) -> dict:
        """Poll app.query until `name` is RUNNING; AppCrashed, or WaitTimeout."""
        def running() -> dict | Pending:
            found = self.client.call("app.query", [["name", "=", name]])
            if not found:
                raise AppDeployError(f"app {name} vanished from the node while deploying")
            entry = found[0]
            state = entry.get("state")
            if state == "RUNNING":
                return entry
            if state in ("CRASHED", "ERROR"):
                raise AppCrashed(name, [self._scrub(r) for r in crash_reasons(entry)])
            reasons = [self._scrub(r) for r in crash_reasons(entry)]
            return Pending(f"it is {state}" + (f" ({'; '.join(reasons)})" if reasons else ""))

        return wait_for(f"app {name} to be RUNNING", running, self.timing,
                        APP_RUNNING_SECONDS, reporter=self.reporter)

    def _delete(self, name: str) -> None:
        self._change(f"delete app {name}")
        try:
            self.client.call_job("app.delete", name, {"remove_images": True,
                                                      "remove_ix_volumes": False},
                                 real_seconds=APP_JOB_SECONDS)
        except TrueNASCallError as exc:
            raise AppDeployError(f"app.delete of app {name} failed: {exc}") from None
        self.state.forget(STATE_KIND, name)
