"""Faults the real cloud allows, for drills and for the spec: a volume detached
(a lost disk), a volume deleted, a droplet destroyed (a lost host). Each goes
through DigitalOcean's public API, so the same drill runs on a real account."""

from __future__ import annotations

from infra.digitalocean import DigitalOcean
from infra.events import Reporter
from infra.resources import droplet, volume
from infra.site import Site


def detach_volume(do: DigitalOcean, site: Site, name: str) -> None:
    volume.detach(do, volume.find_site_volume(do, site, name), site.site.region)


def delete_volume(do: DigitalOcean, site: Site, name: str) -> None:
    detach_volume(do, site, name)
    volume.destroy(do, volume.find_site_volume(do, site, name))


def destroy_droplet(do: DigitalOcean, droplet_id: int) -> None:
    """Ask for the deletion only (a lost host does not wait to be gone)."""
    droplet.destroy(do, [{"id": droplet_id, "name": str(droplet_id)}], Reporter(),
                    wait=False)
