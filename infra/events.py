"""How long work reports progress: the CLI shows it with rich, tests record it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Reporter:
    """Default: silent. Subclasses show steps and waits."""

    def step(self, message: str) -> None:
        """A change made (or about to be made)."""

    def note(self, message: str) -> None:
        """Something worth saying that changes nothing."""

    def retrying(self, what: str, seconds: float, why: str) -> None:
        """A request is tried again in `seconds` after `why` (a 429, a 503...)."""

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        yield

    def progress(self, what: str, elapsed: float, status: str) -> None:
        """A long wait goes on (infra/wait.py): `elapsed` wall seconds so far."""


class RecordingReporter(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(f"step: {message}")

    def note(self, message: str) -> None:
        self.lines.append(f"note: {message}")

    def retrying(self, what: str, seconds: float, why: str) -> None:
        self.lines.append(f"retry: {what} in {seconds:.1f} s after {why}")

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        self.lines.append(f"wait: {what}")
        yield

    def progress(self, what: str, elapsed: float, status: str) -> None:
        self.lines.append(f"still waiting: {what}" + (f" ({status})" if status else ""))
