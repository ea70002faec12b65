"""The site's pool on its node: a MIRROR of exactly the site's two volumes, found by
serial (the volume's name, reference/truenas-api.md §7), never the boot disk. Before a
pool is created, volumes that already hold the site's pool (a droplet replaced, a
re-run after a crash) are imported (`pool.import_find` / `pool.import_pool`), never
overwritten.

On a node of one's own (`[node]`), the members are the disks the site file names
(by name or serial); a named disk the node does not have, or one a pool (the boot
pool too) already uses, is refused naming its field before anything changes."""

from __future__ import annotations

from dataclasses import dataclass

from infra import desired as names
from infra.change import Change
from infra.errors import InfraError, NodeProblem, SiteFileError, WaitTimeout
from infra.events import Reporter
from infra.site import Site
from infra.truenas.client import TrueNASClient
from infra.wait import Pending, wait_for

POOL_CREATE_SECONDS = 600
IMPORT_SECONDS = 900
RESILVER_SECONDS = 6 * 3600   # a resilver of a large pool takes hours
SCRUB_SECONDS = 6 * 3600
# Applying a pool change looks for the site's pool on the volumes first, then imports
# it or creates a new one: which, only the node knows once it looked.
CREATE_OR_IMPORT = ("pool.import_find", "pool.import_pool|pool.create")


@dataclass
class PoolReport:
    name: str
    exists: bool
    status: str | None = None
    healthy: bool = False
    layout: str | None = None
    member_serials: list[str] | None = None
    scan: dict | None = None


def find(client: TrueNASClient, site: Site) -> dict | None:
    pools = client.call("pool.query", [["name", "=", site.truenas.pool]])
    return pools[0] if pools else None


def require(client: TrueNASClient, site: Site) -> dict:
    found = find(client, site)
    if found is None:
        raise InfraError(f"the node has no pool {site.truenas.pool}")
    return found


def leaves(pool: dict) -> list[dict]:
    found = []
    for vdev in pool.get("topology", {}).get("data", []):
        found.extend(vdev.get("children") or [vdev])
    return found


def _member_serials(pool: dict, disks: dict[str, dict]) -> list[str]:
    serials = []
    for leaf in leaves(pool):
        disk = disks.get(leaf.get("disk") or "")
        serials.append(disk["serial"] if disk else f"missing:{leaf.get('guid')}")
    return serials


def report(client: TrueNASClient, site: Site) -> PoolReport:
    pool = find(client, site)
    if pool is None:
        return PoolReport(site.truenas.pool, exists=False)
    disks = {d["name"]: d for d in client.call("disk.query")}
    data = pool.get("topology", {}).get("data", [])
    return PoolReport(
        name=pool["name"], exists=True, status=pool.get("status"),
        healthy=bool(pool.get("healthy")),
        layout=data[0]["type"] if len(data) == 1 else f"{len(data)} vdevs",
        member_serials=_member_serials(pool, disks), scan=pool.get("scan"),
    )


def members(site: Site) -> list[str]:
    """What the site's pool is made of, as the site file names it: the volumes'
    names (their serials on the node), or the node's disks (names or serials)."""
    return list(site.node.disks) if site.node is not None else names.volume_names(site)


def named_disks(client: TrueNASClient, site: Site) -> list[dict]:
    """The disks `node.disks` names, in order; SiteFileError naming each one that the
    node does not have or that a pool already uses (read-only: disk.query)."""
    assert site.node is not None
    found = client.call("disk.query", [], {"extra": {"pools": True}})
    problems, chosen = [], []
    for index, wanted in enumerate(site.node.disks):
        disk = next((d for d in found if wanted in (d.get("serial"), d.get("name"))), None)
        where = f"node.disks[{index}]"
        if disk is None:
            seen = ", ".join(f"{d['name']} ({d.get('serial') or 'no serial'})" for d in found)
            problems.append(f"{where}: the node has no disk {wanted!r} (it has {seen})")
        elif disk.get("pool"):
            problems.append(f"{where}: {wanted} ({disk['name']}) is in use by pool "
                            f"{disk['pool']!r}; not touched")
        else:
            chosen.append(disk)
    if problems:
        raise SiteFileError(problems)
    return chosen


def site_disks(client: TrueNASClient, site: Site) -> list[dict]:
    if site.node is not None:
        return named_disks(client, site)
    disks = {d["serial"]: d for d in client.call("disk.query")}
    wanted = names.volume_names(site)
    missing = [serial for serial in wanted if serial not in disks]
    if missing:
        raise NodeProblem(f"the node does not see volume(s) {', '.join(missing)}; are "
                          "they attached to its droplet?")
    return [disks[serial] for serial in wanted]


def desired(site: Site, devices: list[str]) -> dict:
    return {"name": site.truenas.pool, "encryption": False,
            "topology": {"data": [{"type": "MIRROR", "disks": devices}]}}


def diff(client: TrueNASClient, site: Site) -> list[Change]:
    if find(client, site) is not None:
        return []
    if site.node is not None:
        named_disks(client, site)     # refused here, before `up` changes anything
    return [Change("create_pool", site.truenas.pool,
                   f"imported from {', '.join(members(site))} if they hold it, "
                   "else a new MIRROR of them", CREATE_OR_IMPORT)]


def unhealthy(client: TrueNASClient, site: Site) -> Change | None:
    """A `repair_pool` change when the site's pool exists but is not ONLINE and healthy
    (a member lost: `pool.query` topology, each leaf's status), else None. `plan`
    lists it: what `up` repairs on a droplet site, what it cannot on a node of one's own."""
    found = find(client, site)
    if found is None or (found.get("status") == "ONLINE" and found.get("healthy")):
        return None
    lost = [f"{leaf.get('disk') or leaf.get('guid')} is {leaf.get('status')}"
            for leaf in leaves(found) if leaf.get("status") != "ONLINE"]
    return Change("repair_pool", site.truenas.pool,
                  "; ".join([str(found.get("status")), *lost]), ("pool.replace",))


def members_match(found: PoolReport, site: Site, disks: list[dict]) -> bool:
    """Whether the pool's members are exactly the site's (volumes by serial, or the
    named disks by name or serial); `disks` is disk.query's answer."""
    if site.node is None:
        return sorted(found.member_serials or []) == sorted(names.volume_names(site))
    by_serial = {d["serial"]: d for d in disks}
    held = [(s, by_serial.get(s, {}).get("name")) for s in found.member_serials or []]
    return len(held) == len(site.node.disks) and all(
        any(wanted in pair for pair in held) for wanted in site.node.disks)


def importable(client: TrueNASClient) -> list[dict]:
    """The pools the node could import from the disks it sees (`pool.import_find`)."""
    return client.call_job("pool.import_find", real_seconds=IMPORT_SECONDS)


def create(client: TrueNASClient, site: Site, reporter: Reporter) -> str:
    """Import the site's pool from its volumes, or create it on them; the change made."""
    name = site.truenas.pool
    disks = site_disks(client, site)
    found = [p for p in importable(client) if p.get("name") == name]
    if found:
        change = f"import pool {name} from the site's volumes"
        reporter.step(change)
        client.call_job("pool.import_pool", {"guid": found[0]["guid"]},
                        real_seconds=IMPORT_SECONDS)
        return change
    foreign = [d["name"] for d in disks if d.get("pool")]
    if foreign:
        raise NodeProblem(f"disks {', '.join(foreign)} belong to another pool; not touched")
    devices = [d["name"] for d in disks]
    change = (f"create pool {name} as a MIRROR of {', '.join(devices)} "
              f"({', '.join(d['serial'] for d in disks)})")
    reporter.step(change)
    client.call_job("pool.create", desired(site, devices), real_seconds=POOL_CREATE_SECONDS)
    return change


def wait_for_scan(client: TrueNASClient, site: Site, function: str, real_seconds: float,
                  reporter: Reporter | None = None) -> dict:
    """Poll the pool until its scan of `function` (RESILVER, SCRUB) is FINISHED."""
    def finished() -> dict | Pending:
        pool = require(client, site)
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
    pool = require(client, site)
    client.call_job("pool.scrub", pool["id"], "START", real_seconds=SCRUB_SECONDS)
    return wait_for_scan(client, site, "SCRUB", SCRUB_SECONDS, reporter)["scan"]


def replace_member(client: TrueNASClient, site: Site, pool: dict, leaf: dict, disk: dict,
                   reporter: Reporter) -> None:
    """Replace a lost leaf of the mirror with `disk`, and wait for the resilver."""
    client.call_job("pool.replace", pool["id"],
                    {"label": leaf["guid"], "disk": disk["identifier"], "force": True},
                    real_seconds=RESILVER_SECONDS)
    wait_for_scan(client, site, "RESILVER", RESILVER_SECONDS, reporter)


EXPORT_SECONDS = 600


def destroy(client: TrueNASClient, site: Site, reporter: Reporter) -> str:
    """Destroy the site's pool and everything on it (`pool.export` with destroy): only
    ever asked for explicitly (`down --destroy-pool` on a node of one's own)."""
    found = require(client, site)
    docker = client.call("docker.config")
    if docker.get("pool") == site.truenas.pool:
        reporter.step(f"stop Docker using pool {site.truenas.pool}")
        client.call_job("docker.update", {"pool": None}, real_seconds=EXPORT_SECONDS)
    change = f"destroy pool {site.truenas.pool} and all its data"
    reporter.step(change)
    client.call_job("pool.export", found["id"], {"destroy": True, "cascade": True},
                    real_seconds=EXPORT_SECONDS)
    return change
