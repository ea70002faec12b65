"""Compare a site with what the account holds: the changes `up` would make.

Pure: no requests here. Problems that `up` must not paper over (a resource in the
way that is not this site's, a size too small for TrueNAS) raise before any change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infra import desired
from infra.errors import ConflictError, SiteFileError
from infra.observe import Observed
from infra.site import Site


@dataclass(frozen=True)
class Change:
    kind: str
    subject: str
    detail: str = ""

    def describe(self) -> str:
        text = f"{self.kind.replace('_', ' ')} {self.subject}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)

    def add(self, kind: str, subject: str, detail: str = "") -> None:
        self.changes.append(Change(kind, subject, detail))

    @property
    def empty(self) -> bool:
        return not self.changes

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


def make_plan(site: Site, seen: Observed, owned_records: dict[str, int]) -> Plan:
    check_size(site, seen.sizes)
    plan = Plan()
    tag = desired.site_tag(site)

    if seen.image is None:
        plan.add("import_image", desired.image_name(site), site.image.url)
    elif seen.image.get("error_message"):
        raise ConflictError(
            f"image {desired.image_name(site)} failed to import: "
            f"{seen.image['error_message']}; delete it (`down`) and check image.url"
        )

    droplet = seen.droplet
    for spec, name in zip(site.volumes, desired.volume_names(site), strict=True):
        volume = seen.volumes.get(name)
        if volume is None:
            plan.add("create_volume", name, f"{spec.size_gigabytes} GiB in {site.site.region}")
            continue
        if tag not in volume.get("tags", []):
            raise ConflictError(f"volume {name} exists in {site.site.region} but does not carry "
                                f"the tag {tag}; it is not this site's, so it is left alone")
        if volume["size_gigabytes"] < spec.size_gigabytes:
            plan.add("resize_volume", name,
                     f"{volume['size_gigabytes']} -> {spec.size_gigabytes} GiB")
        attached = volume.get("droplet_ids") or []
        if droplet is not None and droplet["id"] not in attached:
            if attached:
                raise ConflictError(f"volume {name} is attached to droplet {attached[0]}, "
                                    "not to this site's droplet")
            plan.add("attach_volume", name, f"to {droplet['name']}")

    if droplet is None:
        plan.add("create_droplet", desired.droplet_name(site),
                 f"{site.site.droplet_size} in {site.site.region}")
    elif droplet["region"]["slug"] != site.site.region:
        raise ConflictError(f"droplet {droplet['name']} is in {droplet['region']['slug']}, "
                            f"the site file says {site.site.region}; run `down` first to move")

    wanted_rules = desired.firewall_rules(site)
    if seen.firewall is None:
        plan.add("create_firewall", desired.firewall_name(site), "80/443 public, admin ports")
    elif not desired.rules_match(seen.firewall, wanted_rules):
        plan.add("update_firewall", desired.firewall_name(site), "rules differ from the site")

    if not seen.domain_exists:
        plan.add("create_domain", site.dns.domain)
    ip = seen.droplet_ip()
    for hostname in site.dns.hostnames:
        records = seen.records.get(hostname, [])
        if not records:
            plan.add("create_record", hostname, f"A -> {ip or 'the droplet'}")
            continue
        if ip is not None and [r["data"] for r in records] == [ip]:
            continue
        ours = [r for r in records if owned_records.get(hostname) == r["id"]]
        if not ours:
            shown = ", ".join(r["data"] for r in records)
            raise ConflictError(f"{hostname} already has A records ({shown}) this site did not "
                                "create; remove them or pick another hostname")
        plan.add("update_record", hostname, f"A -> {ip or 'the droplet'}")
    return plan
