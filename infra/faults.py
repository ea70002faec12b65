"""Faults the real cloud allows, for drills and for the spec: a volume detached
(a lost disk), a volume deleted, a droplet destroyed (a lost host). Each goes
through DigitalOcean's public API, so the same drill runs on a real account."""

from __future__ import annotations

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.errors import InfraError
from infra.observe import find_volume
from infra.site import Site


def _volume(do: DigitalOcean, site: Site, name: str) -> dict:
    volume = find_volume(do, site, name)
    if volume is None or desired.site_tag(site) not in volume.get("tags", []):
        raise InfraError(f"the site has no volume {name}")
    return volume


def detach_volume(do: DigitalOcean, site: Site, name: str) -> None:
    volume = _volume(do, site, name)
    for droplet_id in volume.get("droplet_ids") or []:
        action = do.call(f"detach volume {name}", do.client.volume_actions.post_by_id,
                         volume["id"], {"type": "detach", "droplet_id": droplet_id,
                                        "region": site.site.region}, retry=False)
        do.wait_action(action["action"]["id"], f"detach volume {name}", desired.ACTION_SECONDS)


def delete_volume(do: DigitalOcean, site: Site, name: str) -> None:
    detach_volume(do, site, name)
    do.call(f"delete volume {name}", do.client.volumes.delete, _volume(do, site, name)["id"])


def destroy_droplet(do: DigitalOcean, droplet_id: int) -> None:
    do.ignore_missing("destroy droplet", do.client.droplets.destroy, droplet_id)
