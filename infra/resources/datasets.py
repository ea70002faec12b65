"""The site's datasets on its pool (`truenas.datasets`, relative to the pool), each
with its parents, parents first."""

from __future__ import annotations

from infra.change import Change
from infra.events import Reporter
from infra.site import Site
from infra.truenas.client import TrueNASClient

CREATE = "pool.dataset.create"


def find(client: TrueNASClient, site: Site) -> set[str]:
    return {d["name"] for d in client.call("pool.dataset.query",
                                           [["pool", "=", site.truenas.pool]])}


def desired(site: Site) -> list[str]:
    """Every dataset the site needs, full names, parents first. A dataset the site
    receives (`[[replication]]`), and what is below it, is not made here: the first
    replication makes it (a target holding data and no snapshot is refused)."""
    wanted: list[str] = []
    pool = site.truenas.pool
    received = [name for spec in site.replication for name in spec.datasets]
    for relative in site.truenas.datasets:
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            partial = "/".join(parts[:depth])
            if any(partial == name or partial.startswith(name + "/") for name in received):
                break
            full = f"{pool}/{partial}"
            if full not in wanted:
                wanted.append(full)
    return wanted


def diff(site: Site, existing: set[str]) -> list[Change]:
    return [Change("create_dataset", name, "", (CREATE,))
            for name in desired(site) if name not in existing]


def create(client: TrueNASClient, name: str, reporter: Reporter) -> str:
    change = f"create dataset {name}"
    reporter.step(change)
    client.call(CREATE, {"name": name, "type": "FILESYSTEM"})
    return change


def destroy(client: TrueNASClient, name: str, reporter: Reporter) -> str:
    """Delete dataset `name` with what it holds (its children and snapshots)."""
    change = f"delete dataset {name} and its data"
    reporter.step(change)
    client.call("pool.dataset.delete", name, {"recursive": True})
    return change
