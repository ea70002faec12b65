"""Steps of features/replication.feature: a receiving site's copy of production's
datasets, byte for byte, its increments, promotion, a cut-off run and a fork."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import pytest
from pytest_bdd import given, parsers, then, when

from infra import desired, snapshots
from infra.check import check
from infra.cli import app
from infra.errors import InfraError
from infra.events import Reporter
from infra.replication import Replication, Started
from infra.resources import firewall
from infra.resources import replication as tasks
from infra.resources.droplet import find as find_droplet
from steps.cli_runner import CliRunner
from steps.common import Sites, WrittenFiles, to_toml
from steps.fake_admin import FakeAdmin
from steps.sites import site_data
from steps.storage_steps import FILE_SIZES

# ZFS sends whole records: a new file costs at least its records (recordsize 128 KiB
# by default) plus the stream's headers. What "only the increment" allows.
RECORD = 128 * 1024
MIB = 1024 * 1024
NEW_FILE_SIZE = 1000


@dataclass(frozen=True)
class ReplicationRun:
    """One run of a receiving site's replication: what it sent, or why it failed."""

    site: str
    results: list[tasks.RunResult]
    error: InfraError | None = None


@dataclass(frozen=True)
class StartedRuns:
    """Runs started and not awaited."""

    replication: Replication
    runs: list[Started]


@dataclass(frozen=True)
class Promotion:
    exit_code: int
    output: str


@dataclass(frozen=True)
class Snapshots:
    """The snapshots a scenario had the source take, oldest first."""

    names: list[str]


@pytest.fixture
def taken_so_far() -> list[str]:
    """The snapshots the scenario had a source take, oldest first."""
    return []


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- Given / When ------------------------------------------------------------------
@given(parsers.parse('the site "{name}" took its periodic snapshot of "{dataset}"'),
       target_fixture="taken")
@when(parsers.parse('the site "{name}" took its periodic snapshot of "{dataset}"'),
      target_fixture="taken")
def _periodic_snapshot(sites: Sites, name: str, dataset: str,
                       taken_so_far: list[str]) -> Snapshots:
    """A snapshot named as the site's periodic task of the dataset names its own (the
    snapshots a replication bound to that task sends), taken now."""
    site = sites.site(name)
    policy = next(p for p in site.snapshots if p.dataset == dataset)
    with sites.node(name) as client:
        made = snapshots.take_named_by(client, site, dataset, policy.naming_schema,
                                       policy.recursive)
    taken_so_far.append(made["snapshot_name"])
    return Snapshots(list(taken_so_far))


@when(parsers.parse('one more file is written to the dataset "{dataset}" of the site '
                    '"{name}"'), target_fixture="written")
def _one_more(sites: Sites, written: WrittenFiles, dataset: str, name: str) -> WrittenFiles:
    return _write_one(sites, written, dataset, name, NEW_FILE_SIZE)


@when(parsers.parse('a file of {mib:d} MiB is written to the dataset "{dataset}" of the site '
                    '"{name}"'), target_fixture="written")
def _large_file(sites: Sites, written: WrittenFiles, mib: int, dataset: str,
                name: str) -> WrittenFiles:
    return _write_one(sites, written, dataset, name, mib * MIB)


def _write_one(sites: Sites, written: WrittenFiles, dataset: str, name: str,
               size: int) -> WrittenFiles:
    site = sites.site(name)
    data = os.urandom(size)
    path = f"/mnt/{site.truenas.pool}/{dataset}/later-{os.urandom(3).hex()}.bin"
    with sites.node(name) as client:
        client.upload(path, data)
    return WrittenFiles(name, {**written.digests, path: _digest(data)})


@when(parsers.parse('the replication to the site "{name}" runs'), target_fixture="replication_run")
def _run(sites: Sites, name: str) -> ReplicationRun:
    replication = Replication(sites.site(name), sites.target, sites.state(name), sites.client())
    try:
        return ReplicationRun(name, replication.run_now())
    except InfraError as error:
        return ReplicationRun(name, [], error)


@when(parsers.parse('the replication to the site "{name}" starts'), target_fixture="started")
def _start(sites: Sites, name: str) -> StartedRuns:
    replication = Replication(sites.site(name), sites.target, sites.state(name), sites.client())
    return StartedRuns(replication, replication.start())


@when(parsers.parse("it has sent more than {mib:d} MiB"))
def _sent_some(sites: Sites, started: StartedRuns, mib: int) -> None:
    def attempt() -> tuple[bool, int]:
        sent = started.replication.sent_so_far(started.runs[0])
        return sent > mib * MIB, sent

    sites.eventually(f"the run to have sent {mib} MiB", attempt, 600)


@when("a week passes on the sites' clock")
def _a_week(admin: FakeAdmin) -> None:
    admin.advance_clock(7 * 86400)


@when(parsers.parse('I promote the site "{name}"'), target_fixture="promotion")
def _promote(sites: Sites, name: str) -> Promotion:
    sites.site(name)     # its file and its source's, in the state root
    args = ["promote", "--site", str(sites.state_root / f"{name}.toml"),
            "--state-dir", str(sites.state_root / name)]
    if sites.target.kind == "fake":
        args += ["--world", os.path.join(os.path.dirname(sites.target.ca_bundle),
                                         "world.json")]
    result = CliRunner().invoke(app, args, env={})
    return Promotion(result.exit_code, result.output)


@when(parsers.parse('the firewall rule that lets the site "{source}" into the site "{name}" '
                    'is removed'))
def _cut(sites: Sites, source: str, name: str) -> None:
    site = sites.site(name)
    do = sites.client()
    found = firewall.find(do, site)
    assert found is not None, f"the site {name} has no firewall"
    # The site's rules without its sources' (what the firewall held before `up`).
    firewall.update(do, found, {"name": found["name"], "tags": found["tags"],
                                **desired.firewall_rules(site)}, Reporter())


# --- Then ----------------------------------------------------------------------------
@then(parsers.parse('every file written reads the same on the site "{name}"'))
def _same_bytes(sites: Sites, written: WrittenFiles, name: str) -> None:
    def attempt() -> tuple[bool, object]:
        read = {}
        with sites.node(name) as client:
            for path in written.digests:
                try:
                    read[path] = _digest(client.download(path))
                except InfraError as error:
                    read[path] = f"unreadable: {error}"
        return read == written.digests, {p: d for p, d in read.items()
                                         if d != written.digests[p]}

    sites.eventually(f"the files written to read the same on {name}", attempt, 600)


@then(parsers.parse('port 22 of the site "{name}" is open to the site "{source}" alone'))
def _port_22(sites: Sites, name: str, source: str) -> None:
    site = sites.site(name)
    found = firewall.find(sites.client(), site)
    source_address = sites.address(source)
    opened = [rule["sources"].get("addresses") for rule in found["inbound_rules"]
              if str(rule.get("ports")) == "22"]
    assert [f"{source_address}/32"] in opened, opened
    assert all(addresses == [f"{source_address}/32"] or
               set(addresses) == set(site.access.admin_cidrs) for addresses in opened), opened


@then("that run sent the new file's records and not the rest of the dataset")
def _increment(replication_run: ReplicationRun) -> None:
    assert replication_run.error is None, replication_run.error
    sent = sum(r.bytes_sent for r in replication_run.results)
    whole = sum(FILE_SIZES)
    assert NEW_FILE_SIZE <= sent <= RECORD + 64 * 1024, \
        f"{sent} bytes sent for one new file of {NEW_FILE_SIZE} bytes"
    assert sent < whole / 4, f"{sent} bytes sent; the dataset holds {whole}"


@then("that run failed")
def _failed(replication_run: ReplicationRun) -> None:
    assert replication_run.error is not None, "the run succeeded"


@then("the run started fails")
def _started_failed(started: StartedRuns) -> None:
    try:
        started.replication.wait(started.runs)
    except InfraError:
        return
    raise AssertionError("the run was not cut off: it succeeded")


@then(parsers.parse('the site "{name}" holds the first snapshot and not the second'))
def _at_first(sites: Sites, taken: Snapshots, name: str) -> None:
    site = sites.site(name)
    with sites.node(name) as client:
        held = {s["snapshot_name"] for s in snapshots.list_(client, site, "data")}
    first, second = taken.names[0], taken.names[-1]
    assert first in held and second not in held, (held, taken.names)


@then(parsers.parse('check of the site "{name}" names the snapshot it holds and how far '
                    'behind it is'))
def _check_lag(sites: Sites, taken: Snapshots, name: str) -> None:
    report = check(sites.site(name), sites.client(), sites.state(name))
    lag = [f for f in report.findings if f.requirement.endswith("lag behind the source")]
    assert lag, [f.requirement for f in report.findings]
    assert taken.names[0] in lag[0].detail and taken.names[-1] in lag[0].detail, lag[0].detail
    assert re.search(r"\d+(\.\d+)? (min|h|days) later", lag[0].detail), lag[0].detail


@then(parsers.parse('a write to the dataset "{dataset}" of the site "{name}" is refused'))
def _refused(sites: Sites, dataset: str, name: str) -> None:
    site = sites.site(name)
    with sites.node(name) as client:
        try:
            client.upload(f"/mnt/{site.truenas.pool}/{dataset}/staging-write.bin", b"x")
        except InfraError:
            return
    raise AssertionError(f"{dataset} of {name} took a write before promotion")


@then(parsers.parse('a write to the dataset "{dataset}" of the site "{name}" succeeds'))
def _writable(sites: Sites, dataset: str, name: str) -> None:
    site = sites.site(name)
    path = f"/mnt/{site.truenas.pool}/{dataset}/staging-write.bin"
    with sites.node(name) as client:
        client.upload(path, b"promoted")
        assert client.download(path) == b"promoted"


@then(parsers.parse('it says the replication was disabled and "{dataset}" made writable'))
def _said(promotion: Promotion, dataset: str) -> None:
    assert promotion.exit_code == 0, promotion.output
    assert "disabled replication" in promotion.output, promotion.output
    assert f"/{dataset} is writable" in promotion.output, promotion.output


@then("it says it was already promoted")
def _said_again(promotion: Promotion) -> None:
    assert promotion.exit_code == 0, promotion.output
    assert "already promoted" in promotion.output, promotion.output


@then(parsers.parse('the node of the site "{source}" holds nothing of the site "{name}"'))
def _nothing_on_source(sites: Sites, source: str, name: str) -> None:
    with sites.node(source) as client:
        left = tasks.find(client, sites.site(name))
    assert left.tasks == [] and left.credentials == [], (left.tasks, left.credentials)


# =====================================================================================
# Deletions, a lost source, leftovers on the source (issue 16, repl-more). Kept apart
# from the steps above so that parallel additions merge cleanly.
# =====================================================================================
@pytest.fixture
def deleted_files() -> list[str]:
    """The files a scenario had a process on a node delete."""
    return []


@when(parsers.parse('a process on the node of the site "{name}" deletes a file written to '
                    '"{dataset}"'), target_fixture="written")
def _process_deletes(sites: Sites, admin: FakeAdmin, written: WrittenFiles, name: str,
                     dataset: str, deleted_files: list[str]) -> WrittenFiles:
    """TrueNAS's API deletes no file (middleware plugins/filesystem.py has no unlink):
    on a real node a process does (an app, a shell); here the world's admin API is
    that process. The file leaves the files written: the rest must still match."""
    site = sites.site(name)
    prefix = f"/mnt/{site.truenas.pool}/{dataset}/"
    path = sorted(p for p in written.digests if p.startswith(prefix))[0]
    droplet = find_droplet(sites.client(), site)
    assert droplet is not None, f"the site {name} has no droplet"
    admin.remove_file(droplet["id"], path)
    assert not _reads(sites, name, path), f"{path} still reads on {name} after its deletion"
    deleted_files.append(path)
    return WrittenFiles(written.site, {p: d for p, d in written.digests.items() if p != path})


@then(parsers.parse('the deleted file is gone from the site "{name}"'))
def _gone(sites: Sites, deleted_files: list[str], name: str) -> None:
    assert deleted_files, "no file was deleted"
    still = [path for path in deleted_files if _reads(sites, name, path)]
    assert not still, f"deleted on the source, still read on {name}: {still}"


def _reads(sites: Sites, name: str, path: str) -> bool:
    with sites.node(name) as client:
        try:
            client.download(path)
        except InfraError:
            return False
    return True


@then(parsers.parse('check of the site "{name}" names the snapshot it holds, its age, and a '
                    'source that does not answer'))
def _check_lost_source(sites: Sites, taken: Snapshots, name: str) -> None:
    report = check(sites.site(name), sites.client(), sites.state(name))
    rows = {f.requirement: f for f in report.findings}
    silent = [f for r, f in rows.items() if r.endswith("the source answers")]
    assert silent and not silent[0].ok and "does not" in silent[0].detail, \
        [(f.requirement, f.ok, f.detail) for f in report.findings]
    lag = [f for r, f in rows.items() if r.endswith("lag behind the source")]
    assert lag, list(rows)
    assert taken.names[0] in lag[0].detail and taken.names[-1] not in lag[0].detail, \
        lag[0].detail
    assert re.search(r"\d+(\.\d+)? (min|h|days) old", lag[0].detail), lag[0].detail
    assert "does not answer" in lag[0].detail, lag[0].detail
    assert not report.ok


@then(parsers.parse('it says "{dataset}" was made writable, its source not answering'))
def _promoted_alone(promotion: Promotion, dataset: str) -> None:
    assert promotion.exit_code == 0, promotion.output
    assert f"/{dataset} is writable" in promotion.output, promotion.output
    assert "does not answer" in promotion.output, promotion.output
    assert "disabled replication" not in promotion.output, promotion.output


@then(parsers.parse('the files of the first snapshot read the same on the site "{name}"'))
def _first_snapshot_files(sites: Sites, written: WrittenFiles, name: str) -> None:
    """The files written before the first snapshot read the same; those written after
    it (steps above name them later-*.bin) are not there."""
    before = {p: d for p, d in written.digests.items() if "/later-" not in p}
    after = [p for p in written.digests if "/later-" in p]
    assert before and after, written.digests
    with sites.node(name) as client:
        read = {path: _digest(client.download(path)) for path in before}
    assert read == before, {p: d for p, d in read.items() if d != before[p]}
    still = [path for path in after if _reads(sites, name, path)]
    assert not still, f"written after the first snapshot, yet on {name}: {still}"


# --- leftovers of an abandoned receiver, on its source -----------------------------
BY_HAND_SCHEMA = "auto-%Y-%m-%d_%H-%M"


@dataclass(frozen=True)
class SourceNode:
    """A source node's replication tasks and credentials at one moment: id -> name."""

    tasks: dict[int, str]
    credentials: dict[int, str]


@dataclass(frozen=True)
class ByHand:
    """Replication tasks an operator made on a node, not by any site's `up`."""

    site: str
    receiver: str      # the receiver one of them is named like
    tasks: dict[int, str]
    before: SourceNode


@dataclass(frozen=True)
class ReceiverSweep:
    exit_code: int
    output: str
    before: SourceNode
    after: SourceNode


def _source_node(sites: Sites, name: str) -> SourceNode:
    with sites.node(name) as client:
        return SourceNode({t["id"]: t["name"] for t in client.call("replication.query")},
                          {c["id"]: c["name"] for c in client.call("keychaincredential.query")})


@given(parsers.parse('replication tasks made by hand on the node of the site "{name}", one '
                     'named like "{receiver}"\'s'), target_fixture="by_hand")
def _by_hand(sites: Sites, name: str, receiver: str,
             request: pytest.FixtureRequest) -> ByHand:
    """Two LOCAL tasks an operator made (no receiver's credentials): one named freely,
    one named `<receiver>:...` as a receiver's would be. Deleted when the scenario ends."""
    site = sites.site(name)
    made: dict[int, str] = {}
    with sites.node(name) as client:
        for task_name, target in ((f"{name}-offsite-by-hand", "by-hand"),
                                  (f"{receiver}{tasks.TASK_SEPARATOR}by-hand", "by-hand-2")):
            task = client.call(tasks.CREATE, {
                "name": task_name, "direction": "PUSH", "transport": "LOCAL",
                "source_datasets": [f"{site.truenas.pool}/data"],
                "target_dataset": f"{site.truenas.pool}/{target}", "recursive": False,
                "auto": False, "retention_policy": "NONE",
                "also_include_naming_schema": [BY_HAND_SCHEMA]})
            made[task["id"]] = task["name"]

    def remove() -> None:
        with sites.node(name) as client:
            for task_id in made:
                if any(t["id"] == task_id for t in client.call("replication.query")):
                    client.call(tasks.DELETE, task_id)

    request.addfinalizer(remove)
    return ByHand(name, receiver, made, _source_node(sites, name))


@when(parsers.parse('the run of the site "{name}" is abandoned: its state directory lost, its '
                    'droplet swept'))
def _abandon(sites: Sites, name: str) -> None:
    """The operator lost the state directory (no `down` can find what it made on its
    source) and `sweep` took the run's resources by its run tag."""
    import shutil
    from datetime import timedelta

    from infra.cli import SPEC_SCOPE_TAG
    from infra.sweep import Sweeper

    run_id = sites.state(name).run_id()
    shutil.rmtree(sites.state_root / name)
    report = Sweeper(sites.client(), scope_tag=SPEC_SCOPE_TAG).sweep(
        timedelta(milliseconds=1), run_id)
    assert any(item.kind == "droplet" for item in report.deleted), report.deleted
    assert find_droplet(sites.client(), sites.site(name)) is None
    sites.brought_up.discard(name)     # nothing of it is left in the account to take down


@when(parsers.parse('the replication of the site "{name}" runs on the node of the site '
                    '"{source}"'), target_fixture="replication_run")
def _run_on_source(sites: Sites, name: str, source: str) -> ReplicationRun:
    """Its next run, as the source's schedule would start it (its state directory is
    gone: the source's side is all there is)."""
    results, error = [], None
    with sites.node(source) as client:
        for task in tasks.find(client, sites.site(name)).tasks:
            if task.get("transport") != "SSH":
                continue          # by hand, not the receiver's
            try:
                results.append(tasks.run(client, task, Reporter()))
            except InfraError as failed:
                error = failed
    assert results or error, f"no task of {name} on {source}'s node"
    return ReplicationRun(name, results, error)


@then(parsers.parse('check of the site "{name}" finds the receiver "{gone}" abandoned and the '
                    'receiver "{live}" there'))
def _check_receivers(sites: Sites, name: str, gone: str, live: str) -> None:
    report = check(sites.site(name), sites.client(), sites.state(name))
    rows = {f.requirement: f for f in report.findings}
    abandoned = rows.get(f"replication receiver {gone} is there")
    kept = rows.get(f"replication receiver {live} is there")
    assert abandoned is not None and kept is not None, list(rows)
    assert not abandoned.ok and f"{gone}{tasks.TASK_SEPARATOR}data" in abandoned.detail, \
        abandoned.detail
    assert "by-hand" not in abandoned.detail, abandoned.detail
    assert kept.ok, kept.detail


@then(parsers.parse('check of the site "{name}" finds no abandoned receiver'))
def _check_no_abandoned(sites: Sites, name: str) -> None:
    report = check(sites.site(name), sites.client(), sites.state(name))
    bad = [(f.requirement, f.detail) for f in report.findings
           if f.requirement.startswith("replication receiver") and not f.ok]
    assert not bad, bad


@when(parsers.parse('I sweep the receivers of the site "{name}" with a dry run'),
      target_fixture="receiver_sweep")
def _sweep_receivers_dry(sites: Sites, name: str) -> ReceiverSweep:
    return _sweep_cli(sites, name, dry_run=True)


@when(parsers.parse('I sweep the receivers of the site "{name}"'),
      target_fixture="receiver_sweep")
def _sweep_receivers(sites: Sites, name: str) -> ReceiverSweep:
    return _sweep_cli(sites, name, dry_run=False)


def _sweep_cli(sites: Sites, name: str, dry_run: bool) -> ReceiverSweep:
    """`truenas-site sweep-receivers` as an operator runs it, on the source's site file."""
    (sites.state_root / f"{name}.toml").write_text(to_toml(site_data(name)))
    before = _source_node(sites, name)
    args = ["sweep-receivers", "--site", str(sites.state_root / f"{name}.toml"),
            "--state-dir", str(sites.state_root / name)]
    if dry_run:
        args.append("--dry-run")
    if sites.target.kind == "fake":
        args += ["--world", os.path.join(os.path.dirname(sites.target.ca_bundle),
                                         "world.json")]
    result = CliRunner().invoke(app, args, env={})
    return ReceiverSweep(result.exit_code, result.output, before, _source_node(sites, name))


@then(parsers.parse('it would remove what "{gone}" left and nothing else, and removed nothing'))
def _would_remove(receiver_sweep: ReceiverSweep, gone: str) -> None:
    sweep = receiver_sweep
    assert sweep.exit_code == 0, sweep.output
    assert "would remove 1 abandoned receiver" in sweep.output, sweep.output
    removed = [line for line in sweep.output.splitlines() if line.strip().startswith("-")]
    assert len(removed) == 1 and removed[0].strip().startswith(f"- {gone}:"), sweep.output
    assert f"{gone}{tasks.TASK_SEPARATOR}data" in removed[0], sweep.output
    assert f"{gone}{tasks.CONNECTION_SUFFIX}" in removed[0], sweep.output
    assert "by-hand" not in removed[0], sweep.output
    assert sweep.after == sweep.before, (sweep.before, sweep.after)


@then(parsers.parse('the node of the site "{source}" holds nothing of the site "{gone}" but '
                    'what was made by hand'))
def _nothing_left_but_by_hand(sites: Sites, receiver_sweep: ReceiverSweep, by_hand: ByHand,
                              source: str, gone: str) -> None:
    assert receiver_sweep.exit_code == 0, receiver_sweep.output
    now = _source_node(sites, source)
    prefix = f"{gone}{tasks.TASK_SEPARATOR}"
    left = [n for i, n in now.tasks.items() if n.startswith(prefix) and i not in by_hand.tasks]
    creds = [n for n in now.credentials.values()
             if n in (f"{gone}{tasks.CONNECTION_SUFFIX}", f"{gone}{tasks.KEY_SUFFIX}")]
    assert not left and not creds, (left, creds)


@then(parsers.parse('the replication to the site "{live}" and the tasks made by hand are as '
                    'they were'))
def _others_kept(sites: Sites, receiver_sweep: ReceiverSweep, by_hand: ByHand,
                 live: str) -> None:
    now = _source_node(sites, by_hand.site)
    for task_id, name in by_hand.tasks.items():
        assert now.tasks.get(task_id) == name, (task_id, name, now.tasks)
    theirs = {i: n for i, n in receiver_sweep.before.tasks.items()
              if n.startswith(f"{live}{tasks.TASK_SEPARATOR}")}
    assert theirs, receiver_sweep.before.tasks
    assert all(now.tasks.get(i) == n for i, n in theirs.items()), (theirs, now.tasks)
    for suffix in (tasks.CONNECTION_SUFFIX, tasks.KEY_SUFFIX):
        assert f"{live}{suffix}" in now.credentials.values(), now.credentials
    # Every other receiver's task is still there too: only the abandoned one's went.
    gone = set(receiver_sweep.before.tasks.values()) - set(now.tasks.values())
    assert all(n.startswith(by_hand.receiver + tasks.TASK_SEPARATOR) for n in gone), gone
