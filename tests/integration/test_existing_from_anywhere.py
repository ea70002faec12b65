"""Checking a running site from anywhere (issue 13): a healthy fake site running uro
(with its database, CockroachDB) and GoCD is checked with `check --existing` and
`pytest features/ --target existing` from a fresh directory, with no state directory
of `up`'s at hand. Both pass, write nothing locally (no state directory, no pins, no
generated secrets) and send no mutating request to either API. Chart secrets `up`
generated are not made up again: whether an app runs the site's current chart is
judged only with `--state-dir` naming the directory `up` used, which is then read
and left as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes.world import World
from infra.cli import app
from infra.digitalocean import MUTATING, DigitalOcean
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import load_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import is_mutating
from infra.up import Provisioner
from steps.cli_runner import CliRunner
from steps.fake_admin import FakeAdmin
from steps.sites import URO_IMAGE

REPO = Path(__file__).resolve().parents[2]
SITE_TOML = f"""\
[site]
name = "anywhere"
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
domain = "anywhere.test"
hostnames = ["www.anywhere.test", "ci.anywhere.test"]

[access]
admin_cidrs = ["127.0.0.0/24"]

[tls]
challenge = "http-01"

[apps.cockroachdb]

[apps.gocd]

[apps.uro]
image = "{URO_IMAGE}"
"""
CLEARED = ("SPEC_TARGET", "SPEC_FAKE_WORLD", "FAKE_WORLD", "DIGITALOCEAN_TOKEN",
           "DIGITALOCEAN_API_URL", "DIGITALOCEAN_CA_BUNDLE", "TRUENAS_API_KEY", "ACME_ROOT_CA",
           "ACME_DIRECTORY", "EXISTING_SITE_FILE", "EXISTING_TRUENAS_ADDRESS",
           "EXISTING_PORT_MAP", "SPEC_STATE_DIR")


@dataclass
class Running:
    target: Target
    admin: FakeAdmin
    site_file: Path
    up_state: Path
    address: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("anywhere")
    with World(root / "world") as world:
        if world.acme_unavailable:
            pytest.skip(world.acme_unavailable)
        target = Target.from_world_file(world.world_file)
        site_file = root / "site" / "anywhere.toml"
        site_file.parent.mkdir()
        site_file.write_text(SITE_TOML)
        site = load_site(site_file)
        do = DigitalOcean(target)
        Provisioner(site, do, StateDir(root / "up-state")).up()
        address = public_ipv4(find_droplet(do, site))
        described = json.loads(world.world_file.read_text())
        env = {
            "EXISTING_SITE_FILE": str(site_file),
            "EXISTING_TRUENAS_ADDRESS": address,
            "TRUENAS_API_KEY": described["truenas"]["api_key"],
            "DIGITALOCEAN_TOKEN": described["digitalocean"]["token"],
            "DIGITALOCEAN_API_URL": described["digitalocean"]["endpoint"],
            "DIGITALOCEAN_CA_BUNDLE": described["ca_bundle"],
            "ACME_ROOT_CA": described["acme"]["root_ca"],
            "EXISTING_PORT_MAP": ",".join(f"{p}={h}" for p, h in target.port_map),
        }
        yield Running(target, FakeAdmin.from_world_file(world.world_file), site_file,
                      root / "up-state", address, env)


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(directory.rglob("*"))}


def _mutating(running: Running, calls_before: dict[str, list[str]]) -> list:
    admin = running.admin
    cloud = [(r["method"], r["path"]) for r in admin.requests() if r["method"] in MUTATING]
    after = admin.truenas_calls().get(running.address, [])
    node = [m for m in after[len(calls_before.get(running.address, [])):] if is_mutating(m)]
    return cloud + node


def _check(running: Running, *extra: str):
    env = {**running.env, "COLUMNS": "250"}
    env.update({key: None for key in CLEARED if key not in env})
    return CliRunner().invoke(app, ["check", "--existing", "--site", str(running.site_file),
                                    *extra], env=env)


def test_check_existing_from_a_fresh_directory_passes_and_writes_nothing(
        running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    running.admin.clear_requests()
    calls_before = running.admin.truenas_calls()
    result = _check(running)
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    flat = " ".join(result.output.split())
    assert "app gocd runs" in flat and "app uro runs" in flat
    assert "not judged" in flat          # their generated secrets are not here
    assert list(fresh.iterdir()) == [], "a read-only check wrote into the directory it ran in"
    assert _mutating(running, calls_before) == []


def test_check_existing_with_the_state_dir_of_up_judges_the_charts_and_leaves_it(
        running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = _listing(running.up_state)
    result = _check(running, "--state-dir", str(running.up_state))
    assert result.exit_code == 0, result.output
    assert "not judged" not in result.output
    assert _listing(running.up_state) == before
    assert list(tmp_path.iterdir()) == []


def test_the_existing_target_suite_passes_from_a_fresh_directory(running: Running,
                                                                 tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(running.env)
    running.admin.clear_requests()
    calls_before = running.admin.truenas_calls()
    basetemp = tmp_path / "spec"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "features"), "--target", "existing",
         "-q", "-p", "no:cacheprovider", f"--rootdir={REPO}", f"--basetemp={basetemp}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert _mutating(running, calls_before) == []
    written = [p for p in basetemp.rglob("*") if p.is_file()]
    assert written == [], f"the read-only suite wrote {written[:5]}"
