"""What a site holds in the account after a failed or interrupted run, and what to do.

When `up` or `down` stops early (a refusal, a persistent 500, Ctrl-C), the CLI asks
the account afresh, read-only, what carries the site's tag or is the site's by the
state directory's record (DNS carries no tags), and prints each resource, the paid
ones first, with the command that removes them (`down`) or goes on (`up`). It reads
rather than remembers, so the report is what the account holds, whatever the run
got to see of its own requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.errors import NotFound
from infra.resources.droplet import public_ipv4
from infra.site import Site
from infra.state import StateDir

# What DigitalOcean bills by the hour (droplets, volumes, snapshots, images' storage);
# firewalls, domains and records are free.
PAID = ("droplet", "volume", "snapshot", "image")
ORDER = ("droplet", "volume", "snapshot", "image", "firewall", "record", "domain")


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    id: str
    why: str = ""   # down: why it is still there

    @property
    def paid(self) -> bool:
        return self.kind in PAID

    @property
    def key(self) -> str:
        """`kind:id`, as an account inventory names it (steps/inventory.py)."""
        return f"{self.kind}:{self.id}"

    def describe(self) -> str:
        text = f"{self.kind} {self.name}" + (f" ({self.id})" if self.id != self.name else "")
        if self.paid:
            text += ", billed until deleted"
        return text + (f": {self.why}" if self.why else "")


@dataclass
class Aftermath:
    """What the site holds, and notes (a domain left because no record says it is ours)."""
    leftovers: list[Leftover] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def keys(self) -> set[str]:
        return {item.key for item in self.leftovers}

    def to_dict(self) -> dict:
        return {"leftovers": [{"kind": i.kind, "name": i.name, "id": i.id, "paid": i.paid,
                               "why": i.why} for i in self.leftovers],
                "notes": list(self.notes)}


def take(do: DigitalOcean, site: Site, state: StateDir,
         why: dict[str, str] | None = None) -> Aftermath:
    """What the account holds of `site` now (GETs only); `why` maps a `kind:id` to the
    reason it is still there (down's refusals)."""
    why = why or {}
    tag = desired.site_tag(site)
    c = do.client
    found: list[Leftover] = []

    def add(kind: str, name: str, ident: object) -> None:
        found.append(Leftover(kind, str(name), str(ident), why.get(f"{kind}:{ident}", "")))

    droplets = do.list_all("list droplets", c.droplets.list, "droplets", tag_name=tag)
    for droplet in droplets:
        add("droplet", droplet["name"], droplet["id"])
    for volume in do.list_all("list volumes", c.volumes.list, "volumes"):
        if tag in (volume.get("tags") or []):
            add("volume", volume["name"], volume["id"])
    for snapshot in do.list_all("list snapshots", c.snapshots.list, "snapshots",
                                resource_type="volume"):
        if tag in (snapshot.get("tags") or []):
            add("snapshot", snapshot["name"], snapshot["id"])
    for image in do.list_all("list images", c.images.list, "images", private=True,
                             tag_name=tag):
        if tag in (image.get("tags") or []):
            add("image", image["name"], image["id"])
    for firewall in do.list_all("list firewalls", c.firewalls.list, "firewalls"):
        if tag in (firewall.get("tags") or []):
            add("firewall", firewall["name"], firewall["id"])
    notes: list[str] = []
    domain = site.dns.domain
    try:
        do.call("get domain", c.domains.get, domain)
    except NotFound:
        pass
    else:
        ours = domain in state.created("domains")
        owned = set(state.created("records").values())
        ips = {ip for d in droplets if (ip := public_ipv4(d))}
        names = {("@" if h == domain else h[: -len(domain) - 1]) for h in site.dns.hostnames}
        for record in do.list_all("list DNS records", c.domains.list_records,
                                  "domain_records", domain_name=domain):
            if record["type"] == "A" and record["name"] in names and (
                    ours or record["id"] in owned or record["data"] in ips):
                name = domain if record["name"] == "@" else f"{record['name']}.{domain}"
                add("record", f"A {name} -> {record['data']}", f"{domain}:{record['id']}")
        if ours:
            add("domain", domain, domain)
        else:
            notes.append(f"domain {domain} exists but this state directory ({state.path}) "
                         "has no record that the site created it, so `down` leaves it; "
                         "delete it yourself if it is the site's")
    found.sort(key=lambda item: ORDER.index(item.kind))
    return Aftermath(found, notes)


def advice(command: str, site_file: str, extra: str = "") -> list[str]:
    """The commands that remove what is left, or go on."""
    tail = f" --site {site_file}{extra}"
    if command == "down":
        return [f"run `truenas-site down{tail}` again to delete what is left"]
    return [f"remove it: `truenas-site down{tail}`",
            f"or go on where this run stopped: `truenas-site up{tail}`"]
