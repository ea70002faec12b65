"""First boot without a baked-in key (issue 12 §2): a node from a fresh image knows only
truenas_admin's password; `up` uses it once, over the pinned WSS and behind the
firewall, to accept the EULA and create the site's API key, which it keeps 0600 in the
state directory and uses from then on. A lost key file is recovered the same way (the
old key deleted). The password appears in no log, report or exception.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import stat

import pytest

from fakes.world import World
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.errors import InfraError, SiteFileError
from infra.site import parse_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.credentials import KEY_FILE, PASSWORD_ENV, key_name
from infra.up import Provisioner
from steps.sites import site_data


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # no certificate is asked for: no ACME server (pebble takes seconds to start)
    with World(tmp_path_factory.mktemp("first-boot"), acme=False) as started:
        started.truenas.fresh_images = True     # the password, no API key
        yield started


@pytest.fixture(scope="module")
def target(world) -> Target:
    # world.json publishes the password for tools; the target must not know a key.
    return dataclasses.replace(Target.from_world_file(world.world_file), truenas_api_key=None)


@pytest.fixture(scope="module")
def site():
    return parse_site(site_data("fresh"))


class Watch:
    """Counts password logins on the site's node, and what the firewall was then."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.password_logins = 0
        self.firewalled_at_login: list[bool] = []
        self._watched: set[int] = set()

    def attach(self) -> None:
        for entry in self.world.truenas.nodes.values():
            if entry.droplet_id in self._watched:
                continue
            self._watched.add(entry.droplet_id)
            node, server = entry.node, entry.server
            real = node.password_valid

            def counted(username, password, real=real, server=server):
                self.password_logins += 1
                self.firewalled_at_login.append(server._policy is not None)
                return real(username, password)

            node.password_valid = counted


@pytest.fixture(scope="module")
def brought_up(world, target, site, tmp_path_factory):
    """Two `up`s from a fresh image, the password in the environment for both."""
    state = StateDir(tmp_path_factory.mktemp("state"))
    watch = Watch(world)
    password = world.truenas.admin_password
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSWORD_ENV, password)
        patch.delenv("TRUENAS_API_KEY", raising=False)
        # The node boots during the first up: watch it from its first login on.
        world.backend.droplet_active_hooks.append(lambda _droplet: watch.attach())
        first = Provisioner(site, DigitalOcean(target), state).up()
        after_first = watch.password_logins
        second = Provisioner(site, DigitalOcean(target), state).up()
    yield {"state": state, "watch": watch, "first": first, "second": second,
           "after_first": after_first, "password": password}
    Teardown(site, DigitalOcean(target), state).down()


def _node(world):
    [entry] = world.truenas.nodes.values()
    return entry.node


def test_the_first_up_logs_in_with_the_password_once_and_keeps_a_0600_key(world, brought_up):
    state, watch = brought_up["state"], brought_up["watch"]
    key_file = state.path / KEY_FILE
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    node = _node(world)
    assert node.api_keys == {key: "truenas_admin"}      # the only key: the site's own
    [entry] = node.boot_state["api_keys"].values()
    assert entry["name"] == key_name("fresh") and not entry["revoked"]
    assert node.boot_state["eula_accepted"] is True
    assert brought_up["after_first"] == 1
    assert watch.firewalled_at_login == [True]           # the firewall came first
    assert "pool.create" in node.calls or "pool.import_pool" in node.calls


def test_a_second_up_sends_no_password_and_makes_no_key(world, brought_up):
    assert brought_up["watch"].password_logins == brought_up["after_first"]
    assert len(_node(world).boot_state["api_keys"]) == 1
    assert brought_up["second"].requests_mutating == 0


def test_a_lost_key_file_is_replaced_and_the_old_key_deleted(world, target, site, brought_up,
                                                             monkeypatch):
    state = brought_up["state"]
    old = (state.path / KEY_FILE).read_text().strip()
    (state.path / KEY_FILE).unlink()
    monkeypatch.delenv("TRUENAS_API_KEY", raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(SiteFileError, match=PASSWORD_ENV):
        Provisioner(site, DigitalOcean(target), state).up()
    monkeypatch.setenv(PASSWORD_ENV, brought_up["password"])
    Provisioner(site, DigitalOcean(target), state).up()
    new = (state.path / KEY_FILE).read_text().strip()
    node = _node(world)
    assert new != old and node.api_keys == {new: "truenas_admin"}
    assert [e["name"] for e in node.boot_state["api_keys"].values()] == [key_name("fresh")]


def test_a_wrong_password_is_refused_without_showing_it(world, target, site, brought_up,
                                                        monkeypatch, tmp_path, caplog):
    wrong = "not-the-password-" + "x" * 12
    monkeypatch.delenv("TRUENAS_API_KEY", raising=False)
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InfraError) as refused:
        Provisioner(site, DigitalOcean(target), StateDir(tmp_path / "elsewhere")).up()
    assert "password" in str(refused.value)
    for text in (str(refused.value), repr(refused.value), caplog.text):
        assert wrong not in text and brought_up["password"] not in text


def test_the_password_is_in_no_report_or_log(brought_up, caplog):
    password = brought_up["password"]
    for report in (brought_up["first"], brought_up["second"]):
        assert password not in json.dumps(report.to_dict(), default=str)
    assert password not in caplog.text
    for path in brought_up["state"].path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
