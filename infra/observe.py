"""Read what the account holds for a site. Only GETs here."""

from __future__ import annotations

from dataclasses import dataclass, field

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.errors import ConflictError, NotFound
from infra.site import Site


@dataclass
class Observed:
    sizes: dict[str, dict]
    image: dict | None
    volumes: dict[str, dict]             # wanted volume name -> volume (if it exists)
    droplet: dict | None
    firewall: dict | None
    domain_exists: bool
    records: dict[str, list[dict]] = field(default_factory=dict)  # hostname -> A records

    def droplet_ip(self) -> str | None:
        return public_ipv4(self.droplet) if self.droplet else None


def public_ipv4(droplet: dict) -> str | None:
    for network in droplet.get("networks", {}).get("v4", []):
        if network.get("type") == "public":
            return network["ip_address"]
    return None


def find_image(do: DigitalOcean, site: Site) -> dict | None:
    images = do.list_all("list images", do.client.images.list, "images",
                         private=True, tag_name=desired.site_tag(site))
    named = [i for i in images if i["name"] == desired.image_name(site)]
    return named[0] if named else None


def find_droplet(do: DigitalOcean, site: Site) -> dict | None:
    droplets = do.list_all("list droplets", do.client.droplets.list, "droplets",
                           tag_name=desired.site_tag(site))
    named = [d for d in droplets if d["name"] == desired.droplet_name(site)]
    if len(named) > 1:
        ids = ", ".join(str(d["id"]) for d in named)
        raise ConflictError(f"{len(named)} droplets named {desired.droplet_name(site)} carry "
                            f"the site tag (ids {ids}); delete the extra ones")
    return named[0] if named else None


def find_volume(do: DigitalOcean, site: Site, name: str) -> dict | None:
    volumes = do.list_all("list volumes", do.client.volumes.list, "volumes",
                          name=name, region=site.site.region)
    return volumes[0] if volumes else None


def find_firewall(do: DigitalOcean, site: Site) -> dict | None:
    firewalls = do.list_all("list firewalls", do.client.firewalls.list, "firewalls")
    ours = [f for f in firewalls if f["name"] == desired.firewall_name(site)
            and desired.site_tag(site) in (f.get("tags") or [])]
    return ours[0] if ours else None


def a_records(do: DigitalOcean, site: Site, hostname: str) -> list[dict]:
    return do.list_all("list DNS records", do.client.domains.list_records, "domain_records",
                       domain_name=site.dns.domain, name=hostname, type="A")


def domain_exists(do: DigitalOcean, site: Site) -> bool:
    try:
        do.call("get domain", do.client.domains.get, site.dns.domain)
        return True
    except NotFound:
        return False


def observe(do: DigitalOcean, site: Site) -> Observed:
    sizes = {s["slug"]: s for s in do.list_all("list sizes", do.client.sizes.list, "sizes")}
    has_domain = domain_exists(do, site)
    records = {h: a_records(do, site, h) for h in site.dns.hostnames} if has_domain else {}
    return Observed(
        sizes=sizes,
        image=find_image(do, site),
        volumes={name: vol for name in desired.volume_names(site)
                 if (vol := find_volume(do, site, name)) is not None},
        droplet=find_droplet(do, site),
        firewall=find_firewall(do, site),
        domain_exists=has_domain,
        records=records,
    )
