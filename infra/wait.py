"""One bounded waiter: every wait in infra/ polls through `wait_for`.

A wait names what it awaits and a check. The check returns `Pending(status)` while
the thing is not there yet (the status says how far it got) and anything else once
it is: that value is the wait's result. The check runs at once, then after
`timing.poll_interval`, and each later pause doubles, up to `max_interval(timing)`:
MAX_POLL_SECONDS real-world seconds scaled onto the target, never below the poll
interval (as terraform's `StateChangeConf` backs off between refreshes:
hashicorp/terraform-plugin-sdk helper/resource/state.go @a1db2af7, doubling to a 10 s
cap; here the first pause is the target's poll interval, the cap longer, since a
DigitalOcean image import takes minutes). It runs until `timing.deadline(real_seconds)`
has passed, with one last check at the deadline (deadlines are written in real-world
seconds and scaled onto the target, infra/target.py); then `WaitTimeout` (or the
caller's own error) names what, how long, and the last status. An exception from the
check ends the wait with that exception.

On a real account (5 s poll interval, 30 s cap) the checks come at about 0, 5, 15,
35, 65, 95, ... s instead of every 5 s: a wait ends at most 25 s later than fixed
polling would end it (a thing ready within 15 s is seen at most 5 s later, within 35 s
at most 15 s later), and a 5-minute image import sends 13 requests instead of 61.

Only a wait that does not end at the first check is shown: `Reporter.waiting` around
it, and every PROGRESS_SECONDS of wall time `Reporter.progress` with the time so far
and the last status, so that output without a terminal (CI logs, cron mail) shows a
long wait too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from infra.errors import WaitTimeout
from infra.events import Reporter
from infra.target import Timing

T = TypeVar("T")

PROGRESS_SECONDS = 30.0   # wall time between two progress lines of one long wait
MAX_POLL_SECONDS = 30.0   # the longest pause between two checks, in real-world seconds


def max_interval(timing: Timing) -> float:
    """The longest pause between two checks on this target."""
    return max(timing.poll_interval, MAX_POLL_SECONDS * timing.time_scale)


@dataclass(frozen=True)
class Pending:
    """What a check answers while the awaited thing is not there yet."""

    status: str = ""


def wait_for(what: str, check: Callable[[], T | Pending], timing: Timing,
             real_seconds: float, *, reporter: Reporter | None = None,
             timeout: Callable[[float, str], Exception] | None = None) -> T:
    """Poll `check` until it returns something other than `Pending`; return that.

    `what` reads after "waiting for" ("droplet alpha-truenas to boot"). `timeout`
    builds the error raised at the deadline from the deadline in seconds and the last
    status (default: WaitTimeout "gave up waiting for <what> after <s> s; <status>").
    """
    limit = timing.deadline(real_seconds)
    deadline = time.monotonic() + limit
    result = check()
    if not isinstance(result, Pending):
        return result
    reporter = reporter or Reporter()
    started = time.monotonic()
    next_progress = started + PROGRESS_SECONDS
    interval, cap = timing.poll_interval, max_interval(timing)
    with reporter.waiting(what):
        while True:
            now = time.monotonic()
            if now >= deadline:
                if timeout is not None:
                    raise timeout(limit, result.status)
                detail = f"; {result.status}" if result.status else ""
                raise WaitTimeout(f"gave up waiting for {what} after {limit:.1f} s{detail}")
            if now >= next_progress:
                reporter.progress(what, now - started, result.status)
                next_progress = now + PROGRESS_SECONDS
            time.sleep(max(0.0, min(interval, deadline - now)))
            interval = min(interval * 2, cap)
            result = check()
            if not isinstance(result, Pending):
                return result
