"""A read-only picture of the whole account, to prove what a run did not touch."""

from __future__ import annotations

from infra.digitalocean import DigitalOcean


def _volume(v: dict) -> dict:
    return {"name": v["name"], "tags": sorted(v.get("tags", [])),
            "droplet_ids": sorted(v.get("droplet_ids") or []),
            "size_gigabytes": v["size_gigabytes"]}


def take(do: DigitalOcean) -> dict[str, dict]:
    """Every resource, keyed `kind:id`, with the attributes a run could change."""
    c = do.client
    found: dict[str, dict] = {}
    for d in do.list_all("list droplets", c.droplets.list, "droplets"):
        found[f"droplet:{d['id']}"] = {"name": d["name"], "tags": sorted(d["tags"]),
                                       "volume_ids": sorted(d["volume_ids"])}
    for v in do.list_all("list volumes", c.volumes.list, "volumes"):
        found[f"volume:{v['id']}"] = _volume(v)
    for i in do.list_all("list images", c.images.list, "images", private=True):
        found[f"image:{i['id']}"] = {"name": i["name"], "tags": sorted(i.get("tags", []))}
    for f in do.list_all("list firewalls", c.firewalls.list, "firewalls"):
        found[f"firewall:{f['id']}"] = {
            "name": f["name"], "tags": sorted(f.get("tags") or []),
            "droplet_ids": sorted(f.get("droplet_ids") or []),
            "inbound": sorted(str(r) for r in f.get("inbound_rules") or []),
        }
    for s in do.list_all("list snapshots", c.snapshots.list, "snapshots"):
        found[f"snapshot:{s['id']}"] = {"name": s["name"], "tags": sorted(s.get("tags") or [])}
    for domain in do.list_all("list domains", c.domains.list, "domains"):
        found[f"domain:{domain['name']}"] = {}
        for r in do.list_all("list records", c.domains.list_records, "domain_records",
                             domain_name=domain["name"]):
            found[f"record:{domain['name']}:{r['id']}"] = {"type": r["type"], "name": r["name"],
                                                          "data": r["data"]}
    return found


def of_site(inventory: dict[str, dict], site_name: str, hostnames: list[str],
            domain: str) -> dict[str, dict]:
    """The part of an inventory that is a site's: by tag, name prefix, or hostname."""
    tag = f"truenas-site:{site_name}"
    relative = {h[: -len(domain) - 1] for h in hostnames}
    mine = {}
    for key, attrs in inventory.items():
        if key.startswith("record:"):
            if key.split(":")[1] == domain and attrs["type"] == "A" and attrs["name"] in relative:
                mine[key] = attrs
        elif tag in attrs.get("tags", []) or attrs.get("name", "").startswith(site_name + "-"):
            mine[key] = attrs
    return mine
