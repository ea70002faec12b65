"""Server events other than jobs, fanned out to the sessions that subscribed.

TrueNAS pushes `collection_update` notifications for subscribed events
(reference/truenas-api.md §1), e.g. `pool.scan` CHANGED with `fields {scan, name}` while a
scrub or resilver runs (§4, `plugins/zfs_/zfs_events.py`). Job events
(`core.get_jobs`) come from the node's JobManager listeners instead; this hub
carries everything else.

A model publishes with `publish(node, "pool.scan", "changed", id=pool_id,
fields={"scan": ..., "name": ...})`; the hub is attached to the node the first
time anyone asks for it, so models need no reference to the protocol adapter.
Listeners are called under the node's lock and must not block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

# (collection, msg "added"|"changed"|"removed", id, fields, extra)
EventListener = Callable[[str, str, Any, Any, dict], None]


class EventHub:
    def __init__(self) -> None:
        self.listeners: list[EventListener] = []

    def add(self, listener: EventListener) -> None:
        self.listeners.append(listener)

    def remove(self, listener: EventListener) -> None:
        # list.remove is atomic under the GIL and send() iterates over a copy, so
        # a closing session may leave without taking the node's lock.
        with contextlib.suppress(ValueError):
            self.listeners.remove(listener)

    def send(self, collection: str, msg: str, id: Any = None, fields: Any = None,
             **extra: Any) -> None:
        for listener in list(self.listeners):
            listener(collection, msg, id, fields, extra)


def hub(node: Any) -> EventHub:
    """The node's event hub (made on first use)."""
    existing = getattr(node, "events", None)
    if isinstance(existing, EventHub):
        return existing
    return node.__dict__.setdefault("events", EventHub())


def publish(node: Any, collection: str, msg: str, id: Any = None, fields: Any = None,
            **extra: Any) -> None:
    hub(node).send(collection, msg, id, fields, **extra)
