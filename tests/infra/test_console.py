"""The CLI's output (infra/console.py): text shown as typed; waits and retries say so
in a log (no terminal) too."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from infra import console as console_module
from infra.console import RichReporter, clean, safe


def _log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_markup_and_control_characters_are_shown_as_typed() -> None:
    con, out = _log_console()
    reporter = RichReporter(con)
    reporter.step("create domain [/x]probe.test\x1b[31m")
    reporter.note("[bold]not bold[/bold]")
    text = out.getvalue()
    assert "[/x]probe.test\\x1b[31m" in text
    assert "[bold]not bold[/bold]" in text
    assert "\x1b" not in text
    assert clean("a\tb\nc\x00") == "a\tb\nc\\x00"
    assert safe("[tls]") == "\\[tls]"


def test_a_long_wait_says_it_is_still_waiting_in_a_log(monkeypatch) -> None:
    monkeypatch.setattr(console_module, "STILL_WAITING_SECONDS", 0.01)
    con, out = _log_console()
    done = threading.Event()
    with RichReporter(con).waiting("droplet x to boot"):
        done.wait(0.1)
    text = out.getvalue()
    assert "waiting for droplet x to boot" in text
    assert "still waiting for droplet x to boot" in text
    assert "✓ droplet x to boot" in text


def test_a_retry_says_when_and_why() -> None:
    con, out = _log_console()
    RichReporter(con).retrying("create volume v", 2.0, "429 too_many_requests")
    assert "create volume v: retrying in 2.0 s after 429 too_many_requests" in out.getvalue()
