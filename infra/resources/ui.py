"""The TrueNAS UI of the site's node: behind the admin port (its http port
redirecting, TLS 1.2 and 1.3 only), leaving 80/443 to the ingress, presenting the
site certificate once there is one. Moving it and waiting until it presents the
certificate there are infra/certificates.py's `point_ui`; this module is its entry in
the common vocabulary."""

from __future__ import annotations

from infra.certificates import point_ui
from infra.change import Change
from infra.events import Reporter
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.client import TrueNASClient


def find(client: TrueNASClient) -> dict:
    return client.call("system.general.config")


def diff(client: TrueNASClient, site: Site) -> list[Change]:
    if find(client).get("ui_httpsport") == site.access.truenas_admin_port:
        return []
    return [Change("move_ui", f"port {site.access.truenas_admin_port}",
                   "the TrueNAS UI leaves 80/443 for the ingress")]


def update(client: TrueNASClient, site: Site, target: Target, state: StateDir, *,
           address: str, reporter: Reporter) -> bool:
    """Move the UI (keeping its certificate); False when it is where the site wants it."""
    return point_ui(client, site, target, state, address=address, events=reporter)
