"""The disks a node sees: its boot disk and the hot-plugged DigitalOcean volumes.

Facts followed (reference/truenas-api.md §4 disk.query and §7):
- a droplet's own disk is a virtio disk, `vda`; it holds the boot pool and is
  never offered for a data pool;
- DigitalOcean volumes appear as SCSI disks `/dev/sd*`; Linux hands out the lowest
  free `sd` name, so names are assigned in plug order and a name is never reused
  while its disk is plugged (a name freed by an unplug is reused, as on Linux);
- the serial middleware reads is the volume name, with no WWN/LUN id, so the
  identifier is `{serial}<volume-name>` (utils/disks.py identifier order);
- entry fields per disk.query.json (DiskEntry).
Unknown and chosen: `model` "Volume" for volumes (what `lsblk` shows for a DO
volume, not checked through middleware), bus "VIRTIO" for vda, the boot disk size.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

BOOT_POOL = "boot-pool"
BOOT_DISK_BYTES = 32 * 2**30   # the TrueNAS image's disk; the droplet's real size is unknown here


def sd_name(index: int) -> str:
    """Linux's sd naming: sda..sdz, sdaa..sdaz, sdba..."""
    letters = string.ascii_lowercase
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = letters[rest] + name
    return "sd" + name


@dataclass
class Disk:
    name: str
    serial: str
    size: int
    backing_dir: Path | None     # None for the boot disk (the droplet's own disk)
    number: int
    description: str = ""
    boot: bool = False

    @property
    def identifier(self) -> str:
        return f"{{serial}}{self.serial}"

    def to_entry(self, pool: str | None, zfs_guid: str | None) -> dict:
        return {
            "identifier": self.identifier,
            "name": self.name,
            "subsystem": "VIRTIO" if self.boot else "SCSI",
            "number": self.number,
            "serial": self.serial,
            "lunid": None,
            "size": self.size,
            "description": self.description,
            "transfermode": "Auto",
            "hddstandby": "ALWAYS ON",
            "advpowermgmt": "DISABLED",
            "expiretime": None,
            "model": None if self.boot else "Volume",
            "rotationrate": None,
            "type": "SSD",
            "zfs_guid": zfs_guid,
            "bus": "VIRTIO" if self.boot else "SCSI",
            "devname": self.name,
            "enclosure": None,
            "pool": pool,
            "passwd": "",
            "kmip_uid": None,
        }


class DiskTable:
    """Plugged disks by serial; sd names handed out lowest-free-first."""

    def __init__(self, boot_serial: str) -> None:
        self.boot = Disk(name="vda", serial=boot_serial, size=BOOT_DISK_BYTES,
                         backing_dir=None, number=253 * 256, boot=True)
        self.by_serial: dict[str, Disk] = {}

    def all(self) -> list[Disk]:
        return [self.boot, *sorted(self.by_serial.values(), key=lambda d: (len(d.name), d.name))]

    def plug(self, serial: str, size_bytes: int, backing_dir: Path) -> Disk:
        existing = self.by_serial.get(serial)
        if existing is not None:
            if Path(existing.backing_dir) == Path(backing_dir):
                return existing
            raise ValueError(f"a disk with serial {serial} is already plugged")
        used = {disk.name for disk in self.by_serial.values()}
        index = 0
        while sd_name(index) in used:
            index += 1
        disk = Disk(name=sd_name(index), serial=serial, size=int(size_bytes),
                    backing_dir=Path(backing_dir), number=8 * 256 + 16 * index)
        self.by_serial[serial] = disk
        return disk

    def unplug(self, serial: str) -> Disk | None:
        return self.by_serial.pop(serial, None)

    def by_name(self, name: str) -> Disk | None:
        name = name.removeprefix("/dev/")
        return next((d for d in self.all() if d.name == name), None)

    def by_identifier(self, identifier: str) -> Disk | None:
        return next((d for d in self.all() if d.identifier == identifier), None)
