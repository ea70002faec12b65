"""A listing read once answers what a lookup per name did (issue 14): the A records of
each hostname from one listing of the domain, the site's volumes from one listing of
its region, and the empty tags from one listing of the account's tags, compared with
the per-name requests they replace, against a fake world."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.world import World
from infra import desired
from infra.digitalocean import DigitalOcean
from infra.resources import dns, tags, volume
from infra.site import parse_site
from infra.target import Target
from steps.sites import site_data
from tests.budget import examples

NAMES = ["@", "www", "api", "a.b", "mail"]
_domains = itertools.count(1)


@pytest.fixture(scope="module")
def do(world: World) -> DigitalOcean:
    return DigitalOcean(Target.from_world_file(world.world_file))


records = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["A", "TXT"]),
                             st.integers(1, 250)), max_size=8)


@settings(max_examples=examples(fast=10, deep=60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made=records, asked=st.lists(st.sampled_from(NAMES), unique=True, min_size=1))
def test_a_records_from_one_listing_are_what_a_lookup_per_hostname_answers(
        do: DigitalOcean, made: list[tuple[str, str, int]], asked: list[str]) -> None:
    domain = f"listing{next(_domains)}.test"
    do.call("create domain", do.client.domains.create, {"name": domain})
    try:
        for name, kind, n in made:
            data = f"127.0.0.{n}" if kind == "A" else f"text {n}"
            do.call("create record", do.client.domains.create_record, domain,
                    {"type": kind, "name": name, "data": data, "ttl": 1800})
        site = SimpleNamespace(dns=SimpleNamespace(domain=domain))
        hostnames = [domain if n == "@" else f"{n}.{domain}" for n in asked]
        listed = dns.records_if_domain(do, domain)
        assert listed is not None
        assert dns.a_records(domain, listed, hostnames) == {
            h: dns.find_records(do, site, h) for h in hostnames}   # type: ignore[arg-type]
    finally:
        do.call("delete domain", do.client.domains.delete, domain)
    assert dns.records_if_domain(do, domain) is None


def test_the_sites_volumes_from_one_listing_are_what_a_lookup_per_name_answers(
        do: DigitalOcean) -> None:
    site = parse_site(site_data("vols"))
    tag = desired.site_tag(site)
    first, second = desired.volume_names(site)
    elsewhere = "sfo3" if site.site.region != "sfo3" else "nyc3"
    made = [do.call("create", do.client.volumes.create, body)["volume"] for body in (
        {"name": first, "size_gigabytes": 1, "region": site.site.region, "tags": [tag]},
        {"name": second, "size_gigabytes": 1, "region": elsewhere, "tags": [tag]},
        {"name": "vols-other", "size_gigabytes": 1, "region": site.site.region})]
    try:
        found = volume.find_all(do, site)
        assert found == {n: v for n in (first, second)
                         if (v := volume.find(do, site, n)) is not None}
        assert list(found) == [first]      # the other region's namesake is not the site's
    finally:
        for made_volume in made:
            do.call("delete", do.client.volumes.delete, made_volume["id"])


def test_empty_tags_are_judged_on_one_listing_as_on_a_get_each(do: DigitalOcean) -> None:
    body = {"name": "tagged-volume", "size_gigabytes": 1, "region": "nyc3",
            "tags": ["carried"]}
    made = do.call("create", do.client.volumes.create, body)["volume"]
    for name in ("empty-one", "empty-two"):
        do.call("create tag", do.client.tags.create, {"name": name})
    try:
        asked = ["carried", "empty-one", "never-made", "empty-two"]
        assert tags.destroy_empty(do, asked) == ["empty-one", "empty-two"]
        left = {t["name"] for t in tags.find_all(do)}
        assert "carried" in left and not {"empty-one", "empty-two"} & left
        assert tags.destroy_empty(do, asked) == []
    finally:
        do.call("delete", do.client.volumes.delete, made["id"])
        tags.destroy_if_empty(do, "carried")
