"""The apps of one fake TrueNAS node: Docker's configuration, the apps and their
containers (`node.apps`, made on first use).

Follows reference/truenas-api.md §4 Apps and middleware stable/goldeye
plugins/docker/{update,state_management,state_setup,state_utils}.py,
plugins/apps/{crud,app_scale,custom_app}.py and ix_apps/query.py: each method says
the facts it holds, and what survives a node restart is under "boot" below. Chosen,
not known: Docker takes DOCKER_START_SECONDS to start; pulls take
deploy.PULL_SECONDS; stopping is instant; every well-formed image reference exists in
the fake's registry. Not modelled: changing address pools, nvidia or registry mirrors
(stored, nothing restarts), migrating ix-apps, exporting the apps pool under running
apps, app upgrades and the catalog.
"""

from __future__ import annotations

import copy
import errno
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fakes.truenas import events
from fakes.truenas.apps import custom, persist
from fakes.truenas.apps.compose import Project, Service
from fakes.truenas.apps.deploy import ComposeUp
from fakes.truenas.apps.networks import Networks
from fakes.truenas.apps.ports import Ports
from fakes.truenas.errors import CallError, ValidationErrors

if TYPE_CHECKING:
    from fakes.truenas.apps.containers import Container
    from fakes.truenas.jobs import Job
    from fakes.truenas.node import TrueNASNode

log = logging.getLogger(__name__)

DOCKER_START_SECONDS = 10.0
IX_APPS_MOUNT = "/mnt/.ix-apps"
VOLUMES_DIR = f"{IX_APPS_MOUNT}/docker/volumes"
DOCKER_DATASETS = ("ix-apps", "ix-apps/truenas_catalog", "ix-apps/app_configs",
                   "ix-apps/app_mounts", "ix-apps/docker")
DATASET_PROPS = {"aclmode": "discard", "acltype": "posix", "atime": "off", "exec": "on",
                 "snapdir": "hidden", "xattr": "sa"}
STATUS_DESCRIPTIONS = {
    "PENDING": "Application(s) state is to be determined yet",
    "RUNNING": "Application(s) are currently running",
    "INITIALIZING": "Application(s) are being initialized",
    "STOPPING": "Application(s) are being stopped",
    "STOPPED": "Application(s) have been stopped",
    "UNCONFIGURED": "Application(s) are not configured",
    "FAILED": "Application(s) have failed to start",
    "MIGRATING": "Application(s) are being migrated",
    "MIGRATION_FAILED": "Application(s) failed to migrate to new pool",
}
DEFAULT_SETTINGS: dict[str, Any] = {
    "id": 1, "pool": None, "enable_image_updates": True, "nvidia": False,
    "cidr_v6": "fdd0::/64",
    "address_pools": [{"base": "172.17.0.0/12", "size": 24}, {"base": "fdd0::/48", "size": 64}],
    "secure_registry_mirrors": [], "insecure_registry_mirrors": [],
}


def up_failed(name: str) -> CallError:
    return CallError(f"Failed 'up' action for {name!r} app. Please check "
                     "/var/log/app_lifecycle.log for more details")


def app_not_found(name: str) -> ValidationErrors:
    """CRUDService.get_instance's InstanceNotFound (a ValidationError, ENOENT)."""
    return ValidationErrors([(None, f"App {name} does not exist", errno.ENOENT)])


class App:
    def __init__(self, name: str, pool: str, config: dict, project: Project) -> None:
        self.name = name
        self.pool = pool
        self.config = config
        self.project = project
        self.containers: dict[str, Container] = {}
        self.operation: ComposeUp | None = None
        self.network_ids: dict[str, str] = {}
        self.portals = custom.portals_and_notes(config)
        self.last_state: str | None = None
        self.stopped_by_hand = False

    def volume_name(self, key: str) -> str:
        volume = self.project.volumes[key]
        if volume.name:
            return volume.name
        return key if volume.external else f"ix-{self.name}_{key}"

    def real_network_name(self, key: str) -> str:
        """The Docker network behind the file's key: its `name`, else the key itself for
        an external one, else "<project>_<key>" (compose's default naming)."""
        network = self.project.networks[key]
        return network.name or (key if network.external else f"ix-{self.name}_{key}")

    def network_names(self, service: Service) -> dict[str, list[str]]:
        """The Docker networks the service joins (real names) -> its aliases there."""
        return {self.real_network_name(key): aliases
                for key, aliases in service.networks.items()}

    @property
    def state(self) -> str:
        """From the containers (query.py): any crashed -> CRASHED; any created or
        starting -> DEPLOYING; all running or exited with at least one running ->
        RUNNING; else STOPPED (and a STOPPED app shows empty active_workloads)."""
        states = [c.state for c in self.containers.values()]
        if "crashed" in states:
            return "CRASHED"
        if "created" in states or "starting" in states:
            return "DEPLOYING"
        if states and all(s in ("running", "exited") for s in states) and "running" in states:
            return "RUNNING"
        return "STOPPED"

    def workloads(self) -> dict:
        if self.state == "STOPPED":
            return {"containers": 0, "used_ports": [], "used_host_ips": [],
                    "container_details": [], "volumes": [], "images": [], "networks": []}
        details = [c.details() for c in self.containers.values()]
        volumes: list[dict] = []
        for detail in details:
            volumes += [v for v in detail["volume_mounts"] if v not in volumes]
        host_ips = sorted({h["host_ip"] for d in details for p in d["port_config"]
                           for h in p["host_ports"] if h["host_ip"]})
        return {
            "containers": len(details),
            "used_ports": [p for d in details for p in d["port_config"]],
            "used_host_ips": host_ips,
            "container_details": details,
            "volumes": volumes,
            "images": sorted({d["image"] for d in details}),
            "networks": self._networks(),
        }

    def _networks(self) -> list[dict]:
        shown = []
        for key, network in self.project.networks.items():
            used = any(key in c.service.networks for c in self.containers.values())
            if network.external or not used:
                continue
            name = self.real_network_name(key)
            network_id = self.network_ids.setdefault(key, secrets.token_hex(32))
            shown.append({"Name": name, "Id": network_id, "Labels": {
                "com.docker.compose.network": key,
                "com.docker.compose.project": f"ix-{self.name}"}})
        return shown


class AppsRuntime:
    def __init__(self, node: TrueNASNode) -> None:
        self.node = node
        self.clock = node.clock
        self.settings: dict[str, Any] = copy.deepcopy(DEFAULT_SETTINGS)
        self.status = "UNCONFIGURED"
        self.status_detail: str | None = None
        self.images: set[str] = set()                  # image references pulled
        self._apps: dict[str, dict[str, App]] = {}     # pool -> name -> app
        self.ports = Ports(self)
        self.networks = Networks(self)

    # --- plumbing ----------------------------------------------------------------------
    def guarded(self, callback: Callable[[], None]) -> Callable[[], None]:
        """A clock callback: under node.lock, and not once the node is gone."""
        def run() -> None:
            with self.node.lock:
                if self.node.state == "SHUTTING_DOWN":
                    return
                callback()
        return run

    @property
    def apps(self) -> dict[str, App]:
        pool = self.settings["pool"]
        return self._apps.setdefault(pool, {}) if pool else {}

    def all_containers(self) -> Iterator[Container]:
        for app in self.apps.values():
            yield from app.containers.values()

    # --- Docker ------------------------------------------------------------------------
    def docker_config(self) -> dict:
        """{id, enable_image_updates, dataset, pool, nvidia, address_pools, cidr_v6,
        secure_registry_mirrors, insecure_registry_mirrors}, with `dataset`
        "<pool>/ix-apps" (null without a pool); defaults: image updates on, nvidia off,
        cidr_v6 "fdd0::/64", address pools 172.17.0.0/12 size 24 and fdd0::/48 size 64."""
        pool = self.settings["pool"]
        return {**copy.deepcopy(self.settings), "dataset": f"{pool}/ix-apps" if pool else None}

    def docker_status(self) -> dict:
        """{status, description}, descriptions from STATUS_DESCRIPTIONS; UNCONFIGURED
        without a pool."""
        description = STATUS_DESCRIPTIONS[self.status]
        if self.status_detail:
            description = f"{description}:\n{self.status_detail}"
        return {"status": self.status, "description": description}

    def _set_status(self, status: str, detail: str | None = None) -> None:
        self.status, self.status_detail = status, detail
        events.publish(self.node, "docker.state", "changed", fields=self.docker_status())

    def require_docker(self) -> None:
        """docker.state.validate, which every `app.*` call passes: app.create fails
        with these CallErrors, app.query answers [] (so get_instance, update,
        delete... say the app does not exist)."""
        if not self.settings["pool"]:
            raise CallError("No pool configured for Docker")
        if self.status != "RUNNING":
            raise CallError("Docker service is not running")

    @property
    def docker_ready(self) -> bool:
        return bool(self.settings["pool"]) and self.status == "RUNNING"

    def docker_update(self, data: dict, job: Job) -> None:
        """`docker.update {"pool"}` (job): a pool that is not imported is
        `docker_update.pool: Pool not found.`; a new pool stops the old pool's apps,
        creates `<pool>/ix-apps` and its children `truenas_catalog`, `app_configs`,
        `app_mounts`, `docker` (aclmode discard, acltype posix, atime off, exec on,
        snapdir hidden, xattr sa; the real ix-apps is mounted at /mnt/.ix-apps, the
        fake mounts every dataset at /mnt/<name>) and starts Docker: status
        INITIALIZING, then RUNNING; the job ends once Docker runs."""
        old = copy.deepcopy(self.settings)
        new = {**old, **copy.deepcopy(data)}
        migrate = new.pop("migrate_applications", False)
        errors = ValidationErrors()
        if new["pool"] and new["pool"] not in self.node.storage.pools:
            errors.add("docker_update.pool", "Pool not found.")
        for kind in ("secure_registry_mirrors", "insecure_registry_mirrors"):
            seen: set[str] = set()
            for i, mirror in enumerate(new[kind]):
                if mirror in seen:
                    label = kind.replace("_", " ").replace("mirrors", "mirror")
                    errors.add(f"docker_update.{kind}.{i}", f"Duplicate {label}.")
                seen.add(mirror)
        if migrate:
            if new["pool"] == old["pool"]:
                errors.add("docker_update.migrate_applications", "Migration of applications "
                           "dataset only happens when a new pool is configured.")
            elif not old["pool"]:
                errors.add("docker_update.migrate_applications", "A pool must have been "
                           "configured previously for ix-apps dataset migration.")
        errors.check()
        if migrate:
            raise CallError("The fake TrueNAS does not model migrating the ix-apps dataset",
                            errno.ENOTSUP)
        if new["pool"] == old["pool"]:
            self.settings = new
            persist.save_docker(self.node, self.settings)
            job.set_progress(100, "Requested configuration applied")
            job.succeed(self.docker_config())
            return
        job.set_progress(15, "Stopping Apps")
        for app in self.apps.values():
            self._down(app)
        job.set_progress(20, "Stopping Docker service")
        self._set_status("UNCONFIGURED")
        self.settings = new
        persist.save_docker(self.node, self.settings)
        job.set_progress(60, "Applying requested configuration")
        if not new["pool"]:
            job.set_progress(100, "Requested configuration applied")
            job.succeed(self.docker_config())
            return
        self._create_datasets(new["pool"])
        self._set_status("INITIALIZING")

        def started() -> None:
            if self.settings["pool"] != new["pool"]:
                job.fail(CallError("Docker was pointed at another pool meanwhile"))
                return
            self._set_status("RUNNING")
            job.set_progress(100, "Requested configuration applied")
            job.succeed(self.docker_config())

        self.clock.call_later(DOCKER_START_SECONDS, self.guarded(started))

    def _create_datasets(self, pool_name: str) -> None:
        from fakes.truenas.models import datasets

        pool = self.node.storage.pools[pool_name]
        created = False
        for rel in DOCKER_DATASETS:
            if rel not in pool.meta["datasets"]:
                datasets.create(pool, rel, dataset_type="FILESYSTEM", local=dict(DATASET_PROPS),
                                user_props={}, create_ancestors=False,
                                now=self.node.storage.now())
                created = True
        if created:
            pool.commit()

    # --- files and names (for containers) -------------------------------------------------
    def volume_path(self, volume: str) -> str:
        return f"{VOLUMES_DIR}/{volume}/_data"

    def _on_pool(self, host_path: str) -> str:
        """/mnt/.ix-apps/... is the ix-apps dataset, which the fake keeps at
        /mnt/<pool>/ix-apps."""
        pool = self.settings["pool"]
        if pool and (host_path == IX_APPS_MOUNT or host_path.startswith(IX_APPS_MOUNT + "/")):
            return f"/mnt/{pool}/ix-apps" + host_path[len(IX_APPS_MOUNT):]
        return host_path

    def read_host_file(self, host_path: str) -> bytes | None:
        with self.node.lock:
            try:
                return self.node.storage.read_file(self._on_pool(host_path))
            except CallError:
                return None

    def write_host_file(self, host_path: str, data: bytes,
                        owner: tuple[int, int] | None = None) -> None:
        """A container process writes a file through a bind mount (CallError if the
        node cannot store it there); a new file belongs to the process's uid:gid
        (`owner`, root when None)."""
        from fakes.truenas.models.files import chown

        with self.node.lock:
            path = self._on_pool(host_path)
            # what this write creates (the file, missing directories) is the writer's,
            # as a process's open(O_CREAT)/mkdir make them
            made = [p for p in _ancestors_and_self(path) if not self._exists(p)]
            self.node.storage.write_file(path, data)
            if owner is not None:
                for created in made:
                    chown(self.node.storage, created, owner[0], owner[1])

    def host_file_written(self, path: str) -> None:
        """A file on a pool changed (filesystem.put): a running container that mounts it
        sees it at once (process.py mirrors it for a real program). Under node.lock."""
        for container in self.all_containers():
            view = container.running_view
            hook = view.state.get("on_pool_write") if view is not None else None
            if hook is None:
                continue
            mirror, refresh = hook
            if mirror.covers(path) or mirror.covers(self._on_pool(path)):
                try:
                    refresh()
                except Exception:  # noqa: BLE001 - the write itself succeeded
                    log.exception("mirroring %s into %s failed", path, container.name)

    def list_host_files(self, host_path: str) -> dict[str, str] | None:
        """Files under a directory of a pool dataset: relative name -> object id."""
        from fakes.truenas.models.files import resolve

        with self.node.lock:
            try:
                loc = resolve(self.node.storage, self._on_pool(host_path))
            except CallError:
                return None
            if loc.pool is None:
                return None
            prefix = loc.inner + "/" if loc.inner else ""
            return {name[len(prefix):]: record["oid"] for name, record in loc.files.items()
                    if name.startswith(prefix)}

    def host_read_only(self, host_path: str) -> bool:
        """Whether the dataset holding `host_path` is read-only (its own `readonly` or
        an ancestor's, as ZFS inherits it): every write there fails with EROFS,
        whoever writes (models/datasets.py check_space)."""
        from fakes.truenas.models import datasets
        from fakes.truenas.models.files import resolve

        with self.node.lock:
            try:
                loc = resolve(self.node.storage, self._on_pool(host_path))
            except CallError:
                return False
            if loc.pool is None:
                return False
            return datasets.effective(loc.pool, loc.rel, "readonly")[0] == "on"

    def host_owner(self, host_path: str) -> tuple[int, int] | None:
        """uid and gid of a path on the node, or None if it is not there."""
        with self.node.lock:
            try:
                stat = self.node.storage.stat(self._on_pool(host_path))
            except CallError:
                return None
        return int(stat["uid"]), int(stat["gid"])

    def create_problem(self, app: App, service: Service) -> str | None:
        """Why the engine cannot create the service's container, or None."""
        names = {c.name for c in self.all_containers()}
        wanted = service.container_name or f"ix-{app.name}-{service.name}-1"
        if wanted in names:
            return (f'Conflict. The container name "/{wanted}" is already in use by '
                    "another container")
        for mount in service.mounts:
            if mount.type != "bind":
                continue
            source = mount.source
            if not source.startswith("/mnt/") or source.startswith(("/mnt/..", "/mnt/./")):
                # a real engine mounts any host path; the fake has no host filesystem
                # beyond its pools, so it refuses rather than pretend
                return (f"invalid mount config for type \"bind\": the fake TrueNAS mounts "
                        f"host paths only from pools under /mnt ({source})")
            path = self._on_pool(source)
            if path.split("/")[2] not in self.node.storage.pools or (
                    not mount.create_host_path and not self._exists(path)):
                return (f'invalid mount config for type "bind": bind source path does not '
                        f"exist: {source}")
        return None

    def _exists(self, path: str) -> bool:
        try:
            self.node.storage.stat(path)
        except CallError:
            return False
        return True

    def resolve(self, container: Container, dial: str) -> tuple[str, int] | None:
        with self.node.lock:
            return self.ports.resolve(container, dial)

    # --- hooks from containers and compose ----------------------------------------------
    def allocate_ports(self, container: Container) -> str | None:
        return self.ports.allocate(container)

    def publish_ports(self, container: Container) -> str | None:
        return self.ports.publish(container)

    def release_ports(self, container: Container) -> None:
        self.ports.release(container)

    def remove_container(self, container: Container) -> None:
        container.remove()
        self.ports.resync(container.app)

    def container_changed(self, container: Container) -> None:
        app = container.app
        if app.operation is not None:
            app.operation.advance()
        self.app_changed(app)

    def app_changed(self, app: App) -> None:
        if self.apps.get(app.name) is not app:
            return
        state = app.state
        if state != app.last_state:
            app.last_state = state
            events.publish(self.node, "app.query", "changed", id=app.name,
                           fields=self.entry(app))

    # --- app.query -------------------------------------------------------------------------
    def entry(self, app: App, host_ip: str | None = None, retrieve_config: bool = False,
              include_app_schema: bool = False) -> dict:
        entry = {
            "name": app.name, "id": app.name, "active_workloads": app.workloads(),
            "state": app.state, "upgrade_available": False, "latest_version": None,
            "image_updates_available": False, "metadata": copy.deepcopy(custom.METADATA),
            "migrated": False, "custom_app": True, "version": custom.VERSION,
            "human_version": custom.VERSION_DETAILS["human_version"],
            "portals": custom.with_host(app.portals["portals"], host_ip or self.node.address),
            "notes": app.portals["notes"],
        }
        if retrieve_config:
            entry["config"] = copy.deepcopy(app.config)
        if include_app_schema:
            entry["version_details"] = copy.deepcopy(custom.VERSION_DETAILS)
        return entry

    def entries(self, **options: Any) -> list[dict]:
        if not self.docker_ready:
            return []
        return [self.entry(app, **options) for app in self.apps.values()]

    def get(self, name: str) -> App:
        app = self.apps.get(name) if self.docker_ready else None
        if app is None:
            raise app_not_found(name)
        return app

    # --- app lifecycle ---------------------------------------------------------------------
    def _down(self, app: App) -> None:
        """`docker compose down`: every container stopped and removed, ports released."""
        if app.operation is not None:
            app.operation.abort("the app was taken down while it was being deployed")
        for container in app.containers.values():
            container.remove()
        app.containers = {}
        self.ports.withdraw_app(app)
        self.networks.release(app)
        self.app_changed(app)

    def _up(self, app: App, job: Job, done: Callable[[], None],
            failed: Callable[[str], None] | None = None) -> None:
        def finished(reason: str | None) -> None:
            if reason is None:
                done()
                return
            log.info("app %s: compose up failed: %s", app.name, reason)
            if failed is not None and not up.aborted:
                failed(reason)
            job.logs_excerpt = reason + "\n"
            job.fail(up_failed(app.name))

        self._down(app)
        up = ComposeUp(self, app, finished)
        up.begin()

    def create(self, name: str, config: dict, project: Project, job: Job) -> None:
        """app.create: `Application with name <name> already exists` (EEXIST); on a
        failed `up` the app is taken down and removed again (remove_failed_resources)
        and the job fails with compose_action's CallError. The reason a real `up`
        fails is only in /var/log/app_lifecycle.log; the fake also puts it in the
        job's `logs_excerpt`."""
        self.require_docker()
        if name in self.apps:
            raise CallError(f"Application with name {name} already exists", errno.EEXIST)
        job.set_progress(25, "Initial validation completed for custom app creation")
        job.set_progress(35, "Setting up App directory")
        app = App(name, self.settings["pool"], copy.deepcopy(config), project)
        self.apps[name] = app
        self._save(app)
        job.set_progress(60, "App installation in progress, pulling images")

        def done() -> None:
            events.publish(self.node, "app.query", "added", id=name, fields=self.entry(app))
            job.set_progress(100, f"{name!r} installed successfully")
            job.succeed(self.entry(app))

        def failed(reason: str) -> None:
            job.set_progress(80, f"Failure occurred while installing {name!r}, cleaning up")
            self._down(app)
            if self.apps.get(name) is app:
                del self.apps[name]
                persist.remove_app(self.node, app.pool, name)
            events.publish(self.node, "app.query", "removed", id=name)

        self._up(app, job, done, failed)

    def update(self, name: str, data: dict | None, job: Job,
               keyword: str = "Update") -> None:
        """app.update (new compose file in `data`: it replaces the old; compose runs
        only if the app was not STOPPED) and app.redeploy (data None: compose runs
        with the current file)."""
        app = self.get(name)
        trigger = keyword != "Update" or app.state != "STOPPED"
        if data is not None:
            config, project = custom.validate_payload(data, "app_update")
            app.config, app.project = copy.deepcopy(config), project
        if trigger:
            app.stopped_by_hand = False
        self._save(app)
        job.set_progress(25, "Initial Validation completed")
        job.set_progress(60, "Configuration updated")
        events.publish(self.node, "app.query", "changed", id=name, fields=self.entry(app))

        def done() -> None:
            job.set_progress(100, f"{keyword} completed for {name!r}")
            job.succeed(self.entry(app))

        if not trigger:
            done()
            return
        job.set_progress(70, "Updating docker resources")
        self._up(app, job, done)

    def start(self, name: str, job: Job) -> None:
        """app.start is `compose up`."""
        app = self.get(name)
        job.set_progress(20, f"Starting {name!r} app")
        app.stopped_by_hand = False
        self._save(app)

        def done() -> None:
            job.set_progress(100, f"Started {name!r} app")
            job.succeed(None)

        self._up(app, job, done)

    def stop(self, name: str, job: Job) -> None:
        """app.stop is `compose down`: containers removed, STOPPED, empty workloads."""
        app = self.get(name)
        job.set_progress(20, f"Stopping {name!r} app")
        self._down(app)
        app.stopped_by_hand = True
        self._save(app)
        job.set_progress(100, f"Stopped {name!r} app")
        job.succeed(None)

    def delete(self, name: str, remove_images: bool, job: Job) -> None:
        """app.delete is `compose down` with volumes (and images unless remove_images
        is false), and forgets the app."""
        app = self.get(name)
        job.set_progress(20, f"Deleting {name!r} app")
        self._down(app)
        if remove_images:
            still_used = {s.image for other in self.apps.values() if other is not app
                          for s in other.project.services.values()}
            self.images -= {s.image for s in app.project.services.values()} - still_used
        job.set_progress(80, "Cleaning up resources")
        self.apps.pop(name, None)
        persist.remove_app(self.node, app.pool, name)
        events.publish(self.node, "app.query", "removed", id=name)
        job.set_progress(100, f"Deleted {name!r} app")
        job.succeed(True)

    def _save(self, app: App) -> None:
        persist.save_app(self.node, app.pool, app.name, app.config, app.portals,
                         app.stopped_by_hand)

    # --- boot ------------------------------------------------------------------------------
    # What survives a node restart (persist.py): docker.config on the node's boot disk,
    # each app's files under `<pool>/ix-apps/app_configs`. At boot Docker starts once
    # its pool is imported (the fake imports no pool by itself at boot: a client's
    # pool.import_pool does, and `pool_imported` follows it), taking
    # DOCKER_START_SECONDS, and the apps come back: moby restarts containers with the
    # `always` or `unless-stopped` policy when dockerd starts, so an app whose every
    # service has one of those is deployed again (DEPLOYING, then RUNNING, ports
    # published again); any other app, and one stopped by hand (app.stop is `compose
    # down`: no containers are left to restart), is STOPPED. Chosen, not known: an app
    # mixing policies stays STOPPED (a real node would restart just those containers);
    # `on-failure` containers do not restart at boot; a configured pool that is not
    # imported leaves Docker FAILED until it is.
    def restore(self, settings: dict[str, Any]) -> None:
        """The node boots with a saved docker.config: Docker starts if its pool is
        here, else it waits for the pool's import."""
        self.settings = {**self.settings, **settings}
        pool = self.settings["pool"]
        if pool and pool in self.node.storage.pools:
            self._start_at_boot(pool)
        elif pool:
            self.status, self.status_detail = "FAILED", f"Pool {pool!r} is not imported"

    def pool_imported(self, pool: str) -> None:
        if pool == self.settings["pool"] and self.status in ("FAILED", "UNCONFIGURED"):
            self._start_at_boot(pool)

    def _start_at_boot(self, pool: str) -> None:
        self._set_status("INITIALIZING")

        def started() -> None:
            if self.settings["pool"] != pool or pool not in self.node.storage.pools:
                return
            self._set_status("RUNNING")
            for name, config, stopped in persist.load_apps(self.node, pool):
                self._restore_app(pool, name, config, stopped)

        self.clock.call_later(DOCKER_START_SECONDS, self.guarded(started))

    def _restore_app(self, pool: str, name: str, config: dict, stopped: bool) -> None:
        try:
            config, project = custom.validate_payload({"custom_compose_config": config},
                                                      "app_create")
        except ValidationErrors as exc:
            log.warning("app %s: its saved compose file no longer loads: %s", name, exc)
            return
        app = App(name, pool, copy.deepcopy(config), project)
        app.stopped_by_hand = stopped
        # Docker's data root is <pool>/ix-apps/docker: the images pulled before are there
        self.images |= {service.image for service in project.services.values()}
        self._apps.setdefault(pool, {})[name] = app
        # dockerd restarts, at its start, the containers whose policy is always or
        # unless-stopped. The fake brings the whole project up when any service has
        # such a policy: a one-shot job (on-failure) beside them runs again, which the
        # real boot does not do (harmless for an idempotent job such as db-init).
        restarts = any(s.restart.partition(":")[0] in ("always", "unless-stopped")
                       for s in project.services.values())
        if stopped or not restarts or not project.services:
            self.app_changed(app)
            return

        def finished(reason: str | None) -> None:
            if reason is not None:
                log.info("app %s: start at boot failed: %s", name, reason)

        ComposeUp(self, app, finished).begin()
        self.app_changed(app)

    def shut_down(self) -> None:
        """The node is going away: every process ends (its listeners go with the node)."""
        for apps in self._apps.values():
            for app in apps.values():
                if app.operation is not None:
                    app.operation.abort("The system is shutting down")
                for container in app.containers.values():
                    container.remove()


def _ancestors_and_self(path: str) -> list[str]:
    """/mnt/p/a/b/f -> [/mnt/p/a, /mnt/p/a/b, /mnt/p/a/b/f] (below the pool)."""
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(4, len(parts) + 1)]


def restore_at_boot(node: TrueNASNode) -> None:
    """dockerd starts at boot with the saved docker.config (nothing to do without one)."""
    settings = persist.load_docker(node)
    if settings is not None:
        node.apps.restore(settings)
