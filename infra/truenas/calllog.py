"""Counts every JSON-RPC call and file transfer sent to a node, by method, so tests
(and the read-only `existing` target) can check what a run changed."""

from __future__ import annotations

import threading
from collections import Counter

# The last part of a method name that only reads (pool.query, system.state, ...).
READ_ONLY_VERBS = frozenset({
    "query", "get_instance", "config", "info", "state", "ready", "ping", "status",
    "details", "get_jobs", "version", "version_short", "boot_id", "choices",
    "get_methods", "get_unused", "list_snapshots", "listdir", "stat", "get",
})
# Session housekeeping: changes nothing on the node.
SESSION_METHODS = frozenset({
    "auth.login_ex", "core.set_options", "core.subscribe", "core.unsubscribe",
    "core.download",
})


def is_mutating(method: str) -> bool:
    """Conservative: anything not known to only read counts as a change."""
    if method in SESSION_METHODS:
        return False
    return method.rsplit(".", 1)[-1] not in READ_ONLY_VERBS


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[str] = []

    def record(self, method: str) -> None:
        with self._lock:
            self.entries.append(method)

    @property
    def total(self) -> int:
        return len(self.entries)

    def count(self, method: str) -> int:
        return self.entries.count(method)

    def by_method(self) -> dict[str, int]:
        return dict(Counter(self.entries))

    @property
    def mutating(self) -> int:
        return sum(1 for method in self.entries if is_mutating(method))

    def mutating_calls(self) -> list[str]:
        return [method for method in self.entries if is_mutating(method)]
