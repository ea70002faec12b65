"""`--target existing` is read-only, proved on the fake (issue 6 §2).

A site is brought up on a fake world (with [tls], admin network 127.0.0.0/24 like
steps/sites.py's door-h); then the whole spec runs against it as a forker would run it,
`pytest features/ --target existing` in a subprocess, configured only through the
environment (README.md, Targets). It must pass, every destructive scenario must be
skipped, and neither fake API may have received one mutating request: DigitalOcean's
from the fake's request journal, TrueNAS's from each node's call journal, classified by
infra's own rules (infra.truenas.calllog). Then `check --existing`, the cron-able CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes.world import World
from infra.cli import app
from infra.digitalocean import MUTATING, DigitalOcean
from infra.errors import TargetError
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import load_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import is_mutating
from infra.up import Provisioner
from steps.cli_runner import CliRunner
from steps.fake_admin import FakeAdmin

REPO = Path(__file__).resolve().parents[2]
SITE_TOML = """\
[site]
name = "forked"
region = "nyc3"
droplet_size = "s-4vcpu-8gb"

[image]
name = "truenas-scale-25-10"
url = "https://images.example.test/truenas-scale-25.10.img.gz"

[[volumes]]
name = "pool-a"
size_gigabytes = 50

[[volumes]]
name = "pool-b"
size_gigabytes = 50

[dns]
domain = "example.test"
hostnames = ["forked.example.test", "ci-forked.example.test"]

[access]
admin_cidrs = ["127.0.0.0/24"]
truenas_admin_port = 8443

[truenas]
username = "truenas_admin"
pool = "tank"
datasets = ["apps", "data"]

[tls]
challenge = "http-01"
"""
# Everything a run could read credentials or a target from: the subprocess gets only ours.
CLEARED = ("SPEC_TARGET", "SPEC_FAKE_WORLD", "FAKE_WORLD", "DIGITALOCEAN_TOKEN",
           "DIGITALOCEAN_API_URL", "DIGITALOCEAN_CA_BUNDLE", "TRUENAS_API_KEY", "ACME_ROOT_CA",
           "ACME_DIRECTORY", "EXISTING_SITE_FILE", "EXISTING_TRUENAS_ADDRESS",
           "EXISTING_PORT_MAP")


@dataclass
class RunningSite:
    world: World
    target: Target
    site_file: Path
    address: str
    env: dict[str, str]      # what a forker exports for `--target existing`


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSite]:
    root = tmp_path_factory.mktemp("existing")
    with World(root / "world") as world:
        if world.acme_unavailable:
            pytest.skip(world.acme_unavailable)
        target = Target.from_world_file(world.world_file)
        site_file = root / "forked.toml"
        site_file.write_text(SITE_TOML)
        site = load_site(site_file)
        do = DigitalOcean(target)
        Provisioner(site, do, StateDir(root / "up-state")).up()
        droplet = find_droplet(do, site)
        assert droplet is not None
        address = public_ipv4(droplet)
        described = json.loads(world.world_file.read_text())
        env = {
            "EXISTING_SITE_FILE": str(site_file),
            "EXISTING_TRUENAS_ADDRESS": address,
            "TRUENAS_API_KEY": described["truenas"]["api_key"],
            "DIGITALOCEAN_TOKEN": described["digitalocean"]["token"],
            "DIGITALOCEAN_API_URL": described["digitalocean"]["endpoint"],
            "DIGITALOCEAN_CA_BUNDLE": described["ca_bundle"],
            "ACME_ROOT_CA": described["acme"]["root_ca"],
            "EXISTING_PORT_MAP": ",".join(
                f"{port}={host_port}" for port, host_port in target.port_map),
        }
        yield RunningSite(world, target, site_file, address, env)


def _admin(running: RunningSite) -> FakeAdmin:
    return FakeAdmin.from_world_file(running.world.world_file)


def _journals(running: RunningSite) -> tuple[list[dict], dict[str, list[str]]]:
    admin = _admin(running)
    return admin.requests(), admin.truenas_calls()


def _forker_env(running: RunningSite, **changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(running.env)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _testcases(junit: Path) -> dict[str, ET.Element]:
    """`features/test_x.py::test_name[params]` -> its <testcase>."""
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        cases[f"{path}::{case.get('name')}"] = case
    return cases


def test_the_whole_spec_in_existing_mode_changes_nothing(running: RunningSite,
                                                         tmp_path: Path) -> None:
    env = _forker_env(running)
    _admin(running).clear_requests()
    _, calls_before = _journals(running)
    junit, destructive_ids = tmp_path / "junit.xml", tmp_path / "destructive.txt"
    # The same run names the scenarios marked destructive (by their markers, not their
    # outcomes): no second collection of the spec in another process.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "features/", "--target", "existing", "-q", "-rs",
         f"--junitxml={junit}", f"--basetemp={tmp_path / 'spec'}",
         "-p", "tests.integration.marked_items"],
        cwd=REPO, env={**env, "SPEC_MARKED_ITEMS_OUT": str(destructive_ids),
                       "SPEC_MARKED_ITEMS_MARKER": "destructive"},
        capture_output=True, text=True, timeout=900)
    requests, calls_after = _journals(running)

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    cases = _testcases(junit)
    ran = {name for name, case in cases.items() if case.find("skipped") is None}
    assert any("test_an_existing_site_passes_its_checks" in name for name in ran), sorted(ran)
    destructive = set(destructive_ids.read_text().split())
    assert destructive, "no scenario is tagged @destructive: nothing was proved"
    assert not destructive & ran, f"destructive scenarios ran: {sorted(destructive & ran)}"
    reasons = {cases[name].find("skipped").get("message", "") for name in destructive
               if name in cases}
    assert any("read-only" in reason for reason in reasons), reasons

    # The proof: the suite looked (so zero is not vacuous), and changed nothing.
    assert any(r["path"].startswith("/v2/") for r in requests), "DigitalOcean was not read"
    mutating = [(r["method"], r["path"]) for r in requests if r["method"] in MUTATING]
    assert mutating == [], f"scenarios that ran: {sorted(ran)}"
    node_calls = calls_after.get(running.address, [])[len(calls_before.get(running.address,
                                                                            [])):]
    assert "pool.query" in node_calls, f"the node was not looked at: {node_calls}"
    assert [m for m in node_calls if is_mutating(m)] == [], f"scenarios that ran: {sorted(ran)}"
    other_nodes = {a: c for a, c in calls_after.items() if a != running.address}
    assert other_nodes == {a: calls_before.get(a, []) for a in other_nodes}


def _cli_check(running: RunningSite, tmp_path: Path, **changes: str | None):
    env = _forker_env(running, COLUMNS="200", **changes)
    # CliRunner sets the variables it is given; the ones to remove are given as None.
    env.update({key: None for key in CLEARED if key not in env})
    return CliRunner().invoke(app, ["check", "--existing", "--site", str(running.site_file),
                                    "--state-dir", str(tmp_path / "state")], env=env)


def test_check_existing_without_a_token_passes_and_skips_the_cloud(running: RunningSite,
                                                                   tmp_path: Path) -> None:
    _admin(running).clear_requests()
    result = _cli_check(running, tmp_path, DIGITALOCEAN_TOKEN=None)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "DIGITALOCEAN_TOKEN" in result.output
    assert "TrueNAS answers over WSS" in result.output
    assert "certificate for forked.example.test on 443" in result.output
    assert "FAIL" not in result.output
    assert _admin(running).requests() == [], "no token, yet DigitalOcean was called"


def test_check_existing_with_a_wrong_api_key_fails_with_exit_1(running: RunningSite,
                                                               tmp_path: Path) -> None:
    wrong = "9-notthekeyofthisnode0123456789abcdef"
    result = _cli_check(running, tmp_path, TRUENAS_API_KEY=wrong)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "TrueNAS answers over WSS" in result.output
    assert "pass" in result.output            # the cloud rows still pass: a table, not a crash
    assert wrong not in result.output


def test_check_existing_names_what_is_missing(running: RunningSite, tmp_path: Path) -> None:
    result = _cli_check(running, tmp_path, EXISTING_TRUENAS_ADDRESS=None, TRUENAS_API_KEY=None)
    assert result.exit_code == 2
    assert "EXISTING_TRUENAS_ADDRESS" in result.output and "TRUENAS_API_KEY" in result.output
    assert "Traceback" not in result.output


# --- the target description, without a world ----------------------------------------

def test_existing_from_env_refuses_what_is_missing_by_name(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as refused:
        Target.existing_from_env({"TRUENAS_API_KEY": "1-secretvalue"})
    message = str(refused.value)
    assert "EXISTING_SITE_FILE" in message and "EXISTING_TRUENAS_ADDRESS" in message
    assert "TRUENAS_API_KEY (" not in message         # it was given
    assert "1-secretvalue" not in message


def test_existing_from_env_takes_an_optional_token_and_port_map(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE_TOML)
    env = {"EXISTING_SITE_FILE": str(site), "EXISTING_TRUENAS_ADDRESS": "203.0.113.7",
           "TRUENAS_API_KEY": "1-secretvalue", "EXISTING_PORT_MAP": "443=8443, 80=8080"}
    target = Target.existing_from_env(env)
    assert target.read_only and target.do_token is None
    assert target.site_address == "203.0.113.7" and target.site_file == str(site)
    assert target.node_port(443) == 8443 and target.node_port(8443) == 8443
    assert "1-secretvalue" not in repr(target)
    with pytest.raises(TargetError, match="EXISTING_PORT_MAP"):
        Target.existing_from_env({**env, "EXISTING_PORT_MAP": "https"})


def test_an_existing_target_refuses_a_mutating_request_before_sending_it(
        tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE_TOML)
    # Nothing listens on port 9 (discard): a request that got out would fail otherwise.
    target = Target.existing_from_env({
        "EXISTING_SITE_FILE": str(site), "EXISTING_TRUENAS_ADDRESS": "127.0.0.1",
        "TRUENAS_API_KEY": "1-secretvalue", "DIGITALOCEAN_TOKEN": "dop_v1_secretvalue",
        "DIGITALOCEAN_API_URL": "https://127.0.0.1:9"})
    do = DigitalOcean(target)
    with pytest.raises(TargetError, match="read-only"):
        do.call("create a volume", do.client.volumes.create,
                {"name": "x", "size_gigabytes": 1, "region": "nyc3"}, retry=False)
    assert do.log.total == 0
