"""`up`: bring the site to what its file says, changing only what differs.

Order: the image import and the volumes are independent, so they run in
parallel; then the droplet (with the volumes attached at creation), any volume
still to attach (one at a time: a droplet takes one event at a time), the
firewall, then DNS. A second `up` on a converged site sends no mutating request.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from infra import desired
from infra.cost import estimate_from_sizes, guard
from infra.front_door import FrontDoor
from infra.node import NodeProblem, NodeSetup, open_node
from infra.observe import observe
from infra.operation import SiteOperation
from infra.plan import make_plan
from infra.preflight import preflight
from infra.report import RunReport
from infra.resources import apps, dns, droplet, firewall, image, volume
from infra.resources.droplet import public_ipv4
from infra.storage import Repair
from infra.truenas.client import TrueNASClient


class Provisioner(SiteOperation):
    # Set by failover: the node is new, so its certificate is pinned afresh.
    repin_node = False
    # The droplet size's memory (/v2/sizes), which the charts' limits must fit in.
    memory_mb: int | None = None

    # --- the whole run -------------------------------------------------------
    def up(self) -> RunReport:
        started = time.monotonic()
        report = RunReport("up", self.site.name, self.do.target.kind)
        seen = observe(self.do, self.site)
        # Read-only checks that need the cloud, before the first mutating request.
        preflight(self.site, self.do, seen.sizes)
        self.memory_mb = desired.size_memory_mb(self.site, seen.sizes)
        if self.site.tls is not None:
            # The charts are rendered and validated before anything is created: a bad
            # setting, a missing secret or limits beyond the droplet's memory must not
            # leave half a site behind.
            apps.desired(self.site, self.state, tls_ready=False, memory_mb=self.memory_mb)
        plan = make_plan(self.site, seen, self.state.created("records"))
        # The cost guard, before anything is created (the sizes are already listed).
        cost = estimate_from_sizes(self.site, seen.sizes, self.site.site.expected_hours)
        report.cost = cost.to_dict()
        if not plan.empty:
            guard(cost, self.site.site.max_cost_usd)
        if plan.empty:
            self.reporter.note("nothing to change: the site matches its file")
        else:
            self.tags = desired.tags_for(self.site, self.state.run_id())
            image, volumes = self._image_and_volumes(seen)
            self._resize_volumes(plan.changes, volumes)
            droplet = self._droplet(seen.droplet, image, volumes)
            self._attach_missing(droplet, volumes)
            self._firewall(seen.firewall)
            self._dns(seen.domain_exists, public_ipv4(droplet))
            report.changes = [c.describe() for c in plan.changes]
        final = observe(self.do, self.site)
        report.changes += self._node(final.droplet_ip())
        report.resources = {
            "droplet": final.droplet and {"id": final.droplet["id"], "ip": final.droplet_ip()},
            "volumes": {name: v["id"] for name, v in final.volumes.items()},
            "image": final.image and final.image["id"],
            "firewall": final.firewall and final.firewall["id"],
        }
        report.count(self.do.log, self.node_log)
        report.wall_seconds = round(time.monotonic() - started, 3)
        return report

    # --- the TrueNAS node --------------------------------------------------------
    def _node(self, address: str | None) -> list[str]:
        if address is None:
            raise NodeProblem("the droplet has no public address to reach TrueNAS on")
        client = open_node(self.site, self.do.target, self.state, address, self.node_log,
                           self.reporter, repin=self.repin_node)
        try:
            changes = NodeSetup(self.site, client, self.reporter).converge()
            # A pool left DEGRADED (a lost volume replaced by this run) is repaired as
            # `repair` does; a healthy one costs one read.
            changes += Repair(self.site, self.do, client, self.state, self.reporter).run()
            if self.site.tls is not None:
                result = self._front_door(address).converge(client)
                client = result.client
                changes += result.changes
            return changes
        finally:
            client.close()

    def _front_door(self, address: str) -> FrontDoor:
        def reconnect() -> TrueNASClient:
            return open_node(self.site, self.do.target, self.state, address, self.node_log,
                             self.reporter)

        return FrontDoor(self.site, self.do.target, self.state, address, reconnect,
                         self.reporter, memory_mb=self.memory_mb)

    def renew_certificate(self, force: bool = False) -> list[str]:
        """Only the front door (cron-friendly): renew the site certificate when it is
        due (or now, with `force`), without converging the rest of the site."""
        if self.site.tls is None:
            raise NodeProblem("the site file has no [tls] section: there is no certificate")
        seen = observe(self.do, self.site)
        address = seen.droplet_ip()
        self.memory_mb = desired.size_memory_mb(self.site, seen.sizes)
        if address is None:
            raise NodeProblem("the site has no droplet to renew the certificate on")
        client = open_node(self.site, self.do.target, self.state, address, self.node_log,
                           self.reporter)
        try:
            result = self._front_door(address).converge(client, force_renewal=force)
            client = result.client
            return result.changes
        finally:
            client.close()

    def _image_and_volumes(self, seen) -> tuple[dict, dict[str, dict]]:
        names = desired.volume_names(self.site)
        with ThreadPoolExecutor(max_workers=3) as pool:
            image_job = pool.submit(self._image, seen.image)
            volume_jobs = {
                name: pool.submit(self._volume, name, spec.size_gigabytes, seen.volumes.get(name))
                for name, spec in zip(names, self.site.volumes, strict=True)
            }
            # Wait for every job before raising, so nothing runs on after a failure.
            errors = [job.exception() for job in [image_job, *volume_jobs.values()]]
        for error in errors:
            if error is not None:
                raise error
        return image_job.result(), {name: job.result() for name, job in volume_jobs.items()}

    def _image(self, found: dict | None) -> dict:
        if found is None:
            found = image.create(self.do, self.site, image.desired(self.site, self.tags),
                                 self.reporter)
        return image.wait(self.do, found, self.reporter)

    def _volume(self, name: str, size: int, found: dict | None) -> dict:
        if found is not None:
            return found
        return volume.create(self.do, self.site, volume.desired(self.site, name, size, self.tags),
                             self.reporter)

    def _resize_volumes(self, changes, volumes: dict[str, dict]) -> None:
        sizes = dict(zip(desired.volume_names(self.site),
                         (v.size_gigabytes for v in self.site.volumes), strict=True))
        for change in changes:
            if change.kind == "resize_volume":
                volume.resize(self.do, self.site, volumes[change.subject],
                              sizes[change.subject], self.reporter)

    # --- droplet ---------------------------------------------------------------
    def _droplet(self, found: dict | None, site_image: dict, volumes: dict[str, dict]) -> dict:
        if found is None:
            free = [v["id"] for v in volumes.values() if not v.get("droplet_ids")]
            body = droplet.desired(self.site, desired.droplet_name(self.site),
                                   site_image["id"], free, self.tags)
            found = droplet.create(self.do, body, self.reporter,
                                   lambda: droplet.find(self.do, self.site))
        return droplet.wait(self.do, found, self.reporter)

    def _attach_missing(self, found: dict, volumes: dict[str, dict]) -> None:
        for attached in volumes.values():
            volume.attach(self.do, self.site, attached, found, self.reporter)

    # --- firewall and DNS -------------------------------------------------------
    def _firewall(self, found: dict | None) -> None:
        wanted = firewall.desired(self.site, self.state.run_id())
        if found is None:
            firewall.create(self.do, self.site, wanted, self.reporter)
        elif not desired.rules_match(found, wanted):
            firewall.update(self.do, found, wanted, self.reporter)

    def _dns(self, has_domain: bool, ip: str) -> None:
        if not has_domain:
            dns.create_domain(self.do, self.site, self.state, self.reporter)
        dns.mark_domain(self.do, self.site, self.state)
        owned = self.state.created("records")
        for hostname in self.site.dns.hostnames:
            records = dns.find_records(self.do, self.site, hostname)
            if [r["data"] for r in records] == [ip]:
                continue
            mine = [r for r in records if r["id"] == owned.get(hostname)]
            if mine:
                dns.update_record(self.do, self.site, mine[0], hostname, ip, self.reporter)
            else:
                dns.create_record(self.do, self.site, self.state, hostname, ip, self.reporter)
