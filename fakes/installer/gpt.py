"""The disk layout the real installer makes, written and read as GPT.

truenas/truenas-installer `stable/goldeye` (commit f66c7830bc51),
`truenas_installer/install.py` `format_disk`, runs on the whole disk:

    sgdisk -a4096 -n1:0:+1024K -t1:EF02 -A1:set:2   BIOS boot, legacy-BIOS-bootable bit
    sgdisk -n2:0:+524288K -t2:EF00                  EFI system partition, 512 MiB
    sgdisk -n3:0:0 -t3:BF01                         the rest: the ZFS boot pool

and with `set_pmbr`, `parted -s <disk> disk_set pmbr_boot on` (the protective MBR's
entry marked active). The sectors below are what sgdisk 1.0.9 (Debian 12) makes of
those commands on a 512-byte-sector disk (measured: p1 4096-6143, p2 6144-1054719, p3
from 1054720 to the last usable sector, no partition names); the type GUIDs are
sgdisk's for EF02, EF00 and BF01. GPT itself follows UEFI 2.10 §5.3.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
ENTRIES = 128
ENTRY_SIZE = 128
ENTRY_SECTORS = ENTRIES * ENTRY_SIZE // SECTOR       # 32
HEADER_SIZE = 92
SIGNATURE = b"EFI PART"
REVISION = 0x00010000

BIOS_BOOT = uuid.UUID("21686148-6449-6E6F-744E-656564454649")    # sgdisk EF02
EFI_SYSTEM = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")   # sgdisk EF00
SOLARIS_ZFS = uuid.UUID("6A898CC3-1DD2-11B2-99A6-080020736631")  # sgdisk BF01
LEGACY_BIOS_BOOTABLE = 1 << 2                                     # -A1:set:2


@dataclass(frozen=True)
class Partition:
    number: int
    first_lba: int
    last_lba: int
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    attributes: int = 0
    name: str = ""

    @property
    def sectors(self) -> int:
        return self.last_lba - self.first_lba + 1


def _align_up(lba: int, alignment: int) -> int:
    return -(-lba // alignment) * alignment


def installer_layout(size_bytes: int) -> list[Partition]:
    """The three partitions `format_disk` makes on a disk of `size_bytes`."""
    total = size_bytes // SECTOR
    first_usable, last_usable = 2 + ENTRY_SECTORS, total - 2 - ENTRY_SECTORS
    bios_first = _align_up(first_usable, 4096)                 # -a4096
    bios_last = bios_first + 1024 * 1024 // SECTOR - 1         # +1024K
    efi_first = _align_up(bios_last + 1, 2048)                 # sgdisk's default 1 MiB
    efi_last = efi_first + 524288 * 1024 // SECTOR - 1         # +524288K
    zfs_first = _align_up(efi_last + 1, 2048)
    if zfs_first >= last_usable:
        raise ValueError(f"a disk of {size_bytes} bytes is too small for the layout")
    return [
        Partition(1, bios_first, bios_last, BIOS_BOOT, uuid.uuid4(), LEGACY_BIOS_BOOTABLE),
        Partition(2, efi_first, efi_last, EFI_SYSTEM, uuid.uuid4()),
        Partition(3, zfs_first, last_usable, SOLARIS_ZFS, uuid.uuid4()),
    ]


def _entry(partition: Partition) -> bytes:
    name = partition.name.encode("utf-16-le").ljust(72, b"\0")
    return struct.pack("<16s16sQQQ72s", partition.type_guid.bytes_le,
                       partition.unique_guid.bytes_le, partition.first_lba,
                       partition.last_lba, partition.attributes, name)


def _header(current: int, backup: int, entries_lba: int, total: int, disk_guid: uuid.UUID,
            entries_crc: int) -> bytes:
    def pack(crc: int) -> bytes:
        return struct.pack("<8sIIIIQQQQ16sQIII", SIGNATURE, REVISION, HEADER_SIZE, crc, 0,
                           current, backup, 2 + ENTRY_SECTORS, total - 2 - ENTRY_SECTORS,
                           disk_guid.bytes_le, entries_lba, ENTRIES, ENTRY_SIZE, entries_crc)
    return pack(zlib.crc32(pack(0))).ljust(SECTOR, b"\0")


def _protective_mbr(total: int, boot: bool) -> bytes:
    mbr = bytearray(SECTOR)
    entry = struct.pack("<B3sB3sII", 0x80 if boot else 0, b"\x00\x02\x00", 0xEE,
                        b"\xff\xff\xff", 1, min(total - 1, 0xFFFFFFFF))
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def write_table(path: Path, partitions: list[Partition], *, pmbr_boot: bool = False) -> None:
    """Write a protective MBR, both GPT headers and both entry arrays (in place: the
    file keeps its size and its holes)."""
    size = os.path.getsize(path)
    total = size // SECTOR
    entries = b"".join(_entry(p) for p in partitions).ljust(ENTRIES * ENTRY_SIZE, b"\0")
    crc = zlib.crc32(entries)
    disk_guid = uuid.uuid4()
    backup_entries = total - 1 - ENTRY_SECTORS
    with open(path, "r+b") as disk:
        disk.seek(0)
        disk.write(_protective_mbr(total, pmbr_boot))
        disk.write(_header(1, total - 1, 2, total, disk_guid, crc))
        disk.write(entries)
        disk.seek(backup_entries * SECTOR)
        disk.write(entries)
        disk.write(_header(total - 1, 1, backup_entries, total, disk_guid, crc))


def read_table(path: Path) -> list[Partition] | None:
    """The partitions of a disk's primary GPT, or None when it has no valid one."""
    with open(path, "rb") as disk:
        disk.seek(SECTOR)
        header = disk.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE or header[:8] != SIGNATURE:
            return None
        fields = struct.unpack("<8sIIIIQQQQ16sQIII", header)
        crc, entries_lba, count, entry_size, entries_crc = (fields[3], fields[10], fields[11],
                                                            fields[12], fields[13])
        if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:]) != crc:
            return None
        disk.seek(entries_lba * SECTOR)
        entries = disk.read(count * entry_size)
    if zlib.crc32(entries) != entries_crc:
        return None
    found = []
    for index in range(count):
        raw = entries[index * entry_size:index * entry_size + ENTRY_SIZE]
        type_bytes, unique, first, last, attributes, name = struct.unpack("<16s16sQQQ72s", raw)
        if type_bytes == bytes(16):
            continue
        found.append(Partition(index + 1, first, last, uuid.UUID(bytes_le=type_bytes),
                               uuid.UUID(bytes_le=unique), attributes,
                               name.decode("utf-16-le").rstrip("\0")))
    return found
