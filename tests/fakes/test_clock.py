"""The fake world's clock: `run_due(until)` fires nothing due after `until`, and
`next_due` names the earliest event still to fire (what lets the fake DigitalOcean
answer a read on its event loop only when no event would fire there), and the ticker
that sleeps until something is due still fires every event, woken by whatever is
scheduled earlier while it sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.clock import VirtualClock


def test_run_due_until_fires_only_what_was_due_by_then() -> None:
    clock = VirtualClock(speed=1.0, start=1_000_000.0)
    fired: list[str] = []
    clock.call_later(10, lambda: fired.append("early"))
    clock.call_later(20, lambda: fired.append("late"))
    with clock._lock:
        clock._offset += 30          # the time passes without anyone firing
    assert clock.run_due(until=clock.now() - 15) == 1
    assert fired == ["early"]
    assert clock.run_due() == 1
    assert fired == ["early", "late"]


def test_next_due_skips_cancelled_events() -> None:
    clock = VirtualClock(speed=1.0, start=1_000_000.0)
    assert clock.next_due() is None
    first = clock.call_at(1_000_100.0, lambda: None)
    clock.call_at(1_000_200.0, lambda: None)
    assert clock.next_due() == 1_000_100.0
    first.cancelled = True
    assert clock.next_due() == 1_000_200.0


@contextmanager
def ticking(clock: VirtualClock) -> Iterator[None]:
    """The clock's ticker running as the world runs it (fakes/world.py)."""
    stop = threading.Event()
    thread = threading.Thread(target=clock.tick_forever,
                              args=(stop, threading.RLock(), 0.01), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        clock.wakeup.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_an_event_scheduled_while_the_ticker_sleeps_fires() -> None:
    # at one virtual second per wall second the ticker sleeps an hour for the first
    # event, and forever before it: the later calls must wake it
    clock = VirtualClock(speed=1.0)
    fired = threading.Event()
    with ticking(clock):
        clock.call_later(3600, lambda: None)
        time.sleep(0.05)                    # the ticker is asleep now
        clock.call_later(0.05, fired.set)
        assert fired.wait(10)


def test_a_jump_of_the_clock_wakes_the_ticker() -> None:
    clock = VirtualClock(speed=1.0)
    fired: list[str] = []
    with ticking(clock):
        clock.call_later(3600, lambda: fired.append("later"))
        time.sleep(0.05)
        with clock._lock:
            clock._offset += 3600           # a jump nobody fires for...
        clock.wakeup.set()                  # ...but announces, as advance() does
        deadline = time.monotonic() + 10
        while not fired and time.monotonic() < deadline:
            time.sleep(0.01)
    assert fired == ["later"]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=20), min_size=1, max_size=8))
def test_the_ticker_fires_every_event_in_due_order(delays: list[float]) -> None:
    """Whatever the schedule, each event fires (with nobody else reading the clock),
    and in the order of its due time."""
    clock = VirtualClock(speed=500.0)       # 20 virtual seconds: 40 ms of wall time
    fired: list[float] = []
    done = threading.Event()
    with ticking(clock):
        dues = []
        for delay in delays:
            event = clock.call_later(delay, lambda: (fired.append(clock.now()),
                                                     len(fired) == len(delays)
                                                     and done.set()))
            dues.append(event.due)
            time.sleep(0.001)
        assert done.wait(10)
    assert fired == sorted(dues)
