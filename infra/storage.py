"""The node's storage as a user handles it: health, losing and replacing a member,
scrubbing, and files (for checks that bytes survive).

A lost member is replaced by a volume of the same name (the site file stays the
truth): `repair` re-attaches a site volume that is detached, or creates a fresh one
if it was deleted, then asks TrueNAS to replace the missing leaf with it and waits
for the resilver to finish.
"""

from __future__ import annotations

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.errors import InfraError
from infra.events import Reporter
from infra.resources import droplet, volume
from infra.resources.pool import (
    RESILVER_SECONDS,
    SCRUB_SECONDS,
    leaves,
    replace_member,
    scrub,
    wait_for_scan,
)
from infra.resources.pool import require as _pool
from infra.site import Site
from infra.state import StateDir
from infra.truenas.client import TrueNASClient

# The pool's scans and member replacement live with the pool (infra/resources/pool.py).
__all__ = ["RESILVER_SECONDS", "SCRUB_SECONDS", "PoolLost", "Repair", "scrub", "wait_for_scan"]


class PoolLost(InfraError):
    """Every copy of some data is gone: reported, never hidden."""


class Repair:
    def __init__(self, site: Site, do: DigitalOcean, client: TrueNASClient, state: StateDir,
                 reporter: Reporter | None = None) -> None:
        self.site = site
        self.do = do
        self.client = client
        self.state = state
        self.reporter = reporter or Reporter()
        self.changes: list[str] = []

    def _change(self, text: str) -> None:
        self.reporter.step(text)
        self.changes.append(text)

    def run(self) -> list[str]:
        """Bring a degraded pool back to a healthy mirror of the site's volumes."""
        pool = _pool(self.client, self.site)
        if pool.get("status") == "ONLINE" and pool.get("healthy"):
            return self.changes
        found_droplet = droplet.find(self.do, self.site)
        if found_droplet is None:
            raise InfraError("the site has no droplet; run `failover` or `up` first")
        disks = {d["serial"]: d for d in self.client.call("disk.query")}
        for name, spec in zip(desired.volume_names(self.site), self.site.volumes, strict=True):
            if name not in disks:
                self._bring_back(name, spec.size_gigabytes, found_droplet)
        disks = {d["serial"]: d for d in self.client.call("disk.query")}
        pool = _pool(self.client, self.site)
        in_pool = {leaf.get("disk") for leaf in leaves(pool) if leaf.get("status") == "ONLINE"}
        missing = [leaf for leaf in leaves(pool) if leaf.get("status") != "ONLINE"]
        spare = [disks[n] for n in desired.volume_names(self.site)
                 if n in disks and disks[n]["name"] not in in_pool]
        if missing and not spare:
            raise InfraError("the pool misses a member but no site volume is free to "
                             "replace it")
        for leaf, disk in zip(missing, spare, strict=False):
            self._change(f"replace lost member {leaf.get('guid')} of pool "
                         f"{self.site.truenas.pool} with {disk['serial']}")
            replace_member(self.client, self.site, pool, leaf, disk, self.reporter)
        scan = _pool(self.client, self.site).get("scan") or {}
        if scan.get("function") == "RESILVER" and scan.get("state") == "SCANNING":
            # a member that came back resilvers by itself (what changed while it was away)
            wait_for_scan(self.client, self.site, "RESILVER", RESILVER_SECONDS, self.reporter)
        return self.changes

    def _bring_back(self, name: str, size: int, found_droplet: dict) -> None:
        found = volume.find(self.do, self.site, name)
        if found is None:
            self._change(f"create replacement volume {name} ({size} GiB)")
            tags = desired.tags_for(self.site, self.state.run_id())
            found = volume.create(self.do, self.site,
                                  volume.desired(self.site, name, size, tags), Reporter())
        elif found.get("droplet_ids"):
            if found_droplet["id"] in found["droplet_ids"]:
                self._wait_disk(name)  # attached (by `up`, say), maybe not seen yet
                return
            raise InfraError(f"volume {name} is attached to another droplet")
        self._change(f"attach volume {name} to {found_droplet['name']}")
        volume.attach(self.do, self.site, found, found_droplet, Reporter())
        self._wait_disk(name)

    def _wait_disk(self, serial: str) -> None:
        def visible() -> bool:
            return any(d["serial"] == serial for d in self.client.call("disk.query"))

        self.do.wait_until(f"volume {serial} to show up as a disk on the node", visible,
                           desired.ACTION_SECONDS, self.reporter)
