"""One container of an app: its lifecycle, health and restarts on the virtual clock.

Facts followed:
- Docker's container statuses `created` (never started; also a container whose
  start failed before its process ran), `running`, `restarting`, `exited` with an
  exit code; TrueNAS maps them (ix_apps/query.py, stable/goldeye): running with a
  health status other than healthy -> "starting", running -> "running", created ->
  "created", exited with a non-zero code -> "crashed", anything else -> "exited"
  (so a container waiting to be restarted shows as "exited");
- healthchecks (moby daemon/health.go): the first probe runs one `interval` after
  the start (default 30s) or, while in `start_period` and not yet healthy, one
  `start_interval` (default 5s); a passing probe makes the container healthy; a
  failing one counts toward `retries` (default 3) only after `start_period`, and
  `retries` failures in a row make it unhealthy; probes go on while it runs;
- restart policies (moby restartmanager): `always` and `unless-stopped` restart
  after any exit, `on-failure[:N]` after a non-zero exit (at most N times), `no`
  never; the delay starts at 100ms and doubles up to 1 minute, back to 100ms once a
  run lasted 10s;
- a port a container publishes is bound when it starts and released when it stops.
The probes themselves are the image behaviour's `healthy()` (images.py): the fake
does not run the healthcheck's command.

A clock jump does not run every probe of a healthy container one by one: a passing
probe of a healthy container changes nothing, and what a probe sees (a process up,
a readiness time already reached) changes only through an event on the clock, so the
probes due before anything else happens (`VirtualClock.quiet_until`) would all pass
and change nothing. They are skipped, and the next probe is scheduled where running
them would have put it (tests/fakes/truenas/test_probe_jumps.py compares the two).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fakes.truenas.apps.images import ContainerFailed, RunningContainer
from fakes.truenas.apps.syntax import PortBinding

if TYPE_CHECKING:
    from fakes.truenas.apps.compose import Service
    from fakes.truenas.apps.images import ImageBehaviour
    from fakes.truenas.apps.runtime import App, AppsRuntime

log = logging.getLogger(__name__)
HEALTHY_PROBE_SECONDS = 3600.0

RESTART_FIRST_DELAY = 0.1
RESTART_MAX_DELAY = 60.0
RESTART_RESET_AFTER = 10.0
EXIT_START_FAILED = 128         # moby's exit code for a container that failed to start


@dataclass
class Bound:
    """A port binding as the engine made it."""

    binding: PortBinding
    host_ip: str          # as reported: "0.0.0.0" for every address
    host_port: int        # the node port
    world_port: int | None = None   # where a client on this machine reaches it (None: local only)
    reported: bool = True           # False: network_mode host (Docker reports no ports)


class Container:
    def __init__(self, runtime: AppsRuntime, app: App, service: Service,
                 behaviour: ImageBehaviour) -> None:
        self.runtime = runtime
        self.node = runtime.node
        self.app = app
        self.service = service
        self.behaviour = behaviour
        self.id = secrets.token_hex(32)
        self.name = service.container_name or f"ix-{app.name}-{service.name}-1"
        self.status = "created"
        self.exit_code = 0
        self.error: str | None = None
        self.health: str | None = None
        self.failing_streak = 0
        self.started_at: float | None = None
        self.restarts = 0
        self.restart_delay = 0.0
        self.bound: list[Bound] = []
        self.internal: dict[int, int] = {}          # container port -> internal listener
        self.services: dict[int, Any] = {}          # what the process listens on
        self.running_view: RunningContainer | None = None
        self._timers: list[Any] = []
        self._generation = 0
        self.volume_ids = {m.target: secrets.token_hex(32) for m in service.mounts
                           if m.type == "volume" and not m.source}

    @property
    def app_name(self) -> str:
        return self.app.name

    # --- what app.query shows ----------------------------------------------------
    @property
    def state(self) -> str:
        if self.status == "running":
            return "running" if self.health in (None, "healthy") else "starting"
        if self.status == "created":
            return "created"
        if self.status == "exited" and self.exit_code != 0:
            return "crashed"
        return "exited"

    @property
    def running(self) -> bool:
        return self.status == "running"

    def mount_sources(self) -> dict[str, str]:
        """container path -> host path, for binds and volumes (Docker keeps volumes
        under its data root, /mnt/.ix-apps/docker/volumes on TrueNAS)."""
        sources = {}
        for mount in self.service.mounts:
            if mount.type == "bind":
                sources[mount.target] = mount.source
            elif mount.type == "volume":
                name = (self.app.volume_name(mount.source) if mount.source
                        else self.volume_ids[mount.target])
                sources[mount.target] = self.runtime.volume_path(name)
        return sources

    # --- the process ---------------------------------------------------------------
    def start(self) -> str | None:
        """Start the container (bind its ports, run its process). Returns why the
        engine could not start it, or None (a process that exits at once is a
        started container that then exited, as Docker sees it)."""
        self._generation += 1
        self.error = None
        problem = self.runtime.allocate_ports(self)
        if problem is not None:
            return self._start_failed(problem)
        view = RunningContainer(self)
        self.running_view = view
        self.status = "running"
        self.started_at = self.node.clock.now()
        self.health = "starting" if self.service.healthcheck else None
        self.failing_streak = 0
        try:
            self.services = dict(self.behaviour.start(view) or {})
        except Exception as exc:  # noqa: BLE001 - an emulation bug must not break the node
            if isinstance(exc, ContainerFailed):
                code, reason = exc.exit_code, exc.reason
            else:
                log.exception("the emulation of %s failed to start", self.service.image)
                code, reason = 1, f"the fake's emulation of {self.service.image} failed: {exc}"
            self.bound = []
            self.running_view = None       # the process is gone: no stop() for it
            self.process_exited(code, reason)
            return None
        problem = self.runtime.publish_ports(self)
        if problem is not None:
            self._stop_process()
            return self._start_failed(problem)
        if self.service.healthcheck:
            self._schedule_probe()
        self.runtime.container_changed(self)
        return None

    def _start_failed(self, problem: str) -> str:
        # never ran: "created" for a first start, "exited" after an earlier run
        self.status = "exited" if self.started_at is not None else "created"
        self.exit_code = EXIT_START_FAILED
        self.error = problem
        self.bound = []
        self.running_view = None
        self.runtime.container_changed(self)
        return problem

    def process_exited(self, code: int, reason: str = "") -> None:
        """The main process ended by itself."""
        ran_for = self.node.clock.now() - (self.started_at or self.node.clock.now())
        self._stop_process()
        self.status = "exited"
        self.exit_code = code
        self.error = reason or None
        self.runtime.release_ports(self)
        if self._should_restart(code):
            self._schedule_restart(ran_for)
        self.runtime.container_changed(self)

    def remove(self) -> None:
        """`docker compose down`: stop (if running) and remove."""
        self._stop_process()
        self.status = "removed"
        self.bound = []

    def _stop_process(self) -> None:
        self._generation += 1
        for timer in self._timers:
            timer.cancelled = True
        self._timers.clear()
        view, self.running_view = self.running_view, None
        self.services = {}
        if view is not None and self.status == "running":
            try:
                self.behaviour.stop(view)
            except Exception:  # noqa: BLE001 - an emulation bug must not break the node
                log.exception("stopping %s (%s) failed", self.name, self.service.image)

    # --- restarts ----------------------------------------------------------------
    def _should_restart(self, code: int) -> bool:
        policy, _, limit = self.service.restart.partition(":")
        if policy in ("always", "unless-stopped"):
            return True
        if policy == "on-failure" and code != 0:
            return not limit or self.restarts < int(limit)
        return False

    def _schedule_restart(self, ran_for: float) -> None:
        if ran_for >= RESTART_RESET_AFTER:
            self.restart_delay = 0.0
        self.restart_delay = (RESTART_FIRST_DELAY if self.restart_delay == 0.0
                              else min(self.restart_delay * 2, RESTART_MAX_DELAY))
        self.status = "restarting"
        generation = self._generation

        def restart() -> None:
            if self._generation != generation or self.status != "restarting":
                return
            self.restarts += 1
            if self.start() is not None:
                self._schedule_restart(0.0)

        self._keep(self.node.clock.call_later(self.restart_delay, self.runtime.guarded(restart)))

    # --- healthchecks --------------------------------------------------------------
    def _probe_delay(self, now: float) -> float:
        check = self.service.healthcheck
        in_start = now - (self.started_at or now) < check.start_period
        delay = (check.start_interval if in_start and self.health == "starting"
                 else check.interval)
        if self.health == "healthy":
            # A simplification of the fake, not Docker's schedule: once healthy, a
            # container is re-probed at most hourly (virtual time), so that moving the
            # clock weeks ahead does not run a probe every few seconds of it. A
            # container that turns unhealthy is noticed up to an hour late.
            delay = max(delay, HEALTHY_PROBE_SECONDS)
        return delay

    def _schedule_probe(self, quiet: bool = False) -> None:
        """The next probe, one delay from now; `quiet` (after a probe that found the
        container healthy and changed nothing): past the probes that would do the same
        before anything else happens on the clock (see the module doc)."""
        clock = self.node.clock
        due = clock.now()
        due += max(0.0, self._probe_delay(due))
        if quiet:
            until = clock.quiet_until()
            while due < until:             # this probe would pass and change nothing
                due += max(0.0, self._probe_delay(due))
        self._keep(clock.call_at(due, self.runtime.guarded(self._probe_for(self._generation))))

    def _probe_for(self, generation: int) -> Callable[[], None]:
        def probe() -> None:
            if generation != self._generation or not self.running:
                return
            unchanged = self._probe()
            if generation == self._generation and self.running:
                self._schedule_probe(quiet=unchanged and self.health == "healthy")
        return probe

    def _probe(self) -> bool:
        """One probe; True when it passed and changed nothing."""
        check = self.service.healthcheck
        try:
            passed = bool(self.behaviour.healthy(self.running_view))
        except Exception:  # noqa: BLE001 - a probe that errors is a failing probe
            log.exception("healthcheck of %s raised", self.name)
            passed = False
        before, streak = self.health, self.failing_streak
        if passed:
            self.failing_streak = 0
            self.health = "healthy"
        else:
            now = self.node.clock.now()
            in_start = self.health == "starting" and now - self.started_at < check.start_period
            if not in_start:
                self.failing_streak += 1
                if self.failing_streak >= check.retries:
                    self.health = "unhealthy"
        if self.health != before:
            self.runtime.container_changed(self)
        return passed and self.health == before and self.failing_streak == streak

    # --- what the process may do ---------------------------------------------------
    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        generation = self._generation

        def fire() -> None:
            if generation == self._generation and self.running:
                callback()

        timer = self.node.clock.call_later(delay, self.runtime.guarded(fire))
        self._keep(timer)
        return timer

    def _keep(self, timer: Any) -> None:
        """Remember a pending timer (to cancel it on stop), forgetting those that fired
        or were cancelled: a container probed for weeks of virtual time must not
        drag a list of every probe it ever ran."""
        now = self.node.clock.now()
        self._timers = [t for t in self._timers if not t.cancelled and t.due > now]
        self._timers.append(timer)

    def read_host_file(self, host_path: str) -> bytes | None:
        return self.runtime.read_host_file(host_path)

    def write_host_file(self, host_path: str, data: bytes,
                        owner: tuple[int, int] | None = None) -> None:
        self.runtime.write_host_file(host_path, data, owner)

    def host_owner(self, host_path: str) -> tuple[int, int] | None:
        return self.runtime.host_owner(host_path)

    def host_read_only(self, host_path: str) -> bool:
        return self.runtime.host_read_only(host_path)

    def resolve(self, dial: str) -> tuple[str, int] | None:
        return self.runtime.resolve(self, dial)

    def ask(self, dial: str, request: bytes) -> bytes | None:
        """One short exchange with the process behind `dial`, inside the model (see
        RunningContainer.ask)."""
        with self.node.lock:
            found = self.runtime.ports.peer(self, dial)
            if found is None:
                return None
            other, port = found
            view = other.running_view
            if view is None or port not in other.services:
                return None             # nothing listens there: connection refused
            try:
                return other.behaviour.answer(view, port, request)
            except Exception:  # noqa: BLE001 - an emulation bug is a failed exchange
                log.exception("%s answering on %s failed", other.name, port)
                return None

    # --- app.query -------------------------------------------------------------------
    def port_config(self) -> list[dict]:
        grouped: dict[tuple[int, str], list[dict]] = {}
        for bound in self.bound:
            if not bound.reported:
                continue
            key = (bound.binding.container_port, bound.binding.protocol)
            grouped.setdefault(key, []).append({"host_port": bound.host_port,
                                                "host_ip": bound.host_ip})
        return [{"container_port": port, "protocol": proto, "host_ports": hosts}
                for (port, proto), hosts in grouped.items()]

    def volume_mounts(self) -> list[dict]:
        sources = self.mount_sources()
        mounts = []
        for mount in self.service.mounts:
            if mount.type == "tmpfs":
                continue
            mounts.append({"source": sources[mount.target], "destination": mount.target,
                           "mode": mount.mode, "type": mount.type})
        return mounts

    def details(self) -> dict:
        return {"service_name": self.service.name, "image": self.service.image,
                "port_config": self.port_config(), "state": self.state,
                "volume_mounts": self.volume_mounts(), "id": self.id}
