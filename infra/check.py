"""`check`: a read-only report of where the account differs from the site file."""

from __future__ import annotations

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.observe import observe
from infra.report import CheckReport
from infra.site import Site


def check(site: Site, do: DigitalOcean) -> CheckReport:
    report = CheckReport(site.name, do.target.kind)
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
        report.add("firewall rules: 80/443 public, 22 and admin port from admin CIDRs only",
                   desired.rules_match(firewall, desired.firewall_rules(site)))
        report.add("firewall applies to the site's droplets", tag in (firewall.get("tags") or []))

    report.add(f"domain {site.dns.domain} exists", seen.domain_exists)
    ip = seen.droplet_ip()
    for hostname in site.dns.hostnames:
        data = [r["data"] for r in seen.records.get(hostname, [])]
        report.add(f"{hostname} points at the droplet", ip is not None and data == [ip],
                   f"A {', '.join(data) or 'none'}; droplet {ip or 'has no address'}")
    return report
