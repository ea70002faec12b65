"""Public base images and custom images imported from a URL.

Facts followed (reference/digitalocean-api.md §2, §5): `POST /v2/images` needs name, url and a
region from a fixed enum; the new image is `NEW`, then `pending`, then
`available` in that region, or carries an `error_message`. Accepted formats: raw
.img, qcow2, vhdx, vdi, vmdk, optionally .gz or .bz2, never .xz. What `status` a
failed import shows on the real API is not documented; this fake keeps `NEW` and
sets `error_message`, so clients must treat a non-empty error_message as failure.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from fakes.clock import iso
from fakes.digitalocean import catalog
from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models import validation as v

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend

IMPORT_QUEUE_SECONDS = 30.0     # NEW -> pending
IMPORT_SECONDS = 240.0          # pending -> available: "a custom image imports in minutes"
IMAGE_FORMAT = re.compile(r"\.(img|raw|qcow2|vhdx|vdi|vmdk)(\.(gz|bz2))?$", re.IGNORECASE)


@dataclass
class Image:
    id: int
    name: str
    type: str
    distribution: str
    slug: str | None
    public: bool
    regions: list[str]
    created_at: float
    description: str
    tags: list[str]
    status: str = "available"
    error_message: str = ""
    min_disk_size: int | None = 20
    size_gigabytes: float | None = 2.36
    url: str | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "distribution": self.distribution,
            "slug": self.slug,
            "public": self.public,
            "regions": list(self.regions),
            "created_at": iso(self.created_at),
            "min_disk_size": self.min_disk_size,
            "size_gigabytes": self.size_gigabytes,
            "description": self.description,
            "tags": list(self.tags),
            "status": self.status,
            "error_message": self.error_message,
        }


class ImageStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self._ids = itertools.count(170_000_001)
        self.images: dict[int, Image] = {}
        available = sorted(s for s, r in catalog.REGIONS.items() if r["available"])
        for image_id, slug, name, distribution in catalog.BASE_IMAGES:
            self.images[image_id] = Image(
                id=image_id, name=name, type="base", distribution=distribution, slug=slug,
                public=True, regions=available, created_at=backend.clock.now() - 86400 * 90,
                description="", tags=[], min_disk_size=7, size_gigabytes=2.1,
            )

    def all(self) -> list[Image]:
        return list(self.images.values())

    def private(self) -> list[Image]:
        return [i for i in self.images.values() if not i.public]

    def get(self, image_id: int | str) -> Image:
        if isinstance(image_id, str) and v.numeric_id(image_id) is None:
            for image in self.images.values():
                if image.slug == image_id:
                    return image
            raise not_found()
        image = self.images.get(int(image_id))
        if image is None:
            raise not_found()
        return image

    def list(self, type_: str | None = None, private: bool | None = None,
             tag_name: str | None = None) -> list[Image]:
        found = self.all()
        if type_ == "distribution":
            found = [i for i in found if i.public and i.type == "base"]
        elif type_ == "application":
            found = []  # no marketplace images in the fake account
        if private:
            found = [i for i in found if not i.public]
        if tag_name:
            found = [i for i in found if tag_name in i.tags]
        return found

    def resolve_for_droplet(self, ref: int | str | None, region: str) -> Image:
        if ref is None or ref == "":
            raise unprocessable("image is required")
        try:
            image = self.get(ref)
        except Exception:
            raise unprocessable(f"You specified an invalid image for Droplet creation: {ref}") \
                from None
        if image.status != "available" or region not in image.regions:
            raise unprocessable(
                f"Image {ref} is not available in region {region} (status {image.status})"
            )
        return image

    def create_custom(self, body: dict) -> Image:
        body = v.as_object(body)
        v.require(body, "name", "url", "region")
        region = v.string(body, "region")
        if region not in catalog.IMAGE_IMPORT_REGIONS or region not in catalog.REGIONS:
            raise unprocessable(f"region {region!r} is not a valid region for custom images")
        distribution = v.string(body, "distribution") or "Unknown"
        if distribution not in catalog.DISTRIBUTIONS:
            distribution = "Unknown"  # "accepted but ignored" (distribution.yml)
        url = v.string(body, "url")
        tags = v.tag_names(body)
        self.backend.tags.ensure(tags)
        image = Image(
            id=next(self._ids), name=v.string(body, "name"), type="custom",
            distribution=distribution, slug=None, public=False, regions=[],
            created_at=self.backend.clock.now(), description=v.string(body, "description") or "",
            tags=tags, status="NEW", min_disk_size=None, size_gigabytes=None, url=url,
        )
        self.images[image.id] = image
        problem = self._url_problem(url)
        if self.backend.actions._take_errored("image_import"):
            problem = "The image could not be imported: the download failed"
        clock = self.backend.clock

        def start_import() -> None:
            if image.id in self.images:
                image.status = "pending"
                clock.call_later(IMPORT_SECONDS, finish_import)

        def finish_import() -> None:
            if image.id not in self.images:
                return
            if problem:
                image.status = "NEW"
                image.error_message = problem
                return
            image.status = "available"
            image.regions = [region]
            image.min_disk_size = 15
            image.size_gigabytes = 2.36

        clock.call_later(IMPORT_QUEUE_SECONDS, start_import)
        return image

    @staticmethod
    def _url_problem(url: str) -> str:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return "The image URL must be an http or https URL"
        if parsed.hostname and parsed.hostname.endswith(".invalid"):
            return "The image could not be downloaded: the host could not be resolved"
        if not IMAGE_FORMAT.search(parsed.path):
            return ("Unsupported image format: use raw .img, qcow2, vhdx, vdi or vmdk, "
                    "optionally compressed with gzip or bzip2")
        return ""

    def update(self, image_id: int, body: dict) -> Image:
        image = self.get(image_id)
        if image.public:
            raise not_found()
        body = v.as_object(body)
        if "name" in body:
            image.name = v.string(body, "name") or image.name
        if "description" in body:
            image.description = v.string(body, "description") or ""
        if "distribution" in body:
            distribution = v.string(body, "distribution")
            image.distribution = distribution if distribution in catalog.DISTRIBUTIONS \
                else "Unknown"
        return image

    def delete(self, image_id: int) -> None:
        image = self.get(image_id)
        if image.public:
            raise not_found()
        del self.images[image.id]
