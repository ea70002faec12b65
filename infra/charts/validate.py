"""Checks on rendered apps before anything is deployed. Every problem names the app
and the place in its project; the values of secrets are scrubbed out of messages.

1. The Compose specification's JSON schema (compose-spec/compose-spec,
   schema/compose-spec.json), as vendored and kept current by the check-jsonschema
   package (`check_jsonschema/builtin_schemas/vendor/compose-spec.json`).
2. Images: every service runs one of its chart's pinned images (or a pinned image
   the site file names in a setting of type image, such as apps.uro.image).
3. Host paths: bind mounts only from inside `/mnt/<site pool>/` (normalised, so
   `..` cannot climb out); no named volumes (their data would live in Docker's own
   dataset, outside the site's snapshots); no host networking (its ports escape the
   clash check).
4. Ports: no host port published twice, across all charts or against the node's own
   ports (the TrueNAS web UI on access.truenas_admin_port, SSH).
5. Resources: every service has a memory limit, every long-running restarting
   service (always, unless-stopped) a health check (a one-shot job restarted
   on-failure needs none); with the droplet's memory given, the limits must fit in it.
6. Routes: a routed hostname is one of the site's public hostnames, routed once.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from infra.charts.catalog import Catalog
from infra.charts.errors import ChartError
from infra.charts.images import check_pinned
from infra.charts.ports import Published, published_ports
from infra.charts.render import RenderedApp, render_site
from infra.charts.settings import memory_bytes
from infra.site import Site
from infra.state import StateDir

SCHEMA_PACKAGE = "check_jsonschema.builtin_schemas.vendor"
SCHEMA_FILE = "compose-spec.json"
# The node's own listeners besides the TrueNAS web UI (whose port is in the site file).
NODE_PORTS = {22: "SSH on the node"}
RESERVED_MEMORY_MB = 4096  # TrueNAS itself wants 8 GB; leave it at least half


@cache
def compose_schema() -> dict[str, Any]:
    """The vendored Compose schema, read once per process (a test checks it is a valid
    JSON schema: checking it here cost ~1 s of CPU in every process that validates)."""
    return json.loads(files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text())


@cache
def compose_validator() -> Draft202012Validator:
    """One validator per process: built once, it keeps what it resolved between apps."""
    return Draft202012Validator(compose_schema())


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text or "(the project)"


def schema_problems(app: RenderedApp) -> list[str]:
    problems = []
    errors = sorted(compose_validator().iter_errors(app.compose),
                    key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        specific = best_match(error.context) if error.context else error
        where = _path(error.absolute_path)
        problems.append(app.scrub(f"app {app.name}: {where}: {specific.message} "
                                  "(Compose specification)"))
    return problems


def _volume_problems(app: RenderedApp, pool: str) -> list[str]:
    problems = []
    root = f"/mnt/{pool}/"
    for service, body in app.compose.get("services", {}).items():
        if body.get("network_mode") == "host":
            problems.append(f"app {app.name}: services.{service}.network_mode: host networking "
                            "is refused (its ports would bypass the clash check)")
        for index, entry in enumerate(body.get("volumes") or []):
            where = f"app {app.name}: services.{service}.volumes[{index}]"
            if isinstance(entry, dict):
                kind, source = entry.get("type"), entry.get("source")
                if kind == "tmpfs":
                    continue
                if kind != "bind":
                    problems.append(f"{where}: a {kind} volume keeps data outside the site "
                                    f"pool's apps dataset; bind a path under {root}apps/")
                    continue
            else:
                source = str(entry).split(":", 1)[0]
                if not source.startswith(("/", ".", "~")):
                    problems.append(f"{where}: named volume {source!r} keeps data outside the "
                                    f"site pool's apps dataset; bind a path under {root}apps/")
                    continue
            source = str(source or "")
            normal = posixpath.normpath(source) if source.startswith("/") else source
            if not normal.startswith(root):
                problems.append(f"{where}: host path {source!r} is outside the site pool "
                                f"({root})")
    if app.compose.get("volumes"):
        problems.append(f"app {app.name}: volumes: named volumes are refused; bind paths "
                        f"under {root}apps/ instead")
    return problems


def _image_problems(app: RenderedApp) -> list[str]:
    problems = []
    # the chart's own pins, and images the site names in settings of type image
    allowed = set(app.chart.images.values()) | {
        str(app.settings[key]) for key, spec in app.chart.settings.items()
        if spec.type == "image" and key in app.settings}
    for service, body in app.compose.get("services", {}).items():
        image = body.get("image")
        where = f"app {app.name}: services.{service}.image"
        if image not in allowed:
            problems.append(f"{where}: {image!r} is not one of chart {app.chart.name}'s images")
            continue
        try:
            check_pinned(image)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def _resource_problems(app: RenderedApp) -> tuple[int, list[str]]:
    total, problems = 0, []
    for service, body in app.compose.get("services", {}).items():
        where = f"app {app.name}: services.{service}"
        limit = (((body.get("deploy") or {}).get("resources") or {}).get("limits") or {}) \
            .get("memory") or body.get("mem_limit")
        if limit is None:
            problems.append(f"{where}.deploy.resources.limits.memory: every service needs a "
                            "memory limit")
        else:
            try:
                total += memory_bytes(limit)
            except ValueError as exc:
                problems.append(f"{where}.deploy.resources.limits.memory: {exc}")
        restart = str(body.get("restart", "no"))
        check = body.get("healthcheck") or {}
        long_running = restart.partition(":")[0] in ("always", "unless-stopped")
        if long_running and (not check or check.get("disable")):
            problems.append(f"{where}.healthcheck: a service that restarts ({restart}) needs "
                            "a health check")
    return total, problems


def reserved_ports(site: Site) -> dict[int, str]:
    """Host ports no app may publish: the TrueNAS web UI's and the node's own."""
    return {**NODE_PORTS,
            site.access.truenas_admin_port: "the TrueNAS web UI (access.truenas_admin_port)"}


def port_problems(apps: list[RenderedApp], reserved: Mapping[int, str]) -> list[str]:
    problems, taken = [], []
    owners: dict[Published, str] = {}
    for app in apps:
        try:
            ports = published_ports(app.compose)
        except ValueError as exc:
            problems.append(f"app {app.name}: ports: {exc}")
            continue
        for port in ports:
            where = f"app {app.name}: services.{port.service}.ports: host port {port.port}"
            if port.protocol == "tcp" and port.port in reserved:
                problems.append(f"{where} is taken by {reserved[port.port]}")
                continue
            clash = next((p for p in taken if p.overlaps(port)), None)
            if clash is not None:
                problems.append(f"{where}/{port.protocol} is already published by app "
                                f"{owners[clash]} (service {clash.service})")
                continue
            taken.append(port)
            owners[port] = app.name
    return problems


def route_problems(apps: list[RenderedApp], site: Site) -> list[str]:
    problems, seen = [], {}
    for app in apps:
        for route in app.routes:
            where = route.setting or f"apps.{app.name}"
            if route.hostname not in site.dns.hostnames:
                problems.append(f"{where}: {route.hostname} is not one of the site's public "
                                f"hostnames (dns.hostnames)")
            elif route.hostname in seen:
                problems.append(f"{where}: {route.hostname} is already routed to app "
                                f"{seen[route.hostname]}")
            else:
                seen[route.hostname] = app.name
    return problems


def validate_apps(apps: list[RenderedApp], site: Site, *,
                  reserved: Mapping[int, str] | None = None,
                  memory_mb: int | None = None, memory_of: str = "the droplet") -> None:
    """Raise ChartError listing every problem of the rendered apps (nothing deployed);
    `memory_mb`: the memory of `memory_of` (the droplet's size, or a node's own)."""
    problems: list[str] = []
    total = 0
    for app in apps:
        problems += schema_problems(app)
        problems += _image_problems(app)
        problems += _volume_problems(app, site.truenas.pool)
        used, resource_problems = _resource_problems(app)
        total += used
        problems += resource_problems
    problems += port_problems(apps, reserved if reserved is not None else reserved_ports(site))
    problems += route_problems(apps, site)
    if memory_mb is not None:
        available = (memory_mb - RESERVED_MEMORY_MB) * 2**20
        if total > available:
            problems.append(f"apps: the memory limits add up to {total // 2**20} MiB, more than "
                            f"the {max(available, 0) // 2**20} MiB {memory_of} has for apps "
                            f"({memory_mb} MiB less {RESERVED_MEMORY_MB} MiB for TrueNAS)")
    if problems:
        # A project holds its secrets: no message may carry one, whatever check wrote it.
        for app in apps:
            problems = [app.scrub(problem) for problem in problems]
        raise ChartError(problems)


def prepare_site(site: Site, state: StateDir, *, tls_ready: bool,
                 certificate_tag: str | None = None, catalog: Catalog | None = None,
                 site_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None,
                 reserved: Mapping[int, str] | None = None,
                 memory_mb: int | None = None,
                 memory_of: str = "the droplet",
                 source_states: Mapping[str, StateDir] | None = None) -> list[RenderedApp]:
    """Render every chart the site runs and validate the lot: the apps to deploy, or
    ChartError listing every problem (a missing secret, a port clash...)."""
    apps = render_site(site, state, tls_ready=tls_ready, certificate_tag=certificate_tag,
                       catalog=catalog, site_dir=site_dir, environ=environ,
                       source_states=source_states)
    validate_apps(apps, site, reserved=reserved, memory_mb=memory_mb, memory_of=memory_of)
    return apps
