"""A virtual clock that runs faster than wall time, with scheduled events.

Real services take time (a droplet boots in tens of seconds, an image imports in
minutes). The fakes model those durations in virtual seconds; the clock maps them
onto wall time at `speed` virtual seconds per wall second, so scenarios finish
quickly while the virtual timeline stays realistic. Events fire lazily whenever
anyone reads the clock (`run_due`) and from the world's ticker thread (`tick_forever`),
which sleeps until the next event is due by wall time, or until an earlier event is
scheduled or the clock is advanced (`wakeup`): an idle world costs no CPU, and an
event fires no later than its due time plus a tick.

A jump of weeks must not cost what replaying it one event at a time costs: a
callback may ask `quiet_until()` how far the clock will run before anything else
happens (the next other event, or the end of the jump) and do its own periodic
work up to there at once, with the end state replaying it would leave
(fakes/truenas/models/snapshot_tasks.py; the healthchecks of healthy containers,
fakes/truenas/apps/containers.py). `VirtualClock(coalesce=False)` turns
that off: every callback then sees a quiet span of nothing, the slow path the
property tests compare against.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class VirtualClock:
    def __init__(self, speed: float = 500.0, start: float | None = None,
                 coalesce: bool = True) -> None:
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
        self.coalesce = coalesce
        self.fired = 0      # events fired since the clock started (bench/bench_suite.py)
        # Set when the ticker's sleep may be too long: an event scheduled before the
        # earliest one, or a jump of the clock.
        self.wakeup = threading.Event()

    def now(self) -> float:
        """Virtual time as a Unix timestamp."""
        firing = self._firing_at
        if firing is not None and firing[0] == threading.get_ident():
            return firing[1]
        return self.horizon()

    def horizon(self) -> float:
        """Where the clock is really heading: now, ignoring a firing's own due time."""
        elapsed = (time.monotonic() - self._start_wall) * self.speed
        return self._start_virtual + elapsed + self._offset

    def quiet_until(self) -> float:
        """From inside a firing callback: how far virtual time runs before anything
        else is due. A periodic callback may do its own work for every due time
        strictly before this at once (nothing else can happen in between, and the
        clock's lock is held); outside a firing, or without coalescing, it is now."""
        with self._lock:
            firing = self._firing_at
            if firing is None or firing[0] != threading.get_ident():
                return self.now()
            if not self.coalesce:
                return firing[1]
            while self._events and self._events[0].cancelled:
                heapq.heappop(self._events)
            # what falls due up to the horizon fires in this jump...
            until = math.nextafter(self.horizon(), math.inf)
            # ...but strictly before the next event: one due at the same time fires
            # first, being older than anything the callback schedules now
            return min(self._events[0].due, until) if self._events else until

    def now_iso(self) -> str:
        return iso(self.now())

    def advance(self, seconds: float) -> int:
        """Jump virtual time forward (admin API), firing what falls due; returns how
        many events fired."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        self.wakeup.set()
        return self.run_due()

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Event:
        return self.call_at(self.now() + max(0.0, delay), callback)

    def call_at(self, due: float, callback: Callable[[], None]) -> _Event:
        """`callback` at virtual time `due` (at once if that has passed): a coalescing
        callback schedules its next run exactly where the slow path would have."""
        with self._lock:
            event = _Event(max(due, self.now()), next(self._seq), callback)
            heapq.heappush(self._events, event)
            if self._events[0] is event:
                self.wakeup.set()       # the ticker may be sleeping past it
            return event

    def run_due(self, until: float | None = None) -> int:
        """Fire every event whose virtual time has come (and is not after `until`, when
        given); returns how many fired."""
        fired = 0
        with self._lock:
            if self._firing:  # a callback that reads the clock must not re-enter
                return 0
            self._firing = True
            try:
                while self._events and self._events[0].due <= (
                        self.now() if until is None else min(until, self.now())):
                    event = heapq.heappop(self._events)
                    if not event.cancelled:
                        self._firing_at = (threading.get_ident(), event.due)
                        try:
                            event.callback()
                        finally:
                            self._firing_at = None
                        fired += 1
            finally:
                self.fired += fired
                self._firing = False
        return fired

    def next_due(self) -> float | None:
        """When the earliest event still to fire is due (None: nothing is scheduled)."""
        with self._lock:
            while self._events and self._events[0].cancelled:
                heapq.heappop(self._events)
            return self._events[0].due if self._events else None

    def wall_seconds_until_due(self) -> float | None:
        """Wall seconds until the earliest event is due (0: due now; None: nothing
        is scheduled)."""
        due = self.next_due()
        if due is None:
            return None
        return max(0.0, (due - self.horizon()) / self.speed)

    def tick_forever(self, stop: threading.Event, lock: Any, tick: float) -> None:
        """The ticker: fire what is due (under `lock`, the world's), then sleep until
        the next event is due, or `wakeup` is set, or `stop` (set `wakeup` after it).
        An event fires within `tick` wall seconds of its due time, as a ticker that
        woke every `tick` fired it; events due within one tick fire together."""
        while not stop.is_set():
            # cleared before looking: whatever is scheduled from here on wakes us
            self.wakeup.clear()
            with lock:
                self.run_due()
            wait = self.wall_seconds_until_due()
            if wait is not None and wait < tick:
                # due within a tick, or due now but another thread is firing: a tick
                stop.wait(tick)
            else:
                self.wakeup.wait(wait)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for e in self._events if not e.cancelled)


def iso(timestamp: float) -> str:
    """DigitalOcean's timestamp shape: `2020-07-21T18:37:44Z`."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
