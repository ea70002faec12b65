"""The image build against the fake installer (fakes/installer) in place of QEMU: the
launcher is the only thing swapped; the build's code path is the CLI's."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from infra.events import RecordingReporter
from infra.image.build import BuildOptions, ImageBuild
from infra.image.machine import Launcher, MachineSpec, process_launcher
from infra.secrets import Secret

PASSWORD = "correct-horse-battery-staple-7"


def fake_launcher(*extra: str, disks=None) -> Launcher:
    """The fake installer as the machine; `disks(spec)` -> extra `--disk` arguments."""
    def command(spec: MachineSpec) -> list[str]:
        more = [arg for d in (disks(spec) if disks else []) for arg in ("--disk", d)]
        return [sys.executable, "-m", "fakes.installer", "--disk", f"vda={spec.disk}",
                *more, "--port", str(spec.port), *extra]
    return process_launcher(command)


@pytest.fixture
def iso(tmp_path: Path) -> Path:
    path = tmp_path / "TrueNAS-SCALE-25.10.0.iso"
    path.write_bytes(b"not really an ISO: the fake installer never reads it\n")
    return path


@pytest.fixture
def options(tmp_path: Path, iso: Path) -> BuildOptions:
    out = tmp_path / "out"
    out.mkdir()
    return BuildOptions(iso=iso, output=out / "truenas.qcow2", accel="kvm",
                        boot_seconds=30, install_seconds=60, shutdown_seconds=20,
                        poll_seconds=0.1)


def build(options: BuildOptions, launcher: Launcher, **changes):
    reporter = RecordingReporter()
    result = ImageBuild(replace(options, **changes), Secret(PASSWORD), launcher,
                        reporter).run()
    return result, reporter
