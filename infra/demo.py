"""The demo: a fake world in a child process, then up, check, up again, down.

The world runs as `python -m fakes` (infra/ never imports fakes/); this module
only reads the world.json it writes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra.check import check
from infra.console import RichReporter, check_table, run_table, safe
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.errors import InfraError
from infra.site import Site
from infra.state import StateDir
from infra.target import Target, Timing
from infra.truenas.calllog import CallLog
from infra.up import Provisioner
from infra.wait import Pending, wait_for

WORLD_START_SECONDS = 30.0
WORLD_START = Timing(poll_interval=0.05, min_deadline=WORLD_START_SECONDS)


def start_world(state_dir: Path, speed: float) -> tuple[subprocess.Popen, Path]:
    world_file = state_dir / "world.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "fakes", "--state-dir", str(state_dir), "--speed", str(speed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )

    def written() -> bool | Pending:
        if world_file.exists():
            return True
        if process.poll() is not None:
            raise RuntimeError("the fake world exited: " + process.stderr.read().decode()[-2000:])
        return Pending()

    def not_started(limit: float, _status: str) -> Exception:
        process.terminate()
        return RuntimeError(f"the fake world did not start within {limit:.0f} s")

    wait_for("the fake world to start", written, WORLD_START, WORLD_START_SECONDS,
             timeout=not_started)
    time.sleep(0.05)  # world.json is written in one go, but let the writer close it
    return process, world_file


def stop_world(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_demo(site: Site, console: Console, speed: float) -> int:
    reporter = RichReporter(console)
    with tempfile.TemporaryDirectory(prefix="truenas-demo-") as scratch:
        scratch_dir = Path(scratch)
        console.rule("[bold]starting the fake world")
        process, world_file = start_world(scratch_dir / "world", speed)
        try:
            target = Target.from_world_file(world_file)
            console.print(f"fake DigitalOcean at {target.do_endpoint} (clock ×{speed:g})")
            state = StateDir(scratch_dir / "state")
            summary = Table(title="demo summary")
            for column in ("step", "result", "DO requests (mutating)",
                           "TrueNAS calls (mutating)", "wall s"):
                summary.add_column(column)

            console.rule("[bold]up")
            first = Provisioner(site, DigitalOcean(target), state, reporter).up()
            console.print(run_table(first))
            summary.add_row("up", f"{len(first.changes)} changes",
                            f"{first.requests_total} ({first.requests_mutating})",
                            f"{first.truenas_calls} ({first.truenas_mutating})",
                            f"{first.wall_seconds:.2f}")

            console.rule("[bold]check")
            do, node_log = DigitalOcean(target), CallLog()
            report = check(site, do, state, node_log)
            console.print(check_table(report))
            summary.add_row("check", "pass" if report.ok else "FAIL",
                            f"{do.log.total} ({do.log.mutating})",
                            f"{node_log.total} ({node_log.mutating})", "")

            console.rule("[bold]up again (must change nothing)")
            second = Provisioner(site, DigitalOcean(target), state, reporter).up()
            summary.add_row("up again", f"{len(second.changes)} changes",
                            f"{second.requests_total} ({second.requests_mutating})",
                            f"{second.truenas_calls} ({second.truenas_mutating})",
                            f"{second.wall_seconds:.2f}")

            console.rule("[bold]down")
            gone = Teardown(site, DigitalOcean(target), state, reporter).down()
            console.print(run_table(gone))
            summary.add_row("down", f"{len(gone.changes)} deletions",
                            f"{gone.requests_total} ({gone.requests_mutating})", "",
                            f"{gone.wall_seconds:.2f}")

            after = check(site, DigitalOcean(target))
            leftovers = [f.requirement for f in after.findings if f.ok and "exists" in
                         f.requirement and "domain" not in f.requirement]
            summary.add_row("after down", "nothing left" if not leftovers else
                            "LEFT: " + ", ".join(leftovers), "", "", "")
            console.rule("[bold]report")
            console.print(summary)
            ok = (report.ok and not second.requests_mutating and not second.truenas_mutating
                  and not leftovers)
            console.print("[bold green]demo passed[/]" if ok else "[bold red]demo failed[/]")
            return 0 if ok else 1
        except InfraError as exc:
            console.print(f"[bold red]error:[/] {safe(exc)}", highlight=False)
            return 1
        finally:
            stop_world(process)
