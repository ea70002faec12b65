"""`image build` end to end against the fake installer: the output is an image
DigitalOcean takes, with the real installer's partition table (read back by sfdisk and
sgdisk from Debian, and qemu-img), installed as the site asked, leaving nothing behind."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from fakes.installer import gpt as fake_gpt
from fakes.installer.models import password_matches, read_record
from infra.image.build import BuildRefused
from tests.image.conftest import PASSWORD, build, fake_launcher

GiB = 1024**3
TOOLS = ("qemu-img", "sfdisk", "sgdisk")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs qemu-img (qemu-utils), sfdisk (fdisk) and sgdisk (gdisk): ./dev installs them")


def _run(*command: str) -> str:
    answer = subprocess.run(command, capture_output=True, text=True, check=False)
    assert answer.returncode == 0, (command, answer.stdout, answer.stderr)
    return answer.stdout


def _as_raw(image: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "readback.raw"
    _run("qemu-img", "convert", "-O", "raw", str(image), str(raw))
    return raw


def test_the_image_has_the_real_installers_layout(options, tmp_path):
    image, reporter = build(options, fake_launcher())

    assert image.path == options.output and image.path.exists()
    info = json.loads(_run("qemu-img", "info", "--output=json", str(image.path)))
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 16 * GiB == image.virtual_bytes
    _run("qemu-img", "check", str(image.path))
    assert image.size_bytes == image.path.stat().st_size < 16 * 1024 * 1024

    raw = _as_raw(image.path, tmp_path)
    verify = _run("sgdisk", "-v", str(raw))
    assert "No problems found" in verify, verify
    table = json.loads(_run("sfdisk", "--json", str(raw)))["partitiontable"]
    assert table["label"] == "gpt"
    assert table["sectorsize"] == 512
    layout = [(p["start"], p["size"], p["type"], p.get("attrs", "")) for p in table["partitions"]]
    # What sgdisk 1.0.9 makes of the installer's format_disk commands on 16 GiB
    # (measured with sgdisk on a sparse file; fakes/installer/gpt.py).
    assert layout == [
        (4096, 2048, "21686148-6449-6E6F-744E-656564454649", "LegacyBIOSBootable"),
        (6144, 1048576, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", ""),
        (1054720, 16 * GiB // 512 - 34 - 1054720 + 1, "6A898CC3-1DD2-11B2-99A6-080020736631",
         ""),
    ]


def test_the_install_is_what_the_site_needs(options, tmp_path):
    image, reporter = build(options, fake_launcher())
    record = read_record(_as_raw(image.path, tmp_path))

    assert record["pool"] == "boot-pool"
    assert record["authentication"]["username"] == "truenas_admin"
    assert password_matches(record["authentication"]["password"], PASSWORD)
    # No interface configured: TrueNAS then runs DHCP on every one, as a droplet needs.
    assert not (record["post_install"] or {}).get("network_interfaces")
    progress = [line for line in reporter.lines if "%]" in line]
    assert any("Formatting disk vda" in line for line in progress), reporter.lines
    assert any("[100%]" in line for line in progress), reporter.lines
    assert not any(PASSWORD in line for line in reporter.lines)
    assert not (options.output.parent / f".{options.output.name}.build").exists()


# --- refusals: each leaves no image and no disk behind ---------------------------------

def _nothing_left(options) -> None:
    assert not options.output.exists()
    work = options.output.parent / f".{options.output.name}.build"
    assert not (work / "disk.raw").exists()
    assert not any(p.name.endswith(".partial") for p in options.output.parent.iterdir())


def test_refuses_when_no_disk_is_blank(options):
    def preinstalled(spec):
        # The build disk already holds an installation (a reused work file, say).
        from fakes.installer.models import Disk, write_record
        fake_gpt.write_table(spec.disk, fake_gpt.installer_layout(spec.disk.stat().st_size))
        write_record(Disk("vda", spec.disk), {"pool": "boot-pool"})
        return []

    with pytest.raises(BuildRefused, match="no blank disk of 17179869184 bytes.*boot-pool"):
        build(options, fake_launcher(disks=preinstalled))
    _nothing_left(options)


def test_refuses_two_candidate_disks(options, tmp_path):
    def second(spec):
        other = tmp_path / "other.raw"
        with open(other, "wb") as handle:
            handle.truncate(spec.disk.stat().st_size)
        return [f"vdb={other}"]

    with pytest.raises(BuildRefused, match="2 blank disks .*vda, vdb.*refusing to guess"):
        build(options, fake_launcher(disks=second))
    _nothing_left(options)
    with open(tmp_path / "other.raw", "rb") as other:
        assert other.read(64 * 1024) == bytes(64 * 1024), "the other disk was written"


def test_refuses_an_adopted_installer(options):
    with pytest.raises(BuildRefused, match="already adopted"):
        build(options, fake_launcher("--adopted"))
    _nothing_left(options)


def test_an_install_failing_midway_leaves_nothing(options):
    with pytest.raises(BuildRefused, match="refused install: Command zpool create"):
        build(options, fake_launcher("--fail-install"))
    _nothing_left(options)


def test_a_machine_that_never_answers_is_stopped(options):
    launcher = fake_launcher("--host", "127.0.0.2")   # listens where the build never looks
    with pytest.raises(BuildRefused, match="did not answer within"):
        build(options, launcher, boot_seconds=1.5)
    _nothing_left(options)


def test_the_password_never_reaches_a_log_even_at_debug(options, caplog):
    caplog.set_level(logging.DEBUG)
    image, reporter = build(options, fake_launcher())
    assert image.path.exists()
    # websockets shortens long frames in its log to their head and tail: any piece of
    # the password is a leak.
    pieces = {PASSWORD[i:i + 6] for i in range(len(PASSWORD) - 5)}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [piece for piece in pieces if piece in logged]
    assert not any(PASSWORD in line for line in reporter.lines)
