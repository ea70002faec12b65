"""Rich output for the CLI: progress on waits, tables for reports.

Text is printed, never interpreted: every string that comes from a site file, an API
or an exception goes through `safe` (Rich markup escaped, control characters shown as
\\xNN) or into a `Text`, so `[/x]` in a domain shows as typed and an escape sequence
in an API answer cannot drive the terminal. Only the literal markup written here
is markup. Waits and retries print a line on a terminal and in a CI log alike.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from infra.events import Reporter
from infra.report import CheckReport, RunReport

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Without a terminal (CI logs) a long wait says it is still waiting this often.
STILL_WAITING_SECONDS = 30.0


def clean(text: object) -> str:
    """`text` with control characters (but newline and tab) shown as \\xNN."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def safe(text: object) -> str:
    """`text` ready to sit inside markup: cleaned, and its own markup escaped."""
    return escape(clean(text))


class RichReporter(Reporter):
    def __init__(self, console: Console) -> None:
        self.console = console

    def step(self, message: str) -> None:
        self.console.print(f"[bold cyan]→[/] {safe(message)}", highlight=False)

    def note(self, message: str) -> None:
        self.console.print(f"[dim]·[/] {safe(message)}", highlight=False)

    def retrying(self, what: str, seconds: float, why: str) -> None:
        self.console.print(f"[yellow]↻[/] {safe(what)}: retrying in {seconds:.1f} s after "
                           f"{safe(why)}", highlight=False)

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        if self.console.is_terminal:
            columns = (SpinnerColumn(), TextColumn("waiting for {task.description}"),
                       TimeElapsedColumn())
            with Progress(*columns, console=self.console, transient=True) as progress:
                progress.add_task(safe(what), total=None)
                yield
        else:
            # No spinner in a log: a line now, and one every STILL_WAITING_SECONDS.
            self.console.print(f"[dim]…[/] waiting for {safe(what)}", highlight=False)
            done = threading.Event()

            def remind() -> None:
                while not done.wait(STILL_WAITING_SECONDS):
                    self.console.print(f"[dim]…[/] still waiting for {safe(what)} "
                                       f"({time.monotonic() - started:.0f} s)", highlight=False)

            reminder = threading.Thread(target=remind, daemon=True)
            reminder.start()
            try:
                yield
            finally:
                done.set()
                reminder.join()
        self.console.print(f"[green]✓[/] {safe(what)} "
                           f"[dim]({time.monotonic() - started:.1f} s)[/]", highlight=False)

    def progress(self, what: str, elapsed: float, status: str) -> None:
        # Without a terminal, `waiting`'s reminder already prints a line every
        # STILL_WAITING_SECONDS; above a live spinner, say how far the wait got.
        if self.console.is_terminal and status:
            self.console.print(f"[dim]…[/] still waiting for {safe(what)} ({elapsed:.0f} s: "
                               f"{safe(status)})", highlight=False)


def check_table(report: CheckReport) -> Table:
    table = Table(title=Text(clean(f"check: site {report.site} on {report.target}")))
    table.add_column("requirement")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for finding in report.findings:
        result = "[green]pass[/]" if finding.ok else "[bold red]FAIL[/]"
        if finding.skipped:
            result = "[yellow]skipped[/]"
        table.add_row(Text(clean(finding.requirement)), result, Text(clean(finding.detail)))
    return table


def run_table(report: RunReport) -> Table:
    table = Table(title=Text(clean(f"{report.command}: site {report.site} on {report.target}")))
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("changes", Text(clean("\n".join(report.changes) or "none")))
    table.add_row("DigitalOcean requests",
                  f"{report.requests_total} ({report.requests_mutating} mutating)")
    table.add_row("TrueNAS calls", f"{report.truenas_calls} ({report.truenas_mutating} mutating)")
    table.add_row("wall time", f"{report.wall_seconds:.2f} s")
    if report.cost is not None:
        items = ", ".join(f"{i['what']} ${i['usd']:.2f}" for i in report.cost["items"])
        table.add_row("estimated cost", Text(clean(f"${report.cost['total_usd']:.2f} for "
                                                   f"{report.cost['hours']:g} h ({items})")))
    if report.droplet_hours is not None:
        table.add_row("droplet-hours", f"{report.droplet_hours:.2f}")
    for key, value in report.resources.items():
        table.add_row(Text(clean(key)), Text(clean(value)))
    return table
