"""`up`: bring the site to what its file says, changing only what differs.

`up` applies its plan: `Provisioner.plan` lists every change (the cloud's from
infra/plan.py, the node's from infra/node.py, the front door's), and `up` makes those
changes through infra/resources/, in order: the image import and the volumes in
parallel; then the droplet (with the volumes attached at creation), any volume still
to attach, the firewall, DNS (stale records of dropped hostnames removed), then the
node. A second `up` on a converged site sends no mutating request.

A site on a node of one's own (`[node]`) has no cloud part: its plan and its run are
the node's alone, at the site file's address, and `up` sends DigitalOcean nothing
(with dns-01 TrueNAS itself writes the TXT records, with the target's token). A
receiving one (`[[replication]]`) also plans and makes the replication on its sources'
nodes, whose droplets it finds through DigitalOcean (reads only); the port its
sources need open is the owner's to open (`plan.cannot`).
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

from infra import desired
from infra.change import Change
from infra.cost import estimate_from_sizes, guard
from infra.digitalocean import RequestLog
from infra.errors import InfraError, NodeProblem, SiteFileError
from infra.front_door import FrontDoor
from infra.node import NodeSetup, connect_site_node, open_node, own_node_preflight, remember_ui
from infra.observe import Observed, observe
from infra.operation import SiteOperation
from infra.plan import Plan, make_plan
from infra.preflight import preflight
from infra.replication import Replication, involved
from infra.report import RunReport
from infra.resources import apps, dns, droplet, firewall, image, ssh_key, volume
from infra.resources import pool as pools
from infra.resources.droplet import public_ipv4
from infra.storage import Repair
from infra.truenas.client import TrueNASClient


class Provisioner(SiteOperation):
    # Set by failover: the node is new, so its certificate is pinned afresh.
    repin_node = False
    # The droplet size's memory (/v2/sizes), which the charts' limits must fit in.
    memory_mb: int | None = None

    # --- the plan ------------------------------------------------------------
    def plan(self) -> Plan:
        """Every change `up` would make (reads only): the cloud's, then the node's."""
        if self.site.node is not None:
            own_node_preflight(self.site, self.target, self.state.path)
            plan = Plan()
            self._plan_node(plan, self.site.node.address)
            self._plan_replication(plan, self.site.node.address)
            return plan
        seen = observe(self.do, self.site, self.state.created("records"))
        preflight(self.site, self.do, seen.sizes, self.state.path)
        self.memory_mb = desired.size_memory_mb(self.site, seen.sizes)
        return self._plan(seen)

    def _plan(self, seen: Observed) -> Plan:
        plan = self._plan_site(seen)
        self._plan_replication(plan, seen.droplet_ip())
        return plan

    def _plan_replication(self, plan: Plan, address: str | None) -> None:
        """A receiving site's changes on its sources' nodes, once its own node's are
        listed; on a node of one's own, also the firewall rule only its owner can make."""
        if not involved(self.site, self.state):
            return
        replication = self._replication()
        if plan.node_pending is None:
            found = replication.plan(address)   # type: ignore[arg-type]  # node listed: up
            plan.replication, plan.replication_pending = found.changes, found.pending
        else:
            plan.replication_pending = ("the replication from the source sites is set up "
                                        "once this site's node is")
        if self.site.node is not None:
            plan.cannot += self._owner_firewall(replication)

    def _owner_firewall(self, replication: Replication) -> list[Change]:
        """No DigitalOcean firewall stands before a node of one's own, so `up` opens no
        port to a source: the owner lets each source's droplet reach port 22 (the
        transfer) and the admin port (the SSH pairing logs in to this node's API there:
        infra/resources/replication.py `setup_connection`)."""
        node = self.site.node
        assert node is not None
        admin = self.site.access.truenas_admin_port if self.site.tls else node.admin_port
        wanted = []
        for source in replication.sources:
            found = replication.address(source)
            who = (f"{source.site.name}'s droplet {found}" if found else
                   f"{source.site.name}'s droplet (it has none yet: its address once it has)")
            wanted.append(Change(
                "open_firewall", f"ports 22 and {admin} of {node.address} to {who}",
                "no DigitalOcean firewall stands before a node of your own: allow it in "
                "your own firewall or router, or the source cannot pair (admin port) nor "
                "send (22)"))
        return wanted

    def _plan_site(self, seen: Observed) -> Plan:
        plan = make_plan(self.site, seen, self.state.created("records"),
                         self.state.created("domains"))
        if "create_droplet" in plan.kinds() and (key := ssh_key.planned(self.site,
                                                                          self.state)):
            plan.changes.append(Change("register_ssh_key", key,
                                       requests=("POST /v2/account/keys",)))
        address = seen.droplet_ip()
        if address is None:
            plan.node_pending = ("the node's pool, datasets and snapshot tasks"
                                 + (" and its front door" if self.site.tls else "")
                                 + " are set up once the droplet is up")
            return plan
        if any(c.kind == "attach_volume" for c in plan.changes):
            plan.node_pending = "the node's pool is looked at once its volumes are attached"
            return plan
        self._plan_node(plan, address)
        return plan

    def _plan_node(self, plan: Plan, address: str) -> None:
        """The node's part of `plan` (pool, datasets, tasks, front door), or why not."""
        try:
            client = connect_site_node(self.site, self.target, self.state, address,
                                       self.node_log)
        except InfraError as error:
            plan.node_pending = f"the node at {address} does not answer yet ({error})"
            return
        try:
            state = client.call("system.state")
            if state != "READY":
                plan.node_pending = f"the node at {address} is {state}: looked at once READY"
                return
            if self.site.node is not None and self.site.tls is not None:
                self._check_node_memory(client)
            plan.node = NodeSetup(self.site, client).plan()
            if any(c.kind == "create_pool" for c in plan.node):
                plan.node_pending = ("the datasets and snapshot tasks are looked at once "
                                     "the pool is there")
            else:
                self._plan_pool_health(plan, client)
                if self.site.tls is not None:
                    door = self._front_door(address)
                    plan.front_door = door.plan(client)
                    plan.cannot += door.waiting()
        except InfraError as error:   # a node that stops answering mid-way (a reboot)
            if isinstance(error, SiteFileError) and self.site.node is not None:
                raise                 # the site file names what its node lacks (a disk)
            plan.node, plan.front_door = [], []
            plan.node_pending = f"the node at {address} could not be read ({error})"
        finally:
            client.close()

    def _plan_pool_health(self, plan: Plan, client: TrueNASClient) -> None:
        """A pool that lost a member: on a droplet site `up` replaces it and resilvers
        (the Repair in `_node`), so the plan lists it; on a node of one's own nothing
        here replaces a disk, so the plan says so and what to do."""
        lost = pools.unhealthy(client, self.site)
        if lost is None:
            return
        if self.site.node is None:
            plan.node.append(dataclasses.replace(
                lost, detail=f"{lost.detail}: up replaces the lost member with the site's "
                             "volume and resilvers, as `truenas-site repair` does"))
        else:
            plan.cannot.append(dataclasses.replace(
                lost, detail=f"{lost.detail}: up replaces no disk on a node of your own; "
                             "replace the failed disk in TrueNAS (Storage > Manage Devices "
                             "> Replace), then run `truenas-site check`", requests=()))

    def _check_node_memory(self, client: TrueNASClient) -> None:
        """A node of one's own: the charts' memory limits must fit in its memory
        (`system.info` physmem, bytes), as a droplet's must in its size's; ChartError
        (a SiteFileError naming `apps`, with the figures) before anything changes."""
        physmem = client.call("system.info")["physmem"]
        apps.desired(self.site, self.state, tls_ready=False, memory_mb=physmem // 2**20,
                     memory_of=f"the node at {self.site.node.address}")  # type: ignore[union-attr]

    def _replication(self) -> Replication:
        return Replication(self.site, self.target, self.state, self.do, self.reporter,
                           read_only=getattr(self.state, "read_only", False),
                           source_log=self.source_log)

    # --- the whole run -------------------------------------------------------
    def up(self) -> RunReport:
        started = time.monotonic()
        report = RunReport("up", self.site.name, self.target.kind)
        if self.site.node is not None:
            return self._up_own_node(report, started)
        seen = observe(self.do, self.site, self.state.created("records"))
        # Read-only checks that need the cloud, before the first mutating request.
        preflight(self.site, self.do, seen.sizes, self.state.path)
        self.memory_mb = desired.size_memory_mb(self.site, seen.sizes)
        if self.site.tls is not None:
            # The charts are rendered and validated before anything is created: a bad
            # setting, a missing secret or limits beyond the droplet's memory must not
            # leave half a site behind.
            apps.desired(self.site, self.state, tls_ready=False, memory_mb=self.memory_mb)
        plan = self._plan(seen)
        for refused in plan.cannot:
            self.reporter.note(f"cannot {refused.describe()}")
        # The cost guard, before anything is created (the sizes are already listed).
        cost = estimate_from_sizes(self.site, seen.sizes, self.site.site.expected_hours)
        report.cost = cost.to_dict()
        if not plan.empty:
            guard(cost, self.site.site.max_cost_usd)
        # The node step and the report need the droplet's address and the resources'
        # ids: after changes, as `_apply` left them (what it created, and the droplet
        # and image it waited for, as last read); else as observed a moment ago.
        final = seen
        if plan.empty:
            self.reporter.note("nothing to change: the site matches its file")
        else:
            final = self._apply(plan, seen)
            report.changes = [c.describe() for c in plan.changes]
        report.changes += self._node(final.droplet_ip(),
                                     None if plan.node_pending else plan.node)
        report.resources = {
            "droplet": final.droplet and {"id": final.droplet["id"], "ip": final.droplet_ip()},
            "volumes": {name: v["id"] for name, v in final.volumes.items()},
            "image": final.image and final.image["id"],
            "firewall": final.firewall and final.firewall["id"],
        }
        report.count(self.do.log, self.node_log)
        report.wall_seconds = round(time.monotonic() - started, 3)
        return report

    def _up_own_node(self, report: RunReport, started: float) -> RunReport:
        """A site on a node of one's own: the node's plan, applied; no cloud."""
        if self.site.tls is not None:
            apps.desired(self.site, self.state, tls_ready=False, memory_mb=None)
        plan = self.plan()
        for refused in plan.cannot:
            self.reporter.note(f"cannot {refused.describe()}")
        report.changes = self._node(self.site.node.address,  # type: ignore[union-attr]
                                    None if plan.node_pending else plan.node)
        report.resources = {"node": self.site.node.address}  # type: ignore[union-attr]
        report.count(self.do.log if self.do is not None else RequestLog(), self.node_log)
        report.wall_seconds = round(time.monotonic() - started, 3)
        return report

    # --- the cloud, as planned -------------------------------------------------
    def _apply(self, plan: Plan, seen: Observed) -> Observed:
        """The plan's cloud changes, in order: image and volumes (in parallel), volume
        resizes, the droplet (volumes attached at creation), the volumes still to
        attach (one at a time: a droplet takes one event at a time), the firewall, DNS.
        Returns `seen` with the image, volumes, droplet and firewall as they are now
        (their ids and the droplet's address; no further read)."""
        self.tags = desired.tags_for(self.site, self.state.run_id())
        planned = {(c.kind, c.subject) for c in plan.changes}
        image_found, volumes = self._image_and_volumes(planned, seen)
        sizes = dict(zip(desired.volume_names(self.site),
                         (v.size_gigabytes for v in self.site.volumes), strict=True))
        for kind, name in sorted(planned):
            if kind == "resize_volume":
                volume.resize(self.do, self.site, volumes[name], sizes[name], self.reporter)
        found = seen.droplet
        if ("create_droplet", desired.droplet_name(self.site)) in planned:
            free = [v["id"] for v in volumes.values() if not v.get("droplet_ids")]
            body = droplet.desired(self.site, desired.droplet_name(self.site),
                                   image_found["id"], free, self.tags,
                                   ssh_key.ensure(self.do, self.site, self.state,
                                                   self.reporter))
            found = droplet.create(self.do, body, self.reporter,
                                   lambda: droplet.find(self.do, self.site))
        found = droplet.wait(self.do, found, self.reporter)
        for change in plan.changes:
            if change.kind == "attach_volume":
                volume.attach(self.do, self.site, volumes[change.subject], found,
                              self.reporter)
        wanted = firewall.desired(self.site, self.state.run_id(), seen.replication_sources)
        found_firewall = seen.firewall
        if ("create_firewall", wanted["name"]) in planned:
            found_firewall = firewall.create(self.do, self.site, wanted, self.reporter)
        elif ("update_firewall", wanted["name"]) in planned:
            firewall.update(self.do, seen.firewall, wanted, self.reporter)
        self._dns(plan, seen, public_ipv4(found))
        return dataclasses.replace(seen, image=image_found, volumes=volumes, droplet=found,
                                   firewall=found_firewall)

    def _image_and_volumes(self, planned: set[tuple[str, str]],
                           seen: Observed) -> tuple[dict, dict[str, dict]]:
        def one_image() -> dict:
            found = seen.image
            if ("import_image", desired.image_name(self.site)) in planned:
                found = image.create(self.do, self.site,
                                     image.desired(self.site, self.tags), self.reporter)
            return image.wait(self.do, found, self.reporter)

        def one_volume(name: str, size: int) -> dict:
            if ("create_volume", name) not in planned:
                return seen.volumes[name]
            return volume.create(self.do, self.site,
                                 volume.desired(self.site, name, size, self.tags),
                                 self.reporter)

        names = desired.volume_names(self.site)
        with ThreadPoolExecutor(max_workers=3) as pool:
            image_job = pool.submit(one_image)
            volume_jobs = {
                name: pool.submit(one_volume, name, spec.size_gigabytes)
                for name, spec in zip(names, self.site.volumes, strict=True)
            }
            # Wait for every job before raising, so nothing runs on after a failure.
            errors = [job.exception() for job in [image_job, *volume_jobs.values()]]
        for error in errors:
            if error is not None:
                raise error
        return image_job.result(), {name: job.result() for name, job in volume_jobs.items()}

    def _dns(self, plan: Plan, seen: Observed, ip: str) -> None:
        owned = self.state.created("records")
        for change in plan.changes:
            hostname = change.subject
            if change.kind == "create_domain":
                dns.create_domain(self.do, self.site, self.state, self.reporter)
                dns.mark_domain(self.do, self.site, self.state)
            elif change.kind == "mark_domain":
                dns.mark_domain(self.do, self.site, self.state)
            elif change.kind == "create_record":
                dns.create_record(self.do, self.site, self.state, hostname, ip, self.reporter)
            elif change.kind == "update_record":
                mine = [r for r in seen.records.get(hostname, [])
                        if r["id"] == owned.get(hostname)]
                dns.update_record(self.do, self.site, mine[0], hostname, ip, self.reporter)
            elif change.kind == "delete_record":
                for stale_host, record in dns.stale(self.site, seen.records, owned):
                    if stale_host == hostname:
                        self.reporter.step(f"delete A record {hostname} -> {record['data']}")
                        dns.destroy_record(self.do, self.site.dns.domain, record, hostname)
                self.state.forget("records", hostname)

    # --- the TrueNAS node --------------------------------------------------------
    def _node(self, address: str | None, planned: list[Change] | None) -> list[str]:
        """The node's part: `planned` when the plan could list it, else planned now."""
        if address is None:
            raise NodeProblem("the droplet has no public address to reach TrueNAS on")
        client = open_node(self.site, self.target, self.state, address, self.node_log,
                           self.reporter, repin=self.repin_node)
        try:
            if planned is None and self.site.node is not None and self.site.tls is not None:
                # The plan found the node still booting, so it could not read its memory.
                self._check_node_memory(client)
            changes = NodeSetup(self.site, client, self.reporter,
                                state=self.state if self.site.node else None).converge(planned)
            # A pool left DEGRADED (a lost volume replaced by this run) is repaired as
            # `repair` does; a healthy one costs one read. A node of one's own has no
            # volumes to bring back: its pool's health is check's to report.
            if self.site.node is None:
                changes += Repair(self.site, self.do, client, self.state, self.reporter).run()
            if self.site.tls is not None:
                if self.site.node is not None:
                    remember_ui(client, self.state)
                result = self._front_door(address).converge(client)
                client = result.client
                changes += result.changes
            if involved(self.site, self.state):
                changes += self._replication().converge(client, address)
            return changes
        finally:
            client.close()

    def _front_door(self, address: str) -> FrontDoor:
        def reconnect() -> TrueNASClient:
            return open_node(self.site, self.target, self.state, address, self.node_log,
                             self.reporter)

        return FrontDoor(self.site, self.target, self.state, address, reconnect,
                         self.reporter, memory_mb=self.memory_mb)

    def renew_certificate(self, force: bool = False) -> list[str]:
        """Only the front door (cron-friendly): renew the site certificate when it is
        due (or now, with `force`), without converging the rest of the site."""
        return self.converge_front_door(force_renewal=force)

    def converge_front_door(self, *, force_renewal: bool = False) -> list[str]:
        """The front door alone (UI, charts, certificate), as `up` converges it: what
        `renew` and `promote` run."""
        if self.site.tls is None:
            raise NodeProblem("the site file has no [tls] section: there is no certificate")
        if self.site.node is not None:
            address: str | None = self.site.node.address
        else:
            seen = observe(self.do, self.site)
            address = seen.droplet_ip()
            self.memory_mb = desired.size_memory_mb(self.site, seen.sizes)
        if address is None:
            raise NodeProblem("the site has no droplet to renew the certificate on")
        client = open_node(self.site, self.target, self.state, address, self.node_log,
                           self.reporter)
        try:
            result = self._front_door(address).converge(client, force_renewal=force_renewal)
            client = result.client
            return result.changes
        finally:
            client.close()
