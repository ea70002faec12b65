"""The fake world's clock: `run_due(until)` fires nothing due after `until`, and
`next_due` names the earliest event still to fire (what lets the fake DigitalOcean
answer a read on its event loop only when no event would fire there)."""

from __future__ import annotations

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
