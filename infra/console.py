"""Rich output for the CLI: progress on waits, tables for reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.events import Reporter
from infra.report import CheckReport, RunReport


class RichReporter(Reporter):
    def __init__(self, console: Console) -> None:
        self.console = console

    def step(self, message: str) -> None:
        self.console.print(f"[bold cyan]→[/] {message}")

    def note(self, message: str) -> None:
        self.console.print(f"[dim]·[/] {message}")

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        columns = (SpinnerColumn(), TextColumn("waiting for {task.description}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            progress.add_task(what, total=None)
            started = time.monotonic()
            yield
        self.console.print(f"[green]✓[/] {what} [dim]({time.monotonic() - started:.1f} s)[/]")


def check_table(report: CheckReport) -> Table:
    table = Table(title=f"check: site {report.site} on {report.target}")
    table.add_column("requirement")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for finding in report.findings:
        result = "[green]pass[/]" if finding.ok else "[bold red]FAIL[/]"
        if finding.skipped:
            result = "[yellow]skipped[/]"
        table.add_row(finding.requirement, result, finding.detail)
    return table


def run_table(report: RunReport) -> Table:
    table = Table(title=f"{report.command}: site {report.site} on {report.target}")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("changes", "\n".join(report.changes) or "none")
    table.add_row("DigitalOcean requests",
                  f"{report.requests_total} ({report.requests_mutating} mutating)")
    table.add_row("TrueNAS calls", f"{report.truenas_calls} ({report.truenas_mutating} mutating)")
    table.add_row("wall time", f"{report.wall_seconds:.2f} s")
    if report.cost is not None:
        items = ", ".join(f"{i['what']} ${i['usd']:.2f}" for i in report.cost["items"])
        table.add_row("estimated cost", f"${report.cost['total_usd']:.2f} for "
                      f"{report.cost['hours']:g} h ({items})")
    if report.droplet_hours is not None:
        table.add_row("droplet-hours", f"{report.droplet_hours:.2f}")
    for key, value in report.resources.items():
        table.add_row(key, str(value))
    return table
