"""The captured disk as a file DigitalOcean imports, within its custom image limits.

DigitalOcean's "Custom Images" limits (reference/digitalocean-api.md, Custom images;
reference/truenas-api.md §7): raw (.img), qcow2, vhdx, vdi or vmdk, optionally gzip or
bzip2 compressed (not xz), at most 100 GB uncompressed, fetched from a URL whose host
answers HEAD. Two outputs here: qcow2 with compressed clusters (`qemu-img convert -c
-O qcow2`; DigitalOcean reads it as is) and raw + gzip (`.img.gz`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError
from infra.image.machine import QEMU_IMG

MAX_UNCOMPRESSED_BYTES = 100 * 10**9   # "100 GB": decimal, the stricter reading
FORMATS = {"qcow2": ".qcow2", "raw.gz": ".img.gz"}
CHUNK = 4 * 1024 * 1024


class ImageLimitError(InfraError):
    """The output would not be accepted as a DigitalOcean custom image."""


@dataclass(frozen=True)
class ImageFile:
    path: Path
    format: str
    size_bytes: int
    virtual_bytes: int
    sha256: str


def limit_problems(path: Path, fmt: str, virtual_bytes: int) -> list[str]:
    problems = []
    if fmt not in FORMATS:
        problems.append(f"format {fmt!r} is not one DigitalOcean imports here "
                        f"({', '.join(FORMATS)})")
    elif not path.name.endswith(FORMATS[fmt]):
        problems.append(f"{path.name}: a {fmt} image should be named *{FORMATS[fmt]}")
    if virtual_bytes > MAX_UNCOMPRESSED_BYTES:
        problems.append(f"{virtual_bytes} bytes uncompressed: DigitalOcean takes at most "
                        f"{MAX_UNCOMPRESSED_BYTES} (100 GB)")
    return problems


def qemu_img_info(path: Path) -> dict:
    answer = subprocess.run([QEMU_IMG, "info", "--output=json", str(path)],
                            capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        raise InfraError(f"qemu-img info {path.name} failed: {answer.stderr.strip()}")
    return json.loads(answer.stdout)


def convert(raw: Path, output: Path, fmt: str) -> None:
    """Write `output` from the raw disk; on failure nothing is left at `output`."""
    partial = output.with_name(output.name + ".partial")
    try:
        if fmt == "qcow2":
            answer = subprocess.run([QEMU_IMG, "convert", "-c", "-f", "raw", "-O", "qcow2",
                                     str(raw), str(partial)],
                                    capture_output=True, text=True, check=False)
            if answer.returncode != 0:
                raise InfraError(f"qemu-img convert failed: {answer.stderr.strip()}")
            check = subprocess.run([QEMU_IMG, "check", "-f", "qcow2", str(partial)],
                                   capture_output=True, text=True, check=False)
            if check.returncode != 0:
                raise InfraError(f"qemu-img check of the new image failed: "
                                 f"{(check.stdout + check.stderr).strip()}")
        elif fmt == "raw.gz":
            gzip_file(raw, partial)
        else:
            raise InfraError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def gzip_file(source: Path, target: Path) -> None:
    with open(source, "rb") as reading, gzip.open(target, "wb", compresslevel=6) as writing:
        shutil.copyfileobj(reading, writing, CHUNK)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path, fmt: str, raw_bytes: int) -> ImageFile:
    """Check the written image against the limits and measure it."""
    virtual = raw_bytes if fmt == "raw.gz" else int(qemu_img_info(path)["virtual-size"])
    problems = limit_problems(path, fmt, virtual)
    if problems:
        raise ImageLimitError("; ".join(problems))
    return ImageFile(path, fmt, path.stat().st_size, virtual, sha256_of(path))
