"""Snapshots of a site dataset: take, list, and restore (roll back in place, or
clone beside the live data). Names are relative to the site's pool."""

from __future__ import annotations

from infra.errors import InfraError
from infra.site import Site
from infra.truenas.client import TrueNASClient


def _dataset(site: Site, dataset: str) -> str:
    # A site dataset, or one beneath it (an app's own: apps/<app>, made by the charts).
    if dataset not in site.truenas.datasets and not any(
            dataset.startswith(f"{parent}/") for parent in site.truenas.datasets):
        raise InfraError(f"{dataset!r} is not one of the site's datasets "
                         f"({', '.join(site.truenas.datasets)})")
    return f"{site.truenas.pool}/{dataset}"


def take(client: TrueNASClient, site: Site, dataset: str, name: str, *,
         recursive: bool = False) -> dict:
    """`recursive`: the dataset's descendants too, atomically (the apps dataset's data
    is in one child dataset per app)."""
    return client.call("pool.snapshot.create", {"dataset": _dataset(site, dataset),
                                                "name": name, "recursive": recursive})


def take_named_by(client: TrueNASClient, site: Site, dataset: str, naming_schema: str,
                  recursive: bool = False) -> dict:
    """A snapshot named by `naming_schema` at the node's time (pool.snapshot.create's
    `naming_schema`), as a periodic snapshot task of that schema names its own: what a
    replication bound to that task sends. `recursive`: of every dataset below too, as
    a recursive task takes them."""
    return client.call("pool.snapshot.create", {"dataset": _dataset(site, dataset),
                                                "naming_schema": naming_schema,
                                                "recursive": recursive})


def list_(client: TrueNASClient, site: Site, dataset: str) -> list[dict]:
    return client.call("pool.snapshot.query", [["dataset", "=", _dataset(site, dataset)]])


def rollback(client: TrueNASClient, site: Site, dataset: str, name: str,
             discard_newer: bool = False, *, descendants: bool = False) -> None:
    """Put the dataset back as it was at the snapshot. Snapshots taken after it would
    be destroyed by the rollback, so that needs `discard_newer`. `descendants`: every
    dataset beneath it too (TrueNAS's `recursive_rollback`; each needs a snapshot of
    that name, as a recursive `take` makes)."""
    options = {"recursive": discard_newer, "force": discard_newer}
    if descendants:
        options["recursive_rollback"] = True
    client.call("pool.snapshot.rollback", f"{_dataset(site, dataset)}@{name}", options)


def clone(client: TrueNASClient, site: Site, dataset: str, name: str, new_dataset: str) -> str:
    """Expose the snapshot's data as a new dataset beside the live one."""
    target = f"{site.truenas.pool}/{new_dataset}"
    client.call("pool.snapshot.clone", {"snapshot": f"{_dataset(site, dataset)}@{name}",
                                        "dataset_dst": target})
    return target
