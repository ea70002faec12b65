"""Read what the account holds for a site: every cloud resource's `find`
(infra/resources/), in one `Observed`. Only GETs here, each list once: the domain's
records in one listing (every hostname's A records and the marker), the region's
volumes in one."""

from __future__ import annotations

from dataclasses import dataclass, field

from infra.digitalocean import DigitalOcean
from infra.resources import dns, droplet, firewall, image, replication, volume
from infra.resources.droplet import public_ipv4
from infra.site import Site


@dataclass
class Observed:
    sizes: dict[str, dict]
    image: dict | None
    volumes: dict[str, dict]             # wanted volume name -> volume (if it exists)
    droplet: dict | None
    firewall: dict | None
    domain_exists: bool
    # hostname -> A records: the site's hostnames, and those the state directory says
    # the site made records for (a hostname dropped from the file keeps its record
    # until `up` removes it)
    records: dict[str, list[dict]] = field(default_factory=dict)
    # Whether the domain holds the `_truenas-site` marker (infra/ownership.py).
    domain_marked: bool = False
    # Where a receiving site's replication pushes from (its sources' droplets).
    replication_sources: list[str] = field(default_factory=list)

    def droplet_ip(self) -> str | None:
        return public_ipv4(self.droplet) if self.droplet else None


def observe(do: DigitalOcean, site: Site, owned_records: dict[str, int] | None = None) -> Observed:
    sizes = {s["slug"]: s for s in do.list_all("list sizes", do.client.sizes.list, "sizes")}
    # One listing of the domain says whether it exists, every hostname's A records and
    # whether it holds the marker.
    listed = dns.records_if_domain(do, site.dns.domain)
    has_domain = listed is not None
    hostnames = [*site.dns.hostnames,
                 *(h for h in owned_records or {} if h not in site.dns.hostnames)]
    return Observed(
        sizes=sizes,
        image=image.find(do, site),
        volumes=volume.find_all(do, site),
        droplet=droplet.find(do, site),
        firewall=firewall.find(do, site),
        domain_exists=has_domain,
        records=dns.a_records(site.dns.domain, listed, hostnames) if listed is not None
        else {},
        domain_marked=listed is not None and dns.marked(listed),
        replication_sources=replication.source_addresses(do, site),
    )
