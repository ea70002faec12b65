"""Fault rules set through the admin API: fail the next N matching requests.

`mode="before"` answers with the error instead of doing the work; `mode="after"`
does the work and then answers with the error, which is what makes a retried
POST dangerous (a gateway 5xx after the droplet was really created).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class FaultRule:
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int
    mode: str = "before"
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in ("*", method.upper())
            and self.path.fullmatch(path) is not None
        )


class FaultPlan:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, method: str, path: str, status: int, count: int = 1,
            mode: str = "before", retry_after: int | None = None) -> FaultRule:
        if mode not in ("before", "after"):
            raise ValueError("mode must be 'before' or 'after'")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status")
        if count < 1:
            raise ValueError("count must be at least 1")
        rule = FaultRule(method.upper(), re.compile(path), status, count, mode, retry_after)
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(method, path):
                rule.remaining -= 1
                return rule
        return None

    def clear(self) -> None:
        self.rules.clear()
