"""`check`: a read-only report of where the account differs from the site file."""

from __future__ import annotations

from datetime import datetime, timedelta

from infra import desired, receivers
from infra.digitalocean import DigitalOcean
from infra.errors import InfraError
from infra.front_door import front_door_findings
from infra.node import connect_site_node
from infra.observe import observe
from infra.replication import Replication
from infra.report import CheckReport
from infra.resources import pool as pools
from infra.site import Site, SnapshotPolicy
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient

# What `check` cannot look at without a DigitalOcean token (an existing site).
CLOUD_REQUIREMENTS = ("TrueNAS image imported", "droplet exists", "volumes exist and are attached",
                      "firewall rules", "DNS records point at the droplet")


def check(site: Site, do: DigitalOcean | None, state: StateDir | None = None,
          node_log: CallLog | None = None, *, target: Target | None = None,
          repin: bool = False) -> CheckReport:
    """Cloud findings, then (given a state directory for the node's certificate pin)
    what the TrueNAS node says about its pool and snapshot tasks.

    Without a DigitalOcean client (an existing site checked without a token: pass
    `target`), the cloud findings are reported as skipped and the node and front
    door are checked at the target's `site_address`. An existing target's address
    also wins over the droplet's (a site may be reached through a reserved IP).
    `repin`: trust the certificate the node presents now over a pinned one."""
    target = target if target is not None else do.target if do is not None else None
    if target is None:
        raise ValueError("check needs a DigitalOcean client or a target")
    report = CheckReport(site.name, target.kind)
    if site.node is not None:
        # A node of one's own: nothing of the site is in the cloud to look at.
        ip = None
    elif do is None:
        for requirement in CLOUD_REQUIREMENTS:
            report.skip(requirement, "no DigitalOcean token (DIGITALOCEAN_TOKEN): "
                                     "the cloud side was not looked at")
        ip = None
    else:
        ip = _cloud_findings(report, site, do)
    address = target.site_address or (site.node.address if site.node is not None else ip)
    if state is not None and address is not None:
        _node_findings(report, site, target, state, address, node_log, repin, do)
    elif site.tls is not None and address is not None:
        front_door_findings(report, site, target, state, address, None)
    return report


def _cloud_findings(report: CheckReport, site: Site, do: DigitalOcean) -> str | None:
    """The image, droplet, volumes, firewall and records; the droplet's address."""
    seen = observe(do, site)
    tag = desired.site_tag(site)

    image = seen.image
    report.add("TrueNAS image imported", bool(image and image["status"] == "available"),
               f"{image['name']} ({image['status']})" if image else "no image with the site tag")

    droplet = seen.droplet
    if droplet is None:
        report.add("droplet exists", False, f"no droplet {desired.droplet_name(site)} tagged {tag}")
    else:
        report.add("droplet exists", True, f"{droplet['name']} ({droplet['id']})")
        report.add("droplet is active", droplet["status"] == "active", droplet["status"])
        report.add("droplet in the site's region", droplet["region"]["slug"] == site.site.region,
                   droplet["region"]["slug"])
        report.add("droplet has at least 8 GB of memory",
                   droplet["memory"] >= desired.MIN_TRUENAS_MEMORY_MB,
                   f"{droplet['memory']} MB")
        report.add("droplet runs the TrueNAS image",
                   bool(image) and droplet["image"]["id"] == image["id"],
                   f"image {droplet['image']['id']}")

    for spec, name in zip(site.volumes, desired.volume_names(site), strict=True):
        volume = seen.volumes.get(name)
        if volume is None:
            report.add(f"volume {name} exists", False, f"none in {site.site.region}")
            continue
        report.add(f"volume {name} exists", True, f"{volume['size_gigabytes']} GiB")
        report.add(f"volume {name} is at least {spec.size_gigabytes} GiB",
                   volume["size_gigabytes"] >= spec.size_gigabytes,
                   f"{volume['size_gigabytes']} GiB")
        report.add(f"volume {name} carries the site tag", tag in volume.get("tags", []))
        attached = bool(droplet) and droplet["id"] in (volume.get("droplet_ids") or [])
        report.add(f"volume {name} attached to the droplet", attached,
                   f"attached to {volume.get('droplet_ids') or 'nothing'}")

    firewall = seen.firewall
    report.add("firewall exists", firewall is not None, desired.firewall_name(site))
    if firewall is not None:
        report.add("firewall rules: 80/443 public; 22, the admin port and the apps' admin "
                   "ports from admin CIDRs only",
                   desired.rules_match(firewall, desired.firewall_rules(
                       site, seen.replication_sources)))
        report.add("firewall applies to the site's droplets", tag in (firewall.get("tags") or []))

    report.add(f"domain {site.dns.domain} exists", seen.domain_exists)
    ip = seen.droplet_ip()
    for hostname in site.dns.hostnames:
        data = [r["data"] for r in seen.records.get(hostname, [])]
        report.add(f"{hostname} points at the droplet", ip is not None and data == [ip],
                   f"A {', '.join(data) or 'none'}; droplet {ip or 'has no address'}")
    return ip


def _node_findings(report: CheckReport, site: Site, target: Target, state: StateDir,
                   address: str, node_log: CallLog | None, repin: bool = False,
                   do: DigitalOcean | None = None) -> None:
    try:
        client = connect_site_node(site, target, state, address, node_log, repin=repin)
    except InfraError as error:
        report.add("TrueNAS answers over WSS", False, str(error))
        return
    with client:
        report.add("TrueNAS answers over WSS", True, client.call("system.state"))
        _storage_findings(report, site, client)
        if site.replication:
            Replication(site, target, state, do, read_only=True).findings(report, client)
        if do is not None:
            _receiver_findings(report, client, do)
        if site.tls is not None:
            front_door_findings(report, site, target, state, address, client)


def _receiver_findings(report: CheckReport, client: TrueNASClient, do: DigitalOcean) -> None:
    """The receiving sites this node pushes to (infra/receivers.py): one row each, failed
    for one whose run was abandoned (its tasks fail at every run)."""
    for receiver in receivers.judge(do, receivers.on_node(client)):
        detail = receiver.why
        if receiver.abandoned:
            detail += ("; what it left here: " + ", ".join(
                [t["name"] for t in receiver.tasks] + [c["name"] for c in receiver.credentials])
                + " (`truenas-site sweep-receivers` removes it)")
        report.add(f"replication receiver {receiver.name} is there", not receiver.abandoned,
                   detail)


def _storage_findings(report: CheckReport, site: Site, client: TrueNASClient) -> None:
    """The pool, its datasets, and how recent the periodic snapshots are."""
    pool = pools.report(client, site)
    name = site.truenas.pool
    if not pool.exists:
        report.add(f"pool {name} exists", False, "no such pool: its data is not here")
        return
    report.add(f"pool {name} is healthy", pool.status == "ONLINE" and pool.healthy,
               f"status {pool.status}")
    members = "the site's two volumes" if site.node is None else \
        f"the disks {', '.join(site.node.disks)}"
    disks = client.call("disk.query") if site.node is not None else []
    report.add(f"pool {name} is a MIRROR of {members}",
               pool.layout == "MIRROR" and pools.members_match(pool, site, disks),
               f"{pool.layout} of {', '.join(pool.member_serials or [])}")
    datasets = {d["name"] for d in client.call("pool.dataset.query",
                                               [["pool", "=", name]])}
    for relative in site.truenas.datasets:
        report.add(f"dataset {name}/{relative} exists", f"{name}/{relative}" in datasets)
    tasks = client.call("pool.snapshottask.query")
    info = client.call("system.info")
    snapshots = client.call("pool.snapshot.query")
    for policy in site.snapshots:
        dataset = f"{name}/{policy.dataset}"
        task = [t for t in tasks if t["dataset"] == dataset and t.get("enabled")]
        taken = [s for s in snapshots if s.get("dataset") == dataset]
        report.add(f"snapshot task on {dataset} is enabled", bool(task),
                   f"{len(taken)} snapshots of it on the node")
        _recency(report, dataset, policy, taken, info)


def schedule_interval(policy: SnapshotPolicy) -> timedelta:
    """Roughly how often a task runs, from its cron fields (for recency checks)."""
    if policy.hour == "*" or policy.hour.startswith("*/"):
        return timedelta(hours=1 if policy.hour == "*" else int(policy.hour[2:]))
    if policy.dom != "*" or policy.month != "*":
        return timedelta(days=31)
    if policy.dow != "*":
        return timedelta(days=7)
    return timedelta(days=1)


def _recency(report: CheckReport, dataset: str, policy: SnapshotPolicy, taken: list[dict],
             info: dict) -> None:
    """The newest snapshot is at most two runs old; a node up for less than that may
    not have taken one yet (after a failover, say)."""
    interval = schedule_interval(policy)
    now = info.get("datetime")
    if not isinstance(now, datetime):
        report.add(f"snapshots of {dataset} are recent", False, "the node gave no time")
        return
    created = [s["properties"]["creation"]["parsed"] for s in taken
               if isinstance(s.get("properties", {}).get("creation", {}).get("parsed"),
                             datetime)]
    if created:
        age = now - max(created)
        report.add(f"snapshots of {dataset} are recent", age <= 2 * interval,
                   f"newest is {_human(age)} old; runs every {_human(interval)}")
        return
    uptime = timedelta(seconds=float(info.get("uptime_seconds") or 0))
    report.add(f"snapshots of {dataset} are recent", uptime <= 2 * interval,
               f"none yet; the node has been up {_human(uptime)}")


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
