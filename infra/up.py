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
from infra.charts.validate import prepare_site
from infra.cost import estimate_from_sizes, guard
from infra.errors import CloudError, ConflictError, NotFound, WaitTimeout
from infra.front_door import FrontDoor
from infra.node import NodeProblem, NodeSetup, open_node
from infra.observe import (
    a_records,
    domain_exists,
    find_droplet,
    find_firewall,
    find_image,
    find_volume,
    observe,
    public_ipv4,
)
from infra.operation import SiteOperation
from infra.ownership import mark_domain
from infra.plan import make_plan
from infra.preflight import preflight
from infra.report import RunReport
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
            prepare_site(self.site, self.state, tls_ready=False, memory_mb=self.memory_mb)
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

    # --- image and volumes, in parallel --------------------------------------
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

    def _image(self, image: dict | None) -> dict:
        do = self.do
        if image is None:
            name = desired.image_name(self.site)
            self.reporter.step(f"import image {name} from {self.site.image.url}")
            body = {"name": name, "url": self.site.image.url, "region": self.site.site.region,
                    "distribution": self.site.image.distribution,
                    "description": "TrueNAS SCALE for this site", "tags": self.tags}
            image = do.create_once(
                f"import image {name}", lambda: do.client.images.create_custom(body),
                lambda: (found := find_image(do, self.site)) and {"image": found},
            )["image"]
        if image["status"] == "available":
            return image

        def imported() -> dict | None:
            current = do.call("get image", do.client.images.get, image["id"])["image"]
            if current.get("error_message"):
                raise CloudError(f"import image {image['name']}", None, "import_failed",
                                 current["error_message"])
            return current if current["status"] == "available" else None

        with self.reporter.waiting(f"image {image['name']} to import"):
            return do.wait_until(f"image {image['name']} to become available", imported,
                                 desired.IMAGE_IMPORT_SECONDS)

    def _volume(self, name: str, size: int, volume: dict | None) -> dict:
        if volume is not None:
            return volume
        do = self.do
        self.reporter.step(f"create volume {name} ({size} GiB)")
        body = {"name": name, "size_gigabytes": size, "region": self.site.site.region,
                "description": f"TrueNAS pool member for site {self.site.name}",
                "tags": self.tags}

        def find() -> dict | None:
            found = find_volume(do, self.site, name)
            if found is not None and self.tag not in found.get("tags", []):
                raise ConflictError(f"volume {name} exists but is not this site's")
            return found and {"volume": found}

        return do.create_once(f"create volume {name}",
                              lambda: do.client.volumes.create(body), find)["volume"]

    def _resize_volumes(self, changes, volumes: dict[str, dict]) -> None:
        sizes = dict(zip(desired.volume_names(self.site),
                         (v.size_gigabytes for v in self.site.volumes), strict=True))
        for change in changes:
            if change.kind != "resize_volume":
                continue
            volume = volumes[change.subject]
            self.reporter.step(f"resize volume {change.subject} to {sizes[change.subject]} GiB")
            action = self.do.call(
                f"resize volume {change.subject}", self.do.client.volume_actions.post_by_id,
                volume["id"], {"type": "resize", "size_gigabytes": sizes[change.subject],
                               "region": self.site.site.region}, retry=False,
            )["action"]
            self.do.wait_action(action["id"], f"resize of {change.subject}")

    # --- droplet ---------------------------------------------------------------
    def _droplet(self, droplet: dict | None, image: dict, volumes: dict[str, dict]) -> dict:
        do = self.do
        if droplet is None:
            name = desired.droplet_name(self.site)
            free = [v["id"] for v in volumes.values() if not v.get("droplet_ids")]
            self.reporter.step(f"create droplet {name} ({self.site.site.droplet_size}, "
                               f"{len(free)} volumes attached)")
            body = {"name": name, "region": self.site.site.region,
                    "size": self.site.site.droplet_size, "image": image["id"],
                    "tags": self.tags, "volumes": free, "ipv6": False, "monitoring": False}
            droplet = do.create_once(
                f"create droplet {name}", lambda: do.client.droplets.create(body),
                lambda: (found := find_droplet(do, self.site)) and {"droplet": found},
            )["droplet"]
        if droplet["status"] == "active" and public_ipv4(droplet):
            return droplet

        last = [droplet["status"]]

        def active() -> dict | None:
            try:
                current = do.call("get droplet", do.client.droplets.get,
                                  droplet["id"])["droplet"]
            except NotFound:
                raise NodeProblem(
                    f"droplet {droplet['name']} ({droplet['id']}) vanished while booting "
                    "(deleted, or its host failed); `up` again creates a new one") from None
            last[0] = current["status"]
            ready = current["status"] == "active" and public_ipv4(current)
            return current if ready else None

        with self.reporter.waiting(f"droplet {droplet['name']} to boot"):
            try:
                return do.wait_until(f"droplet {droplet['name']} to become active", active,
                                     desired.DROPLET_BOOT_SECONDS)
            except WaitTimeout:
                raise NodeProblem(
                    f"droplet {droplet['name']} ({droplet['id']}) failed to boot: still "
                    f"{last[0]!r} after {do.timing.deadline(desired.DROPLET_BOOT_SECONDS):.0f} s"
                ) from None

    def _attach_missing(self, droplet: dict, volumes: dict[str, dict]) -> None:
        do = self.do
        for name, volume in volumes.items():
            current = do.call("get volume", do.client.volumes.get, volume["id"])["volume"]
            if droplet["id"] in current.get("droplet_ids", []):
                continue
            if current.get("droplet_ids"):
                raise ConflictError(f"volume {name} is attached to another droplet")
            self.reporter.step(f"attach volume {name} to {droplet['name']}")
            action = do.call(
                f"attach volume {name}", do.client.volume_actions.post_by_id, volume["id"],
                {"type": "attach", "droplet_id": droplet["id"], "region": self.site.site.region},
                retry=False,
            )["action"]
            with self.reporter.waiting(f"volume {name} to attach"):
                do.wait_action(action["id"], f"attach volume {name}", desired.ACTION_SECONDS)

    # --- firewall and DNS -------------------------------------------------------
    def _firewall(self, firewall: dict | None) -> None:
        do = self.do
        name = desired.firewall_name(self.site)
        # The run tag too, so that a sweeper can tell the run's firewall (a firewall's
        # tags are what it applies to: the run's droplets are all the site's).
        run = desired.run_tag(self.state.run_id())
        body = {"name": name, "tags": [self.tag, run], **desired.firewall_rules(self.site)}
        if firewall is None:
            self.reporter.step(f"create firewall {name}")
            do.create_once(f"create firewall {name}", lambda: do.client.firewalls.create(body),
                           lambda: (f := find_firewall(do, self.site)) and {"firewall": f})
        elif not desired.rules_match(firewall, body):
            self.reporter.step(f"update firewall {name} rules")
            do.call(f"update firewall {name}", do.client.firewalls.update, firewall["id"], body)

    def _dns(self, has_domain: bool, ip: str) -> None:
        do = self.do
        domain = self.site.dns.domain
        if not has_domain:
            self.reporter.step(f"create domain {domain}")
            # Recorded before the request: a domain carries no tag, so a run killed
            # once it was made but before it was recorded would leave it to no one
            # (tests/integration/test_interrupted_up.py). `down` deletes it only if it exists.
            self.state.record_created("domains", domain)
            do.create_once(f"create domain {domain}",
                           lambda: do.client.domains.create({"name": domain}),
                           lambda: domain_exists(do, self.site) or None)
        if domain in self.state.created("domains"):
            mark_domain(do, self.site, self.state.run_id())  # how a sweeper knows it
        owned = self.state.created("records")
        for hostname in self.site.dns.hostnames:
            records = a_records(do, self.site, hostname)
            if [r["data"] for r in records] == [ip]:
                continue
            relative = "@" if hostname == domain else hostname[: -len(domain) - 1]
            body = {"type": "A", "name": relative, "data": ip, "ttl": self.site.dns.ttl}
            mine = [r for r in records if r["id"] == owned.get(hostname)]
            if mine:
                self.reporter.step(f"point {hostname} at {ip}")
                do.call(f"update record {hostname}", do.client.domains.update_record,
                        domain, mine[0]["id"], body)
                continue
            self.reporter.step(f"create A record {hostname} -> {ip}")

            def find(host: str = hostname) -> dict | None:
                matching = [r for r in a_records(do, self.site, host) if r["data"] == ip]
                return {"domain_record": matching[0]} if matching else None

            record = do.create_once(f"create record {hostname}",
                                    lambda b=body: do.client.domains.create_record(domain, b),
                                    find)["domain_record"]
            self.state.record_created("records", hostname, record["id"])
