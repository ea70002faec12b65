"""The site's apps on its node (TrueNAS 25.10 apps, one per chart the site runs, the
ingress first). Their creation, update, wait and removal are the chart machinery's
(infra/charts/deploy.py, `ChartDeployer`); this module is their entry in the common
vocabulary, and what `up`, `plan`, `check` and `down` call."""

from __future__ import annotations

from collections.abc import Collection

from infra.change import Change
from infra.charts.deploy import AppReport, ChartDeployer
from infra.charts.render import RenderedApp
from infra.charts.validate import prepare_site
from infra.events import Reporter
from infra.resources import replication
from infra.site import Site
from infra.state import StateDir
from infra.truenas.client import TrueNASClient


def find(client: TrueNASClient, site: Site, state: StateDir,
         apps: list[RenderedApp]) -> list[AppReport]:
    """Each app's state on the node (app.query only)."""
    return ChartDeployer(site, client, state).report(apps)


def desired(site: Site, state: StateDir, *, tls_ready: bool, certificate_tag: str | None = None,
            memory_mb: int | None = None, memory_of: str = "the droplet") -> list[RenderedApp]:
    """The site's charts, rendered and validated (their memory limits against
    `memory_mb`, the memory of `memory_of`, when given)."""
    return prepare_site(site, state, tls_ready=tls_ready, certificate_tag=certificate_tag,
                        memory_mb=memory_mb, memory_of=memory_of,
                        source_states=replication.app_sources(site))


def diff(reports: list[AppReport]) -> list[Change]:
    return [Change("deploy_app", app.name,
                   "new" if app.state == "MISSING" else
                   f"{app.state}, " + ("up to date" if app.up_to_date else "not the site's chart"))
            for app in reports if not app.healthy]


def create_or_update(client: TrueNASClient, site: Site, state: StateDir,
                     apps: list[RenderedApp], reporter: Reporter,
                     keep: Collection[str] = ()) -> list[str]:
    """Deploy what differs and wait until each app runs; the changes made. `keep`:
    the site's apps left untouched (neither deployed nor removed)."""
    return ChartDeployer(site, client, state, reporter).converge(apps, keep=keep)


def destroy(client: TrueNASClient, site: Site, state: StateDir,
            reporter: Reporter) -> list[str]:
    """Remove the site's apps (their data stays on the pool); the changes made."""
    return ChartDeployer(site, client, state, reporter).remove()
