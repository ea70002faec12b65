"""Every failure of `up` and `down` says what the site holds (issue 13).

A fault matrix through the CLI a user runs, against a fake world: each mutating
step of `up` and of `down` gets a persistent 500, a persistent 429 (both set through
the world's admin API, every matching request refused), or a kill (Ctrl-C: a
KeyboardInterrupt raised once that mutating request was answered, as in
tests/integration/test_interrupted_up.py, from then on nothing more is sent). After the failing
command, the report it printed (`--json`) lists exactly what the fake's inventory
holds of the site, and a plain `down` then leaves nothing.

What the assertions do not look at is made quick: the module's world runs its clock
faster than the default (a boot or an image import is seconds of the world's time, not
of the test's), and the client's backoff between retries of a persistent 500 is zero
(each retry is still made and reported, `retrying in 0.0 s after 500`, as a 429 with
`retry-after: 0` already is; the retry policy is tests/infra/test_digitalocean_client.py's).
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

import infra.cli
from fakes.world import World
from infra.cli import app
from infra.digitalocean import MUTATING, DigitalOcean
from infra.target import Target
from steps import inventory
from steps.cli_runner import CliRunner
from steps.fake_admin import FakeAdmin
from steps.sites import set_field, site_data

RUNNER = CliRunner()
UP_STEPS = {
    "image": ("POST", r"/v2/images"),
    "volumes": ("POST", r"/v2/volumes"),
    "droplet": ("POST", r"/v2/droplets"),
    "firewall": ("POST", r"/v2/firewalls"),
    "domain": ("POST", r"/v2/domains"),
    "records": ("POST", r"/v2/domains/[^/]+/records"),
}
DOWN_STEPS = {
    "droplet": ("DELETE", r"/v2/droplets/\d+"),
    "volumes": ("DELETE", r"/v2/volumes/[^/]+"),
    "image": ("DELETE", r"/v2/images/\d+"),
    "firewall": ("DELETE", r"/v2/firewalls/[^/]+"),
    "records": ("DELETE", r"/v2/domains/[^/]+/records/\d+"),
    "domain": ("DELETE", r"/v2/domains/[^/]+"),
    "tags": ("DELETE", r"/v2/tags/[^/]+"),
}
KILL_POINTS = 12   # an up sends at most this many (tests/integration/test_interrupted_up.py)
# Ten times fakes.world.DEFAULT_SPEED: an up waits ~0.1 s instead of ~1 s for its image,
# volumes and droplet; infra/ reads the speed from world.json (timing.time_scale).
SPEED = 5000.0


class KilledAfter(DigitalOcean):
    """Ctrl-C once `after` mutating requests were answered; then nothing is sent."""

    def __init__(self, target: Target, after: int) -> None:
        super().__init__(target)
        self.after, self.done, self.dead = after, 0, False
        self._lock = threading.Lock()

    def _count(self, request) -> None:
        if self.dead:
            raise KeyboardInterrupt("the run is dead: nothing more is sent")
        super()._count(request)

    def _watch_rate_limit(self, response) -> None:
        super()._watch_rate_limit(response)
        if response.http_request.method.upper() not in MUTATING:
            return
        with self._lock:
            self.done += 1
            if self.done == self.after:
                self.dead = True
                raise KeyboardInterrupt


def _toml(data: dict) -> str:
    lines = []
    for table in ("site", "image", "dns", "access", "truenas"):
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in data[table].items()]
    for array in ("volumes", "snapshots"):
        for entry in data.get(array, []):
            lines.append(f"[[{array}]]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


def _site_file(directory: Path, name: str) -> Path:
    data = site_data(name)
    domain = f"{name}.test"
    data = set_field(data, "dns", {"domain": domain, "hostnames": [f"www.{domain}"],
                                   "ttl": 300})
    path = directory / f"{name}.toml"
    path.write_text(_toml(data))
    return path


def _held(target: Target, name: str) -> set[str]:
    """What the fake's inventory holds of the site, its domain included."""
    found = inventory.take(DigitalOcean(target))
    domain = f"{name}.test"
    left = inventory.of_site(found, name, [f"www.{domain}"], domain)
    return set(left) | ({f"domain:{domain}"} if f"domain:{domain}" in found else set())


def _cli(world: World, command: str, site: Path, state: Path):
    return RUNNER.invoke(app, [command, "--site", str(site), "--world", str(world.world_file),
                               "--state-dir", str(state), "--json"],
                         env={"DIGITALOCEAN_TOKEN": None})


def _reported(result) -> set[str]:
    report = json.loads(result.stdout)
    assert report["ok"] is False
    return {f"{item['kind']}:{item['id']}" for item in report["leftovers"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    with World(tmp_path_factory.mktemp("fault-matrix"), speed=SPEED, acme=False) as started:
        yield started


@pytest.fixture(scope="module", autouse=True)
def _retries_without_backoff():
    """The CLI's client with a zero backoff: every retry is made and reported, none waited."""
    real = infra.cli._client

    def client(target: Target, reporter):
        return real(replace(target, timing=replace(target.timing, backoff=0.0)), reporter)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infra.cli, "_client", client)
        yield


@pytest.fixture(scope="module")
def target(world: World) -> Target:
    return Target.from_world_file(world.world_file)


def _admin(world: World) -> FakeAdmin:
    return FakeAdmin.from_world_file(world.world_file)


def _clean(world: World, target: Target, site: Path, state: Path, name: str) -> None:
    _admin(world).clear_faults()
    result = _cli(world, "down", site, state)
    assert result.exit_code == 0, result.output
    assert _held(target, name) == set()


def _fault(world: World, step: tuple[str, str], kind: str) -> None:
    method, path = step
    status = 500 if kind == "500" else 429
    _admin(world).fail_requests(method, path, status, count=1000, retry_after=0
                                if kind == "429" else None)


@pytest.mark.parametrize("kind", ["500", "429"])
@pytest.mark.parametrize("step", sorted(UP_STEPS))
def test_a_failed_up_reports_what_the_site_holds(world, target, tmp_path, step, kind):
    name = f"fm-u{step[:4]}{kind}"
    site, state = _site_file(tmp_path, name), tmp_path / "state"
    _fault(world, UP_STEPS[step], kind)
    try:
        result = _cli(world, "up", site, state)
    finally:
        _admin(world).clear_faults()
    try:
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert f"({kind}" in result.stderr, result.stderr
        assert "retrying in" in result.stderr and f"after {kind}" in result.stderr  # in logs too
        assert _reported(result) == _held(target, name)
        if _held(target, name):
            assert f"truenas-site down --site {site}" in " ".join(result.stderr.split())
    finally:
        _clean(world, target, site, state, name)


@pytest.mark.parametrize("after", range(1, KILL_POINTS + 1))
def test_an_interrupted_up_reports_what_the_site_holds(world, target, tmp_path, monkeypatch,
                                                       after):
    name = f"fm-uk{after}"
    site, state = _site_file(tmp_path, name), tmp_path / "state"
    monkeypatch.setattr(infra.cli, "_client", lambda t, reporter: KilledAfter(t, after))
    result = _cli(world, "up", site, state)
    monkeypatch.undo()
    try:
        if result.exit_code == 0:
            pytest.skip(f"a whole up sends fewer than {after} mutating requests")
        assert result.exit_code == 130, result.output
        assert "up interrupted" in result.stderr
        assert _reported(result) == _held(target, name) != set()
        assert "truenas-site up --site" in " ".join(result.stderr.split())
    finally:
        _clean(world, target, site, state, name)


def _up(world: World, target: Target, tmp_path: Path, name: str) -> tuple[Path, Path]:
    site, state = _site_file(tmp_path, name), tmp_path / "state"
    result = _cli(world, "up", site, state)
    assert result.exit_code == 0, result.output
    return site, state


@pytest.mark.parametrize("kind", ["500", "429"])
@pytest.mark.parametrize("step", sorted(DOWN_STEPS))
def test_a_refused_delete_does_not_stop_down(world, target, tmp_path, step, kind):
    name = f"fm-d{step[:4]}{kind}"
    site, state = _up(world, target, tmp_path, name)
    _fault(world, DOWN_STEPS[step], kind)
    try:
        result = _cli(world, "down", site, state)
    finally:
        _admin(world).clear_faults()
    try:
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert f"({kind}" in result.stderr, result.stderr
        assert "gave up waiting" not in result.stderr
        held = _held(target, name)
        assert _reported(result) == held
        # Only what the fault touched stays: every other resource went.
        kinds = {key.split(":")[0] for key in held}
        assert kinds <= {"droplet": {"droplet"}, "volumes": {"volume"}, "image": {"image"},
                         "firewall": {"firewall"}, "records": {"record", "domain"},
                         "domain": {"domain"}, "tags": set()}[step], held
    finally:
        _clean(world, target, site, state, name)


@pytest.mark.parametrize("after", range(1, 11))
def test_an_interrupted_down_reports_what_the_site_holds(world, target, tmp_path, monkeypatch,
                                                         after):
    name = f"fm-dk{after}"
    site, state = _up(world, target, tmp_path, name)
    monkeypatch.setattr(infra.cli, "_client", lambda t, reporter: KilledAfter(t, after))
    result = _cli(world, "down", site, state)
    monkeypatch.undo()
    try:
        if result.exit_code == 0:
            pytest.skip(f"a whole down sends fewer than {after} mutating requests")
        assert result.exit_code == 130, result.output
        reported, held = _reported(result), _held(target, name)
        # A droplet whose DELETE was answered still GETs until it is gone
        # (reference/digitalocean-api.md §5 Timing): the report, read at once, may list
        # one the inventory, read a moment later, no longer holds. Nothing else differs.
        assert held <= reported, held - reported
        assert all(key.startswith("droplet:") for key in reported - held), reported - held
    finally:
        _clean(world, target, site, state, name)


def test_a_droplet_that_vanishes_while_booting_says_so(world, target, tmp_path):
    name = "fm-vanish"
    site, state = _site_file(tmp_path, name), tmp_path / "state"
    # Every look at the new droplet answers 404, as after a host failure at boot.
    _admin(world).fail_requests("GET", r"/v2/droplets/\d+", 404, count=1000)
    try:
        result = _cli(world, "up", site, state)
    finally:
        _admin(world).clear_faults()
    try:
        assert result.exit_code == 1, result.output
        flat = " ".join(result.stderr.split())
        assert "vanished while booting" in flat, flat
        assert "get droplet failed" not in flat
        assert _reported(result) == _held(target, name)
    finally:
        _clean(world, target, site, state, name)
