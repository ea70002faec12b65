"""Per-token rate limits: 5,000 requests an hour and 250 a minute.

Each request counts against the window on its own timer; every response carries
`ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset` (the epoch when the
oldest counted request expires); a burst over the per-minute limit gets 429 with
`retry-after` (reference/digitalocean-api.md §3). Windows run on the virtual clock, so a
client polling every few wall milliseconds looks like one polling every few
virtual seconds. `retry-after` is converted to wall seconds (at least 1), since
that is what a client will sleep.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from fakes.clock import VirtualClock


@dataclass
class Verdict:
    allowed: bool
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, clock: VirtualClock, per_hour: int = 5000, per_minute: int = 250) -> None:
        self.clock = clock
        self.per_hour = per_hour
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def configure(self, per_hour: int | None = None, per_minute: int | None = None) -> None:
        if per_hour is not None:
            self.per_hour = per_hour
        if per_minute is not None:
            self.per_minute = per_minute

    def hit(self, token: str) -> Verdict:
        now = self.clock.now()
        seen = self._seen.setdefault(token, deque())
        while seen and seen[0] <= now - 3600:
            seen.popleft()
        in_last_minute = sum(1 for t in seen if t > now - 60)
        if len(seen) >= self.per_hour:
            wait = seen[0] + 3600 - now
            return Verdict(False, self._headers(seen, now, retry_after=wait))
        if in_last_minute >= self.per_minute:
            oldest_in_minute = next(t for t in seen if t > now - 60)
            wait = oldest_in_minute + 60 - now
            return Verdict(False, self._headers(seen, now, retry_after=wait))
        seen.append(now)
        return Verdict(True, self._headers(seen, now))

    def _headers(self, seen: deque[float], now: float, retry_after: float | None = None) -> dict:
        reset = (seen[0] if seen else now) + 3600
        headers = {
            "ratelimit-limit": str(self.per_hour),
            "ratelimit-remaining": str(max(0, self.per_hour - len(seen))),
            "ratelimit-reset": str(int(reset)),
        }
        if retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(retry_after / self.clock.speed)))
        return headers
