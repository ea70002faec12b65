"""`failover`: the droplet (or its host) is lost; bring the site back on a new one.

The data is on the volumes, not the droplet. Failover deletes the site's dead
droplet if DigitalOcean still lists it (a failed host shows `off` for a while
before it goes; deleting it frees the volumes), then runs `up`: a new droplet from
the site's image gets the volumes attached, its TrueNAS imports the pool from them
(`pool.import_find` / `pool.import_pool`, never a new pool over old data), the
datasets and snapshot tasks are put back, and the DNS records move to the new
address. The new node's certificate is pinned afresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from infra import desired
from infra.down import Teardown
from infra.errors import InfraError
from infra.node_credentials import api_key_for
from infra.operation import SiteOperation
from infra.report import RunReport
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.truenas.connect import connect_node
from infra.up import Provisioner


@dataclass
class FailoverReport:
    site: str
    old_droplet: dict | None
    new_droplet: dict | None = None
    reason: str = ""
    changes: list[str] = field(default_factory=list)
    run: RunReport | None = None
    wall_seconds: float = 0.0


class Failover(SiteOperation):
    def _alive(self, droplet: dict) -> str | None:
        """Why the droplet is not serving (None if it is)."""
        if droplet["status"] != "active":
            return f"droplet {droplet['id']} is {droplet['status']}"
        address = public_ipv4(droplet)
        if address is None:
            return f"droplet {droplet['id']} has no public address"
        try:
            # One attempt, no waiting for READY: a node that answers at all is alive.
            with connect_node(address, api_key_for(self.site, self.do.target, state=self.state),
                              self.site.truenas.username, self.state.path,
                              self.do.target.timing, port=self.do.target.truenas_https_port):
                return None
        except InfraError as error:
            return f"TrueNAS on {address} does not answer ({error})"

    def run(self, force: bool = False) -> FailoverReport:
        started = time.monotonic()
        droplet = find_droplet(self.do, self.site)
        report = FailoverReport(self.site.name, droplet)
        if droplet is None:
            report.reason = "the site has no droplet"
        else:
            problem = self._alive(droplet)
            if problem is None and not force:
                report.reason = "the droplet is alive; nothing to fail over"
                return report
            report.reason = problem or "forced"
            self.reporter.step(f"delete the lost droplet {droplet['name']} ({report.reason})")
            Teardown(self.site, self.do, self.state, self.reporter).delete_droplets([droplet])
            report.changes.append(f"delete lost droplet {droplet['id']}")
        provisioner = Provisioner(self.site, self.do, self.state, self.reporter)
        provisioner.repin_node = True
        provisioner.node_log = self.node_log
        report.run = provisioner.up()
        report.changes += report.run.changes
        report.new_droplet = find_droplet(self.do, self.site)
        if report.new_droplet is None or (droplet and report.new_droplet["id"] == droplet["id"]):
            raise InfraError(f"failover did not bring up a new {desired.droplet_name(self.site)}")
        report.wall_seconds = round(time.monotonic() - started, 3)
        return report
