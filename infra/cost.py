"""The cost guard: what a run of a site is expected to cost, before anything is created,
and what it measurably used (droplet-hours) when it is taken down.

Prices:
- the droplet: its size's `price_hourly` from `/v2/sizes` (reference/digitalocean-api.md, the
  sizes row; the schema's `price_hourly` is "the price of the Droplet size as measured
  hourly", in US dollars). An account's own prices win over any table of ours.
- the two volumes: the API publishes no block storage price, so a constant:
  DigitalOcean's published $0.10 per GiB per month, billed hourly
  (https://docs.digitalocean.com/products/volumes/details/pricing/; not in
  reference/, and not re-checked against a real invoice).
- the custom image: not counted. The reference gives no price for image storage, and
  the image's size is not known before it is imported (DigitalOcean's custom images
  page quotes $0.06 per GB per month: cents for a few hours).
- transfer, snapshots, the domain, the firewall: not counted (snapshots are taken on a
  schedule and are cents; firewalls and DNS are free).

Hours are billed whole, at least one (Droplet pricing page: "billed hourly with a
minimum charge of one hour"); a partial hour is counted as a whole one, which can only
overestimate. A month is 672 hours: hourly billing stops at 28 days' worth
(https://www.digitalocean.com/help/pricing-and-billing/general/), so the hourly share
of a monthly price is price/672 (as fakes/digitalocean/catalog.py derives it too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.errors import InfraError, SiteFileError
from infra.site import Site

HOURS_PER_MONTH = 672
VOLUME_USD_PER_GIB_MONTH = 0.10
NOT_COUNTED = (
    "custom image storage (no price in the reference; its size is known only after import)",
    "outbound transfer, volume snapshots (cents), firewall and DNS (free)",
)


@dataclass(frozen=True)
class CostItem:
    what: str
    usd: float
    detail: str


@dataclass(frozen=True)
class CostEstimate:
    hours: float          # the expected duration asked for
    billed_hours: int     # what DigitalOcean bills for it (whole hours, at least one)
    items: tuple[CostItem, ...]
    not_counted: tuple[str, ...] = NOT_COUNTED

    @property
    def total_usd(self) -> float:
        return sum(item.usd for item in self.items)

    def biggest(self, count: int = 2) -> list[CostItem]:
        return sorted(self.items, key=lambda item: item.usd, reverse=True)[:count]

    def describe(self) -> str:
        return (f"${self.total_usd:.2f} for {self.hours:g} h ("
                + ", ".join(f"{i.what} ${i.usd:.2f}" for i in self.items) + ")")

    def to_dict(self) -> dict:
        return {"total_usd": round(self.total_usd, 4), "hours": self.hours,
                "billed_hours": self.billed_hours,
                "items": [{"what": i.what, "usd": round(i.usd, 4), "detail": i.detail}
                          for i in self.items],
                "not_counted": list(self.not_counted)}


class CostLimitExceeded(InfraError):
    """The run would cost more than the site file allows; nothing was created."""

    def __init__(self, estimate: CostEstimate, limit: float) -> None:
        self.estimate = estimate
        self.limit = limit
        biggest = "; ".join(f"{i.what} ${i.usd:.2f} ({i.detail})" for i in estimate.biggest())
        super().__init__(
            f"the run is estimated at ${estimate.total_usd:.2f} for {estimate.hours:g} h "
            f"(site.expected_hours), above site.max_cost_usd ${limit:.2f}; biggest items: "
            f"{biggest}. Nothing was created: raise site.max_cost_usd, or choose a smaller "
            "site.droplet_size or smaller volumes")


def billed_hours(hours: float) -> int:
    """Whole hours, at least one: DigitalOcean's minimum charge is one hour."""
    return max(1, math.ceil(hours))


def estimate_from_sizes(site: Site, sizes: dict[str, dict], hours: float) -> CostEstimate:
    """The estimate from an already listed `/v2/sizes` (slug -> size). Pure."""
    slug = site.site.droplet_size
    size = sizes.get(slug)
    if size is None or not isinstance(size.get("price_hourly"), int | float):
        raise SiteFileError([f"site.droplet_size: {slug!r} is not a size this account "
                             "offers, so the run's cost cannot be estimated"])
    billed = billed_hours(hours)
    hourly = float(size["price_hourly"])
    items = [CostItem(f"droplet {slug}", hourly * billed, f"{billed} h at ${hourly:.5f}/h")]
    per_gib_hour = VOLUME_USD_PER_GIB_MONTH / HOURS_PER_MONTH
    for name, spec in zip(desired.volume_names(site), site.volumes, strict=True):
        items.append(CostItem(
            f"volume {name}", spec.size_gigabytes * per_gib_hour * billed,
            f"{spec.size_gigabytes} GiB for {billed} h at ${VOLUME_USD_PER_GIB_MONTH:.2f}"
            "/GiB-month"))
    return CostEstimate(hours=hours, billed_hours=billed, items=tuple(items))


def estimate(site: Site, do: DigitalOcean, hours: float) -> CostEstimate:
    """What `hours` of the site cost, at the account's `/v2/sizes` prices (one listing)."""
    sizes = {s["slug"]: s for s in do.list_all("list sizes", do.client.sizes.list, "sizes")}
    return estimate_from_sizes(site, sizes, hours)


def guard(estimate: CostEstimate, limit: float | None) -> None:
    """Refuse (CostLimitExceeded) when the estimate is above the site's limit."""
    if limit is not None and estimate.total_usd > limit:
        raise CostLimitExceeded(estimate, limit)


def droplet_hours(droplet: dict, now: float) -> float:
    """How long `droplet` has existed at `now` (Unix seconds, the target's clock), in
    hours, from its `created_at` (ISO 8601, e.g. 2020-07-21T18:37:44Z). 0 when the
    droplet does not say (a fault, or an older object), rather than failing a teardown."""
    created = droplet.get("created_at")
    if not isinstance(created, str):
        return 0.0
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    # DigitalOcean's timestamps are UTC; one without an offset is read as UTC too.
    started = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return max(0.0, (now - started) / 3600)
