"""The cost guard's arithmetic (infra/cost.py): droplet at its `/v2/sizes` hourly price,
two volumes at $0.10 per GiB-month (672 hours a month), whole hours, at least one."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.cost import (
    CostLimitExceeded,
    billed_hours,
    droplet_hours,
    estimate_from_sizes,
    guard,
)
from infra.errors import SiteFileError
from infra.site import parse_site
from steps.sites import set_field, site_data

BASE = site_data("costly")


def _site(size: str = "s-4vcpu-8gb", volumes: tuple[int, int] = (50, 50), **section):
    data = set_field(BASE, "site.droplet_size", size)
    data = set_field(data, "volumes[0].size_gigabytes", volumes[0])
    data = set_field(data, "volumes[1].size_gigabytes", volumes[1])
    for key, value in section.items():
        data = set_field(data, f"site.{key}", value)
    return parse_site(data)


def _sizes(slug: str, price_hourly: float) -> dict[str, dict]:
    # The fields of a /v2/sizes entry the estimate reads (reference/digitalocean-api.md, sizes row).
    return {slug: {"slug": slug, "memory": 8192, "price_hourly": price_hourly,
                   "price_monthly": round(price_hourly * 672, 2), "regions": ["nyc3"],
                   "available": True}}


def test_a_known_example_adds_up() -> None:
    # s-4vcpu-8gb at $48 a month is $48/672 an hour; 100 GiB at $0.10 a month.
    site = _site()
    estimate = estimate_from_sizes(site, _sizes("s-4vcpu-8gb", 48 / 672), 3)
    assert estimate.billed_hours == 3
    assert estimate.total_usd == pytest.approx(3 * 48 / 672 + 3 * 100 * 0.10 / 672)
    assert [item.what for item in estimate.biggest(1)] == ["droplet s-4vcpu-8gb"]
    assert {item.what for item in estimate.items} == {
        "droplet s-4vcpu-8gb", "volume costly-pool-a", "volume costly-pool-b"}
    assert "custom image storage" in " ".join(estimate.not_counted)


@given(price=st.floats(min_value=0, max_value=10, allow_nan=False),
       volumes=st.tuples(st.integers(1, 16384), st.integers(1, 16384)),
       hours=st.floats(min_value=0.001, max_value=8760, allow_nan=False))
def test_the_estimate_is_droplet_plus_volumes_for_the_billed_hours(price, volumes, hours) -> None:
    estimate = estimate_from_sizes(_site(volumes=volumes), _sizes("s-4vcpu-8gb", price), hours)
    billed = estimate.billed_hours
    assert billed >= 1 and billed >= hours and billed - hours < 1
    expected = billed * (price + sum(volumes) * 0.10 / 672)
    assert estimate.total_usd == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert estimate.to_dict()["total_usd"] == pytest.approx(expected, abs=1e-4)
    assert all(item.usd >= 0 for item in estimate.items)


@given(price=st.floats(min_value=0.001, max_value=10, allow_nan=False),
       hours=st.floats(min_value=0.001, max_value=1000, allow_nan=False),
       more=st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_a_longer_run_never_costs_less(price, hours, more) -> None:
    site, sizes = _site(), _sizes("s-4vcpu-8gb", price)
    shorter = estimate_from_sizes(site, sizes, hours)
    longer = estimate_from_sizes(site, sizes, hours + more)
    assert longer.total_usd >= shorter.total_usd


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_hours_are_billed_whole_and_at_least_one(hours) -> None:
    assert billed_hours(hours) == max(1, math.ceil(hours))


def test_an_unknown_size_is_refused_naming_the_field() -> None:
    with pytest.raises(SiteFileError) as refused:
        estimate_from_sizes(_site(size="s-64vcpu-1tb"), _sizes("s-4vcpu-8gb", 0.07), 3)
    assert refused.value.problems == [
        "site.droplet_size: 's-64vcpu-1tb' is not a size this account offers, so the run's "
        "cost cannot be estimated"]


@given(price=st.floats(min_value=0.001, max_value=5, allow_nan=False),
       limit=st.floats(min_value=0.01, max_value=100, allow_nan=False))
def test_the_guard_refuses_exactly_above_the_limit(price, limit) -> None:
    estimate = estimate_from_sizes(_site(), _sizes("s-4vcpu-8gb", price), 3)
    if estimate.total_usd <= limit:
        guard(estimate, limit)
        return
    with pytest.raises(CostLimitExceeded) as refused:
        guard(estimate, limit)
    message = str(refused.value)
    assert f"${estimate.total_usd:.2f}" in message and f"${limit:.2f}" in message
    assert estimate.biggest(1)[0].what in message and "Nothing was created" in message


def test_no_limit_means_no_refusal() -> None:
    guard(estimate_from_sizes(_site(), _sizes("s-4vcpu-8gb", 1000.0), 3), None)


@pytest.mark.parametrize("field, value, problem", [
    ("max_cost_usd", 0, "site.max_cost_usd: must be a number of US dollars above 0"),
    ("max_cost_usd", -2.5, "site.max_cost_usd: must be a number of US dollars above 0"),
    ("max_cost_usd", "2.50", "site.max_cost_usd: must be a number, not '2.50'"),
    ("max_cost_usd", True, "site.max_cost_usd: must be a number, not True"),
    ("expected_hours", 0, "site.expected_hours: must be the run's expected duration"),
])
def test_the_site_file_limits_are_checked(field, value, problem) -> None:
    with pytest.raises(SiteFileError) as refused:
        _site(**{field: value})
    assert any(p.startswith(problem) for p in refused.value.problems), refused.value.problems


def test_the_site_file_limits_default_to_none_and_three_hours() -> None:
    site = _site()
    assert site.site.max_cost_usd is None and site.site.expected_hours == 3
    assert _site(max_cost_usd=2.5, expected_hours=1.5).site.max_cost_usd == 2.5


@given(seconds=st.integers(min_value=0, max_value=10**8))
def test_droplet_hours_run_from_created_at_to_now(seconds) -> None:
    created = 1_600_000_000  # 2020-09-13T12:26:40Z
    droplet = {"created_at": "2020-09-13T12:26:40Z"}
    assert droplet_hours(droplet, created + seconds) == pytest.approx(seconds / 3600)


def test_droplet_hours_without_a_created_at_are_zero() -> None:
    assert droplet_hours({}, 1e9) == 0.0
    assert droplet_hours({"created_at": "yesterday"}, 1e9) == 0.0
