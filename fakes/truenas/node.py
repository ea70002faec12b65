"""One fake TrueNAS node: boot state, disks, storage, jobs, API keys.

The node is the model side; `rpc.py` (the protocol adapter) calls `node.call(...)`
under `node.lock` (the world's one lock, shared with the DigitalOcean fake, so disk
hot-plug from a volume attach and an RPC never interleave).

Boot: the node exists from the moment its droplet is active; `system.state` is
BOOTING for BOOT_SECONDS of virtual time, then READY (reference/truenas-api.md §4 System).
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.clock import VirtualClock
from fakes.truenas.errors import CallError, MethodNotFound
from fakes.truenas.jobs import JobManager

ADMIN_USER = "truenas_admin"  # the installer's administrator (25.04+)
BOOT_SECONDS = 90.0          # TrueNAS middleware takes a minute or two to come up
TRUENAS_VERSION = "25.10.2"
CALL_JOURNAL_SIZE = 20000


@dataclass
class CallContext:
    """What a handler may know about the call it serves."""

    message_id: Any = None
    username: str | None = None
    legacy_jobs: bool = True
    pipe_input: bytes | None = None      # the file part of a /_upload call
    method: str = ""                     # the method's name, set by TrueNASNode.call


Handler = Callable[["TrueNASNode", list, CallContext], Any]


@dataclass
class TrueNASNode:
    droplet_id: int
    hostname: str
    address: str
    clock: VirtualClock
    lock: Any
    state_dir: Path
    api_keys: dict[str, str]               # "<id>-<secret>" -> username
    admin_password: str | None = None      # truenas_admin's, set by the image's installer
    # Its RAM in bytes (system.info `physmem`): chosen, 8 GiB as a s-4vcpu-8gb droplet;
    # a node of one's own has what its owner booted it with (fleet.boot_own_node).
    physmem: int = 8 * 2**30
    # What the node keeps on its boot disk besides files: API key entries, the EULA.
    boot_state: dict = field(default_factory=dict)
    state: str = "BOOTING"
    booted_at: float | None = None
    jobs: JobManager = field(init=False)
    storage: Any = field(init=False)       # fakes.truenas.models.storage.NodeStorage
    # Set by the fleet: the node's listeners (fakes.truenas.server.NodeServer) and
    # what it can reach of the world (fakes.truenas.fleet.WorldServices).
    network: Any = field(init=False, default=None)
    world_services: Any = field(init=False, default=None)
    # Set by the fleet: (host, droplet port) -> where to connect on this machine, for
    # connections this node opens to another (replication's SSH, fakes/truenas/ssh.py).
    dial: Any = field(init=False, default=None)
    # The names of the methods called on this node, oldest first (bounded): a test's
    # evidence of what a run asked of the node (admin API: GET /_admin/truenas/calls).
    # Deliberately minimal: names only, no params (they may hold secrets).
    calls: deque = field(init=False, default_factory=lambda: deque(maxlen=CALL_JOURNAL_SIZE))

    def __post_init__(self) -> None:
        from fakes.truenas.models.storage import NodeStorage

        self.jobs = JobManager(self.clock)
        self.storage = NodeStorage(self)
        self.clock.call_later(BOOT_SECONDS, self._ready)

    def _ready(self) -> None:
        if self.state == "BOOTING":
            self.state = "READY"
            self.booted_at = self.clock.now()

    @property
    def apps(self) -> Any:
        """The node's Docker and apps (fakes.truenas.apps.runtime.AppsRuntime), made
        on first use."""
        runtime = self.__dict__.get("_apps")
        if runtime is None:
            from fakes.truenas.apps.runtime import AppsRuntime

            runtime = self.__dict__["_apps"] = AppsRuntime(self)
        return runtime

    def shut_down(self) -> None:
        """The droplet is gone: running jobs fail, the node answers no more."""
        self.state = "SHUTTING_DOWN"
        if "_apps" in self.__dict__:
            self.__dict__["_apps"].shut_down()
        for job in list(self.jobs.jobs.values()):
            if not job.finished:
                job.fail(CallError("The system is shutting down"))

    # --- credentials ------------------------------------------------------------
    def api_key_user(self, key: Any) -> str | None:
        """The user a whole API key ("<id>-<secret>") logs in as, if it is valid."""
        return self.api_keys.get(key) if isinstance(key, str) else None

    def password_valid(self, username: str, password: str) -> bool:
        """PAM for the one local account the fake models: truenas_admin."""
        return (self.admin_password is not None and username == ADMIN_USER
                and hmac.compare_digest(password.encode(), self.admin_password.encode()))

    # --- disks (hot-plugged by the fleet from volume attach/detach) ---------
    def plug_disk(self, serial: str, size_bytes: int, backing_dir: Path) -> None:
        self.storage.plug_disk(serial, size_bytes, backing_dir)

    def unplug_disk(self, serial: str) -> None:
        self.storage.unplug_disk(serial)

    # --- the one entry point for method calls --------------------------------
    def call(self, method: str, params: list, context: CallContext) -> Any:
        """Run a method: returns its result, or a Job for job methods."""
        from fakes.truenas.methods import METHODS

        self.calls.append(method)
        context.method = method
        handler = METHODS.get(method)
        if handler is None:
            raise MethodNotFound(method)
        return handler(self, params, context)
