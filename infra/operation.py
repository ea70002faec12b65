"""What every operation on one site holds: the site, a client, its state, a reporter.

A site on a node of one's own may run without a DigitalOcean client (`do` None: no
token, and nothing of it in the cloud); `target` then says where the run goes."""

from __future__ import annotations

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.events import Reporter
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog


class SiteOperation:
    def __init__(self, site: Site, do: DigitalOcean | None, state: StateDir,
                 reporter: Reporter | None = None, target: Target | None = None) -> None:
        if do is None and (target is None or site.node is None):
            raise ValueError("a site in the cloud needs a DigitalOcean client")
        self.site = site
        self.do = do  # type: ignore[assignment]  # None only for a site on its own node
        self.target: Target = target if target is not None else do.target  # type: ignore[union-attr]
        self.state = state
        self.reporter = reporter or Reporter()
        self.tag = desired.site_tag(site)
        self.node_log = CallLog()
        # The calls a receiving site's run makes on its sources' nodes.
        self.source_log = CallLog()
