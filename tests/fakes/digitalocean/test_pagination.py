"""The fake pages collections the way DigitalOcean does (reference/digitalocean-api.md §3).

`per_page` defaults to 20 and is at most 200; `links.pages` holds only the keys that
make sense (first, prev, next, last) as absolute URLs, and there is no `links.pages`
when everything fits on one page; `meta.total` is always there. A client that walks
`links.pages.next` from page 1 sees every item exactly once.
"""

from __future__ import annotations

import itertools
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.digitalocean.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE, paginate
from fakes.world import World
from tests.budget import examples

BASE_URL = "https://api.example.test/v2/tags"


def walk(items: list, first_query: dict[str, str]) -> list[tuple[list, dict, dict]]:
    """Every page a client sees following `links.pages.next` from page 1."""
    pages, query = [], dict(first_query)
    while True:
        chunk, links, meta = paginate(items, query, BASE_URL)
        pages.append((chunk, links, meta))
        next_url = links.get("pages", {}).get("next")
        if next_url is None:
            return pages
        assert next_url.startswith(BASE_URL + "?"), "links are absolute URLs"
        query = dict(parse_qsl(urlsplit(next_url).query))
        assert len(pages) <= len(items) + 1, "the next links never end"


def assert_links_make_sense(pages: list[tuple[list, dict, dict]]) -> None:
    last = len(pages)
    for number, (_chunk, links, _meta) in enumerate(pages, start=1):
        keys = set(links.get("pages", {}))
        if number == 1:
            assert not keys & {"first", "prev"}, f"page 1 has {keys}"
        else:
            assert {"first", "prev"} <= keys, f"page {number} lacks first/prev: {keys}"
        if number == last:
            assert not keys & {"next", "last"}, f"last page {number} has {keys}"
        else:
            assert {"next", "last"} <= keys, f"page {number} lacks next/last: {keys}"


@settings(max_examples=examples(fast=75, deep=300), deadline=None)
@given(count=st.integers(min_value=0, max_value=450),
       per_page=st.integers(min_value=1, max_value=MAX_PER_PAGE))
def test_walking_next_links_yields_every_item_exactly_once(count: int, per_page: int):
    items = [f"item-{i}" for i in range(count)]
    pages = walk(items, {"per_page": str(per_page)})

    assert [item for chunk, _, _ in pages for item in chunk] == items
    assert all(meta == {"total": count} for _, _, meta in pages)
    assert all(len(chunk) == per_page for chunk, _, _ in pages[:-1])
    assert len(pages) == max(1, -(-count // per_page))
    assert_links_make_sense(pages)
    if count <= per_page:
        assert not pages[0][1].get("pages"), "no links when everything fits on one page"


@settings(max_examples=examples(fast=25, deep=100), deadline=None)
@given(count=st.integers(min_value=0, max_value=450),
       per_page=st.integers(min_value=MAX_PER_PAGE + 1, max_value=10_000))
def test_per_page_above_200_is_clamped_to_200(count: int, per_page: int):
    pages = walk(list(range(count)), {"per_page": str(per_page)})
    assert [len(chunk) for chunk, _, _ in pages[:-1]] == [MAX_PER_PAGE] * (len(pages) - 1)
    assert sum(len(chunk) for chunk, _, _ in pages) == count


@settings(max_examples=examples(fast=15, deep=50), deadline=None)
@given(count=st.integers(min_value=0, max_value=120))
def test_per_page_defaults_to_20(count: int):
    pages = walk(list(range(count)), {})
    assert len(pages[0][0]) == min(count, DEFAULT_PER_PAGE)
    assert sum(len(chunk) for chunk, _, _ in pages) == count


def test_the_last_link_points_at_the_last_page_and_keeps_filters():
    chunk, links, _ = paginate(list(range(45)), {"per_page": "10", "tag_name": "web"},
                               BASE_URL)
    assert chunk == list(range(10))
    last = dict(parse_qsl(urlsplit(links["pages"]["last"]).query))
    assert last == {"page": "5", "per_page": "10", "tag_name": "web"}


# --- the same over real HTTPS against a running fake ---------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    # no certificate is asked for: no ACME server (pebble takes seconds to start)
    with World(tmp_path_factory.mktemp("pagination-world"), acme=False) as started:
        yield started


@pytest.fixture(scope="module")
def api(world) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
    session.verify = str(world.ca.ca_path)
    session.headers["Authorization"] = f"Bearer {world.token}"
    # The examples below make hundreds of calls in a few wall seconds, which is hours
    # of virtual time: lift the per-token limits so they never hit a 429.
    admin = session.post(f"{world.endpoint}/_admin/ratelimit",
                         headers={"X-Admin-Secret": world.admin_secret},
                         json={"per_hour": 10**9, "per_minute": 10**9})
    admin.raise_for_status()
    yield session
    session.close()


_domains = itertools.count(1)


def follow(api: requests.Session, url: str) -> list[dict]:
    """GET `url`, then every `links.pages.next` URL exactly as given."""
    bodies = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.text
        bodies.append(response.json())
        url = bodies[-1].get("links", {}).get("pages", {}).get("next")
        assert len(bodies) < 1000, "the next links never end"
    return bodies


@settings(max_examples=examples(fast=4, deep=12), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(count=st.integers(min_value=0, max_value=45), per_page=st.integers(1, 25))
def test_a_client_following_next_links_over_https_sees_each_record_once(
        world, api, count: int, per_page: int):
    domain = f"page-{next(_domains)}.example.org"
    assert api.post(f"{world.endpoint}/v2/domains", json={"name": domain}).status_code == 201
    created = []
    for i in range(count):
        response = api.post(f"{world.endpoint}/v2/domains/{domain}/records",
                            json={"type": "A", "name": f"host-{i}", "data": "192.0.2.1"})
        assert response.status_code == 201, response.text
        created.append(response.json()["domain_record"]["id"])

    # Filter to the A records (a new domain also has SOA and NS records): the filter
    # must survive into every next link.
    first = f"{world.endpoint}/v2/domains/{domain}/records?type=A&per_page={per_page}"
    bodies = follow(api, first)

    seen = [record["id"] for body in bodies for record in body["domain_records"]]
    assert sorted(seen) == sorted(created) and len(seen) == len(set(seen))
    assert all(body["meta"]["total"] == count for body in bodies)
    pages = [([], body.get("links", {}), {}) for body in bodies]
    assert_links_make_sense(pages)
    for body in bodies[1:]:
        assert all(record["type"] == "A" for record in body["domain_records"])
    for url in (u for body in bodies for u in body.get("links", {}).get("pages", {}).values()):
        assert url.startswith(f"{world.endpoint}/v2/domains/{domain}/records?")


def test_per_page_above_200_is_clamped_to_200_over_https(world, api):
    for i in range(MAX_PER_PAGE + 1):
        assert api.post(f"{world.endpoint}/v2/tags", json={"name": f"clamp-{i}"}).ok
    total = api.get(f"{world.endpoint}/v2/tags").json()["meta"]["total"]

    first = api.get(f"{world.endpoint}/v2/tags", params={"per_page": 1000}).json()
    assert len(first["tags"]) == MAX_PER_PAGE
    assert first["meta"]["total"] == total > MAX_PER_PAGE
    next_query = dict(parse_qsl(urlsplit(first["links"]["pages"]["next"]).query))
    assert next_query["per_page"] == str(MAX_PER_PAGE)


@settings(max_examples=examples(fast=15, deep=50), deadline=None)
@given(total=st.integers(0, 450), per_page=st.integers(1, 250), page=st.integers(1, 30))
def test_a_page_serialises_only_the_items_it_returns(total, per_page, page):
    # A page costs what it returns (issue 14 item 5): the serialiser sees only its items.
    from fakes.digitalocean.api import Call

    seen: list[int] = []

    def serialize(item: int) -> dict:
        seen.append(item)
        return {"id": item}

    call = Call("GET", "/v2/tags", {}, {"per_page": str(per_page), "page": str(page)}, None,
                BASE_URL)
    body = call.page("tags", list(range(total)), serialize)
    assert [t["id"] for t in body["tags"]] == seen
    assert len(seen) <= min(per_page, MAX_PER_PAGE)
    assert body["meta"]["total"] == total
