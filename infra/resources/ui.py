"""The TrueNAS UI of the site's node: behind the admin port (its http port
redirecting, TLS 1.2 and 1.3 only), leaving 80/443 to the ingress, presenting the
site certificate once there is one. Moving it and waiting until it presents the
certificate there are infra/certificates.py's `point_ui`; this module is its entry in
the common vocabulary."""

from __future__ import annotations

from infra.certificates import UI_RESTART_DELAY, point_ui
from infra.change import Change
from infra.events import Reporter
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.client import TrueNASClient
from infra.truenas.errors import TrueNASUnavailable


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


def restore(client: TrueNASClient, before: dict, reporter: Reporter) -> str:
    """Put the UI back where it was before the site moved it (ports, redirect and
    certificate as `before` holds them): a node of one's own, on `down`. The UI
    restarts, so the caller opens a new connection afterwards."""
    change = (f"move the TrueNAS UI back to port {before['ui_httpsport']} "
              "on its own certificate")
    reporter.step(change)
    body = {k: v for k, v in before.items() if v is not None}
    try:
        client.call("system.general.update", {**body, "ui_restart_delay": UI_RESTART_DELAY})
    except TrueNASUnavailable:
        reporter.note("the connection closed as the UI restarted")
    return change
