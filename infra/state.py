"""The state directory: 0700, with 0600 files. It remembers what a run cannot read
back from the account (DNS records and domains carry no tags), and the run id.

A read-only one (`check`, the existing target) is read if it is there and never
created or written: pins and generated secrets then live for the run only."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

DEFAULT_ROOT = Path(".truenas-site")


class ReadOnlyState(RuntimeError):
    """Something tried to write a read-only state directory (a bug: say which)."""


class StateDir:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not read_only:
            self.path.mkdir(parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)
        self._ledger_path = self.path / "ledger.json"

    @classmethod
    def for_site(cls, site_name: str, root: Path | None = None) -> StateDir:
        return cls((root or DEFAULT_ROOT) / site_name)

    def _read(self) -> dict:
        try:
            return json.loads(self._ledger_path.read_text())
        except FileNotFoundError:
            return {}

    def _write(self, data: dict) -> None:
        if self.read_only:
            raise ReadOnlyState(f"{self.path} is read-only in this run")
        temporary = self._ledger_path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(temporary, self._ledger_path)

    def run_id(self) -> str:
        data = self._read()
        if "run_id" not in data and self.read_only:
            return "read-only"
        if "run_id" not in data:
            data["run_id"] = secrets.token_hex(4)
            self._write(data)
        return data["run_id"]

    def record_created(self, kind: str, key: str, value: object = True) -> None:
        data = self._read()
        data.setdefault(kind, {})[key] = value
        self._write(data)

    def forget(self, kind: str, key: str) -> None:
        data = self._read()
        data.get(kind, {}).pop(key, None)
        self._write(data)

    def created(self, kind: str) -> dict:
        return dict(self._read().get(kind, {}))
