"""The live ISO's machine as the installer sees it: its disks, adoption, one install.

Facts (truenas/truenas-installer `stable/goldeye`, commit f66c7830bc51):
- `disks.py` `list_disks`: whole disks from lsblk, skipping dm/loop/md/sr/st devices
  and disks under MIN_DISK_SIZE (8,000,000,000 bytes); each is `{name, size, model
  ("Unknown Model" when lsblk has none), label, zfs_members, removable}`, sorted by
  name. `label` is the disk's fstype, else `zfs-"<pool>"` for each ZFS member
  partition, else `<fstype>-<label>` of a partition, else "" (a blank disk, or one
  whose partitions hold no filesystem).
- `install.py` `install`: under one lock (`lock.py`: a second install is refused with
  "Installation is already in progress"), per destination disk progress
  `(0, "Formatting disk <name>")`, the layout of `gpt.py`, then `(0, "Creating boot
  pool")`, then `truenas_install`'s own progress, fractions 0..1 (the middleware's
  `write_progress` prints `int(progress * 100)%`). Failures raise InstallError, whose
  message the RPC error carries.
- `server/api/adoption.py`: `is_adopted` is true once someone called `adopt`.

What the fake writes where the real installer writes a ZFS boot pool: at the start of
partition 3, RECORD_MAGIC and a JSON record (pool name, version, the admin user and a
salted PBKDF2 hash of its password, post_install as given), so that tests and the fake
world can read what was installed. It is not ZFS. The messages of truenas_install's
progress are invented (the real ones are not traced); their fractions are real in kind.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fakes.installer import gpt

MIN_DISK_SIZE = 8_000_000_000
BOOT_POOL = "boot-pool"
RECORD_MAGIC = b"TRUENAS-SITE-FAKE-BOOT-POOL\n"
PBKDF2_ROUNDS = 100_000

Progress = Callable[[float, str], None]


class InstallError(Exception):
    """What the real installer raises; the RPC layer answers it as an error."""


@dataclass
class Disk:
    name: str
    path: Path
    model: str = "QEMU HARDDISK"
    removable: bool = False

    @property
    def size(self) -> int:
        return os.path.getsize(self.path)


@dataclass
class Machine:
    disks: list[Disk]
    version: str = "25.10.0"
    efi: bool = False
    adopted: bool = False
    # Fault injection: raise InstallError after formatting, as a failing `zpool create`.
    fail_install: bool = False
    installation_completed: bool = False
    installation_error: str | None = None
    installs: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list_disks(self) -> list[dict]:
        listed = []
        for disk in sorted(self.disks, key=lambda d: d.name):
            if disk.size < MIN_DISK_SIZE:
                continue
            members = zfs_members(disk)
            label = ", ".join(f'zfs-"{m["pool"]}"' for m in members)
            listed.append({"name": disk.name, "size": disk.size, "model": disk.model,
                           "label": label, "zfs_members": members,
                           "removable": disk.removable})
        return listed

    def system_info(self) -> dict:
        return {"installation_running": self._lock.locked(),
                "installation_completed": self.installation_completed,
                "installation_error": self.installation_error,
                "version": self.version, "efi": self.efi}

    def install(self, disk_names: list[str], set_pmbr: bool, authentication: dict | None,
                post_install: dict | None, progress: Progress) -> None:
        by_name = {d["name"]: d for d in self.list_disks()}
        for name in disk_names:
            if name not in by_name:
                raise InstallError(f"Disk {name!r} does not exist")
        if not self._lock.acquire(blocking=False):
            raise InstallError("Installation is already in progress")
        try:
            self._install([self._disk(n) for n in disk_names], set_pmbr, authentication,
                          post_install, progress)
            self.installation_completed = True
        except InstallError as error:
            self.installation_error = str(error)
            raise
        finally:
            self._lock.release()

    def _disk(self, name: str) -> Disk:
        return next(d for d in self.disks if d.name == name)

    def _install(self, disks: list[Disk], set_pmbr: bool, authentication: dict | None,
                 post_install: dict | None, progress: Progress) -> None:
        for disk in disks:
            progress(0, f"Formatting disk {disk.name}")
            _wipe(disk)
            gpt.write_table(disk.path, gpt.installer_layout(disk.size), pmbr_boot=set_pmbr)
        progress(0, "Creating boot pool")
        if self.fail_install:
            names = " ".join(f"/dev/{d.name}3" for d in disks)
            raise InstallError(f"Command zpool create -f {BOOT_POOL} {names} failed:\n"
                               "cannot create 'boot-pool': I/O error (injected)")
        for step, message in enumerate(("Extracting the system image", "Installing GRUB",
                                        "Writing the configuration database"), start=1):
            progress(step / 3, message)
        record = {"pool": BOOT_POOL, "version": self.version, "disks": [d.name for d in disks],
                  "authentication": _hashed(authentication), "post_install": post_install}
        self.installs.append(record)
        for disk in disks:
            write_record(disk, record)


def _wipe(disk: Disk) -> None:
    # wipefs -a + sgdisk -Z: both tables gone; the fake clears their sectors.
    sectors = (2 + gpt.ENTRY_SECTORS) * gpt.SECTOR
    with open(disk.path, "r+b") as handle:
        handle.write(bytes(sectors))
        handle.seek(disk.size - sectors + gpt.SECTOR)
        handle.write(bytes(sectors - gpt.SECTOR))


def _hashed(authentication: dict | None) -> dict | None:
    if authentication is None:
        return None
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha512", authentication["password"].encode(), salt,
                                 PBKDF2_ROUNDS)
    return {"username": authentication["username"],
            "password": f"pbkdf2-sha512${PBKDF2_ROUNDS}${salt.hex()}${digest.hex()}"}


def password_matches(stored: str, password: str) -> bool:
    _, rounds, salt, digest = stored.split("$")
    computed = hashlib.pbkdf2_hmac("sha512", password.encode(), bytes.fromhex(salt),
                                   int(rounds))
    return secrets.compare_digest(computed.hex(), digest)


def write_record(disk: Disk, record: dict) -> None:
    partition = _zfs_partition(disk)
    assert partition is not None, "write_record needs the installer's layout"
    with open(disk.path, "r+b") as handle:
        handle.seek(partition.first_lba * gpt.SECTOR)
        handle.write(RECORD_MAGIC + json.dumps(record).encode() + b"\n")


def read_record(path: Path) -> dict | None:
    """The fake boot pool's record on a disk image, or None."""
    partitions = gpt.read_table(path) or []
    zfs = [p for p in partitions if p.type_guid == gpt.SOLARIS_ZFS]
    if not zfs:
        return None
    with open(path, "rb") as handle:
        handle.seek(zfs[0].first_lba * gpt.SECTOR)
        head = handle.read(64 * 1024)
    if not head.startswith(RECORD_MAGIC):
        return None
    return json.loads(head[len(RECORD_MAGIC):].split(b"\n", 1)[0])


def _zfs_partition(disk: Disk) -> gpt.Partition | None:
    partitions = gpt.read_table(disk.path) or []
    return next((p for p in partitions if p.type_guid == gpt.SOLARIS_ZFS), None)


def zfs_members(disk: Disk) -> list[dict]:
    record = read_record(disk.path)
    partition = _zfs_partition(disk)
    if record is None or partition is None:
        return []
    return [{"name": f"{disk.name}{partition.number}", "pool": record["pool"]}]
