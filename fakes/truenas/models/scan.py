"""Resilvers and scrubs: scans that take virtual time, then really move bytes.

Facts followed (reference/truenas-api.md §4 pool.query scan, pool.replace, Scrub;
plugins/pool_/scrub.py):
- `scan` is `{function "SCRUB"|"RESILVER", state "SCANNING"|"FINISHED"|"CANCELED",
  start_time, end_time ($date), percentage, bytes_to_process, bytes_processed,
  bytes_issued, pause, errors, total_secs_left}`; progress is also pushed as the
  event `pool.scan` CHANGED with `fields {scan, name}`;
- `pool.scrub <id> START` is a job that waits for the scrub and reports
  "Scrubbing" progress; it ends with "Scrub finished", "Scrub paused", or when the
  scan is cancelled or replaced by another function; STOP cancels; PAUSE pauses and
  a later START resumes (zpool scrub semantics);
- a scrub refuses to start while a resilver runs (EBUSY); a resilver that must
  start cancels a running scrub (ZFS gives resilvers precedence).
Durations chosen (real ones depend on hardware): SCAN_BASE_SECONDS (30 virtual s)
plus SCAN_SECONDS_PER_MIB (1 virtual s) per MiB to process. A resilver processes
what its targets lack; a scrub processes the pool's allocated bytes. The bytes are
copied or checked when the scan finishes. A resilver that must start while one
runs restarts it with all targets (ZFS without the resilver_defer feature).
`errors` of a scrub counts every bad copy found (repaired or not); libzfs's own
counter only counts unrepaired errors, so a client should read leaf
`checksum_errors` and the pool's `healthy`/`status_code` as well.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError

if TYPE_CHECKING:
    from fakes.truenas.jobs import Job
    from fakes.truenas.models.pools import Pool
    from fakes.truenas.models.topology import Member

SCAN_BASE_SECONDS = 30.0
SCAN_SECONDS_PER_MIB = 1.0
TICKS = 10          # progress reports per scan


def scan_seconds(nbytes: int) -> float:
    return SCAN_BASE_SECONDS + SCAN_SECONDS_PER_MIB * nbytes / 2**20


class Scan:
    def __init__(self, pool: Pool, function: str, bytes_to_process: int) -> None:
        self.pool = pool
        self.function = function
        self.state = "SCANNING"
        now = pool.storage.now()
        self.start_time = now
        self.end_time: float | None = None
        self.bytes_to_process = bytes_to_process
        self.duration = scan_seconds(bytes_to_process)
        self.done_seconds = 0.0          # progress made before the current run
        self.resumed_at = now
        self.paused_at: float | None = None
        self.errors = 0
        self.waiters: list[tuple[Job, str | None]] = []   # (job, leaf guid it waits for)
        self._generation = 0
        self._schedule()

    @property
    def running(self) -> bool:
        return self.state == "SCANNING" and self.paused_at is None

    def elapsed(self, at: float | None = None) -> float:
        at = self.pool.storage.now() if at is None else at
        extra = max(0.0, at - self.resumed_at) if self.running else 0.0
        return min(self.duration, self.done_seconds + extra)

    def percentage(self) -> float:
        if self.state == "FINISHED":
            return 100.0
        return round(100.0 * self.elapsed() / self.duration, 2)

    def entry(self) -> dict:
        done = self.state == "FINISHED"
        fraction = 1.0 if done else self.elapsed() / self.duration
        processed = int(self.bytes_to_process * fraction)
        left = None if not self.running else int(self.duration - self.elapsed())
        return {
            "function": self.function, "state": self.state,
            "start_time": Timestamp(self.start_time),
            "end_time": Timestamp(self.end_time) if self.end_time is not None else None,
            "percentage": self.percentage(), "bytes_to_process": self.bytes_to_process,
            "bytes_processed": processed, "bytes_issued": processed,
            "pause": Timestamp(self.paused_at) if self.paused_at is not None else None,
            "errors": self.errors, "total_secs_left": left,
        }

    # --- the clock ---------------------------------------------------------
    def _schedule(self) -> None:
        self._generation += 1
        generation = self._generation
        clock = self.pool.storage.node.clock
        remaining = self.duration - self.done_seconds
        due = self.resumed_at + remaining
        for tick in range(1, TICKS):
            at = self.resumed_at + remaining * tick / TICKS
            clock.call_later(at - clock.now(), lambda at=at: self._tick(generation, at))
        clock.call_later(due - clock.now(), lambda: self._finish(generation, due))

    def _current(self, generation: int) -> bool:
        return (generation == self._generation and self.running
                and self.pool.scan is self and not self.pool.storage.dead)

    def _tick(self, generation: int, at: float) -> None:
        if not self._current(generation):
            return
        percent = round(100.0 * self.elapsed(at) / self.duration, 2)
        label = "Scrubbing" if self.function == "SCRUB" else "Resilvering"
        for job, _ in self.waiters:
            job.set_progress(percent, label)
        self.pool.storage.emit_scan(self.pool)

    def _finish(self, generation: int, at: float) -> None:
        if not self._current(generation):
            return
        if self.function == "RESILVER":
            finish_resilver(self.pool, self, at)
        else:
            finish_scrub(self.pool, self, at)

    def stop(self, state: str = "CANCELED") -> None:
        """Cancel (STOP, export, or a resilver taking over); waiters end."""
        self._generation += 1
        self.state = state
        self.end_time = self.pool.storage.now()
        self._remember()
        for job, _ in self.waiters:
            if self.function == "SCRUB":
                job.succeed(None)
            else:
                job.fail(CallError("The resilver was cancelled", errno.ECANCELED))
        self.waiters.clear()
        self.pool.storage.emit_scan(self.pool)

    def pause(self) -> None:
        if not self.running:
            return
        now = self.pool.storage.now()
        self.done_seconds = self.elapsed(now)
        self.paused_at = now
        self._generation += 1
        for job, _ in self.waiters:
            job.set_progress(100, "Scrub paused")
            job.succeed(None)
        self.waiters.clear()
        self.pool.storage.emit_scan(self.pool)

    def resume(self) -> None:
        if self.paused_at is None:
            return
        self.paused_at = None
        self.resumed_at = self.pool.storage.now()
        self._schedule()

    def _remember(self) -> None:
        """The last scan's summary is pool metadata: it survives export/import."""
        self.pool.meta["last_scan"] = self.entry()


# --- starting ----------------------------------------------------------------
def stale_leaves(pool: Pool) -> list[Member]:
    return [leaf for leaf in pool.leaves if leaf.online and leaf.stale]


def start_resilver(pool: Pool, waiter: Job | None = None, guid: str | None = None) -> Scan:
    """(Re)start a resilver of every stale leaf; `waiter` ends when `guid` is in sync."""
    waiters: list[tuple[Job, str | None]] = []
    current = pool.scan
    if current is not None and current.state == "SCANNING":
        if current.function == "RESILVER":
            waiters = current.waiters
            current.waiters = []
            current._generation += 1
        else:
            current.stop()
    nbytes = sum(sum(rec["size"] for rec in pool.objects.missing_on(leaf).values())
                 for leaf in stale_leaves(pool))
    scan = Scan(pool, "RESILVER", nbytes)
    scan.waiters = waiters
    if waiter is not None:
        scan.waiters.append((waiter, guid))
    pool.scan = scan
    pool.storage.emit_scan(pool)
    return scan


def start_scrub(pool: Pool, waiter: Job) -> None:
    current = pool.scan
    if current is not None and current.state == "SCANNING":
        if current.function == "RESILVER":
            raise CallError(f"cannot scrub {pool.name}: currently resilvering", errno.EBUSY)
        if current.paused_at is not None:
            current.waiters.append((waiter, None))
            current.resume()
            pool.storage.emit_scan(pool)
            return
        raise CallError(f"cannot scrub {pool.name}: currently scrubbing; use 'zpool scrub "
                        "-s' to cancel current scrub", errno.EBUSY)
    pool.require_readable()
    scan = Scan(pool, "SCRUB", pool.allocated)
    scan.waiters.append((waiter, None))
    pool.scan = scan
    pool.storage.emit_scan(pool)


def stop_scrub(pool: Pool, action: str) -> None:
    current = pool.scan
    if current is None or current.function != "SCRUB" or current.state != "SCANNING":
        raise CallError(f"cannot {'cancel' if action == 'STOP' else 'pause'} scrubbing "
                        f"{pool.name}: there is no active scrub", errno.ENOENT)
    if action == "STOP":
        current.stop()
    else:
        current.pause()


# --- finishing ---------------------------------------------------------------
def _complete(pool: Pool, scan: Scan, at: float) -> None:
    scan.state = "FINISHED"
    scan.end_time = at
    scan._generation += 1
    scan._remember()


def _rotate_error_log(pool: Pool) -> None:
    """A finished scrub or resilver drops the errors it no longer meets.

    ZFS: dsl_scan_done() calls spa_errlog_rotate() for scrubs and resilvers alike
    (spa_errlog.c: "if an error is somehow corrected, a new scrub will show that it
    no longer exists, and will be deleted from the log when the scrub completes").
    The fake keeps one log, not ZFS's last/current pair, so one scan is enough.
    """
    pool.permanent_errors.difference_update([
        oid for oid in pool.permanent_errors
        if oid not in pool.objects.table or pool.objects.good_copy(oid) is not None])


def finish_resilver(pool: Pool, scan: Scan, at: float) -> None:
    lost: list[str] = []
    synced: set[str] = set()
    abandoned: dict[str, str] = {}
    for vdev in pool.vdevs:
        for index, slot in enumerate(list(vdev.members)):
            for leaf in slot.slot_members:
                if leaf.online and leaf.stale:
                    missed = pool.objects.resilver_leaf(leaf)
                    lost += missed
                    # ZFS keeps a leaf's DTL (the txgs it missed) after a scan with
                    # errors (vdev_dtl_reassess excises it only when scn_errors == 0),
                    # and resilvers it again when a member that holds them returns
                    # (storage.plug_disk). The fake keeps the leaf stale while a leaf
                    # of its vdev that may hold what it lacks is away; with every
                    # leaf present, what none could supply is lost for good.
                    leaf.stale = bool(missed) and any(not other.online
                                                      for other in vdev.leaves)
                    if not leaf.stale:
                        synced.add(leaf.guid)
            new = slot.replacement
            if new is None:
                continue
            if not new.online:
                abandoned[new.guid] = (f"The new disk ({new.serial}) went away before the "
                                       "resilver finished")
                slot.replacement = None
                continue
            if new.stale:
                continue
            vdev.members[index] = new
            if vdev.type == "DISK":
                vdev.guid = new.guid
            if slot.online:
                slot.store.wipe()   # the old leaf is detached: its label is cleared
            synced.add(new.guid)
    _rotate_error_log(pool)
    pool.permanent_errors.update(lost)
    scan.errors = len(lost)
    _complete(pool, scan, at)
    pool.commit()
    for job, guid in scan.waiters:
        if guid in abandoned:
            job.fail(CallError(abandoned[guid], errno.ENXIO))
        elif lost:
            job.fail(CallError(f"Resilver finished with {len(lost)} object(s) that no member "
                               "could supply: that data is lost", errno.EIO))
        else:
            job.succeed(True)
    scan.waiters.clear()
    pool.storage.emit_scan(pool)


def finish_scrub(pool: Pool, scan: Scan, at: float) -> None:
    found = 0
    lost: set[str] = set()
    for leaf in pool.leaves:
        if leaf.online and not leaf.stale:
            bad, _repaired, unrepaired = pool.objects.scrub_leaf(leaf)
            found += bad
            lost.update(unrepaired)
    _rotate_error_log(pool)
    pool.permanent_errors.update(lost)
    scan.errors = found
    _complete(pool, scan, at)
    pool.commit()
    for job, _ in scan.waiters:
        job.set_progress(100, "Scrub finished")
        job.succeed(None)
    scan.waiters.clear()
    pool.storage.emit_scan(pool)
