"""A receiving site's replication as `plan`, `up`, `down`, `check` and `promote` see
it: each `[[replication]]`'s source node reached with the source site's own
credentials (its state directory), and infra/resources/replication.py's vocabulary
applied there. This site's node is only asked for a token (the pairing), its UI
port, its datasets and snapshots, and, on `promote`, to make the datasets writable.

`promote` is idempotent: each task disabled on the source (when the source answers:
a lost source is the disaster promotion is for), each received dataset's `readonly`
off, the promotion recorded in this site's state directory so that `up` keeps the
tasks disabled (infra/promote.py then starts the charts that waited for the copy to
be writable, and says why there rather than in `up`). `check` (read-only, also on
the existing target) reports per dataset the task's state, the newest snapshot
received and its lag behind the source's newest, on the receiving node's clock (a
fake world's is virtual); a source whose droplet is gone or does not answer fails its
own row (unless the copy was promoted), and the lag is then the age of the newest
snapshot received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from infra.change import Change
from infra.digitalocean import DigitalOcean
from infra.errors import InfraError, SiteFileError
from infra.events import Reporter
from infra.node import connect_site_node
from infra.report import CheckReport
from infra.resources import replication as tasks
from infra.resources.replication import Source
from infra.site import Site, load_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient

SOURCES = "replication_sources"   # the state directory's record: source file -> its state


@dataclass(frozen=True)
class Dropped:
    """A source an earlier `up` replicated from that the site file no longer names."""

    file: Path
    site: Site
    state: StateDir


@dataclass(frozen=True)
class Started:
    """A run started on a source node: its task's name and its job."""

    source: Source
    task: str
    job_id: int


@dataclass
class ReplicationPlan:
    changes: list[Change] = field(default_factory=list)
    # Why the source side is not listed (no source droplet, the node does not answer).
    pending: str | None = None


def involved(site: Site, state: StateDir) -> bool:
    """Whether the site receives data, or did at its last `up` (what it made on a
    source its file no longer names is removed by the next `up` or `down`)."""
    return bool(site.replication or state.created(SOURCES))


class Replication:
    """The site's `[[replication]]` sections, on their source nodes."""

    def __init__(self, site: Site, target: Target, state: StateDir,
                 do: DigitalOcean | None = None, reporter: Reporter | None = None,
                 *, read_only: bool = False, source_log: CallLog | None = None) -> None:
        self.site = site
        self.target = target
        self.state = state
        self.do = do
        self.reporter = reporter or Reporter()
        self.read_only = read_only
        # The calls made on the source nodes (this site's node has its own log).
        self.source_log = source_log if source_log is not None else CallLog()
        self.sources = tasks.sources(site, read_only=read_only)
        self.dropped = self._dropped(read_only)

    def _dropped(self, read_only: bool) -> list[Dropped]:
        """The sources an earlier `up` replicated from (recorded in the state
        directory) that the site file no longer names: what the site made there goes."""
        named = {str(source.file) for source in self.sources}
        dropped = []
        for file, state_dir in self.state.created(SOURCES).items():
            if file in named:
                continue
            try:
                site = load_site(Path(file), follow_replication=False)
            except SiteFileError as error:
                self.reporter.note(f"{file}, a source this site replicated from, does not "
                                   f"load ({'; '.join(error.problems)}): what the site made "
                                   "there stays")
                continue
            dropped.append(Dropped(Path(file), site, StateDir(Path(state_dir),
                                                              read_only=read_only)))
        return dropped

    # --- reaching a source -----------------------------------------------------
    def address(self, source: Source | Dropped) -> str | None:
        if self.do is None:
            return None
        return tasks.source_address(self.do, source.site)

    def connect(self, source: Source | Dropped, address: str | None = None) -> TrueNASClient:
        """A client on the source's node, at `address` when the caller has just looked
        it up (`address`), else at the address looked up now."""
        address = address or self.address(source)
        if address is None:
            raise tasks.ReplicationProblem(
                f"the source site {source.site.name} has no droplet with a public address "
                "(lost, or never brought up)")
        return connect_site_node(source.site, self.target, source.state, address,
                                 self.source_log)

    # --- plan ------------------------------------------------------------------
    def plan(self, target_address: str) -> ReplicationPlan:
        """The changes on each source node (reads only)."""
        planned = ReplicationPlan()
        promoted = tasks.promoted(self.state)
        paired: set[str] = set()
        for source in self.sources:
            try:
                with self.connect(source) as client:
                    seen = tasks.find(client, self.site)
            except InfraError as error:
                planned.pending = (f"the replication from {source.site.name} is looked at "
                                   f"once its node answers ({error})")
                continue
            changes = tasks.diff(self.site, source, seen, target_address, promoted)
            if source.site.name in paired:   # one SSH connection per source node
                changes = [c for c in changes if c.kind != "setup_ssh_connection"]
            if any(c.kind == "setup_ssh_connection" for c in changes):
                paired.add(source.site.name)
            planned.changes += changes
        for dropped in self.dropped:
            try:
                with self.connect(dropped) as client:
                    seen = tasks.find(client, self.site)
            except InfraError as error:
                planned.pending = (f"what the site left on {dropped.site.name}'s node is "
                                   f"looked at once it answers ({error})")
                continue
            requests = [tasks.DELETE] * len(seen.tasks) + \
                [tasks.DELETE_CREDENTIAL] * len(seen.credentials)
            if requests:
                planned.changes.append(Change(
                    "remove_replication", dropped.site.name,
                    "no [[replication]] names it any more", tuple(requests)))
        return planned

    # --- up --------------------------------------------------------------------
    def converge(self, target_client: TrueNASClient, target_address: str) -> list[str]:
        """Pair, create or update each task, and run the tasks never run (or last
        failed), waiting for each run with its progress; remove what the site made on
        a source its file no longer names."""
        done: list[str] = []
        promoted = tasks.promoted(self.state)
        for name in promoted - set(tasks.received(self.site)):
            self.state.forget(tasks.PROMOTED, name)     # no longer received: no longer a copy
        for dropped in self.dropped:
            if (address := self.address(dropped)) is not None:
                with self.connect(dropped, address) as client:
                    done += tasks.destroy(client, self.site, self.reporter)
            self.state.forget(SOURCES, str(dropped.file))
        for source in self.sources:
            self.state.record_created(SOURCES, str(source.file), str(source.state.path))
            if (address := self.address(source)) is None:
                # A lost source is what promotion is for: the copy's own `up` goes on.
                self.reporter.note(f"the source site {source.site.name} has no droplet: its "
                                   "replication is set up once it has (up again then)")
                continue
            with self.connect(source, address) as client:
                seen = tasks.find(client, self.site)
                connection = seen.credential(tasks.connection_name(self.site))
                if connection is None or tasks._connection_host(connection) != target_address:
                    connection = tasks.setup_connection(client, target_client, self.site,
                                                        target_address, seen, self.reporter)
                    done.append(f"set up SSH connection {connection['name']} on "
                                f"{source.site.name}'s node")
                made = tasks.create_or_update(client, self.site, source, connection["id"],
                                              promoted, self.reporter)
                for change, task, _new in made:
                    if change:
                        done.append(change)
                    if task["name"].split(":", 1)[1] in promoted:
                        continue
                    if tasks.state_of(task) not in (tasks.DONE, tasks.RUNNING):
                        result = tasks.run(client, task, self.reporter)
                        done.append(f"replicate {task['name']} ({result.bytes_sent} bytes "
                                    "sent)")
        return done

    def run_now(self) -> list[tasks.RunResult]:
        """Run every task of the site now (not a promoted dataset's), each after the
        run in progress, if any, ends; a failed run raises (JobFailed)."""
        return self.wait(self.start())

    def start(self) -> list[Started]:
        """Start a run of every task of the site (after the run in progress, if any),
        without waiting for them: what `wait` and `sent_so_far` take."""
        started = []
        promoted = tasks.promoted(self.state)
        for source in self.sources:
            with self.connect(source) as client:
                for name in source.spec.datasets:
                    task = tasks.find(client, self.site).task(tasks.task_name(self.site, name))
                    if task is None or name in promoted:
                        continue
                    if tasks.state_of(task) == tasks.RUNNING and task.get("job"):
                        tasks.wait_job(client, task["job"]["id"], task["name"], self.reporter)
                    self.reporter.step(f"replicate {task['name']}")
                    started.append(Started(source, task["name"],
                                           client.call(tasks.RUN, task["id"])))
        return started

    def sent_so_far(self, started: Started) -> int:
        """The bytes a started run's progress shows sent so far (of its current
        snapshot), 0 before it sends."""
        with self.connect(started.source) as client:
            seen: dict[str, int] = {}
            tasks._sent(client.job(started.job_id).get("progress") or {}, seen)
        return sum(seen.values())

    def wait(self, started: list[Started]) -> list[tasks.RunResult]:
        """Each started run's end (JobFailed for a failed one)."""
        results = []
        for run in started:
            with self.connect(run.source) as client:
                results.append(tasks.wait_job(client, run.job_id, run.task, self.reporter))
        return results

    # --- down ------------------------------------------------------------------
    def destroy(self) -> list[str]:
        """What this site made on each source node (tasks, credentials); the copy goes
        with the site, and so does the record of its promotion."""
        done: list[str] = []
        for name in tasks.promoted(self.state):
            self.state.forget(tasks.PROMOTED, name)
        for source in [*self.sources, *self.dropped]:
            if (address := self.address(source)) is None:
                self.reporter.note(f"the source site {source.site.name} has no droplet: "
                                   "nothing of this site's is left on it")
            else:
                with self.connect(source, address) as client:
                    done += tasks.destroy(client, self.site, self.reporter)
            self.state.forget(SOURCES, str(source.file))
        return done

    # --- promote ---------------------------------------------------------------
    def promote(self, target_client: TrueNASClient) -> list[str]:
        """Make the copy writable: each task disabled on its source (when the source
        answers), each received dataset's readonly off; recorded in the state
        directory. What it did, one line each; nothing when already promoted."""
        done: list[str] = []
        for source in self.sources:
            try:
                client = self.connect(source)
            except InfraError as error:
                self.reporter.note(f"the source {source.site.name} does not answer "
                                   f"({error}): its tasks stay as they are; a run into "
                                   "this writable copy is refused once it has changed")
                client = None
            if client is not None:
                with client:
                    seen = tasks.find(client, self.site)
                    for name in source.spec.datasets:
                        task = seen.task(tasks.task_name(self.site, name))
                        if task is not None and task.get("enabled"):
                            self.reporter.step(f"disable replication {task['name']}")
                            client.call(tasks.UPDATE, task["id"],
                                        {"enabled": False, "readonly": "IGNORE"})
                            done.append(f"disabled replication {task['name']} on "
                                        f"{source.site.name}'s node")
            for name in source.spec.datasets:
                dataset = tasks.target_dataset(self.site, name)
                found = target_client.call("pool.dataset.query", [["id", "=", dataset]])
                if found and _readonly(found[0]):
                    self.reporter.step(f"make {dataset} writable")
                    target_client.call("pool.dataset.update", dataset, {"readonly": "OFF"})
                    done.append(f"{dataset} is writable (readonly off)")
                elif not found:
                    self.reporter.note(f"{dataset} was never received: nothing to promote")
                if name not in tasks.promoted(self.state):
                    self.state.record_created(tasks.PROMOTED, name,
                                              datetime.now().isoformat(timespec="seconds"))
        return done

    # --- check -----------------------------------------------------------------
    def findings(self, report: CheckReport, target_client: TrueNASClient) -> None:
        """Per dataset: the task's state (when the source answers), the newest
        snapshot received, and how far behind the source's newest it is."""
        info = target_client.call("system.info")
        now = info.get("datetime") if isinstance(info.get("datetime"), datetime) else None
        promoted = tasks.promoted(self.state)
        for source in self.sources:
            seen, newest_there, silent = None, {}, None
            try:
                with self.connect(source) as client:
                    seen = tasks.find(client, self.site)
                    for name in source.spec.datasets:
                        newest_there[name] = _newest(client, source.dataset(name))
            except InfraError as error:
                if self.do is None:
                    # No DigitalOcean token (check --existing): the source's droplet
                    # was not looked for; this is no finding about the source.
                    report.skip(f"replication from {source.site.name}",
                                f"the source node was not looked at ({error})")
                else:
                    # Looked for and not answering: a lost source. A promoted copy
                    # no longer needs it; a copy still replicating is falling behind.
                    silent = str(error)
                    report.add(f"replication from {source.site.name}: the source answers",
                               bool(promoted.issuperset(source.spec.datasets)),
                               f"it does not: {error}")
            for name in source.spec.datasets:
                _dataset_findings(report, self.site, source, name, seen,
                                  newest_there.get(name), target_client, now,
                                  name in promoted, silent)


def _readonly(dataset: dict) -> bool:
    value = dataset.get("readonly")
    value = value.get("value") if isinstance(value, dict) else value
    return str(value).upper() == "ON"


def _newest(client: TrueNASClient, dataset: str) -> tuple[str, datetime] | None:
    """The newest snapshot of `dataset` (its name and creation time)."""
    taken = []
    for snapshot in client.call("pool.snapshot.query", [["dataset", "=", dataset]]):
        created = snapshot.get("properties", {}).get("creation", {}).get("parsed")
        if isinstance(created, datetime):
            taken.append((created, snapshot.get("snapshot_name") or
                          str(snapshot.get("name", "")).split("@", 1)[-1]))
    if not taken:
        return None
    created, name = max(taken)
    return name, created


def _dataset_findings(report: CheckReport, site: Site, source: Source, name: str,
                      seen: tasks.OnSource | None, newest_there: tuple[str, datetime] | None,
                      target_client: TrueNASClient, now: datetime | None,
                      promoted: bool, silent: str | None = None) -> None:
    dataset = tasks.target_dataset(site, name)
    subject = f"replication of {source.dataset(name)} to {dataset}"
    if seen is not None:
        task = seen.task(tasks.task_name(site, name))
        if task is None:
            report.add(f"{subject}: task exists", promoted,
                       "promoted, task removed" if promoted else
                       f"no task {tasks.task_name(site, name)} on {source.site.name}'s node")
        else:
            state = task.get("state") if isinstance(task.get("state"), dict) else {}
            detail = tasks.state_of(task) + ("" if task.get("enabled") else ", disabled")
            if state.get("error"):
                detail += f": {state['error']}"
            healthy = promoted or (task.get("enabled") and
                                   tasks.state_of(task) in (tasks.DONE, tasks.RUNNING))
            report.add(f"{subject}: task state", bool(healthy), detail)
    here = _newest(target_client, dataset)
    if here is None:
        report.add(f"{subject}: snapshot received", False, f"{dataset} holds no snapshot")
        return
    snapshot, created = here
    if newest_there is not None:
        lag = newest_there[1] - created
        report.add(f"{subject}: lag behind the source", promoted or lag <= _allowed(source),
                   f"last received {snapshot}; the source's newest is {newest_there[0]}, "
                   f"{_human(lag)} later")
    elif silent is not None and now is not None:
        # The source's newest is unknown: the copy is at least as far behind as its
        # newest snapshot is old, on the receiving node's clock.
        age = now - created
        report.add(f"{subject}: lag behind the source", promoted or age <= _allowed(source),
                   f"last received {snapshot}, {_human(age)} old; the source does not "
                   "answer: its newest snapshot is unknown")
    else:
        age = (now - created) if now else None
        report.add(f"{subject}: snapshot received", True,
                   f"last received {snapshot}" + (f", {_human(age)} old" if age else ""))


def _allowed(source: Source) -> timedelta:
    """How far behind the copy may be: two of the source's snapshot intervals."""
    from infra.check import schedule_interval

    intervals = [schedule_interval(p) for p in source.site.snapshots
                 if any(p.covers(name) for name in source.spec.datasets)]
    return 2 * max(intervals, default=timedelta(hours=1))


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0 min"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
