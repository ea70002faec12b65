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
from infra.errors import InfraError, WaitTimeout
from infra.events import Reporter
from infra.observe import find_droplet, find_volume
from infra.site import Site
from infra.state import StateDir
from infra.truenas.client import TrueNASClient
from infra.wait import Pending, wait_for

RESILVER_SECONDS = 6 * 3600   # a resilver of a large pool takes hours
SCRUB_SECONDS = 6 * 3600


class PoolLost(InfraError):
    """Every copy of some data is gone: reported, never hidden."""


def _pool(client: TrueNASClient, site: Site) -> dict:
    pools = client.call("pool.query", [["name", "=", site.truenas.pool]])
    if not pools:
        raise InfraError(f"the node has no pool {site.truenas.pool}")
    return pools[0]


def _leaves(pool: dict) -> list[dict]:
    leaves = []
    for vdev in pool.get("topology", {}).get("data", []):
        leaves.extend(vdev.get("children") or [vdev])
    return leaves


def wait_for_scan(client: TrueNASClient, site: Site, function: str, real_seconds: float,
                  reporter: Reporter | None = None) -> dict:
    """Poll the pool until its scan of `function` (RESILVER, SCRUB) is FINISHED."""
    def finished() -> dict | Pending:
        pool = _pool(client, site)
        scan = pool.get("scan") or {}
        if scan.get("function") == function and scan.get("state") == "FINISHED":
            return pool
        return Pending(f"{scan.get('percentage', 0):.0f}% done")

    return wait_for(f"{function.lower()} of pool {site.truenas.pool}", finished,
                    client.timing, real_seconds, reporter=reporter,
                    timeout=lambda limit, status: WaitTimeout(
                        f"gave up waiting for the {function.lower()} of pool "
                        f"{site.truenas.pool} after {limit:.1f} s ({status})"))


def scrub(client: TrueNASClient, site: Site, reporter: Reporter | None = None) -> dict:
    """Scrub the pool; returns its scan record (errors found and repaired)."""
    pool = _pool(client, site)
    client.call_job("pool.scrub", pool["id"], "START", real_seconds=SCRUB_SECONDS)
    return wait_for_scan(client, site, "SCRUB", SCRUB_SECONDS, reporter)["scan"]


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
        droplet = find_droplet(self.do, self.site)
        if droplet is None:
            raise InfraError("the site has no droplet; run `failover` or `up` first")
        disks = {d["serial"]: d for d in self.client.call("disk.query")}
        for name, spec in zip(desired.volume_names(self.site), self.site.volumes, strict=True):
            if name not in disks:
                self._bring_back(name, spec.size_gigabytes, droplet)
        disks = {d["serial"]: d for d in self.client.call("disk.query")}
        pool = _pool(self.client, self.site)
        in_pool = {leaf.get("disk") for leaf in _leaves(pool) if leaf.get("status") == "ONLINE"}
        missing = [leaf for leaf in _leaves(pool) if leaf.get("status") != "ONLINE"]
        spare = [disks[n] for n in desired.volume_names(self.site)
                 if n in disks and disks[n]["name"] not in in_pool]
        if missing and not spare:
            raise InfraError("the pool misses a member but no site volume is free to "
                             "replace it")
        for leaf, disk in zip(missing, spare, strict=False):
            self._change(f"replace lost member {leaf.get('guid')} of pool "
                         f"{self.site.truenas.pool} with {disk['serial']}")
            self.client.call_job("pool.replace", pool["id"],
                                 {"label": leaf["guid"], "disk": disk["identifier"],
                                  "force": True}, real_seconds=RESILVER_SECONDS)
            wait_for_scan(self.client, self.site, "RESILVER", RESILVER_SECONDS, self.reporter)
        scan = _pool(self.client, self.site).get("scan") or {}
        if scan.get("function") == "RESILVER" and scan.get("state") == "SCANNING":
            # a member that came back resilvers by itself (what changed while it was away)
            wait_for_scan(self.client, self.site, "RESILVER", RESILVER_SECONDS, self.reporter)
        return self.changes

    def _bring_back(self, name: str, size: int, droplet: dict) -> None:
        do = self.do
        volume = find_volume(do, self.site, name)
        if volume is None:
            self._change(f"create replacement volume {name} ({size} GiB)")
            tags = desired.tags_for(self.site, self.state.run_id())
            volume = do.create_once(
                f"create volume {name}",
                lambda: do.client.volumes.create({"name": name, "size_gigabytes": size,
                                                  "region": self.site.site.region,
                                                  "tags": tags}),
                lambda: (v := find_volume(do, self.site, name)) and {"volume": v},
            )["volume"]
        elif volume.get("droplet_ids"):
            if droplet["id"] in volume["droplet_ids"]:
                self._wait_disk(name)  # attached (by `up`, say), maybe not seen yet
                return
            raise InfraError(f"volume {name} is attached to another droplet")
        self._change(f"attach volume {name} to {droplet['name']}")
        action = do.call(f"attach volume {name}", do.client.volume_actions.post_by_id,
                         volume["id"], {"type": "attach", "droplet_id": droplet["id"],
                                        "region": self.site.site.region}, retry=False)
        do.wait_action(action["action"]["id"], f"attach volume {name}", desired.ACTION_SECONDS)
        self._wait_disk(name)

    def _wait_disk(self, serial: str) -> None:
        def visible() -> bool:
            return any(d["serial"] == serial for d in self.client.call("disk.query"))

        self.do.wait_until(f"volume {serial} to show up as a disk on the node", visible,
                           desired.ACTION_SECONDS, self.reporter)
