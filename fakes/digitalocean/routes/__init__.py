"""Route tables: (method, path, handler) per resource family, most specific first."""

from fakes.digitalocean.routes import (
    account,
    domains,
    droplets,
    firewalls,
    images,
    reserved_ips,
    snapshots,
    ssh_keys,
    tags,
    volumes,
)

ALL_ROUTES = [
    *account.ROUTES,
    *ssh_keys.ROUTES,
    *droplets.ROUTES,
    *volumes.ROUTES,
    *snapshots.ROUTES,
    *images.ROUTES,
    *tags.ROUTES,
    *domains.ROUTES,
    *firewalls.ROUTES,
    *reserved_ips.ROUTES,
]
