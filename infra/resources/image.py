"""The site's TrueNAS image: a custom image imported from the site file's URL,
`<site>-<image name>`, tagged with the site."""

from __future__ import annotations

from infra import desired as names
from infra.change import Change
from infra.digitalocean import DigitalOcean
from infra.errors import CloudError, ConflictError, WaitTimeout
from infra.events import Reporter
from infra.site import Site
from infra.wait import Pending, wait_for

CREATE = "POST /v2/images"


def find(do: DigitalOcean, site: Site) -> dict | None:
    named = [i for i in find_tagged(do, names.site_tag(site))
             if i["name"] == names.image_name(site)]
    return named[0] if named else None


def find_tagged(do: DigitalOcean, tag: str) -> list[dict]:
    return do.list_all("list images", do.client.images.list, "images", private=True,
                       tag_name=tag)


def desired(site: Site, tags: list[str]) -> dict:
    return {"name": names.image_name(site), "url": site.image.url,
            "region": site.site.region, "distribution": site.image.distribution,
            "description": "TrueNAS SCALE for this site", "tags": tags}


def diff(site: Site, image: dict | None) -> list[Change]:
    if image is None:
        return [Change("import_image", names.image_name(site), site.image.url, (CREATE,))]
    if image.get("error_message"):
        raise ConflictError(
            f"image {names.image_name(site)} failed to import: "
            f"{image['error_message']}; delete it (`down`) and check image.url"
        )
    return []


def create(do: DigitalOcean, site: Site, body: dict, reporter: Reporter) -> dict:
    reporter.step(f"import image {body['name']} from {body['url']}")
    return do.create_once(
        f"import image {body['name']}", lambda: do.client.images.create_custom(body),
        lambda: (found := find(do, site)) and {"image": found},
    )["image"]


def wait(do: DigitalOcean, image: dict, reporter: Reporter) -> dict:
    """Until the import is done; a failed import is raised with DigitalOcean's reason."""
    if image["status"] == "available":
        return image

    def imported() -> dict | Pending:
        current = do.call("get image", do.client.images.get, image["id"])["image"]
        if current.get("error_message"):
            raise CloudError(f"import image {image['name']}", None, "import_failed",
                             current["error_message"])
        return current if current["status"] == "available" else Pending(current["status"])

    return wait_for(f"image {image['name']} to import", imported, do.timing,
                    names.IMAGE_IMPORT_SECONDS, reporter=reporter,
                    timeout=lambda limit, _status: WaitTimeout(
                        f"gave up waiting for image {image['name']} to become available "
                        f"after {limit:.1f} s"))


def destroy(do: DigitalOcean, image: dict) -> bool:
    return do.ignore_missing("delete image", do.client.images.delete, image["id"])
