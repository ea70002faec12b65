"""The QEMU command line `image build` runs (no QEMU needed to check it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.image.machine import MachineSpec, kvm_usable, qemu_command


def _spec(**changes) -> MachineSpec:
    values = dict(iso=Path("/isos/TrueNAS-SCALE-25.10.0.iso"), disk=Path("/w/disk.raw"),
                  port=40123, console_log=Path("/w/console.log"), memory_mib=4096, cpus=2,
                  accel="kvm")
    values.update(changes)
    return MachineSpec(**values)


def _options(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == flag]


def test_the_disk_is_a_raw_virtio_disk_and_the_iso_a_read_only_cdrom():
    drives = _options(qemu_command(_spec()), "-drive")
    assert "file=/w/disk.raw,format=raw,if=virtio,cache=writeback" in drives
    assert "file=/isos/TrueNAS-SCALE-25.10.0.iso,media=cdrom,readonly=on" in drives
    assert len(drives) == 2, "no other disk the installer could pick"


def test_only_a_loopback_port_reaches_the_installer():
    command = qemu_command(_spec(port=40123))
    netdev = _options(command, "-netdev")
    assert netdev == ["user,id=net0,hostfwd=tcp:127.0.0.1:40123-:8080"]
    assert _options(command, "-device") == ["virtio-net-pci,netdev=net0"]


def test_the_installed_disk_is_never_booted():
    command = qemu_command(_spec())
    assert "-no-reboot" in command           # a reboot powers off instead
    assert _options(command, "-boot") == ["order=d"]


def test_headless_with_the_console_in_a_file():
    command = qemu_command(_spec())
    assert _options(command, "-display") == ["none"]
    assert _options(command, "-serial") == ["file:/w/console.log"]
    assert _options(command, "-monitor") == ["none"]


@pytest.mark.parametrize("accel, expected, cpu", [("kvm", "kvm", "host"),
                                                  ("tcg", "tcg,thread=multi", "max")])
def test_kvm_or_software_emulation(accel, expected, cpu):
    command = qemu_command(_spec(accel=accel))
    assert _options(command, "-accel") == [expected]
    assert _options(command, "-cpu") == [cpu]


def test_memory_and_cpus():
    command = qemu_command(_spec(memory_mib=8192, cpus=4))
    assert _options(command, "-m") == ["8192"] and _options(command, "-smp") == ["4"]
    assert command[0] == "qemu-system-x86_64"


def test_kvm_only_when_the_device_is_usable(tmp_path):
    assert not kvm_usable(tmp_path / "no-such-kvm")
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    device.chmod(0o600)
    assert kvm_usable(device)
