"""A wrapper that keeps a secret out of reprs, logs and exception messages, and the
one reader and writer of files that hold secrets (mode 0600: readable by no one else)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from infra.errors import SiteFileError


class PrivateFileProblem(Exception):
    """A file meant to hold a secret cannot be used; the message names the path."""


def read_private_file(path: Path) -> str:
    """The text of a file that holds a secret: PrivateFileProblem when it cannot be read
    or when others may read it (a key or password shared with the machine is spent)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise PrivateFileProblem(f"cannot read {path} ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PrivateFileProblem(f"{path} is readable by others; chmod 600 it")
    return text


def write_private_file(path: Path, data: str | bytes) -> Path:
    """Write `data` to `path` 0600, atomically: a crash leaves the old file or the new
    one, never a part, and the file is never readable by others, even for a moment."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    os.replace(temporary, path)
    return path


def read_site_secret(field: str, name: str, site_file_dir: Path | None) -> str:
    """The secret in the file the site file names in `field` (relative to the site
    file's directory), stripped; SiteFileError naming the field when it cannot be used."""
    path = Path(name)
    if not path.is_absolute() and site_file_dir is not None:
        path = site_file_dir / path
    try:
        text = read_private_file(path).strip()
    except PrivateFileProblem as problem:
        raise SiteFileError([f"{field}: {problem}"]) from None
    if not text:
        raise SiteFileError([f"{field}: {path} is empty"])
    return text


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("a secret cannot be empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
