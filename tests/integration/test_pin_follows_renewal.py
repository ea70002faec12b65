"""A pin follows a legitimate renewal of the site certificate, and the CLI re-pins on
request (issue 13).

A front-door site is brought up (its TrueNAS UI then presents the site certificate);
a copy of its state directory stands for a second place that checks it (cron). The
certificate is renewed from the first: the copy's pin is now stale. `check` with the
copy follows the renewal (the new certificate chains to the ACME root and names the
site) and writes nothing; a pin the node's certificate is no renewal of is refused,
naming `--repin`, which then trusts the node for that run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import trustme

from fakes.world import World
from infra.cli import app
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.site import parse_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.errors import CertificateChanged
from infra.truenas.pinning import PINS_FILE, CertificatePins
from infra.up import Provisioner
from steps.cli_runner import CliRunner
from steps.sites import site_data


def _toml(data: dict) -> str:
    lines = []
    for table in ("site", "image", "dns", "access", "truenas", "tls"):
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in data[table].items()]
    for entry in data["volumes"]:
        lines.append("[[volumes]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def renewed(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("renewal")
    with World(root / "world") as world:
        if world.acme_unavailable:
            pytest.skip(world.acme_unavailable)
        target = Target.from_world_file(world.world_file)
        data = site_data("door-h")
        data["site"]["name"] = "renew"
        data["dns"] = {"domain": "renew.test", "hostnames": ["www.renew.test"], "ttl": 300}
        site = parse_site(data)
        site_file = root / "renew.toml"
        site_file.write_text(_toml(data))
        state = StateDir(root / "up-state")
        Provisioner(site, DigitalOcean(target), state).up()
        try:
            elsewhere = root / "elsewhere"
            shutil.copytree(state.path, elsewhere)
            Provisioner(site, DigitalOcean(target), state).renew_certificate(force=True)
            yield world, site_file, state.path, elsewhere
        finally:
            Teardown(site, DigitalOcean(target), state).down()


def _check(world: World, site_file: Path, state: Path, *extra: str):
    return CliRunner().invoke(app, ["check", "--site", str(site_file), "--world",
                                    str(world.world_file), "--state-dir", str(state),
                                    *extra], env={"COLUMNS": "250"})


def test_the_renewal_changed_what_the_copy_pinned(renewed) -> None:
    _, _, state, elsewhere = renewed
    assert json.loads((state / PINS_FILE).read_text()) != \
        json.loads((elsewhere / PINS_FILE).read_text())


def test_a_check_elsewhere_follows_the_renewal_and_writes_nothing(renewed) -> None:
    world, site_file, _, elsewhere = renewed
    before = (elsewhere / PINS_FILE).read_bytes()
    result = _check(world, site_file, elsewhere)
    assert result.exit_code == 0, result.output
    assert (elsewhere / PINS_FILE).read_bytes() == before


def test_the_cli_re_pins_on_request_for_the_run_only(renewed, tmp_path) -> None:
    world, site_file, _, elsewhere = renewed
    before = (elsewhere / PINS_FILE).read_bytes()
    result = _check(world, site_file, elsewhere, "--repin")
    assert result.exit_code == 0, result.output
    assert (elsewhere / PINS_FILE).read_bytes() == before    # a check writes no pin


def _certificate(name: str) -> str:
    return trustme.CA().issue_cert(name).cert_chain_pems[0].bytes().decode()


def test_pins_refuse_a_changed_certificate_that_is_no_renewal(tmp_path: Path) -> None:
    pins = CertificatePins(tmp_path)
    pins.pin("127.0.0.1", 443, _certificate("first.test"))
    presented = _certificate("second.test")
    with pytest.raises(CertificateChanged, match="--repin"):
        pins.check("127.0.0.1", 443, presented, renewal=lambda pem: False)
    assert pins.check("127.0.0.1", 443, presented, renewal=lambda pem: True).pem == presented
    assert pins.get("127.0.0.1", 443).pem == presented


def test_read_only_pins_trust_for_the_run_and_write_nothing(tmp_path: Path) -> None:
    pins = CertificatePins(tmp_path / "absent", read_only=True)
    pem = _certificate("node.test")
    assert pins.check("127.0.0.1", 443, pem).pem == pem
    assert not (tmp_path / "absent").exists()
