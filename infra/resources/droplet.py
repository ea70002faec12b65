"""The site's droplet: one, named `<site>-truenas`, tagged with the site, from the
site's image, with the site's volumes attached at creation (DigitalOcean API:
POST /v2/droplets takes `volumes`, reference/digitalocean-api.md)."""

from __future__ import annotations

from collections.abc import Callable

from infra import desired as names
from infra.change import Change
from infra.digitalocean import DigitalOcean
from infra.errors import ConflictError, InfraError, NodeProblem, NotFound, WaitTimeout
from infra.events import Reporter
from infra.site import Site
from infra.wait import Pending, wait_for

CREATE = "POST /v2/droplets"


def public_ipv4(droplet: dict) -> str | None:
    for network in droplet.get("networks", {}).get("v4", []):
        if network.get("type") == "public":
            return network["ip_address"]
    return None


def node_address(do: DigitalOcean | None, site: Site) -> str:
    """Where the site's node answers: a node of one's own at its site file's address,
    else the droplet's public address; InfraError when the site has no running droplet."""
    if site.node is not None:
        return site.node.address
    found = find(do, site) if do is not None else None
    address = public_ipv4(found) if found else None
    if address is None:
        raise InfraError("the site has no running droplet; run `up` first")
    return address


def find(do: DigitalOcean, site: Site) -> dict | None:
    droplets = do.list_all("list droplets", do.client.droplets.list, "droplets",
                           tag_name=names.site_tag(site))
    named = [d for d in droplets if d["name"] == names.droplet_name(site)]
    if len(named) > 1:
        ids = ", ".join(str(d["id"]) for d in named)
        raise ConflictError(f"{len(named)} droplets named {names.droplet_name(site)} carry "
                            f"the site tag (ids {ids}); delete the extra ones")
    return named[0] if named else None


def find_tagged(do: DigitalOcean, tag: str) -> list[dict]:
    """Every droplet carrying `tag` (what `down` deletes)."""
    return do.list_all("list droplets", do.client.droplets.list, "droplets", tag_name=tag)


def desired(site: Site, name: str, image_id: int, volume_ids: list[str],
            tags: list[str], ssh_keys: list[int | str]) -> dict:
    """`ssh_keys`: a custom image needs at least one (infra/resources/ssh_key.py)."""
    return {"name": name, "region": site.site.region, "size": site.site.droplet_size,
            "image": image_id, "tags": tags, "volumes": volume_ids, "ipv6": False,
            "monitoring": False, "ssh_keys": ssh_keys}


def diff(site: Site, droplet: dict | None) -> tuple[list[Change], list[Change]]:
    """(changes, what cannot change and why)."""
    if droplet is None:
        return [Change("create_droplet", names.droplet_name(site),
                       f"{site.site.droplet_size} in {site.site.region}", (CREATE,))], []
    if droplet["region"]["slug"] != site.site.region:
        raise ConflictError(f"droplet {droplet['name']} is in {droplet['region']['slug']}, "
                            f"the site file says {site.site.region}; run `down` first to move")
    size = droplet.get("size_slug") or (droplet.get("size") or {}).get("slug")
    if size is not None and size != site.site.droplet_size:
        return [], [Change("resize_droplet", droplet["name"],
                           f"{size} -> {site.site.droplet_size}: not done by up (a resize "
                           "powers the droplet off; resize it by hand, or down and up)")]
    return [], []


def create(do: DigitalOcean, body: dict, reporter: Reporter,
           find_again: Callable[[], dict | None]) -> dict:
    """Create the droplet `body` describes, once: before any retry, `find_again` looks
    for it (by name and tag), and a droplet found is the result."""
    reporter.step(f"create droplet {body['name']} ({body['size']}, "
                  f"{len(body['volumes'])} volumes attached)")
    return do.create_once(
        f"create droplet {body['name']}", lambda: do.client.droplets.create(body),
        lambda: (found := find_again()) and {"droplet": found},
    )["droplet"]


def find_named(do: DigitalOcean, name: str, tag: str) -> dict | None:
    """A droplet by name among those carrying `tag` (a backup drill's scratch droplet)."""
    named = [d for d in find_tagged(do, tag) if d["name"] == name]
    return named[0] if named else None


def wait(do: DigitalOcean, droplet: dict, reporter: Reporter) -> dict:
    """Until the droplet is active with a public address; the current droplet. One
    that vanishes (deleted, or its host failed) or does not boot in time is a
    NodeProblem saying so."""
    if droplet["status"] == "active" and public_ipv4(droplet):
        return droplet
    last = [droplet["status"]]

    def active() -> dict | Pending:
        try:
            current = do.call("get droplet", do.client.droplets.get, droplet["id"])["droplet"]
        except NotFound:
            raise NodeProblem(
                f"droplet {droplet['name']} ({droplet['id']}) vanished while booting "
                "(deleted, or its host failed); `up` again creates a new one") from None
        last[0] = current["status"]
        ready = current["status"] == "active" and public_ipv4(current)
        return current if ready else Pending(f"it is {current['status']}")

    def failed(limit: float, _status: str) -> Exception:
        return NodeProblem(f"droplet {droplet['name']} ({droplet['id']}) failed to boot: "
                           f"still {last[0]!r} after {limit:.0f} s")

    return wait_for(f"droplet {droplet['name']} to boot", active, do.timing,
                    names.DROPLET_BOOT_SECONDS, reporter=reporter, timeout=failed)


def destroy(do: DigitalOcean, droplets: list[dict], reporter: Reporter,
            deleted: Callable[[str], None] | None = None, *, wait: bool = True) -> None:
    """Ask for every deletion first (DigitalOcean deletes them in parallel), then wait,
    bounded, until each droplet is gone (unless not `wait`: a fault drill's lost host);
    `deleted` hears of each one asked for."""
    for droplet in droplets:
        do.ignore_missing(f"delete droplet {droplet['name']}", do.client.droplets.destroy,
                          droplet["id"])
        if deleted is not None:
            deleted(f"droplet {droplet['name']} ({droplet['id']})")
    for droplet in droplets if wait else []:
        def gone(droplet_id: int = droplet["id"]) -> bool | Pending:
            try:
                do.call("get droplet", do.client.droplets.get, droplet_id)
                return Pending()
            except NotFound:
                return True

        wait_for(f"droplet {droplet['name']} to go away", gone, do.timing,
                 names.DESTROY_SECONDS, reporter=reporter,
                 timeout=lambda limit, _s, d=droplet: _gone_timeout(d, limit))


def _gone_timeout(droplet: dict, limit: float) -> Exception:
    return WaitTimeout(f"gave up waiting for droplet {droplet['name']} to be deleted after "
                       f"{limit:.1f} s")
