"""Read a disk image's GPT (UEFI 2.10 §5.3) and judge it against the real installer's
layout: BIOS boot, EFI system, ZFS (truenas-installer `stable/goldeye`,
`truenas_installer/install.py` `format_disk`: sgdisk types EF02, EF00, BF01)."""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
BIOS_BOOT = uuid.UUID("21686148-6449-6E6F-744E-656564454649")
EFI_SYSTEM = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
SOLARIS_ZFS = uuid.UUID("6A898CC3-1DD2-11B2-99A6-080020736631")
EXPECTED = ((1, BIOS_BOOT, "BIOS boot"), (2, EFI_SYSTEM, "EFI system"), (3, SOLARIS_ZFS, "ZFS"))
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")


@dataclass(frozen=True)
class Partition:
    number: int
    first_lba: int
    last_lba: int
    type_guid: uuid.UUID


def read_partitions(path: Path) -> list[Partition] | None:
    """The primary GPT's partitions, or None when there is no valid GPT."""
    with open(path, "rb") as disk:
        disk.seek(SECTOR)
        header = disk.read(_HEADER.size)
        if len(header) < _HEADER.size or header[:8] != b"EFI PART":
            return None
        fields = _HEADER.unpack(header)
        if zlib.crc32(header[:16] + bytes(4) + header[20:]) != fields[3]:
            return None
        entries_lba, count, size, entries_crc = fields[10:14]
        disk.seek(entries_lba * SECTOR)
        entries = disk.read(count * size)
    if size < _ENTRY.size or zlib.crc32(entries) != entries_crc:
        return None
    partitions = []
    for index in range(count):
        kind, _, first, last, _, _ = _ENTRY.unpack_from(entries, index * size)
        if kind != bytes(16):
            partitions.append(Partition(index + 1, first, last, uuid.UUID(bytes_le=kind)))
    return partitions


def layout_problems(path: Path) -> list[str]:
    """What differs from the installer's three partitions (empty when it matches)."""
    partitions = read_partitions(path)
    if partitions is None:
        return ["the disk has no valid GPT: the installer did not write it"]
    by_number = {p.number: p for p in partitions}
    problems = []
    for number, kind, what in EXPECTED:
        found = by_number.get(number)
        if found is None or found.type_guid != kind:
            problems.append(f"partition {number} is not the installer's {what} partition")
    return problems
