"""`truenas-site promote`: a receiving site's copy made writable, and its apps started
on it, in one command.

1. The replication (infra/replication.py `Replication.promote`): each task disabled on
   its source when the source answers, each received dataset's readonly off, the
   promotion recorded in the state directory.
2. The front door, when the site runs a chart whose data it receives (`apps/<app>`
   in `[[replication]]`): converged as `up` converges it (infra/up.py
   `converge_front_door`), so those charts, which `up` left alone while their data
   was a read-only copy, are created on it now.

Why promote converges the front door itself rather than telling the operator to run
`up`: promotion is what a disaster calls for (production lost, staging takes over),
and then one command that ends with the services answering is what an operator
wants; `up` would also converge the cloud, whose state a disaster may have left odd
(a source droplet gone), for nothing the apps need. The front door's convergence is
`up`'s own, so the two cannot drift apart, and a second `promote` (or `up`) finds
everything in place and changes nothing. A failed start (an app that crashes on the
copy) fails `promote` with the app's reasons; running it again retries.

What the deploy writes into a received app's datasets after promotion: files the
chart marks `on_change = "create"` are seeds written only when absent, so GoCD's
cruise-config.xml (production's pipeline groups, its server id and agent key) is
kept; files the chart owns outright (`reload`, `redeploy`) are its configuration and
are rewritten when they differ; ownership is set only where it differs (received
files keep their owners, so normally nothing).
"""

from __future__ import annotations

from infra.charts.render import APPS_DATASET
from infra.digitalocean import DigitalOcean
from infra.events import Reporter
from infra.node import open_node
from infra.replication import Replication
from infra.resources import replication as tasks
from infra.resources.droplet import node_address
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.up import Provisioner


def received_charts(site: Site) -> list[str]:
    """The charts the site runs whose data it receives (promoted or not)."""
    received = set(tasks.received(site))
    return [name for name in sorted(site.apps) if f"{APPS_DATASET}/{name}" in received]


def promote(site: Site, target: Target, state: StateDir, do: DigitalOcean,
            reporter: Reporter) -> list[str]:
    """Promote the copy, then start the charts that waited for it; what was done, one
    line each (nothing when already promoted and running)."""
    with open_node(site, target, state, node_address(do, site), reporter=reporter) as node:
        done = Replication(site, target, state, do, reporter).promote(node)
    charts = received_charts(site)
    if charts and site.tls is not None:
        reporter.note(f"the front door, as `up` converges it: {', '.join(charts)} on the "
                      "promoted copy")
        done += Provisioner(site, do, state, reporter, target=target).converge_front_door()
    return done
