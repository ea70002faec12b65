"""The site's firewall, `<site>-firewall`: it applies to the droplets carrying the
site tag (a firewall's `tags` are what it guards) and the run tag (so that a sweeper
can tell the run's firewall). The rules are infra/desired.py's `firewall_rules`."""

from __future__ import annotations

from collections.abc import Sequence

from infra import desired as names
from infra.change import Change
from infra.digitalocean import DigitalOcean
from infra.events import Reporter
from infra.site import Site

CREATE = "POST /v2/firewalls"
UPDATE = "PUT /v2/firewalls/*"


def find(do: DigitalOcean, site: Site) -> dict | None:
    ours = [f for f in find_all(do) if f["name"] == names.firewall_name(site)
            and names.site_tag(site) in (f.get("tags") or [])]
    return ours[0] if ours else None


def find_all(do: DigitalOcean) -> list[dict]:
    return do.list_all("list firewalls", do.client.firewalls.list, "firewalls")


def desired(site: Site, run_id: str, source_addresses: Sequence[str] = ()) -> dict:
    """`source_addresses`: where a receiving site's replication pushes from."""
    return {"name": names.firewall_name(site),
            "tags": [names.site_tag(site), names.run_tag(run_id)],
            **names.firewall_rules(site, source_addresses)}


def diff(site: Site, firewall: dict | None,
         source_addresses: Sequence[str] = ()) -> list[Change]:
    if firewall is None:
        return [Change("create_firewall", names.firewall_name(site),
                       "80/443 public, admin ports"
                       + (", 22 from the replication's source" if source_addresses else ""),
                       (CREATE,))]
    if not names.rules_match(firewall, names.firewall_rules(site, source_addresses)):
        return [Change("update_firewall", names.firewall_name(site),
                       "rules differ from the site", (UPDATE,))]
    return []


def create(do: DigitalOcean, site: Site, body: dict, reporter: Reporter) -> dict:
    reporter.step(f"create firewall {body['name']}")
    return do.create_once(f"create firewall {body['name']}",
                          lambda: do.client.firewalls.create(body),
                          lambda: (f := find(do, site)) and {"firewall": f})["firewall"]


def update(do: DigitalOcean, firewall: dict, body: dict, reporter: Reporter) -> None:
    reporter.step(f"update firewall {body['name']} rules")
    do.call(f"update firewall {body['name']}", do.client.firewalls.update, firewall["id"], body)


def destroy(do: DigitalOcean, firewall: dict) -> bool:
    return do.ignore_missing("delete firewall", do.client.firewalls.delete, firewall["id"])
