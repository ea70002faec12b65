"""Names the world's DNS answers outside the fake account's zones: what the rest of
the internet's DNS would say about a host the account does not hold, such as the
public names of a node someone runs at home (fakes/truenas/fleet.py `boot_own_node`)
at their own registrar. Only A records, set and removed through the admin API; a
name set here is answered authoritatively, like a zone of its own."""

from __future__ import annotations

import threading


class OutsideNames:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._addresses: dict[str, str] = {}

    def set(self, name: str, address: str) -> None:
        with self._lock:
            self._addresses[name.lower().rstrip(".")] = address

    def remove(self, name: str) -> None:
        with self._lock:
            self._addresses.pop(name.lower().rstrip("."), None)

    def address(self, name: str) -> str | None:
        with self._lock:
            return self._addresses.get(name.lower().rstrip("."))
