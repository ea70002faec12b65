"""Tags: DigitalOcean creates a tag when a resource first carries it; it is deleted
here once nothing carries it (asked again just before: a run may have used it since).
A tag's `resources.count` is what nothing-carries-it is judged on, from a GET of the tag
or from the listing of every tag: both answer the same tag object, `name` and the
embedded `resources` summary (reference/digitalocean-openapi-subset.json, tags_get and
tags_list)."""

from __future__ import annotations

from collections.abc import Iterable

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


def destroy_empty(do: DigitalOcean, names: Iterable[str]) -> list[str]:
    """Delete each tag of `names` that exists and that no resource carries, judged on
    one listing of the account's tags taken now (not a GET per tag); the names deleted."""
    counts = {tag["name"]: tag["resources"]["count"] for tag in find_all(do)}
    deleted = []
    for name in names:
        if counts.get(name) == 0:
            do.ignore_missing("delete tag", do.client.tags.delete, name)
            deleted.append(name)
    return deleted
