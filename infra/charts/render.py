"""Rendering: a chart + the site's settings + secrets -> the Compose project and the
files to upload, with a hash that says whether anything the app sees changed.

- Settings: the site file's `[apps.<chart>]` values over the chart's defaults.
- Secrets: infra/charts/secretstore.py (site-named files, environment, generated once).
- The hash covers the chart and app versions, the project (secrets included, since
  a changed secret must reach the app) and the files marked `on_change = "redeploy"`
  (a `create` file is a seed written once: a change to it cannot reach the app);
  it is stored in the project's `x-truenas-site` extension (and in the state
  directory) so a later `up` can tell an unchanged app from a changed one.
- Rendering is deterministic: the same inputs give the same bytes and hash.
A RenderedApp's repr shows its name and hash only: the project holds secrets.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.charts.catalog import Catalog, Chart, default_catalog
from infra.charts.errors import ChartError
from infra.charts.ingress import IngressRoute, caddy_file
from infra.charts.secretstore import resolve_secrets
from infra.charts.template import TemplateError, fill_tree, substitute
from infra.secrets import Secret
from infra.site import Site
from infra.state import StateDir

APPS_DATASET = "apps"          # <pool>/apps: every app's data lives under it
EXTENSION = "x-truenas-site"   # Compose ignores x- keys; TrueNAS keeps them
ALWAYS = ("ingress",)          # charts every site runs, with or without [apps.<chart>]


@dataclass(frozen=True, repr=False)
class RenderedFile:
    path: str          # absolute, on the node: /mnt/<pool>/apps/<app>/<relative>
    content: bytes
    mode: int
    on_change: str
    owner: tuple[int, int] | None = None   # uid, gid of the file and the dirs made for it
    dataset_path: str = ""                  # /mnt/... of the dataset the file is in

    def __repr__(self) -> str:
        return f"RenderedFile({self.path!r}, {len(self.content)} bytes)"


@dataclass(frozen=True, repr=False)
class RenderedApp:
    name: str
    chart: Chart
    compose: dict[str, Any]            # what app.create/app.update receive
    files: tuple[RenderedFile, ...]
    datasets: tuple[str, ...]          # full dataset names, parents first
    hash: str
    settings: Mapping[str, Any]
    routes: tuple[IngressRoute, ...] = ()
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    owners: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # dataset -> uid, gid

    def __repr__(self) -> str:
        return f"RenderedApp({self.name!r}, hash={self.hash[:19]}...)"

    def scrub(self, text: str) -> str:
        """`text` with every secret value of this app replaced by ********."""
        for secret in self.secrets.values():
            text = text.replace(secret.reveal(), "********")
        return text


def enabled_charts(site: Site, catalog: Catalog | None = None) -> list[str]:
    """The charts a site runs: none without a [tls] section (no front door yet);
    else the always-on ones, then each `[apps.<chart>]`."""
    if site.tls is None:
        return []
    catalog = catalog or default_catalog()
    names = [name for name in ALWAYS if catalog.get(name) is not None]
    return names + sorted(name for name in site.apps if name not in names)


def app_dataset(site: Site, app: str) -> str:
    return f"{site.truenas.pool}/{APPS_DATASET}/{app}"


def app_path(site: Site, app: str) -> str:
    return f"/mnt/{app_dataset(site, app)}"


def settings_for(chart: Chart, site: Site) -> tuple[dict[str, Any], list[str]]:
    """The chart's defaults with the site's values over them; missing required ones."""
    given = site.apps[chart.name].settings if chart.name in site.apps else {}
    values, problems = {}, []
    for name, spec in chart.settings.items():
        if name in given:
            values[name] = given[name]
        elif spec.default is not None:
            values[name] = spec.default
        elif spec.default_dns_hostname is not None:
            index = spec.default_dns_hostname
            if index < len(site.dns.hostnames):
                values[name] = site.dns.hostnames[index]
            else:
                problems.append(f"apps.{chart.name}.{name}: is required: the site has no "
                                f"dns.hostnames[{index}] to default to ({spec.description})")
        else:
            problems.append(f"apps.{chart.name}.{name}: is required ({spec.description})")
    return values, problems


def routes_of(chart: Chart, settings: Mapping[str, Any]) -> list[IngressRoute]:
    return [IngressRoute(settings[route.hostname_setting], f"{route.service}:{route.port}",
                         f"apps.{chart.name}.{route.hostname_setting}",
                         route.strip_path_prefix)
            for route in chart.routes if route.hostname_setting in settings]


def admin_ports(site: Site, catalog: Catalog | None = None) -> list[tuple[int, str]]:
    """The host ports the site's charts publish for its admins only (`admin_ports`),
    each with the setting it comes from, sorted: the firewall opens them to
    access.admin_cidrs (infra/desired.py)."""
    catalog = catalog or default_catalog()
    found: dict[int, str] = {}
    for name in enabled_charts(site, catalog):
        chart = catalog[name]
        settings, _ = settings_for(chart, site)
        for setting in chart.admin_ports:
            if setting in settings:
                found.setdefault(int(settings[setting]), f"apps.{chart.name}.{setting}")
    return sorted(found.items())


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _builtins(site: Site, chart: Chart) -> dict[str, Any]:
    return {"site.name": site.name, "site.pool": site.truenas.pool,
            "site.domain": site.dns.domain, "app.name": chart.name,
            "app.dataset": app_dataset(site, chart.name), "app.path": app_path(site, chart.name)}


@dataclass(frozen=True)
class TlsState:
    """What the caller knows about the site certificate in the ingress's certs/."""
    ready: bool = False          # certs/fullchain.pem is there: serve https
    tag: str | None = None       # changes when the certificate does (its SHA-256)


def _file_content(chart: Chart, spec_path: str, generator: str | None,
                  values: Mapping[str, Any], settings: Mapping[str, Any],
                  all_routes: list[IngressRoute], tls: TlsState) -> bytes:
    if generator == "caddy":
        return caddy_file(all_routes, tls_ready=tls.ready, certificate_tag=tls.tag,
                          tls_min_version=settings.get("tls_min_version", "tls1.2"))
    where = str(chart.directory / (next(f.template for f in chart.files
                                        if f.path == spec_path) or ""))
    return substitute(chart.file_templates[spec_path], values, where, compose=False).encode()


def render_app(chart: Chart, site: Site, state: StateDir, *, tls_ready: bool,
               certificate_tag: str | None = None,
               all_routes: list[IngressRoute] | None = None, site_dir: Path | None = None,
               environ: Mapping[str, str] | None = None,
               source_state: StateDir | None = None) -> RenderedApp:
    """One chart rendered for `site`; ChartError naming every problem.

    `tls_ready`: the site certificate is in place (the ingress then serves https);
    `certificate_tag`: something that changes with that certificate (its SHA-256), so
    that a renewed certificate changes the ingress's watched config and Caddy reloads.
    `all_routes`: every enabled chart's routes (the ingress's config needs them).
    `source_state`: the state directory of the site the app's data is received from
    (its generated secrets are the ones the data was made with: secretstore.py).
    """
    tls = TlsState(tls_ready, certificate_tag)
    settings, problems = settings_for(chart, site)
    config = site.apps.get(chart.name)
    secrets, secret_problems = resolve_secrets(
        chart, config.secret_files if config else {}, state, site_dir=site_dir, environ=environ,
        source_state=source_state)
    problems += secret_problems
    if problems:
        raise ChartError(problems)
    values: dict[str, Any] = _builtins(site, chart)
    values.update({f"settings.{k}": v for k, v in settings.items()})
    values.update({f"secrets.{k}": v.reveal() for k, v in secrets.items()})
    values.update({f"image.{k}": v for k, v in chart.images.items()})
    try:
        compose = fill_tree(chart.template, values)
        files = tuple(
            RenderedFile(
                posixpath.join(app_path(site, chart.name), spec.path),
                _file_content(chart, spec.path, spec.generator, values, settings,
                              all_routes or [], tls),
                spec.mode, spec.on_change, spec.uid_gid,
                _dataset_of(site, chart, spec.path))
            for spec in chart.files)
    except TemplateError as exc:
        raise ChartError([f"charts/{chart.name}: {exc}"]) from None
    base = app_dataset(site, chart.name)
    datasets = (f"{site.truenas.pool}/{APPS_DATASET}", base,
                *(f"{base}/{d.path}" for d in chart.datasets))
    redeploy = {f.path: digest(f.content) for f in files if f.on_change == "redeploy"}
    project_hash = digest(canonical({
        "chart_version": chart.chart_version, "app_version": chart.app_version,
        "compose": compose, "files": redeploy}))
    compose[EXTENSION] = {
        "site": site.name, "chart": chart.name, "chart_version": chart.chart_version,
        "app_version": chart.app_version, "hash": project_hash,
        "health": chart.health.model_dump(),
    }
    owners = {f"{base}/{d.path}": d.uid_gid for d in chart.datasets if d.uid_gid}
    return RenderedApp(chart.name, chart, compose, files, _parents_first(datasets),
                       project_hash, settings, tuple(routes_of(chart, settings)), secrets,
                       owners)


def _dataset_of(site: Site, chart: Chart, relative: str) -> str:
    """/mnt path of the deepest chart dataset holding `relative` (else the app's)."""
    base = app_path(site, chart.name)
    best = ""
    for dataset in chart.datasets:
        if relative.startswith(dataset.path + "/") and len(dataset.path) > len(best):
            best = dataset.path
    return posixpath.join(base, best) if best else base


def _parents_first(names: tuple[str, ...]) -> tuple[str, ...]:
    ordered: list[str] = []
    for name in names:
        parts = name.split("/")
        for depth in range(2, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent not in ordered:
                ordered.append(parent)
    return tuple(ordered)


def render_site(site: Site, state: StateDir, *, tls_ready: bool,
                certificate_tag: str | None = None,
                catalog: Catalog | None = None, site_dir: Path | None = None,
                environ: Mapping[str, str] | None = None,
                source_states: Mapping[str, StateDir] | None = None) -> list[RenderedApp]:
    """Every enabled chart rendered; one ChartError listing all problems.
    `source_states`: app -> the state directory of the site its data is received from."""
    catalog = catalog or default_catalog()
    charts = [catalog[name] for name in enabled_charts(site, catalog)]
    all_routes: list[IngressRoute] = []
    for chart in charts:
        settings, _ = settings_for(chart, site)
        all_routes += routes_of(chart, settings)
    rendered, problems = [], []
    for chart in charts:
        try:
            rendered.append(render_app(chart, site, state, tls_ready=tls_ready,
                                       certificate_tag=certificate_tag,
                                       all_routes=all_routes, site_dir=site_dir,
                                       environ=environ,
                                       source_state=(source_states or {}).get(chart.name)))
        except ChartError as exc:
            problems += exc.problems
    if problems:
        raise ChartError(problems)
    return rendered
