"""What must hold before `up` sends its first mutating request: the checks a site
file cannot settle alone. `plan` and `up` run the same `preflight`.

Read-only (GETs, and a HEAD of the image URL): the TrueNAS API key is at hand (key
file or environment); the region exists and takes new resources (/v2/regions); the
droplet size exists, has TrueNAS's memory and is sold in the region (/v2/sizes,
plan.check_size); the image URL answers HEAD, since DigitalOcean fetches it and
fails the import when the host refuses HEAD (reference/digitalocean-api.md §5 Custom
images). A fake world's image URLs name hosts that do not exist, so the HEAD goes
only to a real target's URLs (traffic never leaves loopback otherwise). Every problem
is one `SiteFileError` line naming its field (exit 2), all of them at once.
"""

from __future__ import annotations

from pathlib import Path

import requests

from infra.digitalocean import DigitalOcean
from infra.errors import SiteFileError
from infra.node_credentials import check_node_credentials
from infra.plan import check_size
from infra.site import Site

HEAD_TIMEOUT_SECONDS = 20.0


def _problems(error: SiteFileError) -> list[str]:
    return list(error.problems)


def image_url_problem(url: str) -> str | None:
    """Why DigitalOcean could not fetch `url`, as a HEAD tells it, or None."""
    try:
        response = requests.head(url, allow_redirects=True, timeout=HEAD_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        return f"image.url: {url} does not answer ({type(exc).__name__}); DigitalOcean " \
               "fetches the image from there"
    if response.status_code >= 400:
        return (f"image.url: {url} answers HEAD with {response.status_code}; DigitalOcean "
                "needs it to answer HEAD and GET with the image")
    return None


def preflight(site: Site, do: DigitalOcean, sizes: dict[str, dict] | None = None,
              state_path: Path | None = None) -> None:
    """Raise SiteFileError with every problem found; `sizes` if already listed;
    `state_path`: the state directory, which may hold the key a first `up` made."""
    problems: list[str] = []
    try:
        check_node_credentials(site, do.target, state_path)
    except SiteFileError as error:
        problems += _problems(error)
    regions = {r["slug"]: r for r in do.list_all("list regions", do.client.regions.list,
                                                 "regions")}
    region = regions.get(site.site.region)
    if region is None:
        problems.append(f"site.region: {site.site.region!r} is not a region this account "
                        "offers")
    elif not region.get("available", True):
        problems.append(f"site.region: {site.site.region} takes no new resources now; "
                        "pick another region")
    if sizes is None:
        sizes = {s["slug"]: s for s in do.list_all("list sizes", do.client.sizes.list,
                                                   "sizes")}
    try:
        check_size(site, sizes)
    except SiteFileError as error:
        problems += _problems(error)
    if do.target.kind == "real":
        problem = image_url_problem(site.image.url)
        if problem:
            problems.append(problem)
    if problems:
        raise SiteFileError(problems)
