"""Build a DigitalOcean custom image from the TrueNAS SCALE ISO, unattended.

1. A blank sparse raw disk of `disk_gib` (at least 16 GiB: TrueNAS's minimum boot
   device, reference/truenas-api.md §7; the installer hides disks under 8 GB).
2. The ISO boots in a machine from the launcher (QEMU by default) with that disk.
3. Over the installer's WebSocket: refuse an adopted installer or one already
   installing, pick exactly the blank disk of that size, `install` with
   authentication truenas_admin + the site's admin password and `set_pmbr` true (the
   installer menu's default answer on a BIOS machine: EFI boot stays possible), never
   `post_install.network_interfaces` (with none configured TrueNAS runs DHCP on every
   interface, as a droplet needs), then `shutdown`.
4. The disk is captured without ever booting it: `install` returns after the boot pool
   was exported (install.py: `zpool export -f boot-pool` in a finally), so even a
   machine that has to be stopped leaves a consistent disk.
5. Its GPT must be the installer's three partitions; then it is converted and checked
   against DigitalOcean's limits (output.py). Anything failing removes the partial
   disk and output; the console log stays for diagnosis.

The password comes from a file or TRUENAS_ADMIN_PASSWORD, never the command line, and
is kept only in the site's 0600 state directory (PASSWORD_FILE).
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError
from infra.events import Reporter
from infra.image import output
from infra.image.gpt import layout_problems
from infra.image.installer import InstallerClient, InstallerError, wait_for_installer
from infra.image.machine import (
    INSTALL_HINT,
    QEMU_IMG,
    Launcher,
    Machine,
    MachineSpec,
    kvm_usable,
    missing_tools,
)
from infra.secrets import PrivateFileProblem, Secret, read_private_file, write_private_file
from infra.state import StateDir

GiB = 1024**3
MIN_DISK_GIB = 16
ADMIN_USER = "truenas_admin"
PASSWORD_ENV = "TRUENAS_ADMIN_PASSWORD"
PASSWORD_FILE = "truenas-admin-password"
MIN_PASSWORD = 6            # the installer's schema: password minLength 6
TICK_SECONDS = 30.0


class BuildRefused(InfraError):
    """The build stopped before or while installing; nothing partial is left."""


@dataclass(frozen=True)
class BuildOptions:
    iso: Path
    output: Path
    disk_gib: int = MIN_DISK_GIB
    fmt: str = "qcow2"
    memory_mib: int = 4096
    cpus: int = 2
    accel: str | None = None           # None: KVM when usable, else TCG
    iso_sha256: str | None = None
    boot_seconds: float | None = None  # None: by accelerator
    install_seconds: float | None = None
    shutdown_seconds: float = 300.0
    poll_seconds: float = 2.0          # between attempts to reach the booting installer


def admin_password(password_file: Path | None, environ: Mapping[str, str]) -> Secret:
    """The site's admin password: from a file (mode 0600) or TRUENAS_ADMIN_PASSWORD."""
    if password_file is not None:
        try:
            text = read_private_file(password_file).rstrip("\r\n")
        except PrivateFileProblem as problem:
            raise BuildRefused(f"the password file: {problem}") from None
    elif environ.get(PASSWORD_ENV):
        text = environ[PASSWORD_ENV]
    else:
        raise BuildRefused(f"no admin password: pass --password-file PATH or export "
                           f"{PASSWORD_ENV}")
    if len(text) < MIN_PASSWORD:
        raise BuildRefused(f"the admin password must have at least {MIN_PASSWORD} characters "
                           "(the installer's minimum; use a long random one)")
    return Secret(text)


def store_password(state: StateDir, password: Secret) -> Path:
    return write_private_file(state.path / PASSWORD_FILE, password.reveal())


def pick_disk(disks: list[dict], size: int) -> str:
    """Exactly one blank disk of the build disk's size, else a refusal."""
    blank = [d for d in disks if d.get("size") == size and not d.get("label")
             and not d.get("zfs_members")]
    if len(blank) == 1:
        return blank[0]["name"]
    seen = ", ".join(f"{d.get('name')} ({d.get('size')} bytes, "
                     f"{d.get('label') or 'blank'})" for d in disks) or "none"
    if not blank:
        raise BuildRefused(f"no blank disk of {size} bytes among the installer's disks "
                           f"({seen}): refusing to install anywhere else")
    raise BuildRefused(f"{len(blank)} blank disks of {size} bytes "
                       f"({', '.join(d['name'] for d in blank)}): cannot tell which one is "
                       "the build disk; refusing to guess")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ImageBuild:
    def __init__(self, options: BuildOptions, password: Secret, launcher: Launcher,
                 reporter: Reporter | None = None) -> None:
        self.options = options
        self.password = password
        self.launcher = launcher
        self.reporter = reporter or Reporter()
        self.work_dir = options.output.parent / f".{options.output.name}.build"
        self.disk = self.work_dir / "disk.raw"
        self.console_log = self.work_dir / "console.log"

    # --- checks before anything starts -----------------------------------------------
    def _preflight(self) -> str:
        o = self.options
        problems = []
        if o.disk_gib < MIN_DISK_GIB:
            problems.append(f"disk size {o.disk_gib} GiB: at least {MIN_DISK_GIB} GiB "
                            "(TrueNAS's minimum boot device)")
        if not o.iso.is_file():
            problems.append(f"no ISO at {o.iso}")
        problems += output.limit_problems(o.output, o.fmt, o.disk_gib * GiB)
        if not o.output.parent.is_dir():
            problems.append(f"no directory {o.output.parent} for the output")
        if o.fmt == "qcow2" and missing_tools((QEMU_IMG,)):
            problems.append(f"qemu-img is not installed: {INSTALL_HINT}")
        if problems:
            raise BuildRefused("; ".join(problems))
        if o.iso_sha256:
            found = output.sha256_of(o.iso)
            if found != o.iso_sha256.lower():
                raise BuildRefused(f"{o.iso.name} has SHA-256 {found}, not the "
                                   f"{o.iso_sha256} given: download it again")
        accel = o.accel or ("kvm" if kvm_usable() else "tcg")
        if accel == "tcg":
            self.reporter.note("no usable /dev/kvm: software emulation (TCG). Booting the ISO "
                               "and installing take an hour or more; progress follows")
        return accel

    # --- the build -----------------------------------------------------------------
    def run(self) -> output.ImageFile:
        accel = self._preflight()
        o = self.options
        self.work_dir.mkdir(mode=0o700, exist_ok=True)
        size = o.disk_gib * GiB
        with open(self.disk, "wb") as handle:
            handle.truncate(size)            # sparse: blank, and nothing on the host's disk
        spec = MachineSpec(o.iso, self.disk, free_port(), self.console_log, o.memory_mib,
                           o.cpus, accel)
        slow = accel == "tcg"
        try:
            self.reporter.step(f"boot {o.iso.name} ({accel.upper()}, {o.memory_mib} MiB, "
                               f"{o.cpus} CPUs) with a blank {o.disk_gib} GiB virtio disk")
            machine = self.launcher(spec)
            try:
                self._install(machine, spec, size, slow)
            except BaseException:
                machine.stop()
                raise
            self._power_off(machine)
            problems = layout_problems(self.disk)
            if problems:
                raise BuildRefused("the installed disk is not the installer's layout: "
                                   + "; ".join(problems))
            self.reporter.step(f"convert the disk to {o.fmt}: {o.output}")
            output.convert(self.disk, o.output, o.fmt)
            try:
                image = output.describe(o.output, o.fmt, size)
            except BaseException:
                o.output.unlink(missing_ok=True)
                raise
        except BaseException:
            self.disk.unlink(missing_ok=True)
            if self.console_log.exists():
                self.reporter.note(f"the machine's console log stays at {self.console_log}")
            raise
        shutil.rmtree(self.work_dir, ignore_errors=True)
        return image

    def _install(self, machine: Machine, spec: MachineSpec, size: int, slow: bool) -> None:
        o = self.options
        boot_seconds = o.boot_seconds or (5400.0 if slow else 900.0)
        install_seconds = o.install_seconds or (14400.0 if slow else 3600.0)
        last = [0.0]

        def tick(elapsed: float) -> None:
            if elapsed - last[0] >= TICK_SECONDS:
                last[0] = elapsed
                self.reporter.note(f"waiting for the installer to boot ({elapsed:.0f} s)")

        with self.reporter.waiting("the ISO's installer to answer"):
            try:
                client = wait_for_installer(spec.port, machine.running, boot_seconds, tick,
                                            poll=o.poll_seconds)
            except InstallerError as error:
                raise BuildRefused(f"{error} (its console: {self.console_log})") from None
        client.secrets.append(self.password.reveal())
        with client:
            try:
                self._drive(client, size, install_seconds)
            except InstallerError as error:
                raise BuildRefused(str(error)) from None

    def _drive(self, client: InstallerClient, size: int, install_seconds: float) -> None:
        if client.call("is_adopted"):
            raise BuildRefused("the installer is already adopted (someone else called adopt "
                               "on it): refusing to use it; boot a fresh ISO")
        info = client.call("system_info")
        if info.get("installation_running"):
            raise BuildRefused("the installer is already installing: refusing to start another")
        self.reporter.note(f"installer of TrueNAS {info.get('version', '?')} "
                           f"({'EFI' if info.get('efi') else 'BIOS'} boot)")
        disk = pick_disk(client.call("list_disks"), size)
        self.reporter.step(f"install TrueNAS on {disk} (user {ADMIN_USER}, DHCP on every "
                           "interface)")
        started = time.monotonic()

        def progress(fraction: float, message: str) -> None:
            self.reporter.note(f"[{fraction * 100:3.0f}%] {message} "
                               f"({time.monotonic() - started:.0f} s)")

        client.progress = progress
        client.call("install", {"disks": [disk], "set_pmbr": True,
                                "authentication": {"username": ADMIN_USER,
                                                   "password": self.password.reveal()}},
                    timeout=install_seconds)
        self.reporter.step("installed: power the machine off (it never boots the disk)")
        client.power_off()

    def _power_off(self, machine: Machine) -> None:
        if machine.wait(self.options.shutdown_seconds) is None:
            self.reporter.note("the machine did not power off in time: stopping it (the "
                               "installer had exported the boot pool already)")
            machine.stop()
