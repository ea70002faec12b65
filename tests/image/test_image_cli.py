"""`truenas-site image build` as a user runs it, with the fake installer as the machine
(the only swap: infra.image.cli.qemu_launcher)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from infra import cli
from infra.image import build as build_module
from infra.image import cli as image_cli
from infra.image.output import sha256_of
from steps.cli_runner import CliRunner
from tests.image.conftest import PASSWORD, fake_launcher

EXAMPLE = Path(__file__).resolve().parents[2] / "site.example.toml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _args(tmp_path: Path, iso: Path, *more: str) -> list[str]:
    return ["image", "build", "--iso", str(iso), "--site", str(EXAMPLE),
            "--state-dir", str(tmp_path / "state"), *more]


def test_build_prints_the_image_and_the_next_step(runner, tmp_path, iso, monkeypatch):
    monkeypatch.setattr(image_cli, "qemu_launcher", fake_launcher())
    monkeypatch.setattr(image_cli, "missing_tools", lambda names: [])
    monkeypatch.setattr(build_module, "kvm_usable", lambda *a: True)
    monkeypatch.setenv("TRUENAS_ADMIN_PASSWORD", PASSWORD)
    out = tmp_path / "truenas.qcow2"
    result = runner.invoke(cli.app, _args(tmp_path, iso, "--output", str(out)))

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"sha256 {sha256_of(out)}" in text
    assert re.search(rf"qcow2, {out.stat().st_size} bytes", text)
    assert "17179869184 bytes uncompressed" in text
    assert "answers HEAD requests and has no query string" in text
    assert "[image] url" in text
    assert PASSWORD not in result.output
    kept = tmp_path / "state" / "truenas-admin-password"
    assert kept.read_text() == PASSWORD and stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_missing_qemu_says_how_to_install_it(runner, tmp_path, iso, monkeypatch):
    monkeypatch.setattr(image_cli, "missing_tools", lambda names: ["qemu-system-x86_64"])
    monkeypatch.setenv("TRUENAS_ADMIN_PASSWORD", PASSWORD)
    result = runner.invoke(cli.app, _args(tmp_path, iso))
    assert result.exit_code == 2
    assert "apt-get install qemu-system-x86 qemu-utils" in " ".join(result.output.split())


def test_no_password_option_takes_a_value(runner, tmp_path, iso):
    result = runner.invoke(cli.app, _args(tmp_path, iso, "--password", PASSWORD))
    assert result.exit_code == 2
    assert PASSWORD not in result.output


def test_no_password_is_refused_before_anything_starts(runner, tmp_path, iso, monkeypatch):
    monkeypatch.delenv("TRUENAS_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr(image_cli, "missing_tools", lambda names: [])
    result = runner.invoke(cli.app, _args(tmp_path, iso))
    assert result.exit_code == 2
    assert "TRUENAS_ADMIN_PASSWORD" in result.output
    assert not (tmp_path / "state").exists()


def test_markup_in_a_path_is_printed_as_typed(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("TRUENAS_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setattr(image_cli, "missing_tools", lambda names: [])
    monkeypatch.setattr(image_cli, "qemu_launcher", fake_launcher())
    result = runner.invoke(cli.app, _args(tmp_path, tmp_path / "[bold]x[/].iso"))
    assert result.exit_code == 1
    assert "[bold]x[/].iso" in result.output
