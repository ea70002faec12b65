"""Benchmark: what one page of a listing costs as the account grows (issue 14 item 5).

For each listing, the account is filled to 10 and then to 1,000 resources (made through
the fake's own stores, so filling is quick), and `GET <listing>?per_page=20` (the first
page, as a client asks for it) is timed over one keep-alive HTTPS connection. A page
should cost what it returns: the goal is 1,000 within 2x of 10. Each figure is given
over HTTPS and in-process (the page alone; steadier on a busy machine). Prints figures
only; note that at 10 the page holds 10 items, at 1,000 it holds 20.
Run: .venv/bin/python -m bench.bench_pages [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fakes.digitalocean.api import Call, route_table
from fakes.world import World

SIZES = (10, 1000)
DOMAIN = "pages.example.test"


def _droplet(world: World, i: int) -> None:
    world.backend.droplets.create({"name": f"page-{i}", "region": "nyc3",
                                   "size": "s-1vcpu-1gb", "image": "debian-12-x64",
                                   "tags": ["paged"]})


def _volume(world: World, i: int) -> None:
    world.backend.volumes.create({"name": f"page-{i}", "region": "nyc3",
                                  "size_gigabytes": 1, "tags": ["paged"]})


def _record(world: World, i: int) -> None:
    world.backend.domains.create_record(DOMAIN, {"type": "A", "name": f"host-{i}",
                                                 "data": "203.0.113.7", "ttl": 300})


def _tag(world: World, i: int) -> None:
    world.backend.tags.create(f"page-{i}", "https://bench")


def _key(world: World, i: int) -> None:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    world.backend.ssh_keys.create({"name": f"page-{i}", "public_key": public})


LISTINGS: dict[str, tuple[str, Callable[[World, int], None]]] = {
    "droplets": ("/v2/droplets", _droplet),
    "droplets by tag": ("/v2/droplets?tag_name=paged", _droplet),
    "volumes": ("/v2/volumes", _volume),
    "actions": ("/v2/actions", _droplet),
    "domain records": ("/v2/domains/{domain_name}/records", _record),
    "tags": ("/v2/tags", _tag),
    "ssh keys": ("/v2/account/keys", _key),
}
PARAMS = {"domain_name": DOMAIN}


def _fill(world: World, make: Callable[[World, int], None], start: int, end: int) -> None:
    with world.backend.lock:
        for i in range(start, end):
            make(world, i)


def _handler_ms(world: World, template: str, repeat: int) -> float:
    """The same page served in-process through the gate (auth, rate limit, handler):
    what the page itself costs, without TLS and threads; the minimum of `repeat` runs,
    which a busy machine disturbs least."""
    path, _, query = template.partition("?")
    handler = route_table()[path]["GET"]
    concrete = path.format(**PARAMS)
    call = Call("GET", concrete, dict(PARAMS), {**dict(parse_qsl(query)), "per_page": "20"},
                None, f"https://bench{concrete}")
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        reply = world.digitalocean.gate_and_handle(handler, call, f"Bearer {world.token}")
        timings.append(time.perf_counter() - started)
        assert reply.status == 200, reply.body
    return min(timings) * 1000


def _page_ms(session: requests.Session, url: str, verify: str, repeat: int) -> float:
    separator = "&" if "?" in url else "?"
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = session.get(f"{url}{separator}per_page=20", verify=verify)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30, help="timed GETs per figure")
    args = parser.parse_args()
    print(f"GET <listing>?per_page=20: over HTTPS (median of {args.repeat}, one keep-alive "
          "connection) and in-process through the gate (minimum)")
    print(f"{'listing':<16} {'HTTPS 10':>9} {'1,000':>9} {'ratio':>6}   "
          f"{'in-process 10':>13} {'1,000':>8} {'ratio':>6}")
    for label, (path, make) in LISTINGS.items():
        with tempfile.TemporaryDirectory() as scratch, World(Path(scratch), speed=1.0) as world:
            with world.backend.lock:
                world.digitalocean.limiter.configure(per_hour=10**9, per_minute=10**9)
                world.backend.account["droplet_limit"] = 10**6
                world.backend.account["volume_limit"] = 10**6
                world.backend.domains.create({"name": DOMAIN})
            session = requests.Session()
            session.trust_env = False
            session.headers["Authorization"] = f"Bearer {world.token}"
            verify = str(world.ca.ca_path)
            url = world.endpoint + path.format(**PARAMS)
            https, inside, made = [], [], 0
            for size in SIZES:
                _fill(world, make, made, size)
                made = size
                _page_ms(session, url, verify, 3)  # warm
                https.append(_page_ms(session, url, verify, args.repeat))
                inside.append(_handler_ms(world, path, args.repeat))
            session.close()
        print(f"{label:<16} {https[0]:>7.2f}ms {https[1]:>7.2f}ms {https[1] / https[0]:>5.2f}x"
              f"   {inside[0]:>11.3f}ms {inside[1]:>6.3f}ms {inside[1] / inside[0]:>5.2f}x")


if __name__ == "__main__":
    main()
