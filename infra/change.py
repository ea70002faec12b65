"""One change `plan` lists and `up` applies: what, to which resource, and the mutating
requests applying it sends (DigitalOcean "METHOD /v2/path" with `*` for an id, or a
TrueNAS method), so that a run can be held to its plan
(tests/integration/test_up_applies_plan.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    kind: str
    subject: str
    detail: str = ""
    requests: tuple[str, ...] = ()

    def describe(self) -> str:
        text = f"{self.kind.replace('_', ' ')} {self.subject}"
        return f"{text} ({self.detail})" if self.detail else text
