"""An `up` killed at any point leaves nothing `down` cannot take away, and a second
`up` converges.

How it is killed: the DigitalOcean client's own hooks (the ones that already
count requests and watch the rate limit, infra/digitalocean.py) are overridden in
a subclass, so nothing in infra/ changes. Once the Nth mutating request has been
answered by the server, the answer is thrown away and `Interrupted` is raised (a
BaseException, as KeyboardInterrupt is, so no `except Exception` in infra/ can
swallow it); from then on every request of that client raises too, as a dead
process sends nothing more (the image and volume workers of `up` included). The
server did the Nth change but the run never learned of it: the worst moment to
die. N runs over every mutating request of a whole `up` (measured, not assumed);
`up` is well under a second on this module's world (its clock runs at ten times the
default speed: boots and imports are the world's seconds, not the test's), so the full
set is run rather than a sample.

Each site has its own domain, so a domain the killed run created is part of what
must be gone.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from fakes.world import World
from infra.check import check
from infra.digitalocean import MUTATING, DigitalOcean
from infra.down import Teardown
from infra.site import Site, parse_site
from infra.state import StateDir
from infra.sweep import Sweeper
from infra.target import Target
from infra.up import Provisioner
from steps import inventory
from steps.fake_admin import FakeAdmin
from steps.sites import site_data

MAX_POINTS = 12  # parametrised up to here; a test below proves a whole up needs no more
SPEED = 5000.0   # ten times fakes.world.DEFAULT_SPEED; infra/ reads it from world.json


class Interrupted(BaseException):
    """The run was killed (think Ctrl-C or SIGKILL) at a chosen point."""


class KilledAfter(DigitalOcean):
    """A DigitalOcean client whose process dies once `after` mutating requests were done."""

    def __init__(self, target: Target, after: int) -> None:
        super().__init__(target)
        self.after = after
        self.done = 0
        self.dead = False
        self._lock = threading.Lock()

    def _count(self, request) -> None:
        if self.dead:
            raise Interrupted("the run is dead: nothing more is sent")
        super()._count(request)

    def _watch_rate_limit(self, response) -> None:
        super()._watch_rate_limit(response)
        if response.http_request.method.upper() not in MUTATING:
            return
        with self._lock:
            self.done += 1
            if self.done == self.after:
                self.dead = True
                raise Interrupted(f"killed after mutating request {self.after}")


def _site(name: str) -> Site:
    data = site_data(name)
    domain = f"{name}.test"
    data["dns"] = {"domain": domain, "hostnames": [f"www.{domain}", f"ci.{domain}"],
                   "ttl": 300}
    return parse_site(data)


def _left(do: DigitalOcean, site: Site) -> dict[str, dict]:
    """What the account still holds of the site, its domain included."""
    found = inventory.take(do)
    left = inventory.of_site(found, site.name, site.dns.hostnames, site.dns.domain)
    domain = f"domain:{site.dns.domain}"
    return {**left, **({domain: {}} if domain in found else {})}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    with World(tmp_path_factory.mktemp("interrupted-up"), speed=SPEED, acme=False) as started:
        yield started


@pytest.fixture(scope="module")
def target(world) -> Target:
    return Target.from_world_file(world.world_file)


@pytest.fixture(scope="module")
def mutating_requests_of_an_up(target: Target, tmp_path_factory) -> int:
    site = _site("intr-whole")
    state = StateDir(tmp_path_factory.mktemp("intr-whole"))
    report = Provisioner(site, DigitalOcean(target), state).up()
    Teardown(site, DigitalOcean(target), state).down()
    return report.requests_mutating


def _killed_up(target: Target, site: Site, state: StateDir, after: int) -> None:
    with pytest.raises(Interrupted):
        Provisioner(site, KilledAfter(target, after), state).up()


def test_the_points_cover_every_mutating_request_of_an_up(mutating_requests_of_an_up):
    # Intended: the kill points below are 1..MAX_POINTS; an `up` that grows more
    # mutating requests than that would leave its last ones untested.
    assert 1 <= mutating_requests_of_an_up <= MAX_POINTS, (
        f"up sends {mutating_requests_of_an_up} mutating requests; raise MAX_POINTS")


@pytest.mark.parametrize("after", range(1, MAX_POINTS + 1))
def test_down_after_a_killed_up_leaves_nothing(target, tmp_path: Path, after: int,
                                               mutating_requests_of_an_up):
    if after > mutating_requests_of_an_up:
        pytest.skip(f"a whole up sends only {mutating_requests_of_an_up} mutating requests")
    site, state = _site(f"intr-d{after}"), StateDir(tmp_path / "state")
    _killed_up(target, site, state, after)
    assert _left(DigitalOcean(target), site), "the killed run had made something"
    Teardown(site, DigitalOcean(target), state).down()
    assert _left(DigitalOcean(target), site) == {}


@pytest.mark.parametrize("after", range(1, MAX_POINTS + 1))
def test_up_after_a_killed_up_converges(target, tmp_path: Path, after: int,
                                        mutating_requests_of_an_up):
    if after > mutating_requests_of_an_up:
        pytest.skip(f"a whole up sends only {mutating_requests_of_an_up} mutating requests")
    site, state = _site(f"intr-u{after}"), StateDir(tmp_path / "state")
    _killed_up(target, site, state, after)
    try:
        Provisioner(site, DigitalOcean(target), state).up()
        report = check(site, DigitalOcean(target), state)
        assert report.ok, [f for f in report.findings if not f.ok]
        again = DigitalOcean(target)
        Provisioner(site, again, state).up()
        assert again.log.mutating == 0, again.log.mutating_requests()
    finally:
        Teardown(site, DigitalOcean(target), state).down()
    assert _left(DigitalOcean(target), site) == {}


def test_a_sweep_after_a_killed_up_leaves_nothing(target, world, tmp_path: Path,
                                                  mutating_requests_of_an_up):
    """Without the state directory (the crashed machine is gone), the sweeper finds
    the run by its tag alone, and its domain by the domain's marker (infra/ownership.py)."""
    site, state = _site("intr-sweep"), StateDir(tmp_path / "state")
    _killed_up(target, site, state, mutating_requests_of_an_up)
    assert len(_left(DigitalOcean(target), site)) > 1
    FakeAdmin.from_world_file(world.world_file).advance_clock(7 * 3600)
    report = Sweeper(DigitalOcean(target)).sweep(timedelta(hours=6), run_id=state.run_id())
    assert {i.kind for i in report.deleted} >= {"droplet", "volume", "image", "firewall",
                                                "record", "tag", "domain"}
    assert _left(DigitalOcean(target), site) == {}
