"""What a site should look like in the account: names, tags and firewall rules.

Every resource a site creates carries the site tag (what `down` keys on) and the
run tag of the run that created it (what a sweeper keys on), and its name starts
with the site name.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.charts.render import admin_ports
from infra.site import Site

MIN_TRUENAS_MEMORY_MB = 8192
PUBLIC = ["0.0.0.0/0", "::/0"]
DROPLET_BOOT_SECONDS = 600       # real droplets: ~1 min, allow 10
IMAGE_IMPORT_SECONDS = 3600      # a custom image import can take tens of minutes
ACTION_SECONDS = 300
DESTROY_SECONDS = 300


SITE_TAG_PREFIX = "truenas-site:"


def site_tag(site: Site) -> str:
    return f"{SITE_TAG_PREFIX}{site.name}"


def run_tag(run_id: str) -> str:
    return f"truenas-run:{run_id}"


def tags_for(site: Site, run_id: str) -> list[str]:
    return [site_tag(site), run_tag(run_id), *site.site.tags]


def droplet_name(site: Site) -> str:
    return f"{site.name}-truenas"


def volume_names(site: Site) -> list[str]:
    return [f"{site.name}-{volume.name}" for volume in site.volumes]


def firewall_name(site: Site) -> str:
    return f"{site.name}-firewall"


def image_name(site: Site) -> str:
    return f"{site.name}-{site.image.name}"


def size_memory_mb(site: Site, sizes: dict[str, dict]) -> int | None:
    """The memory (MB, as /v2/sizes gives it) of the site's droplet size, or None when
    the account does not offer that size (plan.check_size says so)."""
    size = sizes.get(site.site.droplet_size)
    memory = size.get("memory") if size else None
    return int(memory) if isinstance(memory, int) else None


def firewall_rules(site: Site, source_addresses: Sequence[str] = ()) -> dict:
    """80 and 443 open to the world; 22, the TrueNAS admin port and the admin ports the
    site's charts publish (a chart's `admin_ports`, e.g. CockroachDB's console) to admin
    CIDRs only. The one source of the site's rules: `up`, `plan` and `check` use it.

    `source_addresses`: the droplets a receiving site's `[[replication]]` pushes from
    (infra/resources/replication.py): 22 opens to them alone, for the transfer, and the
    admin port (with a front door; else the UI is on the public 443), for the SSH
    connection's semi-automatic setup, which logs in to this node's API."""
    admins = list(site.access.admin_cidrs)
    inbound = [
        {"protocol": "tcp", "ports": "80", "sources": {"addresses": list(PUBLIC)}},
        {"protocol": "tcp", "ports": "443", "sources": {"addresses": list(PUBLIC)}},
        {"protocol": "tcp", "ports": "22", "sources": {"addresses": admins}},
        {"protocol": "tcp", "ports": str(site.access.truenas_admin_port),
         "sources": {"addresses": admins}},
    ]
    if source_addresses:
        pushers = [f"{address}/32" if "/" not in address else address
                   for address in sorted(source_addresses)]
        inbound.append({"protocol": "tcp", "ports": "22", "sources": {"addresses": pushers}})
        if site.tls is not None:
            inbound.append({"protocol": "tcp", "ports": str(site.access.truenas_admin_port),
                            "sources": {"addresses": list(pushers)}})
    fixed = {"22", "80", "443", str(site.access.truenas_admin_port)}
    for port, _setting in admin_ports(site):
        if str(port) not in fixed:  # the chart validation refuses those anyway
            inbound.append({"protocol": "tcp", "ports": str(port),
                            "sources": {"addresses": admins}})
    outbound = [
        {"protocol": proto, "ports": "0" if proto != "icmp" else None,
         "destinations": {"addresses": list(PUBLIC)}}
        for proto in ("tcp", "udp", "icmp")
    ]
    for rule in outbound:
        if rule["ports"] is None:
            del rule["ports"]
    return {"inbound_rules": inbound, "outbound_rules": outbound}


def _rule_key(rule: dict, side: str) -> tuple:
    ports = str(rule.get("ports", "0"))
    if ports in ("all", "1-65535"):
        ports = "0"
    if rule.get("protocol") == "icmp":
        ports = "0"
    addresses = tuple(sorted(rule.get(side, {}).get("addresses", []) or []))
    return (rule.get("protocol"), ports, addresses)


def rules_match(actual: dict, wanted: dict) -> bool:
    """Whether a firewall's rules are the wanted ones (order and spelling aside)."""
    for key, side in (("inbound_rules", "sources"), ("outbound_rules", "destinations")):
        have = sorted(_rule_key(r, side) for r in actual.get(key) or [])
        want = sorted(_rule_key(r, side) for r in wanted.get(key) or [])
        if have != want:
            return False
    return True
