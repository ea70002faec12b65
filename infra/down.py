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
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infra import desired, ssh_keys
from infra.charts.deploy import ChartDeployer
from infra.cost import droplet_hours
from infra.digitalocean import DigitalOcean
from infra.errors import CloudError, InfraError, NotFound, TeardownIncomplete, WaitTimeout
from infra.events import Reporter
from infra.node import connect_site_node
from infra.observe import a_records, domain_exists, find_firewall, public_ipv4
from infra.operation import SiteOperation
from infra.ownership import only_ours_left
from infra.report import RunReport
from infra.site import Site
from infra.state import StateDir

# Consecutive 5xx/429 answers to one delete before it is reported as refused.
MAX_SERVER_FAILURES = 6


class Teardown(SiteOperation):
    def __init__(self, site: Site, do: DigitalOcean, state: StateDir,
                 reporter: Reporter | None = None) -> None:
        super().__init__(site, do, state, reporter)
        self.report = RunReport("down", site.name, do.target.kind)
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
        do = self.do
        droplets = self._seen(do.list_all("list droplets", do.client.droplets.list,
                                          "droplets", tag_name=self.tag))
        ips = {ip for d in droplets if (ip := public_ipv4(d))}
        self._apps(droplets)
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

    def _apps(self, droplets: list[dict]) -> None:
        """The site's apps go before the droplet, so that a node kept or rebuilt from
        these volumes starts none of them; their data stays on the pool. A node that
        does not answer (already gone, say) is no reason to keep the rest."""
        if self.site.tls is None:
            return
        for droplet in droplets:
            address = public_ipv4(droplet)
            if address is None:
                continue
            try:
                with connect_site_node(self.site, self.do.target, self.state, address,
                                       self.node_log) as client:
                    for change in ChartDeployer(self.site, client, self.state,
                                                self.reporter).remove():
                        self.report.changes.append(change)
            except InfraError as error:
                self.reporter.note(f"apps on {address} not removed ({error}); they go with "
                                   "the droplet")

    def _records(self, droplet_ips: set[str]) -> None:
        do = self.do
        if not domain_exists(do, self.site):
            return
        owned = self.state.created("records")
        for hostname in self.site.dns.hostnames:
            for record in a_records(do, self.site, hostname):
                if record["id"] == owned.get(hostname) or record["data"] in droplet_ips:
                    do.ignore_missing(f"delete record {hostname}", do.client.domains.delete_record,
                                      self.site.dns.domain, record["id"])
                    self._deleted(f"A record {hostname} -> {record['data']}")
            self.state.forget("records", hostname)

    def _firewall(self) -> None:
        firewall = find_firewall(self.do, self.site)
        if firewall is not None:
            self.do.ignore_missing("delete firewall", self.do.client.firewalls.delete,
                                   firewall["id"])
            self._deleted(f"firewall {firewall['name']}")

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
                hours = sum(droplet_hours(droplet, now) for droplet in droplets)
                self.report.droplet_hours = round((self.report.droplet_hours or 0) + hours, 4)
        destroy_droplets(do, self.reporter, droplets, self._deleted)

    def _volumes(self) -> None:
        do = self.do
        volumes = self._seen([v for v in do.list_all("list volumes", do.client.volumes.list,
                                                     "volumes")
                              if self.tag in v.get("tags", [])])
        for volume in volumes:
            self._attempt(f"volume:{volume['id']}", lambda v=volume: self._volume(v))

    def _volume(self, volume: dict) -> None:
        do = self.do
        for droplet_id in volume.get("droplet_ids") or []:
            # Our volume on a droplet that is not ours (moved by hand): detach it.
            try:
                action = do.call(f"detach volume {volume['name']}",
                                 do.client.volume_actions.post_by_id, volume["id"],
                                 {"type": "detach", "droplet_id": droplet_id}, retry=False)
                do.wait_action(action["action"]["id"], f"detach {volume['name']}")
            except NotFound:
                pass

        failures: list[CloudError] = []

        def deleted(volume: dict = volume) -> bool:
            try:
                do.call(f"delete volume {volume['name']}", do.client.volumes.delete,
                        volume["id"], retry=False)
                return True
            except NotFound:
                return True
            except CloudError as error:
                if error.status == 409:
                    failures.clear()
                    return False  # still detaching after its droplet went away
                if not error.transient:
                    raise
                failures.append(error)
                if len(failures) >= MAX_SERVER_FAILURES:
                    raise  # a persistent 5xx/429 is that error, not a long wait
                return False

        try:
            do.wait_until(f"volume {volume['name']} to be deletable", deleted,
                          desired.ACTION_SECONDS)
        except WaitTimeout:
            if failures:
                raise failures[-1] from None
            raise
        self._deleted(f"volume {volume['name']}")

    def _snapshots(self) -> None:
        do = self.do
        snapshots = do.list_all("list snapshots", do.client.snapshots.list, "snapshots",
                                resource_type="volume")
        for snapshot in self._seen(snapshots):
            if self.tag in (snapshot.get("tags") or []):
                self._attempt(f"snapshot:{snapshot['id']}", lambda s=snapshot: (
                    do.ignore_missing("delete snapshot", do.client.snapshots.delete, s["id"]),
                    self._deleted(f"snapshot {s['name']}")))

    def _images(self) -> None:
        do = self.do
        images = do.list_all("list images", do.client.images.list, "images", private=True,
                             tag_name=self.tag)
        for image in self._seen(images):
            if self.tag in image.get("tags", []):
                self._attempt(f"image:{image['id']}", lambda i=image: (
                    do.ignore_missing("delete image", do.client.images.delete, i["id"]),
                    self._deleted(f"image {i['name']}")))

    def _ssh_key(self) -> None:
        for what in ssh_keys.destroy(self.do, self.site, self.state):
            self._deleted(what)

    def _domain(self) -> None:
        do = self.do
        domain = self.site.dns.domain
        if domain not in self.state.created("domains"):
            if domain_exists(do, self.site):
                self.reporter.note(
                    f"domain {domain} left in place: this state directory "
                    f"({self.state.path}) has no record that the site created it; delete it "
                    "yourself if it is the site's (--state-dir names the directory `up` used)")
            return
        if not domain_exists(do, self.site):
            return
        records = do.list_all("list DNS records", do.client.domains.list_records,
                              "domain_records", domain_name=domain)
        if only_ours_left(records):
            do.ignore_missing("delete domain", do.client.domains.delete, domain)
            self._deleted(f"domain {domain}")
            self.state.forget("domains", domain)
        else:
            self.reporter.note(f"domain {domain} still has other records; left in place")

    def _tag(self) -> None:
        """The site tag and the run tags its resources carried, once nothing carries
        them. A user's own tags (`site.tags`) stay: they may be shared with other
        sites, and deleting a tag untags whatever carries it by then."""
        do = self.do
        run_tags = {t for t in self.tags_seen if t.startswith(desired.run_tag(""))}
        for name in [self.tag, *sorted(run_tags)]:
            try:
                tag = do.call("get tag", do.client.tags.get, name)["tag"]
            except NotFound:
                continue
            if tag["resources"]["count"] == 0:
                do.ignore_missing("delete tag", do.client.tags.delete, name)


def destroy_droplets(do: DigitalOcean, reporter: Reporter, droplets: list[dict],
                     deleted: Callable[[str], None]) -> None:
    """Ask for every deletion first (DigitalOcean deletes them in parallel), then wait,
    bounded, until each droplet is gone; `deleted` hears of each one asked for."""
    for droplet in droplets:
        do.ignore_missing(f"delete droplet {droplet['name']}", do.client.droplets.destroy,
                          droplet["id"])
        deleted(f"droplet {droplet['name']} ({droplet['id']})")
    for droplet in droplets:
        def gone(droplet_id: int = droplet["id"]) -> bool:
            try:
                do.call("get droplet", do.client.droplets.get, droplet_id)
                return False
            except NotFound:
                return True

        with reporter.waiting(f"droplet {droplet['name']} to go away"):
            do.wait_until(f"droplet {droplet['name']} to be deleted", gone,
                          desired.DESTROY_SECONDS)
