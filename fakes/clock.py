"""A virtual clock that runs faster than wall time, with scheduled events.

Real services take time (a droplet boots in tens of seconds, an image imports in
minutes). The fakes model those durations in virtual seconds; the clock maps them
onto wall time at `speed` virtual seconds per wall second, so scenarios finish
quickly while the virtual timeline stays realistic. Events fire lazily whenever
anyone reads the clock (`run_due`) and from the world's ticker thread.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class VirtualClock:
    def __init__(self, speed: float = 500.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._start_virtual = time.time() if start is None else start
        self._start_wall = time.monotonic()
        self._offset = 0.0
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self._firing = False
        # While a callback fires, "now" on its thread is the event's due time, so
        # whatever it schedules is timed from when it was due, not from whenever
        # the clock happened to be read (a long jump runs every stage inside it).
        self._firing_at: tuple[int, float] | None = None

    def now(self) -> float:
        """Virtual time as a Unix timestamp."""
        firing = self._firing_at
        if firing is not None and firing[0] == threading.get_ident():
            return firing[1]
        elapsed = (time.monotonic() - self._start_wall) * self.speed
        return self._start_virtual + elapsed + self._offset

    def now_iso(self) -> str:
        return iso(self.now())

    def advance(self, seconds: float) -> None:
        """Jump virtual time forward (admin API), firing what falls due."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        self.run_due()

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Event:
        with self._lock:
            event = _Event(self.now() + max(0.0, delay), next(self._seq), callback)
            heapq.heappush(self._events, event)
            return event

    def run_due(self) -> int:
        """Fire every event whose virtual time has come; returns how many fired."""
        fired = 0
        with self._lock:
            if self._firing:  # a callback that reads the clock must not re-enter
                return 0
            self._firing = True
            try:
                while self._events and self._events[0].due <= self.now():
                    event = heapq.heappop(self._events)
                    if not event.cancelled:
                        self._firing_at = (threading.get_ident(), event.due)
                        try:
                            event.callback()
                        finally:
                            self._firing_at = None
                        fired += 1
            finally:
                self._firing = False
        return fired

    def pending(self) -> int:
        with self._lock:
            return sum(1 for e in self._events if not e.cancelled)


def iso(timestamp: float) -> str:
    """DigitalOcean's timestamp shape: `2020-07-21T18:37:44Z`."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
