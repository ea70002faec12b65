"""The machine the ISO boots in: a QEMU command line, and a launcher contract.

A launcher turns a MachineSpec into a running Machine whose installer answers on
127.0.0.1:<spec.port>/ws. `qemu_launcher` runs qemu-system-x86_64; tests inject one
that runs the fake installer instead, and the build is otherwise the same.

The command line: the ISO as a read-only CD-ROM booted first, the blank disk as
virtio-blk (the installer lists it as `vda`; a droplet's boot disk is virtio too,
reference/truenas-api.md §7), user networking with the guest's port 8080 (the
installer's aiohttp server, truenas-installer `stable/goldeye` `__main__.py`)
forwarded from a loopback port only, no display, the serial console to a file, and
`-no-reboot` so that a reboot powers the machine off instead of booting the
installed disk (its first boot would bake host keys and a certificate into the image).
KVM when /dev/kvm is usable, else TCG (software emulation: many times slower).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
INSTALL_HINT = ("install them with `sudo apt-get install qemu-system-x86 qemu-utils` "
                "(Debian/Ubuntu)")
GUEST_INSTALLER_PORT = 8080


@dataclass(frozen=True)
class MachineSpec:
    iso: Path
    disk: Path
    port: int
    console_log: Path
    memory_mib: int = 4096
    cpus: int = 2
    accel: str = "tcg"


class Machine(Protocol):
    def running(self) -> bool: ...
    def wait(self, timeout: float) -> int | None: ...
    def stop(self) -> None: ...


Launcher = Callable[[MachineSpec], Machine]


def kvm_usable(device: Path = Path("/dev/kvm")) -> bool:
    return device.exists() and os.access(device, os.R_OK | os.W_OK)


def missing_tools(names: tuple[str, ...] = (QEMU, QEMU_IMG)) -> list[str]:
    return [name for name in names if shutil.which(name) is None]


def qemu_command(spec: MachineSpec, binary: str = QEMU) -> list[str]:
    if spec.accel == "kvm":
        accel = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return [
        binary, "-name", "truenas-image-build",
        "-machine", "q35", *accel,
        "-m", str(spec.memory_mib), "-smp", str(spec.cpus),
        "-drive", f"file={spec.iso},media=cdrom,readonly=on",
        "-drive", f"file={spec.disk},format=raw,if=virtio,cache=writeback",
        "-boot", "order=d",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{spec.port}-:{GUEST_INSTALLER_PORT}",
        "-device", "virtio-net-pci,netdev=net0",
        "-display", "none", "-monitor", "none",
        "-serial", f"file:{spec.console_log}",
        "-no-reboot",
    ]


class ProcessMachine:
    """A machine that is one child process (QEMU, or a fake installer)."""

    def __init__(self, command: list[str], log: Path) -> None:
        self._log = open(log, "ab")  # noqa: SIM115 - closed in wait/stop
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT)

    def running(self) -> bool:
        return self._process.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._log.close()
        return code

    def stop(self) -> None:
        if self.running():
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


def process_launcher(command_for: Callable[[MachineSpec], list[str]]) -> Launcher:
    def launch(spec: MachineSpec) -> Machine:
        return ProcessMachine(command_for(spec), spec.console_log.with_suffix(".stderr"))
    return launch


qemu_launcher: Launcher = process_launcher(qemu_command)
