"""Tags: DigitalOcean creates a tag when a resource first carries it; it is deleted
here once nothing carries it (asked again just before: a run may have used it since)."""

from __future__ import annotations

from infra.digitalocean import DigitalOcean
from infra.errors import NotFound


def find_all(do: DigitalOcean) -> list[dict]:
    return do.list_all("list tags", do.client.tags.list, "tags")


def destroy_if_empty(do: DigitalOcean, name: str) -> bool:
    """Delete the tag when no resource carries it; True when it was deleted."""
    try:
        tag = do.call("get tag", do.client.tags.get, name)["tag"]
    except NotFound:
        return False
    if tag["resources"]["count"] != 0:
        return False
    do.ignore_missing("delete tag", do.client.tags.delete, name)
    return True
