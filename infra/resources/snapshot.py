"""Volume snapshots (DigitalOcean): off-node copies of a pool volume, tagged with the
site (what `down` keys on) and the run (what a sweeper keys on)."""

from __future__ import annotations

from infra.digitalocean import DigitalOcean
from infra.events import Reporter


def find_all(do: DigitalOcean) -> list[dict]:
    return do.list_all("list snapshots", do.client.snapshots.list, "snapshots",
                       resource_type="volume")


def create(do: DigitalOcean, volume: dict, name: str, tags: list[str],
           reporter: Reporter) -> dict:
    reporter.step(f"snapshot volume {volume['name']} as {name}")
    return do.call(f"snapshot volume {volume['name']}", do.client.volume_snapshots.create,
                   volume["id"], {"name": name, "tags": tags}, retry=False)["snapshot"]


def destroy(do: DigitalOcean, snapshot: dict) -> bool:
    return do.ignore_missing("delete snapshot", do.client.snapshots.delete, snapshot["id"])
