"""Steps of features/replication.feature: a receiving site's copy of production's
datasets, byte for byte, its increments, promotion, a cut-off run and a fork."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import pytest
from pytest_bdd import given, parsers, then, when
from typer.testing import CliRunner

from infra import desired, snapshots
from infra.check import check
from infra.cli import app
from infra.errors import InfraError
from infra.events import Reporter
from infra.replication import Replication, Started
from infra.resources import firewall
from infra.resources import replication as tasks
from infra.resources.droplet import find as find_droplet
from steps.common import Sites, WrittenFiles
from steps.fake_admin import FakeAdmin
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
