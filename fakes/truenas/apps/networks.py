"""Docker networks of the fake node: created by a project's `up`, shared by name.

Facts followed (docker/compose v2 pkg/compose/create.go and down.go, read for their
behaviour; messages as users report them):
- `up` makes sure every network a service of the project joins exists before it
  creates containers: a network declared `external: true` must exist already, else
  `network <name> declared as external, but could not be found`; any other network is
  created with the labels `com.docker.compose.project` = the project and
  `com.docker.compose.network` = its key in the file;
- a non-external network that already exists is reused: created by another project,
  Compose only warns `a network with name <name> exists but was not created for
  project "<project>".\nSet `external: true` to use an existing network` and goes on;
  with another key label it fails `network <name> was found but has incorrect label
  com.docker.compose.network set to "<key>" (expected: "<key>")` [I: from memory of
  create.go, not checked];
- `down` removes the networks labelled with the project; Docker refuses to remove a
  network that containers are still attached to ("has active endpoints"), Compose
  goes on and the network stays.
What the fake chose: networks live with the Docker pool (its data root); a network a
project created and could not remove (still in use by another app's containers)
stays labelled with that project and is removed by a later `down` of that project
once nothing uses it. External networks are never removed by a project.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fakes.truenas.apps.runtime import App, AppsRuntime

log = logging.getLogger(__name__)


@dataclass
class DockerNetwork:
    name: str
    project: str                    # com.docker.compose.project
    key: str                        # com.docker.compose.network
    id: str = field(default_factory=lambda: secrets.token_hex(32))


def project_name(app: App) -> str:
    return f"ix-{app.name}"


class Networks:
    def __init__(self, runtime: AppsRuntime) -> None:
        self.runtime = runtime
        self._by_pool: dict[str, dict[str, DockerNetwork]] = {}

    @property
    def existing(self) -> dict[str, DockerNetwork]:
        pool = self.runtime.settings["pool"]
        return self._by_pool.setdefault(pool, {}) if pool else {}

    def get(self, name: str) -> DockerNetwork | None:
        return self.existing.get(name)

    def ensure(self, app: App) -> str | None:
        """Create (or find) the networks the app's services join; None, or what
        compose prints when it cannot."""
        project = app.project
        used = {key for s in project.services.values() for key in s.networks}
        for key in sorted(used):
            definition = project.networks[key]
            name = app.real_network_name(key)
            found = self.existing.get(name)
            if definition.external:
                if found is None:
                    return f"network {name} declared as external, but could not be found"
                continue
            if found is None:
                found = self.existing[name] = DockerNetwork(name, project_name(app), key)
                app.network_ids[key] = found.id
                continue
            app.network_ids[key] = found.id
            if found.project != project_name(app):
                log.info('a network with name %s exists but was not created for project '
                         '"%s".\nSet `external: true` to use an existing network', name,
                         project_name(app))
            if found.key != key:
                return (f"network {name} was found but has incorrect label "
                        f'com.docker.compose.network set to "{found.key}" '
                        f'(expected: "{key}")')
        return None

    def attached(self, name: str) -> bool:
        """Whether a container (of any app) is attached to the network."""
        return any(name in c.app.network_names(c.service)
                   for c in self.runtime.all_containers() if c.status != "removed")

    def release(self, app: App) -> None:
        """`down`: remove the project's networks that nothing is attached to."""
        mine = [n for n in self.existing.values() if n.project == project_name(app)]
        for network in mine:
            if self.attached(network.name):
                log.info("network %s of %s stays: it has active endpoints", network.name,
                         project_name(app))
                continue
            del self.existing[network.name]
