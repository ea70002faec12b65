"""`docker compose up -d` for one app, on the virtual clock.

Facts followed:
- TrueNAS deploys with `compose_action(app, version, 'up', force_recreate=True,
  remove_orphans=True)` for app.create, app.update (unless the app is STOPPED),
  app.start and app.redeploy: a `docker compose down --remove-orphans` first, then
  `docker compose up -d --force-recreate --remove-orphans`; a non-zero exit is
  `CallError("Failed 'up' action for '<app>' app. Please check
  /var/log/app_lifecycle.log for more details")` (plugins/apps/compose_utils.py,
  stable/goldeye). So on TrueNAS every container of the app is recreated, changed
  or not.
- `up -d` (docker/compose convergence.go, read for its behaviour): pulls the
  images it lacks; a malformed reference fails there ("invalid reference
  format"); creates every container, then starts them in dependency order, each
  once its dependencies meet their condition: `service_started` (started),
  `service_healthy` (healthy; fails with `dependency failed to start: container
  <name> is unhealthy`, `... has no healthcheck configured` or `... exited (<code>)`),
  `service_completed_successfully` (exited 0; fails with `service "<dep>" didn't
  complete successfully: exit <code>`); a dependency with `required: false` never
  fails the start. It returns once every container has been started, without
  waiting for the last ones to become healthy, which is why app.query says
  DEPLOYING right after app.create returns.
- before creating containers it makes sure the project's networks exist
  (networks.py: an external one that is missing fails the `up`);
- Without `--force-recreate`, Compose recreates only the services whose
  configuration changed (it compares a hash of each service's configuration) and
  leaves the others running; `ComposeUp(force_recreate=False)` does that. TrueNAS
  never asks for it; it is here for a caller that models plain Compose.
Timing (virtual, chosen): pulling the images an app lacks takes PULL_SECONDS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fakes.truenas.apps.containers import Container
from fakes.truenas.apps.images import behaviour_for, known_images

if TYPE_CHECKING:
    from fakes.truenas.apps.runtime import App, AppsRuntime

PULL_SECONDS = 5.0
SUPERSEDED = "the app's containers were removed while it was being deployed"


class ComposeUp:
    """One `up` of one app. `on_done(None)` when every container has started,
    `on_done(reason)` when compose would have exited non-zero."""

    def __init__(self, runtime: AppsRuntime, app: App,
                 on_done: Callable[[str | None], None], force_recreate: bool = True) -> None:
        self.runtime = runtime
        self.app = app
        self.on_done = on_done
        self.force_recreate = force_recreate
        self.finished = False
        self.aborted = False            # ended by another operation, not by compose itself
        self.started: set[str] = set()
        self._busy = False
        self._again = False

    # --- the steps -------------------------------------------------------------------
    def begin(self) -> None:
        app = self.app
        if app.operation is not None and app.operation is not self:
            app.operation.abort(SUPERSEDED)
        app.operation = self
        project = app.project
        kept: dict[str, Container] = {}
        if not self.force_recreate:
            for name, container in app.containers.items():
                service = project.services.get(name)
                if (service is not None and container.running
                        and service.definition == container.service.definition):
                    kept[name] = container
        for name, container in list(app.containers.items()):
            if name not in kept:
                self.runtime.remove_container(container)
        app.containers = dict(kept)
        self.started = set(kept)
        for service in project.services.values():
            problem = service.image_problem()
            if problem is not None:
                self._fail(problem)
                return
        missing = {s.image for s in project.services.values()} - self.runtime.images
        if missing:
            self.runtime.clock.call_later(PULL_SECONDS, self.runtime.guarded(
                lambda: self._pulled(missing)))
        else:
            self._pulled(set())

    def _pulled(self, images: set[str]) -> None:
        if self.finished:
            return
        self.runtime.images |= images
        problem = self.runtime.networks.ensure(self.app)
        if problem is not None:
            self._fail(problem)
            return
        for name in self.app.project.start_order():
            if name in self.app.containers:
                continue
            service = self.app.project.services[name]
            problem = service.create_problem() or self.runtime.create_problem(self.app, service)
            if problem is not None:
                self._fail(f"Error response from daemon: {problem}")
                return
            behaviour = behaviour_for(service.reference.repository)
            if behaviour is None:
                self._fail(f"the fake TrueNAS node cannot run image {service.image!r} "
                           f"(service {name}): it has no behaviour for it (it runs "
                           f"{', '.join(known_images())})")
                return
            self.app.containers[name] = Container(self.runtime, self.app, service, behaviour)
        self.runtime.app_changed(self.app)
        self.advance()

    def advance(self) -> None:
        """Start whatever may start now; called again whenever a container changes."""
        if self.finished or len(self.app.containers) < len(self.app.project.services):
            return
        if self._busy:
            self._again = True
            return
        self._busy = True
        try:
            self._again = True
            while self._again and not self.finished:
                self._again = False
                self._start_ready()
        finally:
            self._busy = False
        if not self.finished and self.started >= set(self.app.containers):
            self._finish(None)

    def _start_ready(self) -> None:
        for name in self.app.project.start_order():
            if name in self.started or self.finished:
                continue
            verdict = self._dependencies(name)
            if verdict is None:
                continue                 # still waiting
            if verdict:
                self._fail(verdict)
                return
            container = self.app.containers[name]
            self.started.add(name)
            problem = container.start()
            if problem is not None:
                self._fail(f"Error response from daemon: {problem}")
                return
            self._again = True

    def _dependencies(self, name: str) -> str | None:
        """"" when every dependency is met, None while waiting, else why it fails."""
        for dep in self.app.project.services[name].depends_on:
            other = self.app.containers.get(dep.service)
            if other is None:
                continue
            if dep.service not in self.started:
                return None
            verdict = _condition(dep.condition, dep.service, other)
            if verdict is None:
                return None
            if verdict and dep.required:
                return verdict
        return ""

    # --- the end ---------------------------------------------------------------------
    def abort(self, reason: str) -> None:
        if not self.finished:
            self.aborted = True
        self._finish(reason)

    def _fail(self, reason: str) -> None:
        self._finish(reason)

    def _finish(self, reason: str | None) -> None:
        if self.finished:
            return
        self.finished = True
        if self.app.operation is self:
            self.app.operation = None
        self.on_done(reason)


def _condition(condition: str, service: str, other: Container) -> str | None:
    """"" met, None not yet, else compose's error."""
    if condition == "service_started":
        return ""
    if condition == "service_healthy":
        if other.status in ("exited", "created") and other.started_at is not None:
            return f"dependency failed to start: container {other.name} exited ({other.exit_code})"
        if other.service.healthcheck is None:
            return (f"dependency failed to start: container {other.name} has no healthcheck "
                    "configured")
        if other.running and other.health == "healthy":
            return ""
        if other.running and other.health == "unhealthy":
            return f"dependency failed to start: container {other.name} is unhealthy"
        return None
    # service_completed_successfully
    if other.status == "exited" and other.started_at is not None:
        if other.exit_code == 0:
            return ""
        return f'service "{service}" didn\'t complete successfully: exit {other.exit_code}'
    return None
