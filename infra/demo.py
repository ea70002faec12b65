"""The demo: the whole site on a fake world in a child process, then proof, then down.

`up` brings up the node, the mirrored pool, the front door on 443 with a certificate
from the world's ACME server (pebble) and every chart of the site file; `check` gives
its table; the demo adds what a user would try next: each app's health through
https on 443 (CockroachDB, which has no public hostname, on its admin-only console port
and through uro, whose health needs it), and a snapshot of the data dataset taken and
rolled back with the bytes compared. `up` again must change nothing; `down` must leave
nothing. Any failed row fails the demo.

The world runs as `python -m fakes` (infra/ never imports fakes/); this module only
reads the world.json it writes. On it, `up` runs from 127.0.0.1: that address joins
the site's admin CIDRs for the demo (the UI and the DB console are admin-only).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra import snapshots
from infra.charts.validate import prepare_site
from infra.check import check
from infra.console import RichReporter, check_table, run_table, safe
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.errors import InfraError
from infra.net import HttpAnswer, http_get, https_request
from infra.node import open_node
from infra.report import CheckReport
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import Site
from infra.state import StateDir
from infra.target import Target, Timing
from infra.truenas.calllog import CallLog
from infra.up import Provisioner
from infra.wait import Pending, wait_for

WORLD_START_SECONDS = 30.0
HERE = "127.0.0.1"                 # where the demo's requests come from on a fake world
HEALTH_SECONDS = 300.0             # real seconds an app may take to answer healthy
PROBE_SECONDS = 10.0
SNAPSHOT_DATASET = "data"
SNAPSHOT_BYTES = 256 * 1024
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


def reachable_from_here(site: Site) -> Site:
    """The site with the demo machine's address among its admin CIDRs."""
    if f"{HERE}/32" in site.access.admin_cidrs or "127.0.0.0/8" in site.access.admin_cidrs:
        return site
    access = site.access.model_copy(
        update={"admin_cidrs": [*site.access.admin_cidrs, f"{HERE}/32"]})
    return site.model_copy(update={"access": access})


# --- what a user tries once the site is up ------------------------------------------

def _eventually(target: Target, attempt: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
    deadline = time.monotonic() + target.timing.deadline(HEALTH_SECONDS)
    while True:
        try:
            done, seen = attempt()
        except OSError as error:          # still starting behind the ingress
            done, seen = False, f"{type(error).__name__}: {error}"
        if done or time.monotonic() > deadline:
            return done, seen
        time.sleep(target.timing.poll_interval)


def app_health(report: CheckReport, site: Site, target: Target, state: StateDir,
               address: str) -> None:
    """Each app's health as its users reach it (rows appended to `report`)."""
    apps = {app.name: app for app in prepare_site(site, state, tls_ready=True)}
    timeout = target.timing.deadline(PROBE_SECONDS)

    def through_443(app: str, path: str, healthy: Callable[[HttpAnswer], bool]) -> None:
        hostname = apps[app].routes[0].hostname

        def attempt() -> tuple[bool, str]:
            answer = https_request(address, target.node_port(443), hostname, "GET", path,
                                   ca_bundle=target.acme_root_ca, timeout=timeout,
                                   headers={"Accept": "application/json"})
            return answer.status == 200 and healthy(answer), answer.describe()

        ok, seen = _eventually(target, attempt)
        report.add(f"{app} healthy at https://{hostname}{path}", ok, seen)

    if "gocd" in apps:
        through_443("gocd", "/go/api/v1/health", lambda a: a.json() == {"health": "OK"})
    if "uro" in apps:
        # uro answers healthy only while its database and Redis answer.
        through_443("uro", "/api/v1/health",
                    lambda a: a.json().get("services", {}).get("uro") == "healthy")
    if "cockroachdb" in apps:
        port = int(apps["cockroachdb"].settings["console_port"])
        url = f"http://{address}:{target.node_port(port)}/health?ready=1"

        def ready() -> tuple[bool, str]:
            answer = http_get(url, source_address=HERE, timeout=timeout)
            return answer.status == 200, answer.describe()

        ok, seen = _eventually(target, ready)
        report.add(f"cockroachdb ready on its admin-only console port {port} (no public "
                   "hostname; uro reaches it on the front network)", ok, seen)


def snapshot_round_trip(report: CheckReport, site: Site, target: Target, state: StateDir,
                        address: str, log: CallLog | None = None) -> None:
    """Write, snapshot, overwrite, roll back, read: the first bytes must come back."""
    if SNAPSHOT_DATASET not in site.truenas.datasets:
        report.skip("a snapshot rolls back", f"the site has no {SNAPSHOT_DATASET} dataset")
        return
    path = f"/mnt/{site.truenas.pool}/{SNAPSHOT_DATASET}/demo-snapshot.bin"
    seen = ""
    with open_node(site, target, state, address, log) as client:
        # A periodic snapshot landing between ours and the rollback would make the
        # rollback refuse (newer snapshots exist): try again with a new name.
        for attempt in range(3):
            first, second = os.urandom(SNAPSHOT_BYTES), os.urandom(SNAPSHOT_BYTES)
            name = f"demo-{state.run_id()}-{attempt}"
            try:
                client.upload(path, first)
                snapshots.take(client, site, SNAPSHOT_DATASET, name)
                client.upload(path, second)
                snapshots.rollback(client, site, SNAPSHOT_DATASET, name)
                back = client.download(path)
            except InfraError as error:
                seen = str(error)
                continue
            ok = hashlib.sha256(back).digest() == hashlib.sha256(first).digest()
            report.add(f"a snapshot of {SNAPSHOT_DATASET} taken and rolled back restores its "
                       "bytes", ok, f"{SNAPSHOT_BYTES} bytes written, snapshot {name}, "
                       f"overwritten, rolled back: {'identical' if ok else 'DIFFERENT'}")
            return
    report.add(f"a snapshot of {SNAPSHOT_DATASET} taken and rolled back restores its bytes",
               False, seen)


# --- the run ------------------------------------------------------------------------

def run_demo(site: Site, console: Console, speed: float) -> int:
    started = time.monotonic()
    reporter = RichReporter(console)
    site = reachable_from_here(site)
    with tempfile.TemporaryDirectory(prefix="truenas-demo-") as scratch:
        scratch_dir = Path(scratch)
        console.rule("[bold]starting the fake world")
        process, world_file = start_world(scratch_dir / "world", speed)
        try:
            target = Target.from_world_file(world_file)
            console.print(f"fake DigitalOcean at {target.do_endpoint} (clock ×{speed:g}); "
                          f"ACME: {target.acme_directory or target.acme_unavailable}")
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

            console.rule("[bold]check, then the apps and a snapshot as a user tries them")
            checked = time.monotonic()
            do, node_log = DigitalOcean(target), CallLog()
            report = check(site, do, state, node_log)
            droplet = find_droplet(do, site)
            address = public_ipv4(droplet) if droplet else None
            if address is None:
                report.add("the droplet has a public address", False, "none")
            else:
                if site.tls is not None:
                    app_health(report, site, target, state, address)
                snapshot_round_trip(report, site, target, state, address, node_log)
            console.print(check_table(report))
            failed = len(report.failures())
            summary.add_row("check", "pass" if report.ok else f"FAIL ({failed} rows)",
                            f"{do.log.total} ({do.log.mutating})",
                            f"{node_log.total} ({node_log.mutating})",
                            f"{time.monotonic() - checked:.2f}")

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
            rows = len(report.findings)
            console.print(f"{rows - failed} of {rows} check rows passed; the demo took "
                          f"{time.monotonic() - started:.1f} s", highlight=False)
            console.print("[bold green]demo passed[/]" if ok else "[bold red]demo failed[/]")
            return 0 if ok else 1
        except InfraError as exc:
            console.print(f"[bold red]error:[/] {safe(exc)}", highlight=False)
            return 1
        finally:
            stop_world(process)
