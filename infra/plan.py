"""Compare a site with what the account holds: the changes `up` would make, and
what it cannot change (a volume shrink, a droplet resize) and why.

Pure: no requests here (the node's part comes from infra/node.py's `NodeSetup.plan`,
joined in infra/up.py's `Provisioner.plan`). Problems that `up` must not paper over (a
resource in the way that is not this site's, a size too small for TrueNAS) raise
before any change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from infra import desired
from infra.change import Change
from infra.errors import SiteFileError
from infra.observe import Observed
from infra.resources import dns, droplet, firewall, image, volume
from infra.site import Site

__all__ = ["Change", "Plan", "check_size", "make_plan"]


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    # What the site file asks that `up` cannot change, each saying why.
    cannot: list[Change] = field(default_factory=list)
    # Why the node's changes are not all listed (no droplet yet, no pool yet, the
    # node does not answer); None when they are.
    node_pending: str | None = None

    def add(self, kind: str, subject: str, detail: str = "") -> None:
        self.changes.append(Change(kind, subject, detail))

    # The node's changes (pool, datasets, snapshot tasks: exact), and the front door's
    # (UI, apps, certificate: what will be redone, not request by request).
    node: list[Change] = field(default_factory=list)
    front_door: list[Change] = field(default_factory=list)
    # A receiving site's changes on its sources' nodes (infra/replication.py), and
    # why they are not listed yet.
    replication: list[Change] = field(default_factory=list)
    replication_pending: str | None = None

    @property
    def empty(self) -> bool:
        """Nothing for `up` to do in the account (the cloud changes)."""
        return not self.changes

    @property
    def all_empty(self) -> bool:
        """Nothing for `up` to do anywhere, as far as can be known now."""
        return not (self.changes or self.node or self.front_door or self.replication) \
            and self.node_pending is None and self.replication_pending is None

    def every_change(self) -> list[Change]:
        return [*self.changes, *self.node, *self.front_door, *self.replication]

    def to_dict(self, site: str) -> dict:
        def rows(changes: list[Change]) -> list[dict]:
            return [{"kind": c.kind, "subject": c.subject, "detail": c.detail}
                    for c in changes]

        return {"site": site, "changes": rows(self.every_change()),
                "cannot": rows(self.cannot), "node_pending": self.node_pending,
                "replication_pending": self.replication_pending}

    def kinds(self) -> list[str]:
        return [c.kind for c in self.changes]


def check_size(site: Site, sizes: dict[str, dict]) -> None:
    slug = site.site.droplet_size
    size = sizes.get(slug)
    if size is None:
        raise SiteFileError([f"site.droplet_size: {slug!r} is not a size this account offers"])
    if size["memory"] < desired.MIN_TRUENAS_MEMORY_MB:
        raise SiteFileError([
            f"site.droplet_size: {slug} has {size['memory'] // 1024} GB of memory; "
            f"TrueNAS SCALE needs at least {desired.MIN_TRUENAS_MEMORY_MB // 1024} GB"
        ])
    if site.site.region not in size.get("regions", []) or not size.get("available", True):
        raise SiteFileError([f"site.droplet_size: {slug} is not available in {site.site.region}"])


def make_plan(site: Site, seen: Observed, owned_records: dict[str, int],
              owned_domains: Iterable[str] = ()) -> Plan:
    """The cloud changes (each resource's `diff`, infra/resources/), in the order `up`
    applies them: image, volumes, droplet, firewall, DNS."""
    check_size(site, seen.sizes)
    plan = Plan()
    plan.changes += image.diff(site, seen.image)
    volume_changes, volume_cannot = volume.diff(site, seen.volumes, seen.droplet)
    droplet_changes, droplet_cannot = droplet.diff(site, seen.droplet)
    plan.changes += volume_changes + droplet_changes
    plan.cannot += volume_cannot + droplet_cannot
    plan.changes += firewall.diff(site, seen.firewall, seen.replication_sources)
    plan.changes += dns.diff(site, seen.domain_exists, seen.records, seen.droplet_ip(),
                             owned_records, site.dns.domain in set(owned_domains),
                             seen.domain_marked)
    return plan
