"""What every operation on one site holds: the site, a client, its state, a reporter."""

from __future__ import annotations

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.events import Reporter
from infra.site import Site
from infra.state import StateDir
from infra.truenas.calllog import CallLog


class SiteOperation:
    def __init__(self, site: Site, do: DigitalOcean, state: StateDir,
                 reporter: Reporter | None = None) -> None:
        self.site = site
        self.do = do
        self.state = state
        self.reporter = reporter or Reporter()
        self.tag = desired.site_tag(site)
        self.node_log = CallLog()
