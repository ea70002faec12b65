"""The `truenas-site` command (also `python -m infra`).

Exit codes: 0 ok, 1 a check failed or the cloud refused, 2 usage or site-file error
(also an unexpected local error: a message, never a traceback), 130 interrupted.
Every string from the site file or an API is printed escaped (infra/console.py). A
failed or interrupted `up` or `down` ends with what the site holds in the account
and the command that removes it or goes on (infra/leftovers.py).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console

from infra import leftovers, snapshots
from infra.check import check as run_check
from infra.console import RichReporter, check_table, run_table, safe
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.errors import (
    ConflictError,
    InfraError,
    SiteFileError,
    TargetError,
    TeardownIncomplete,
)
from infra.failover import Failover
from infra.image.cli import image_app
from infra.node import open_node
from infra.promote import promote as promote_site
from infra.resources.droplet import node_address
from infra.site import Site, load_site
from infra.state import DEFAULT_ROOT, StateDir
from infra.storage import Repair
from infra.target import REAL_CLI_REQUIRED, Target
from infra.up import Provisioner

# Every site file of the spec carries this tag (steps/sites.py): what `sweep` takes.
SPEC_SCOPE_TAG = "spec-suite"
app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Stand up, check and tear down a TrueNAS SCALE site on DigitalOcean.")
app.add_typer(image_app, name="image")
console = Console()
errors = Console(stderr=True, soft_wrap=True)

SiteOption = typer.Option(Path("site.toml"), "--site", "-s", help="the site file (TOML)")
WorldOption = typer.Option(
    None, "--world", envvar="FAKE_WORLD",
    help="a fake world's world.json: run against it instead of a real account",
)
StateOption = typer.Option(
    None, "--state-dir", help="state directory (default .truenas-site/<site>)"
)
JsonOption = typer.Option(False, "--json", help="print the report as JSON")
RepinOption = typer.Option(
    False, "--repin", help="trust the certificate the TrueNAS node presents now instead of "
    "the pinned one (a node you know was rebuilt; a renewed site certificate is followed "
    "without it)")


def _fail(code: int, *lines: str) -> None:
    for line in lines:
        errors.print(f"[bold red]error:[/] {safe(line)}", highlight=False)
    raise typer.Exit(code)


def _guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command whose unexpected errors end in a message and exit 2, not a traceback
    (an unreadable CA file, a state directory that is a file...)."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except SiteFileError as exc:
            _fail(2, *exc.problems)
        except TargetError as exc:
            _fail(2, str(exc))
        except (ConflictError, InfraError) as exc:
            _fail(1, str(exc))
        except KeyboardInterrupt:
            errors.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:  # the last resort: say what, never a traceback
            where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
            _fail(2, f"unexpected {type(exc).__name__}{where}: {exc}")

    return run


def _load(site_path: Path) -> Site:
    try:
        return load_site(site_path)
    except SiteFileError as exc:
        _fail(2, *[f"{site_path}: {p}" for p in exc.problems])
        raise  # unreachable


def _target(world: Path | None, site: Site | None = None) -> Target:
    """The fake world's, or a real account's. A site on a node of one's own needs no
    DigitalOcean token (only dns-01 does, which `up` and `plan` check)."""
    own = site is not None and site.node is not None
    try:
        return Target.from_world_file(world) if world else Target.real_from_env(
            required=() if own else REAL_CLI_REQUIRED)
    except TargetError as exc:
        _fail(2, str(exc))
        raise


def _state(site: Site, state_dir: Path | None) -> StateDir:
    path = _state_path(site, state_dir)
    if path.exists() and not path.is_dir():
        _fail(2, f"the state directory {path} is a file; move it away or name another "
                 "with --state-dir")
    return StateDir(path)


def _state_path(site: Site, state_dir: Path | None) -> Path:
    return state_dir or DEFAULT_ROOT / site.name


def _run(action):
    try:
        return action()
    except SiteFileError as exc:
        _fail(2, *exc.problems)
    except (ConflictError, InfraError) as exc:
        _fail(1, str(exc))


def _client(target: Target, reporter: RichReporter) -> DigitalOcean | None:
    """None for a target without a token (a site on a node of one's own)."""
    if target.do_token is None:
        return None
    do = DigitalOcean(target)
    do.on_retry = reporter.retrying
    return do


def _operate(kind, site: Path, world: Path | None, state_dir: Path | None, as_json: bool):
    """A site operation (up, down) with its progress on stderr when stdout is JSON."""
    loaded = _load(site)
    target = _target(world, loaded)
    reporter = RichReporter(errors if as_json else console)
    return kind(loaded, _client(target, reporter), _state(loaded, state_dir), reporter,
                target=target)


def _aftermath(command: str, operation, site: Path, world: Path | None,
               state_dir: Path | None, as_json: bool, error: BaseException) -> None:
    """After a failed or interrupted `up`/`down`: what the site holds now (read afresh,
    with a new client: the old one may be mid-request) and what to run; then exit."""
    refused = error.refused if isinstance(error, TeardownIncomplete) else {}
    interrupted = isinstance(error, KeyboardInterrupt)
    code = 130 if interrupted else 2 if isinstance(error, SiteFileError | TargetError) else 1
    if interrupted:
        headline = [f"{command} interrupted"]
    elif isinstance(error, SiteFileError):
        headline = list(error.problems)
    else:
        headline = [f"{command} failed: {error}"]
    for line in headline:
        errors.print(f"[bold red]error:[/] {safe(line)}", highlight=False)
    extra = (f" --world {world}" if world else "") + \
        (f" --state-dir {state_dir}" if state_dir else "")
    if operation.site.node is not None:
        # Nothing of a site on a node of one's own is in the account to list.
        if as_json:
            console.print_json(json.dumps({"command": command, "ok": False,
                                           "error": " ".join(headline)}))
        errors.print(f"run `truenas-site {command} --site {safe(site)}{safe(extra)}` again "
                     "to go on; `check` says what the node holds", highlight=False)
        raise typer.Exit(code)
    try:
        held = leftovers.take(DigitalOcean(operation.do.target), operation.site,
                              operation.state, why=refused)
    except (InfraError, OSError) as exc:
        errors.print(f"could not list what the site holds now: {safe(exc)}; run "
                     f"`truenas-site plan --site {safe(site)}{safe(extra)}` to see it",
                     highlight=False)
        raise typer.Exit(code) from None
    if as_json:
        console.print_json(json.dumps({"command": command, "ok": False,
                                       "error": " ".join(headline), **held.to_dict()}))
    if not held.leftovers:
        errors.print(f"the site holds nothing in the account now ({command} "
                     f"{'created' if command == 'up' else 'left'} nothing)", highlight=False)
    else:
        errors.print(f"the site holds now ({len(held.leftovers)}, paid ones first):",
                     highlight=False)
        for item in held.leftovers:
            errors.print(f"  {safe(item.describe())}", highlight=False)
    for what, why in refused.items():
        if ":" not in what:
            errors.print(f"  {safe(what)} refused: {safe(why)}", highlight=False)
    for note in held.notes:
        errors.print(f"note: {safe(note)}", highlight=False)
    if held.leftovers:
        for line in leftovers.advice(command, str(site), extra):
            errors.print(safe(line), highlight=False)
    raise typer.Exit(code)


def _site_run(command: str, kind, site: Path, world: Path | None, state_dir: Path | None,
              as_json: bool, repin: bool = False, destroy_pool: bool = False) -> None:
    """`up` or `down`: the run's table, or, when it stops early, its aftermath."""
    operation = _operate(kind, site, world, state_dir, as_json)
    if repin:
        operation.repin_node = True
    if destroy_pool:
        operation.destroy_pool = True
    try:
        report = getattr(operation, command)()
    except (InfraError, KeyboardInterrupt) as error:
        _aftermath(command, operation, site, world, state_dir, as_json, error)
        return
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        console.print(run_table(report))


@app.command()
@_guarded
def plan(site: Path = SiteOption, world: Path | None = WorldOption,
         state_dir: Path | None = StateOption, as_json: bool = JsonOption) -> None:
    """Show what `up` would change, changing nothing."""
    loaded = _load(site)
    target = _target(world, loaded)
    path = _state_path(loaded, state_dir)
    if path.exists() and not path.is_dir():
        _fail(2, f"the state directory {path} is a file; move it away or name another "
                 "with --state-dir")
    reporter = RichReporter(errors if as_json else console)
    # Read-only: a plan leaves no state directory behind (no pin, no generated secret).
    operation = Provisioner(loaded, _client(target, reporter), StateDir(path, read_only=True),
                            reporter, target=target)
    result = _run(operation.plan)
    if as_json:
        console.print_json(json.dumps(result.to_dict(loaded.name)))
        return
    if result.all_empty:
        console.print("nothing to change: the site matches its file" if not result.cannot
                      else "nothing up can change")
    for change in result.every_change():
        console.print(f"[cyan]+[/] {safe(change.describe())}", highlight=False)
    if result.node_pending:
        console.print(f"[cyan]…[/] {safe(result.node_pending)}", highlight=False)
    if result.replication_pending:
        console.print(f"[cyan]…[/] {safe(result.replication_pending)}", highlight=False)
    for refused in result.cannot:
        console.print(f"[yellow]![/] cannot {safe(refused.describe())}", highlight=False)


@app.command()
@_guarded
def up(site: Path = SiteOption, world: Path | None = WorldOption,
       state_dir: Path | None = StateOption, as_json: bool = JsonOption,
       repin: bool = RepinOption) -> None:
    """Bring the site up (idempotent: a converged site gets no mutating request)."""
    _site_run("up", Provisioner, site, world, state_dir, as_json, repin=repin)


ExistingOption = typer.Option(
    False, "--existing",
    help="check a site that already runs, read-only: its TrueNAS address and API key from "
         "EXISTING_TRUENAS_ADDRESS and TRUENAS_API_KEY; DIGITALOCEAN_TOKEN is optional "
         "(without it the cloud rows are skipped). README.md, Targets.",
)


def _existing_target(site: Path) -> Target:
    """The existing target for `check --existing`: --site is its site file."""
    try:
        return Target.existing_from_env({**os.environ, "EXISTING_SITE_FILE": str(site)})
    except TargetError as exc:
        _fail(2, str(exc))
        raise


@app.command()
@_guarded
def check(site: Path = SiteOption, world: Path | None = WorldOption,
          state_dir: Path | None = StateOption, as_json: bool = JsonOption,
          existing: bool = ExistingOption, repin: bool = RepinOption) -> None:
    """Read-only: report where the account differs from the site file (exit 1 if it does)."""
    # Read-only locally too: pins and generated secrets are read from the state
    # directory if it is there (--state-dir), never created or written.
    if existing:
        loaded, target = _load(site), _existing_target(site)
        state = StateDir(_state_path(loaded, state_dir), read_only=True)
        do = DigitalOcean(target) if target.do_token is not None else None
        report = _run(lambda: run_check(loaded, do, state, target=target, repin=repin))
    else:
        loaded = _load(site)
        target = _target(world, loaded)
        state = StateDir(_state_path(loaded, state_dir), read_only=True)
        do = DigitalOcean(target) if target.do_token is not None else None
        report = _run(lambda: run_check(loaded, do, state, target=target, repin=repin))
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        console.print(check_table(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@_guarded
def down(site: Path = SiteOption, world: Path | None = WorldOption,
         state_dir: Path | None = StateOption, as_json: bool = JsonOption,
         destroy_pool: bool = typer.Option(
             False, "--destroy-pool", help="a site on a node of your own: also destroy the "
             "pool the site created (or the datasets it created), with all their data")) -> None:
    """Delete everything that carries the site's tag (idempotent); on a node of your own,
    what the site made there (its pool and data stay unless --destroy-pool)."""
    _site_run("down", Teardown, site, world, state_dir, as_json, destroy_pool=destroy_pool)


@app.command()
@_guarded
def renew(site: Path = SiteOption, world: Path | None = WorldOption,
          state_dir: Path | None = StateOption,
          force: bool = typer.Option(False, "--force", help="renew even if not yet due")) -> None:
    """Renew the site certificate when it is due (for cron); nothing else is touched."""
    provisioner = _operate(Provisioner, site, world, state_dir, False)
    changes = _run(lambda: provisioner.renew_certificate(force=force))
    console.print(safe("\n".join(changes)) if changes else
                  "the certificate is valid: nothing to do", highlight=False)


@app.command()
@_guarded
def repair(site: Path = SiteOption, world: Path | None = WorldOption,
           state_dir: Path | None = StateOption) -> None:
    """Bring a degraded pool back: re-attach or replace lost volumes, resilver."""
    loaded, target = _load(site), _target(world)
    _droplet_site_only(loaded, "repair")
    state = _state(loaded, state_dir)
    reporter = RichReporter(console)

    def run() -> list[str]:
        do = DigitalOcean(target)
        with open_node(loaded, target, state, node_address(do, loaded),
                       reporter=reporter) as node:
            return Repair(loaded, do, node, state, reporter).run()

    changes = _run(run)
    console.print(safe("\n".join(changes)) if changes else
                  "the pool is healthy: nothing to repair", highlight=False)


@app.command()
@_guarded
def failover(site: Path = SiteOption, world: Path | None = WorldOption,
             state_dir: Path | None = StateOption,
             force: bool = typer.Option(False, help="replace the droplet even if it answers"),
             as_json: bool = JsonOption) -> None:
    """The droplet or its host is lost: bring the site back on a new droplet."""
    loaded, target = _load(site), _target(world)
    _droplet_site_only(loaded, "failover")
    reporter = RichReporter(errors if as_json else console)
    result = _run(lambda: Failover(loaded, DigitalOcean(target), _state(loaded, state_dir),
                                   reporter).run(force=force))
    summary = {"site": result.site, "reason": result.reason, "changes": result.changes,
               "old_droplet": result.old_droplet and result.old_droplet["id"],
               "new_droplet": result.new_droplet and result.new_droplet["id"],
               "wall_seconds": result.wall_seconds}
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(safe(f"failover of {result.site}: {result.reason}"), highlight=False)
    for change in result.changes:
        console.print(f"  {safe(change)}", highlight=False)


@app.command()
@_guarded
def promote(site: Path = SiteOption, world: Path | None = WorldOption,
            state_dir: Path | None = StateOption) -> None:
    """Make a receiving site's copy writable: its replication disabled on the source,
    its datasets' readonly off, and the charts that run on the copy started
    (idempotent; infra/promote.py)."""
    loaded, target = _load(site), _target(world)
    if not loaded.replication:
        _fail(2, f"{site}: has no [[replication]] section: nothing to promote")
    reporter = RichReporter(console)
    state = _state(loaded, state_dir)

    def run() -> list[str]:
        return promote_site(loaded, target, state, DigitalOcean(target), reporter)

    changes = _run(run)
    console.print(safe("\n".join(changes)) if changes else
                  "already promoted: the copy is writable and its replication disabled",
                  highlight=False)


def _droplet_site_only(site: Site, command: str) -> None:
    if site.node is not None:
        _fail(2, f"{command} brings back a droplet site's volumes or droplet; {site.name} runs "
                 "on a node of your own ([node]): replace a failed disk in TrueNAS itself")


def _with_node(loaded: Site, target: Target, state_dir: Path | None, action):
    state = _state(loaded, state_dir)

    def run():
        address = node_address(None if loaded.node else DigitalOcean(target), loaded)
        with open_node(loaded, target, state, address) as node:
            return action(node)

    return _run(run)


@app.command()
@_guarded
def snapshot(dataset: str = typer.Argument(..., help="a dataset of the site, e.g. data"),
             name: str = typer.Argument(..., help="the snapshot's name"),
             site: Path = SiteOption, world: Path | None = WorldOption,
             state_dir: Path | None = StateOption) -> None:
    """Take a snapshot of one of the site's datasets."""
    loaded = _load(site)
    target = _target(world, loaded)
    taken = _with_node(loaded, target, state_dir,
                       lambda node: snapshots.take(node, loaded, dataset, name))
    console.print(safe(f"snapshot {taken['id']} taken"), highlight=False)


@app.command()
@_guarded
def restore(dataset: str = typer.Argument(..., help="a dataset of the site, e.g. data"),
            name: str = typer.Argument(..., help="the snapshot to restore"),
            clone_to: str | None = typer.Option(None, help="clone into this new dataset "
                                                "instead of rolling back in place"),
            discard_newer: bool = typer.Option(False, help="allow a rollback to destroy "
                                               "snapshots taken after this one"),
            site: Path = SiteOption, world: Path | None = WorldOption,
            state_dir: Path | None = StateOption) -> None:
    """Restore a dataset from a snapshot: roll back in place, or clone beside it."""
    loaded = _load(site)
    target = _target(world, loaded)
    if clone_to:
        where = _with_node(loaded, target, state_dir,
                           lambda node: snapshots.clone(node, loaded, dataset, name, clone_to))
        console.print(safe(f"snapshot {name} of {dataset} cloned to {where}"), highlight=False)
        return
    _with_node(loaded, target, state_dir,
               lambda node: snapshots.rollback(node, loaded, dataset, name, discard_newer))
    console.print(safe(f"{dataset} rolled back to {name}"), highlight=False)


def _duration(option: str, value: str) -> timedelta:
    """`30m`, `6h`, `2d` (or `90s`); anything else exits 2 naming the option."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    number, unit = value.strip()[:-1], value.strip()[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) == 0:
        _fail(2, f"{option} {value!r}: expected a positive duration such as 30m, 6h or 2d")
    try:
        return timedelta(**{units[unit]: int(number)})
    except OverflowError:
        _fail(2, f"{option} {value!r}: longer than this tool can count; at most "
                 f"{timedelta.max.days} days")
        raise


@app.command()
@_guarded
def sweep(older_than: str = typer.Option(..., "--older-than",
                                         help="only what was created longer ago: 30m, 6h, 2d"),
          run_id: str | None = typer.Option(None, "--run-id", help="only this run's resources"),
          dry_run: bool = typer.Option(False, "--dry-run", help="say what would go; delete "
                                       "nothing"),
          scope_tag: str = typer.Option(
              SPEC_SCOPE_TAG, "--tag", help="only resources that also carry this tag (the "
              "spec's sites carry spec-suite): another site's runs are never swept"),
          world: Path | None = WorldOption, as_json: bool = JsonOption) -> None:
    """Delete what runs left behind: run-tagged resources older than --older-than."""
    from infra.sweep import Sweeper

    age = _duration("--older-than", older_than)
    target = _target(world)
    reporter = RichReporter(errors if as_json else console)
    sweeper = Sweeper(DigitalOcean(target), reporter, scope_tag=scope_tag)
    report = _run(lambda: sweeper.sweep(age, run_id, dry_run))
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {len(report.deleted)}, kept {len(report.kept)} run-tagged")
    for item in report.deleted:
        console.print(f"  [red]-[/] {safe(item.describe())}", highlight=False)
    for item in report.kept:
        console.print(f"  [green]=[/] {safe(item.describe())}", highlight=False)


@app.command("sweep-receivers")
@_guarded
def sweep_receivers(site: Path = SiteOption, world: Path | None = WorldOption,
                    state_dir: Path | None = StateOption,
                    dry_run: bool = typer.Option(False, "--dry-run", help="say what would "
                                                 "go; delete nothing"),
                    as_json: bool = JsonOption) -> None:
    """Remove from this site's node what abandoned receiving sites left there: their
    replication tasks and SSH credentials (infra/receivers.py says which are abandoned;
    a live receiver's and anything made by hand stay)."""
    from infra import receivers

    loaded, target = _load(site), _target(world)
    reporter = RichReporter(errors if as_json else console)
    do = DigitalOcean(target)

    def run() -> receivers.ReceiversReport:
        with open_node(loaded, target, _state(loaded, state_dir), node_address(do, loaded),
                       reporter=reporter) as node:
            return receivers.sweep(node, do, dry_run, reporter)

    report = _run(run)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {len(report.removed)} abandoned receiver(s), kept "
                  f"{len(report.kept)}")
    for receiver in report.removed:
        console.print(f"  [red]-[/] {safe(receiver.describe())}", highlight=False)
    for receiver in report.kept:
        console.print(f"  [green]=[/] {safe(receiver.describe())}", highlight=False)


EXAMPLE_SITE = Path(__file__).resolve().parent.parent / "site.example.toml"


@app.command()
@_guarded
def demo(
    site: Path = typer.Option(EXAMPLE_SITE, "--site", "-s", help="the site file to demo"),
    speed: float = typer.Option(500.0, help="fake clock speed (virtual s per wall s)"),
) -> None:
    """Start the embedded fakes, bring a whole site up, check it, tear it down."""
    from infra.demo import run_demo

    loaded = _load(site)
    code = run_demo(loaded, console, speed)
    raise typer.Exit(code)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
