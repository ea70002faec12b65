"""What a run reports: the changes made, the requests sent, how long it took."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from infra.digitalocean import RequestLog
from infra.truenas.calllog import CallLog


@dataclass
class RunReport:
    command: str
    site: str
    target: str
    changes: list[str] = field(default_factory=list)
    resources: dict = field(default_factory=dict)
    requests_total: int = 0
    requests_mutating: int = 0
    truenas_calls: int = 0
    truenas_mutating: int = 0
    wall_seconds: float = 0.0
    # `up`: the cost estimate (infra/cost.py CostEstimate.to_dict); `down`: the hours
    # the droplets it deleted had existed, summed (what DigitalOcean bills, before rounding).
    cost: dict | None = None
    droplet_hours: float | None = None

    def count(self, log: RequestLog, node_log: CallLog | None = None) -> None:
        self.requests_total = log.total
        self.requests_mutating = log.mutating
        if node_log is not None:
            self.truenas_calls = node_log.total
            self.truenas_mutating = node_log.mutating

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Finding:
    requirement: str
    ok: bool
    detail: str = ""
    # Not checked at all (e.g. cloud findings without a DigitalOcean token): not a
    # failure, and never shown as a pass.
    skipped: bool = False


@dataclass
class CheckReport:
    site: str
    target: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, requirement: str, ok: bool, detail: str = "") -> None:
        self.findings.append(Finding(requirement, ok, detail))

    def skip(self, requirement: str, reason: str) -> None:
        self.findings.append(Finding(requirement, True, reason, skipped=True))

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def to_dict(self) -> dict:
        return {"site": self.site, "target": self.target, "ok": self.ok,
                "findings": [asdict(f) for f in self.findings]}
