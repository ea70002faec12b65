"""The one waiter (infra/wait.py): bounded, says what it waited for, shows long waits."""

from __future__ import annotations

import pytest

from infra import wait
from infra.errors import WaitTimeout
from infra.events import RecordingReporter
from infra.target import Timing
from infra.wait import Pending, wait_for

# FAST times out at once, for the tests that wait for a deadline; ROOMY never does in
# these tests (they end after a few polls), so a machine under load cannot fail them.
FAST = Timing(poll_interval=0.001, time_scale=1.0, min_deadline=0.05)
ROOMY = Timing(poll_interval=0.001, time_scale=1.0, min_deadline=60.0)


def test_a_check_done_at_once_is_no_wait_at_all() -> None:
    reporter = RecordingReporter()
    assert wait_for("nothing", lambda: 0, FAST, 0.0, reporter=reporter) == 0
    assert reporter.lines == []   # a falsy result is a result: only Pending waits


def test_the_check_is_polled_until_done_and_the_wait_is_shown() -> None:
    answers = iter([Pending("booting"), Pending("booting"), None])
    reporter = RecordingReporter()
    assert wait_for("droplet a to boot", lambda: next(answers), ROOMY, 0.0,
                    reporter=reporter) is None
    assert reporter.lines == ["wait: droplet a to boot"]


def test_the_deadline_names_what_how_long_and_the_last_status() -> None:
    with pytest.raises(WaitTimeout) as timed_out:
        wait_for("volume b to attach", lambda: Pending("action in-progress"), FAST, 0.0)
    message = str(timed_out.value)
    assert message.startswith("gave up waiting for volume b to attach after 0.1 s")
    assert message.endswith("; action in-progress")


def test_a_caller_may_raise_its_own_error_at_the_deadline() -> None:
    def refused(limit: float, status: str) -> Exception:
        return RuntimeError(f"{status} after {limit:g} s")

    with pytest.raises(RuntimeError, match="still pending after 0.05 s"):
        wait_for("x", lambda: Pending("still pending"), FAST, 0.0, timeout=refused)


def test_an_error_in_the_check_ends_the_wait() -> None:
    def broken() -> Pending:
        raise ValueError("the import failed")

    with pytest.raises(ValueError, match="import failed"):
        wait_for("x", broken, FAST, 3600.0)


def test_a_long_wait_reports_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wait, "PROGRESS_SECONDS", 0.0)
    answers = iter([Pending("40%"), Pending("70%"), Pending("90%"), "done"])
    reporter = RecordingReporter()
    assert wait_for("scrub of pool tank", lambda: next(answers), ROOMY, 0.0,
                    reporter=reporter) == "done"
    assert reporter.lines[0] == "wait: scrub of pool tank"
    assert "still waiting: scrub of pool tank (40%)" in reporter.lines


def test_the_deadline_scales_with_the_target() -> None:
    slow = Timing(poll_interval=0.001, time_scale=0.0001, min_deadline=0.0)
    polls = []

    def never() -> Pending:
        polls.append(1)
        return Pending()

    with pytest.raises(WaitTimeout, match=r"after 0\.1 s"):
        wait_for("x", never, slow, 1000.0)   # 1000 real-world seconds on a fast target
    assert len(polls) > 1
