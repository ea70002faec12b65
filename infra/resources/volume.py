"""The site's block volumes: two, `<site>-<name>`, tagged with the site, mirrored
into the pool on the node. DigitalOcean volumes only grow (a resize to a smaller size
is refused: reference/digitalocean-api.md), so a smaller size in the site file is a
change `up` cannot make."""

from __future__ import annotations

from infra import desired as names
from infra.change import Change
from infra.digitalocean import DigitalOcean
from infra.errors import CloudError, ConflictError, InfraError, NotFound, WaitTimeout
from infra.events import Reporter
from infra.site import Site
from infra.wait import Pending, wait_for

CREATE = "POST /v2/volumes"
ACTION = "POST /v2/volumes/*/actions"


def find(do: DigitalOcean, site: Site, name: str) -> dict | None:
    volumes = do.list_all("list volumes", do.client.volumes.list, "volumes",
                          name=name, region=site.site.region)
    return volumes[0] if volumes else None


def find_all(do: DigitalOcean, site: Site) -> dict[str, dict]:
    """The site's wanted volume names -> the volume, for those that exist: one listing
    of the region's volumes (a name is unique in a region), not one per name."""
    wanted = names.volume_names(site)
    found: dict[str, dict] = {}
    for vol in do.list_all("list volumes", do.client.volumes.list, "volumes",
                           region=site.site.region):
        if vol["name"] in wanted:
            found.setdefault(vol["name"], vol)
    return {name: found[name] for name in wanted if name in found}


def find_tagged(do: DigitalOcean, tag: str) -> list[dict]:
    return [v for v in do.list_all("list volumes", do.client.volumes.list, "volumes")
            if tag in v.get("tags", [])]


def find_site_volume(do: DigitalOcean, site: Site, name: str) -> dict:
    """One of the site's volumes by its full name; refused when it is not the site's."""
    volume = find(do, site, name)
    if volume is None or names.site_tag(site) not in volume.get("tags", []):
        raise InfraError(f"the site has no volume {name}")
    return volume


def desired(site: Site, name: str, size: int, tags: list[str]) -> dict:
    return {"name": name, "size_gigabytes": size, "region": site.site.region,
            "description": f"TrueNAS pool member for site {site.name}", "tags": tags}


def diff(site: Site, volumes: dict[str, dict],
         droplet: dict | None) -> tuple[list[Change], list[Change]]:
    """(changes, what cannot change and why), for both site volumes."""
    tag = names.site_tag(site)
    changes: list[Change] = []
    cannot: list[Change] = []
    for spec, name in zip(site.volumes, names.volume_names(site), strict=True):
        volume = volumes.get(name)
        if volume is None:
            changes.append(Change("create_volume", name,
                                  f"{spec.size_gigabytes} GiB in {site.site.region}", (CREATE,)))
            if droplet is not None:  # else attached when the droplet is created
                changes.append(Change("attach_volume", name, f"to {droplet['name']}",
                                      (ACTION,)))
            continue
        if tag not in volume.get("tags", []):
            raise ConflictError(f"volume {name} exists in {site.site.region} but does not carry "
                                f"the tag {tag}; it is not this site's, so it is left alone")
        if volume["size_gigabytes"] < spec.size_gigabytes:
            changes.append(Change("resize_volume", name,
                                  f"{volume['size_gigabytes']} -> {spec.size_gigabytes} GiB",
                                  (ACTION,)))
        elif volume["size_gigabytes"] > spec.size_gigabytes:
            cannot.append(Change("shrink_volume", name,
                                 f"{volume['size_gigabytes']} -> {spec.size_gigabytes} GiB: "
                                 "DigitalOcean volumes only grow; the volume stays "
                                 f"{volume['size_gigabytes']} GiB"))
        attached = volume.get("droplet_ids") or []
        if droplet is not None and droplet["id"] not in attached:
            if attached:
                raise ConflictError(f"volume {name} is attached to droplet {attached[0]}, "
                                    "not to this site's droplet")
            changes.append(Change("attach_volume", name, f"to {droplet['name']}", (ACTION,)))
    return changes, cannot


def create(do: DigitalOcean, site: Site, body: dict, reporter: Reporter) -> dict:
    """Create the volume `body` describes (from a snapshot when it names one), once:
    before any retry it is looked up by name, and a volume of that name that is not
    the site's is refused."""
    name = body["name"]
    if body.get("snapshot_id"):
        reporter.step(f"restore snapshot {body['snapshot_id']} into volume {name}")
    else:
        reporter.step(f"create volume {name} ({body['size_gigabytes']} GiB)")
    tag = names.site_tag(site)

    def found() -> dict | None:
        volume = find(do, site, name)
        if volume is not None and tag not in volume.get("tags", []):
            raise ConflictError(f"volume {name} exists but is not this site's")
        return volume and {"volume": volume}

    return do.create_once(f"create volume {name}", lambda: do.client.volumes.create(body),
                          found)["volume"]


def from_snapshot(site: Site, name: str, snapshot: dict, tags: list[str]) -> dict:
    """The body of a new volume holding a snapshot's data (a backup drill's)."""
    return {"name": name, "region": site.site.region, "tags": tags,
            "snapshot_id": snapshot["id"], "size_gigabytes": snapshot["min_disk_size"]}


def resize(do: DigitalOcean, site: Site, volume: dict, size: int, reporter: Reporter) -> None:
    reporter.step(f"resize volume {volume['name']} to {size} GiB")
    action = do.call(f"resize volume {volume['name']}", do.client.volume_actions.post_by_id,
                     volume["id"], {"type": "resize", "size_gigabytes": size,
                                    "region": site.site.region}, retry=False)["action"]
    do.wait_action(action["id"], f"resize of {volume['name']}")


def attach(do: DigitalOcean, site: Site, volume: dict, droplet: dict,
           reporter: Reporter) -> None:
    """Attach and wait for the action; refused when another droplet holds it."""
    name = volume["name"]
    current = do.call("get volume", do.client.volumes.get, volume["id"])["volume"]
    if droplet["id"] in current.get("droplet_ids", []):
        return
    if current.get("droplet_ids"):
        raise ConflictError(f"volume {name} is attached to another droplet")
    reporter.step(f"attach volume {name} to {droplet['name']}")
    action = do.call(f"attach volume {name}", do.client.volume_actions.post_by_id,
                     volume["id"], {"type": "attach", "droplet_id": droplet["id"],
                                    "region": site.site.region}, retry=False)["action"]
    do.wait_action(action["id"], f"attach volume {name}", names.ACTION_SECONDS, reporter)


def detach(do: DigitalOcean, volume: dict, region: str | None = None) -> None:
    """Detach from every droplet holding it, waiting for each action."""
    name = volume["name"]
    for droplet_id in volume.get("droplet_ids") or []:
        body = {"type": "detach", "droplet_id": droplet_id}
        if region is not None:
            body["region"] = region
        try:
            action = do.call(f"detach volume {name}", do.client.volume_actions.post_by_id,
                             volume["id"], body, retry=False)
        except NotFound:
            continue
        do.wait_action(action["action"]["id"], f"detach volume {name}", names.ACTION_SECONDS)


def destroy(do: DigitalOcean, volume: dict, reporter: Reporter | None = None, *,
            max_server_failures: int | None = None) -> None:
    """Delete the volume, retrying while it is still detaching from a droplet that
    just went (409); gone already is fine. A 5xx or 429 is retried too, until the
    deadline, or (with `max_server_failures`) until that many came in a row: then that
    error is raised, not a long wait."""
    name = volume["name"]
    failures: list[CloudError] = []

    def deleted() -> bool | Pending:
        try:
            do.call(f"delete volume {name}", do.client.volumes.delete, volume["id"],
                    retry=False)
        except NotFound:
            pass
        except CloudError as error:
            if error.status == 409:
                failures.clear()
                return Pending(f"{error.status}: {error.message}")
            if not error.transient:
                raise
            failures.append(error)
            if max_server_failures is not None and len(failures) >= max_server_failures:
                raise
            return Pending(f"{error.status}: {error.message}")
        return True

    def timed_out(limit: float, _status: str) -> Exception:
        if max_server_failures is not None and failures:
            return failures[-1]
        return WaitTimeout(f"gave up waiting for volume {name} to be deletable after "
                           f"{limit:.1f} s")

    wait_for(f"volume {name} to be deletable", deleted, do.timing, names.ACTION_SECONDS,
             reporter=reporter, timeout=timed_out)
