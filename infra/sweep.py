"""`sweep`: delete what runs left behind, by run tag and age. Idempotent.

A run that was killed, or whose teardown failed, leaves resources carrying its run
tag (`truenas-run:<id>`, infra/desired.py). The sweeper deletes those whose
`created_at` is older than the given age, and only those:

- never a resource without a run tag, whatever its name says;
- never a run-tagged resource younger than the age (its run may still be going);
- a volume only once it is detached, or attached only to droplets swept here;
- a firewall only if no droplet that stays is covered by it (by id or by tag);
- DNS records carry no tags: a record goes only if it points at the address of a
  droplet swept here;
- a run or site tag only once nothing carries it and no remaining firewall uses it;
- a domain only if its `_truenas-site` marker (infra/ownership.py) names the run and is
  old enough, and nothing but NS, SOA, the marker and records swept here is in it;
- an SSH key (keys carry no tags) only if it is a site key, `<site>-ssh-<run>`
  (infra/resources/ssh_key.py), of a site in scope, and nothing that stays carries its run tag.

Everything is decided first (a plan, which `dry_run` only reports), then done. The
records go first: once a droplet is gone nothing links its records to the run,
so an interrupted sweep must not leave them behind (a record pointing at a
released address is a takeover risk). Then droplets (waiting until they are
gone), detached volumes, snapshots, images, firewalls, tags and domains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.events import Reporter
from infra.ownership import is_marker, marker_created, marker_tags, only_ours_left
from infra.resources import dns, droplet, firewall, image, snapshot, ssh_key, volume
from infra.resources import tags as resource_tags
from infra.resources.droplet import public_ipv4

RUN_PREFIX = desired.run_tag("")
SITE_PREFIX = "truenas-site:"


@dataclass
class Item:
    kind: str
    id: str
    name: str
    reason: str

    def describe(self) -> str:
        return f"{self.kind} {self.name} ({self.id}): {self.reason}"


@dataclass
class SweepReport:
    older_than_seconds: float
    run_id: str | None
    dry_run: bool
    deleted: list[Item] = field(default_factory=list)   # with dry_run: would be deleted
    kept: list[Item] = field(default_factory=list)      # run-tagged, and why it stays

    def to_dict(self) -> dict:
        return asdict(self)


def _created(resource: dict) -> float:
    # DigitalOcean's timestamps look like 2020-07-21T18:37:44Z (every resource schema
    # the sweeper reads has `created_at`: droplet, volume, snapshot, image, firewall).
    return datetime.fromisoformat(resource["created_at"].replace("Z", "+00:00")).timestamp()


def _age(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


class Sweeper:
    def __init__(self, do: DigitalOcean, reporter: Reporter | None = None,
                 scope_tag: str | None = None) -> None:
        """`scope_tag`: sweep only resources that also carry this tag. Every `up` tags
        its resources with its run, so an account that also holds a real site needs a
        scope (the spec's sites carry `spec-suite`), or that site's old resources
        would be taken too."""
        self.do = do
        self.reporter = reporter or Reporter()
        self.scope_tag = scope_tag

    # --- deciding ------------------------------------------------------------
    def _run_tags(self, resource: dict, run_id: str | None) -> list[str]:
        tags = [t for t in resource.get("tags") or [] if t.startswith(RUN_PREFIX)]
        if run_id is not None:
            tags = [t for t in tags if t == desired.run_tag(run_id)]
        return tags

    def _in_scope(self, resource: dict) -> bool:
        return self.scope_tag is None or self.scope_tag in (resource.get("tags") or [])

    def _candidates(self, kind: str, resources: list[dict], run_id: str | None, now: float,
                    limit: float, report: SweepReport,
                    in_scope: Callable[[dict], bool] | None = None) -> list[dict]:
        """The run-tagged resources old enough to sweep; the young ones are reported kept."""
        old = []
        for resource in resources:
            if not self._run_tags(resource, run_id):
                continue  # not any run's (or not the asked run's): never considered
            if not (in_scope or self._in_scope)(resource):
                continue  # another site's run (every `up` tags its run): not ours to sweep
            age = now - _created(resource)
            if age < limit:
                report.kept.append(Item(kind, str(resource["id"]), resource["name"],
                                        f"created {_age(age)} ago, younger than "
                                        f"{_age(limit)}"))
            else:
                old.append(resource)
        return old

    def sweep(self, older_than: timedelta, run_id: str | None = None,
              dry_run: bool = False) -> SweepReport:
        do, c = self.do, self.do.client
        limit = older_than.total_seconds()
        if limit <= 0:
            raise ValueError("older_than must be positive: a sweep never takes a run in flight")
        report = SweepReport(limit, run_id, dry_run)
        now = do.target.now()

        def listed(what: str, fn: Callable[..., Any], key: str, **filters: Any) -> list[dict]:
            return do.list_all(f"list {what}", fn, key, **filters)

        all_droplets = listed("droplets", c.droplets.list, "droplets")
        all_volumes = listed("volumes", c.volumes.list, "volumes")
        all_snapshots = listed("snapshots", c.snapshots.list, "snapshots")
        all_images = listed("images", c.images.list, "images", private=True)
        all_firewalls = firewall.find_all(do)

        def pick(kind, resources):
            return self._candidates(kind, resources, run_id, now, limit, report)

        droplets = pick("droplet", all_droplets)
        gone = {d["id"] for d in droplets}
        staying = [d for d in all_droplets if d["id"] not in gone]

        volumes = []
        for vol in pick("volume", all_volumes):
            holders = [i for i in vol.get("droplet_ids") or [] if i not in gone]
            if holders:
                report.kept.append(Item("volume", vol["id"], vol["name"],
                                        f"attached to droplet {holders[0]}, which stays"))
            else:
                volumes.append(vol)
        snapshots = pick("snapshot", all_snapshots)
        images = pick("image", all_images)

        # A firewall's `tags` name the droplets it guards, not labels of its own: it is
        # in scope when it guards a site whose resources carry the scope tag.
        scoped_sites = {t for r in (*all_droplets, *all_volumes, *all_snapshots, *all_images)
                        if self._in_scope(r)
                        for t in r.get("tags") or [] if t.startswith(SITE_PREFIX)}

        def guards_scoped_site(fw: dict) -> bool:
            return self._in_scope(fw) or bool(set(fw.get("tags") or [])
                                                    & scoped_sites)

        firewalls = []
        for fw in self._candidates("firewall", all_firewalls, run_id, now, limit, report,
                                         in_scope=guards_scoped_site):
            tags = set(fw.get("tags") or [])
            covered = [d for d in staying if d["id"] in (fw.get("droplet_ids") or [])
                       or tags & set(d.get("tags") or [])]
            if covered:
                report.kept.append(Item("firewall", fw["id"], fw["name"],
                                        f"still protects droplet {covered[0]['name']} "
                                        f"({covered[0]['id']}), which stays"))
            else:
                firewalls.append(fw)

        addresses = {ip: d for d in droplets if (ip := public_ipv4(d))}
        records = self._records(addresses)
        domains = self._domains(records, run_id, now, limit, report)
        swept = [*droplets, *volumes, *snapshots, *images]
        remaining_firewalls = [f for f in all_firewalls if f not in firewalls]
        tags = self._tags(swept, remaining_firewalls, run_id, report)
        # SSH keys carry no tags: a run's site key goes once nothing of its run stays.
        staying_all = [r for r in (*all_droplets, *all_volumes, *all_snapshots, *all_images,
                                   *remaining_firewalls) if r not in swept]
        keys = ssh_key.orphaned(do, staying_all, scoped_sites if self.scope_tag else None,
                                 run_id)

        plan = [("record", r) for r in records] + [("droplet", d) for d in droplets] + \
            [("volume", v) for v in volumes] + [("snapshot", s) for s in snapshots] + \
            [("image", i) for i in images] + [("firewall", f) for f in firewalls]
        for kind, resource in plan:
            report.deleted.append(self._item(kind, resource, now, addresses))
        report.deleted += [Item("tag", t, t, "nothing carries it any more") for t in tags]
        report.deleted += [Item("domain", d, d, "the run made it and nothing else is in it")
                           for d in domains]
        report.deleted += [Item("ssh_key", str(k["id"]), k["name"], "nothing of its run is left")
                           for k in keys]
        for item in report.kept:
            self.reporter.note(f"keep {item.describe()}")
        if dry_run:
            for item in report.deleted:
                self.reporter.note(f"would delete {item.describe()}")
            return report

        for domain, record in records:
            dns.destroy_record(do, domain, record, f"{record['name']}.{domain}")
            self.reporter.step(f"delete A record {record['name']}.{domain} -> {record['data']}")
        droplet.destroy(do, droplets, self.reporter,
                        lambda what: self.reporter.step(f"delete {what}"))
        # each kind through its own resource module, in the sweep's usual order
        deletions = (("volume", volumes, lambda f: volume.destroy(do, f, self.reporter)),
                     ("snapshot", snapshots, lambda f: snapshot.destroy(do, f)),
                     ("image", images, lambda f: image.destroy(do, f)),
                     ("firewall", firewalls, lambda f: firewall.destroy(do, f)))
        for kind, found_all, destroy in deletions:
            for found in found_all:
                destroy(found)
                self.reporter.step(f"delete {kind} {found['name']}")
        for tag in tags:
            if resource_tags.destroy_if_empty(do, tag):
                self.reporter.step(f"delete tag {tag}")
        for domain in domains:
            dns.destroy_domain(do, domain)
            self.reporter.step(f"delete domain {domain}")
        for key in keys:
            ssh_key.destroy_key(do, key)
            self.reporter.step(f"delete SSH key {key['name']}")
        return report

    def _domains(self, records: list[tuple[str, dict]], run_id: str | None, now: float,
                 limit: float, report: SweepReport) -> list[str]:
        """Domains a swept run made (their marker says so), old enough, and empty but
        for NS, SOA, the marker and the records swept here."""
        do = self.do
        going = {(domain, record["id"]) for domain, record in records}
        found = []
        for domain in dns.find_domains(do):
            name = domain["name"]
            held = dns.find_all_records(do, name)
            markers = [r for r in held if is_marker(r)]
            if not markers:
                continue  # not made by a site's `up`: never considered
            tags = marker_tags(markers[0])
            runs = sorted(t for t in tags if t.startswith(RUN_PREFIX))
            if not runs or (run_id is not None and desired.run_tag(run_id) not in runs):
                continue
            if self.scope_tag is not None and self.scope_tag not in tags:
                continue
            created = marker_created(markers[0])
            if created is None or now - created < limit:
                if created is not None:
                    report.kept.append(Item("domain", name, name, f"created "
                                            f"{_age(now - created)} ago, younger than "
                                            f"{_age(limit)}"))
                continue
            other = [r for r in held if (name, r["id"]) not in going
                     and not only_ours_left([r])]
            if other:
                report.kept.append(Item("domain", name, name, f"holds {len(other)} other "
                                        "record(s)"))
                continue
            found.append(name)
        return found

    def _item(self, kind: str, resource, now: float, addresses: dict[str, dict]) -> Item:
        if kind == "record":
            domain, record = resource
            droplet = addresses[record["data"]]
            return Item("record", f"{domain}:{record['id']}", f"{record['name']}.{domain}",
                        f"points at {record['data']}, swept droplet {droplet['name']}")
        tags = ", ".join(self._run_tags(resource, None))
        return Item(kind, str(resource["id"]), resource["name"],
                    f"{tags}, created {_age(now - _created(resource))} ago")

    def _records(self, addresses: dict[str, dict]) -> list[tuple[str, dict]]:
        if not addresses:
            return []
        do = self.do
        found = []
        for domain in dns.find_domains(do):
            for record in dns.find_all_records(do, domain["name"]):
                if record["type"] == "A" and record["data"] in addresses:
                    found.append((domain["name"], record))
        return found

    def _tags(self, swept: list[dict], firewalls: list[dict], run_id: str | None,
              report: SweepReport) -> list[str]:
        """Run and site tags that nothing carries once the sweep is done. An empty run
        tag (a `down` leaves its run's tag) goes too; a user's own tags never do."""
        do = self.do
        carried: dict[str, int] = {}
        for resource in swept:
            for tag in resource.get("tags") or []:
                carried[tag] = carried.get(tag, 0) + 1
        used_by_firewalls = {t for f in firewalls for t in f.get("tags") or []}
        empty = []
        for tag in resource_tags.find_all(do):
            name = tag["name"]
            is_run = name.startswith(RUN_PREFIX) and (
                run_id is None or name == desired.run_tag(run_id))
            is_site = name.startswith(SITE_PREFIX) and name in carried
            if not (is_run or is_site):
                continue
            left = tag["resources"]["count"] - carried.get(name, 0)
            if left == 0 and name not in used_by_firewalls:
                empty.append(name)
            elif name in carried:
                why = (f"still on {left} resources" if left else "a firewall that stays uses it")
                report.kept.append(Item("tag", name, name, why))
        return empty
