"""One bounded waiter: every wait in infra/ polls through `wait_for`.

A wait names what it awaits and a check. The check returns `Pending(status)` while
the thing is not there yet (the status says how far it got) and anything else once
it is: that value is the wait's result. The check runs at once, then every
`timing.poll_interval`, until `timing.deadline(real_seconds)` has passed (deadlines
are written in real-world seconds and scaled onto the target, infra/target.py);
then `WaitTimeout` (or the caller's own error) names what, how long, and the last
status. An exception from the check ends the wait with that exception.

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
    with reporter.waiting(what):
        while True:
            now = time.monotonic()
            if now > deadline:
                if timeout is not None:
                    raise timeout(limit, result.status)
                detail = f"; {result.status}" if result.status else ""
                raise WaitTimeout(f"gave up waiting for {what} after {limit:.1f} s{detail}")
            if now >= next_progress:
                reporter.progress(what, now - started, result.status)
                next_progress = now + PROGRESS_SECONDS
            time.sleep(max(0.0, min(timing.poll_interval, deadline - now)))
            result = check()
            if not isinstance(result, Pending):
                return result
