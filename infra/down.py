"""`down`: delete what carries the site's tag, in dependency order. Idempotent.

Nothing without the site tag is touched, whatever the site file says. DNS records
and domains cannot carry tags, so a record is this site's only if the state
directory recorded creating it or it points at one of the site's droplets; a
domain is deleted only if this site created it and nothing but its NS and SOA
records is left.

A refused delete does not stop the teardown: every other resource is still tried,
the paid ones first (droplets, volumes, snapshots, images), and `TeardownIncomplete`
then says what stayed and why (the CLI lists what the account still holds). Empty
tags the site's resources carried (its site and run tags) go last.

A site on a node of one's own sends DigitalOcean nothing: `down` removes what `up`
made on the node and remembered (infra/node.py `made`): the apps, the snapshot tasks,
the UI moved back, the site's certificates, and, only with `destroy_pool`
(`--destroy-pool`), the pool it created (else the datasets it created): never the
owner's data unless asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infra import desired
from infra.cost import droplet_hours
from infra.digitalocean import DigitalOcean, RequestLog
from infra.errors import InfraError, TeardownIncomplete
from infra.events import Reporter
from infra.node import OWN_NODE, connect_site_node, made, open_node, own_node_preflight
from infra.node_credentials import api_key_for
from infra.operation import SiteOperation
from infra.ownership import only_ours_left
from infra.replication import Replication, involved
from infra.report import RunReport
from infra.resources import (
    apps,
    certificate,
    datasets,
    dns,
    droplet,
    firewall,
    image,
    pool,
    snapshot,
    snapshot_tasks,
    ssh_key,
    tags,
    ui,
    volume,
)
from infra.resources.droplet import public_ipv4
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.client import TrueNASClient
from infra.truenas.connect import connect_node, wait_until_ready

# Consecutive 5xx/429 answers to one delete before it is reported as refused.
MAX_SERVER_FAILURES = 6


class Teardown(SiteOperation):
    # A node of one's own: also destroy the pool the site created (or the datasets it
    # created in a pool that was there before), with their data. Never by default.
    destroy_pool = False

    def __init__(self, site: Site, do: DigitalOcean | None, state: StateDir,
                 reporter: Reporter | None = None, target: Target | None = None) -> None:
        super().__init__(site, do, state, reporter, target)
        self.report = RunReport("down", site.name, self.target.kind)
        # What was refused: `kind:id` (or a step's name) -> the error, for the report.
        self.refused: dict[str, str] = {}
        self.tags_seen: set[str] = set()

    def _attempt(self, step: str, action: Callable[[], None]) -> None:
        """Run one step of the teardown; a refusal is remembered, not raised."""
        try:
            action()
        except InfraError as error:
            self.refused[step] = str(error)
            self.reporter.note(f"{step} not deleted: {error}")

    def _seen(self, resources: list[dict]) -> list[dict]:
        for resource in resources:
            self.tags_seen.update(resource.get("tags") or [])
        return resources

    def _deleted(self, what: str) -> None:
        self.reporter.step(f"delete {what}")
        self.report.changes.append(f"delete {what}")

    def down(self) -> RunReport:
        started = time.monotonic()
        if self.site.node is not None:
            return self._down_own_node(started)
        if self.destroy_pool:
            raise InfraError("--destroy-pool is for a site on a node of one's own; a droplet "
                             "site's volumes always go with `down`")
        do = self.do
        droplets = self._seen(droplet.find_tagged(do, self.tag))
        ips = {ip for d in droplets if (ip := public_ipv4(d))}
        self._apps(droplets)
        if involved(self.site, self.state):
            self._attempt("replication on the source", self._replication)
        # Paid first: a refusal further on must not keep a droplet or a volume billing.
        self._attempt("droplets", lambda: self.delete_droplets(droplets))
        self._attempt("volumes", self._volumes)
        self._attempt("snapshots", self._snapshots)
        self._attempt("images", self._images)
        self._attempt("firewall", self._firewall)
        self._attempt("DNS records", lambda: self._records(ips))
        self._attempt("SSH key", self._ssh_key)
        self._attempt("domain", self._domain)
        self._attempt("tags", self._tag)
        self.report.count(do.log)
        self.report.wall_seconds = round(time.monotonic() - started, 3)
        if self.refused:
            raise TeardownIncomplete(self.report, dict(self.refused))
        return self.report

    # --- a node of one's own ----------------------------------------------------------
    def _down_own_node(self, started: float) -> RunReport:
        assert self.site.node is not None
        address = self.site.node.address
        if involved(self.site, self.state):
            # First what it made on its sources (their droplets found in the account),
            # so that nothing pushes into what goes next.
            own_node_preflight(self.site, self.target, self.state.path)
            self._attempt("replication on the source", self._replication)
        mine = made(self.state)
        client = open_node(self.site, self.target, self.state, address, self.node_log,
                           self.reporter)
        try:
            changes = self.report.changes
            if self.site.tls is not None:
                changes += apps.destroy(client, self.site, self.state, self.reporter)
            for task in snapshot_tasks.find(client):
                if mine.get(f"task:{task['dataset']}@{task['naming_schema']}"):
                    changes.append(snapshot_tasks.destroy(client, task, self.reporter))
                    self.state.forget(OWN_NODE, f"task:{task['dataset']}@{task['naming_schema']}")
            if "ui" in mine:
                changes.append(ui.restore(client, mine["ui"], self.reporter))
                client.close()
                client = self._back_home(address, mine["ui"]["ui_httpsport"])
                self.state.forget(OWN_NODE, "ui")
            changes += certificate.destroy(client, self.site, self.reporter)
            changes += self._own_data(client, mine)
        finally:
            client.close()
        self.report.count(self.do.log if self.do is not None else RequestLog(),
                          self.node_log)
        self.report.wall_seconds = round(time.monotonic() - started, 3)
        if self.refused:
            raise TeardownIncomplete(self.report, dict(self.refused))
        return self.report

    def _back_home(self, address: str, port: int) -> TrueNASClient:
        """A client on the port the UI was moved back to, once it serves there: the UI
        restarts a moment after the update, and until then the admin port still answers
        (a client opened there would be cut off by the restart)."""
        key = api_key_for(self.site, self.target, state=self.state)

        def factory() -> TrueNASClient:
            return connect_node(address, key, self.site.truenas.username, self.state.path,
                                self.target.timing, port=self.target.node_port(port),
                                log=self.node_log)

        with self.reporter.waiting(f"the TrueNAS UI on {address} to restart on port {port}"):
            return wait_until_ready(factory, self.target.timing,
                                    what=f"TrueNAS on {address}:{port}")

    def _own_data(self, client: TrueNASClient, mine: dict) -> list[str]:
        """The pool the site created and the datasets it created: kept (and said so)
        unless `destroy_pool`; a pool the owner had before is never destroyed."""
        made_datasets = sorted((k.removeprefix("dataset:") for k in mine
                                if k.startswith("dataset:")), key=len, reverse=True)
        name = self.site.truenas.pool
        if not self.destroy_pool:
            if mine.get("pool") or made_datasets:
                self.reporter.note(f"kept pool {name} and the site's datasets with their "
                                   "data (`down --destroy-pool` removes them)")
            return []
        changes = []
        if mine.get("pool"):
            if pool.find(client, self.site) is not None:
                changes.append(pool.destroy(client, self.site, self.reporter))
        else:
            present = datasets.find(client, self.site)
            changes += [datasets.destroy(client, d, self.reporter) for d in made_datasets
                        if d in present]
        for key in [k for k in mine if k == "pool" or k.startswith("dataset:")]:
            self.state.forget(OWN_NODE, key)
        return changes

    def _apps(self, droplets: list[dict]) -> None:
        """The site's apps go before the droplet, so that a node kept or rebuilt from
        these volumes starts none of them; their data stays on the pool. A node that
        does not answer (already gone, say) is no reason to keep the rest."""
        if self.site.tls is None:
            return
        for found in droplets:
            address = public_ipv4(found)
            if address is None:
                continue
            try:
                with connect_site_node(self.site, self.do.target, self.state, address,
                                       self.node_log) as client:
                    self.report.changes += apps.destroy(client, self.site, self.state,
                                                        self.reporter)
            except InfraError as error:
                self.reporter.note(f"apps on {address} not removed ({error}); they go with "
                                   "the droplet")

    def _replication(self) -> None:
        """What this receiving site made on its sources' nodes (its tasks and SSH
        credentials), before the firewall that lets them in goes."""
        replication = Replication(self.site, self.target, self.state, self.do,
                                  self.reporter, source_log=self.source_log)
        for what in replication.destroy():
            self._deleted(what.removeprefix("delete "))

    def _records(self, droplet_ips: set[str]) -> None:
        do = self.do
        domain = self.site.dns.domain
        listed = dns.records_if_domain(do, domain)     # one listing for every hostname
        if listed is None:
            return
        owned = self.state.created("records")
        # The site's hostnames, and those it made records for before they left the file.
        hostnames = [*self.site.dns.hostnames,
                     *(h for h in owned if h not in self.site.dns.hostnames)]
        found = dns.a_records(domain, listed, hostnames)
        for hostname in hostnames:
            for record in found[hostname]:
                if record["id"] == owned.get(hostname) or record["data"] in droplet_ips:
                    dns.destroy_record(do, self.site.dns.domain, record, hostname)
                    self._deleted(f"A record {hostname} -> {record['data']}")
            self.state.forget("records", hostname)

    def _firewall(self) -> None:
        found = firewall.find(self.do, self.site)
        if found is not None:
            firewall.destroy(self.do, found)
            self._deleted(f"firewall {found['name']}")

    def delete_droplets(self, droplets: list[dict]) -> None:
        do = self.do
        if droplets:
            # Measured on the target's clock (a fake world's is virtual), as they go; a
            # clock that does not answer costs the figure, never the teardown.
            # (requests' errors are OSErrors too.)
            try:
                now = do.target.now()
            except OSError as error:
                self.reporter.note(f"droplet-hours not measured: no clock ({error})")
            else:
                hours = sum(droplet_hours(found, now) for found in droplets)
                self.report.droplet_hours = round((self.report.droplet_hours or 0) + hours, 4)
        droplet.destroy(do, droplets, self.reporter, self._deleted)

    def _volumes(self) -> None:
        for found in self._seen(volume.find_tagged(self.do, self.tag)):
            self._attempt(f"volume:{found['id']}", lambda v=found: self._volume(v))

    def _volume(self, found: dict) -> None:
        # Our volume on a droplet that is not ours (moved by hand): detach it.
        volume.detach(self.do, found)
        volume.destroy(self.do, found, max_server_failures=MAX_SERVER_FAILURES)
        self._deleted(f"volume {found['name']}")

    def _snapshots(self) -> None:
        for found in self._seen(snapshot.find_all(self.do)):
            if self.tag in (found.get("tags") or []):
                self._attempt(f"snapshot:{found['id']}", lambda s=found: (
                    snapshot.destroy(self.do, s), self._deleted(f"snapshot {s['name']}")))

    def _images(self) -> None:
        for found in self._seen(image.find_tagged(self.do, self.tag)):
            if self.tag in found.get("tags", []):
                self._attempt(f"image:{found['id']}", lambda i=found: (
                    image.destroy(self.do, i), self._deleted(f"image {i['name']}")))

    def _ssh_key(self) -> None:
        for what in ssh_key.destroy(self.do, self.site, self.state):
            self._deleted(what)

    def _domain(self) -> None:
        do = self.do
        domain = self.site.dns.domain
        if domain not in self.state.created("domains"):
            if dns.domain_exists(do, self.site):
                self.reporter.note(
                    f"domain {domain} left in place: this state directory "
                    f"({self.state.path}) has no record that the site created it; delete it "
                    "yourself if it is the site's (--state-dir names the directory `up` used)")
            return
        records = dns.records_if_domain(do, domain)   # after `_records` removed ours
        if records is None:
            return
        if only_ours_left(records):
            dns.destroy_domain(do, domain)
            self._deleted(f"domain {domain}")
            self.state.forget("domains", domain)
        else:
            self.reporter.note(f"domain {domain} still has other records; left in place")

    def _tag(self) -> None:
        """The site tag and the run tags its resources carried, once nothing carries
        them. A user's own tags (`site.tags`) stay: they may be shared with other
        sites, and deleting a tag untags whatever carries it by then."""
        run_tags = {t for t in self.tags_seen if t.startswith(desired.run_tag(""))}
        tags.destroy_empty(self.do, [self.tag, *sorted(run_tags)])
