"""Random sequences of storage operations keep every byte a simple model says survives.

A hypothesis state machine drives one site on a fake world only through the real
clients, the way a forker's run would: files through infra's TrueNASClient, snapshots
through infra.snapshots, lost disks through DigitalOcean's volume API (infra.faults),
repairs and scrubs through infra.storage. Only bit rot, which no real API can cause,
goes through the fake's admin API. The model, its rules and what it predicts are on
`StorageMachine`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fakes.world import World
from infra import desired, faults, snapshots
from infra.digitalocean import DigitalOcean
from infra.errors import InfraError
from infra.node import NodeSetup, open_node
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.resources.pool import report as pool_report
from infra.resources.volume import find as find_volume
from infra.site import Site
from infra.state import StateDir
from infra.storage import Repair, scrub
from infra.target import Target
from infra.truenas.client import TrueNASClient
from infra.truenas.errors import TrueNASCallError
from infra.up import Provisioner
from steps.fake_admin import FakeAdmin
from steps.sites import build_site
from tests.budget import examples

pytestmark = [pytest.mark.slow, pytest.mark.fake_only]

SITE = "stm"
# The site's periodic snapshot task snapshots "data"; "apps" has none, so every
# snapshot of it is one the machine took.
DATASET = "apps"
NAMES = ("a", "b", "c", "sub/d")
LABELS = ("s1", "s2", "s3")
KIB = 1024
IN, OUT, GONE = "in", "out", "gone"

_examples = itertools.count(1)
_clones = itertools.count(1)


def _pseudo_random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# Mostly small payloads (they shrink well), some up to 64 KiB of incompressible bytes.
PAYLOADS = st.one_of(
    st.binary(max_size=64),
    st.builds(_pseudo_random, st.integers(0, 64 * KIB), st.integers(0, 2**32 - 1)),
)


def _digest(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def _top_level(files: dict[str, bytes]) -> set[str]:
    return {name.split("/", 1)[0] for name in files}


@dataclass
class Rig:
    """One site on one fake world, and the real clients that reach it."""

    world: World
    target: Target
    site: Site
    do: DigitalOcean
    state: StateDir
    client: TrueNASClient
    admin: FakeAdmin
    droplet: dict

    @property
    def volumes(self) -> list[str]:
        return desired.volume_names(self.site)

    @property
    def pool(self) -> str:
        return self.site.truenas.pool

    def advance(self, seconds: float) -> None:
        with self.world.backend.lock:
            self.world.clock.advance(seconds)

    def whereabouts(self) -> dict[str, str]:
        """Where the account says each site volume is."""
        found = {}
        for name in self.volumes:
            volume = find_volume(self.do, self.site, name)
            if volume is None:
                found[name] = GONE
            else:
                found[name] = IN if self.droplet["id"] in (volume.get("droplet_ids") or []) \
                    else OUT
        return found

    def attach(self, name: str) -> None:
        """Attach one site volume (DigitalOcean's volume action) and wait for the disk."""
        do = self.do
        volume = find_volume(do, self.site, name)
        assert volume is not None, f"volume {name} is gone"
        action = do.call(f"attach volume {name}", do.client.volume_actions.post_by_id,
                         volume["id"], {"type": "attach", "droplet_id": self.droplet["id"],
                                        "region": self.site.site.region}, retry=False)["action"]
        do.wait_action(action["id"], f"attach volume {name}", desired.ACTION_SECONDS)
        do.wait_until(f"volume {name} to show up as a disk",
                      lambda: any(d["serial"] == name for d in self.client.call("disk.query")),
                      desired.ACTION_SECONDS)

    def repair(self) -> list[str]:
        return Repair(self.site, self.do, self.client, self.state).run()

    def fresh_pool(self) -> None:
        """Both site volumes attached and a new, empty pool on them, whatever the last
        example left: every example starts from the same state, so hypothesis can
        replay and shrink a failing one."""
        do, site = self.do, self.site
        for name, place in self.whereabouts().items():
            if place == GONE:
                spec = next(v for v in site.volumes if f"{site.name}-{v.name}" == name)
                do.call(f"create volume {name}", do.client.volumes.create, {
                    "name": name, "size_gigabytes": spec.size_gigabytes,
                    "region": site.site.region,
                    "tags": desired.tags_for(site, self.state.run_id())})
            if place != IN:
                self.attach(name)
        pools = self.client.call("pool.query", [["name", "=", self.pool]])
        if pools:
            self.client.call_job("pool.export", pools[0]["id"],
                                 {"cascade": True, "destroy": True})
        NodeSetup(site, self.client).converge()
        report = pool_report(self.client, site)
        assert report.status == "ONLINE" and report.healthy, report


def refused(call: Callable[[], object]) -> InfraError:
    """`call` must fail with the project's own error, never succeed."""
    with pytest.raises(InfraError) as caught:
        call()
    return caught.value


class StorageMachine(RuleBasedStateMachine):
    """The reference model is small: the files of one directory of the dataset "apps"
    (name -> bytes), its snapshots (label -> a copy of the files, oldest first), and
    where each site volume is (attached "in", detached "out", deleted "gone"). The
    rules, and what the model predicts:

    - write (or append) a file, 0..64 KiB: stored while some member is attached,
      refused (model unchanged) while none is;
    - snapshot, roll back (to the newest, or to an older one discarding the newer
      ones; refused otherwise), destroy a snapshot, restore one as a clone beside the
      live data (its files must be the snapshot's);
    - detach a volume; delete one while its partner is attached; bring back the
      volume that left last when both are away (it holds the newest data); repair
      (re-attach / replace what is missing and wait for the resilver);
    - rot one member's copy of a file (healthy pool only), then scrub at once (it
      must find exactly that copy) or later (reads may heal it first; a scrub never
      finds more than was rotten);
    - virtual time passes (periodic snapshots of the other dataset, scans finishing).

    Every example starts on a new, empty pool on both site volumes (so hypothesis can
    replay and shrink a failing one) and ends by recovering as an operator would,
    scrubbing, and proving that each member alone serves every byte.

    After every step: every file the model holds reads back byte-identical and the
    directory lists exactly the model's names while any member is attached; every
    read fails (never wrong bytes) while none is; the snapshot names match; the pool
    is ONLINE and healthy with both members, DEGRADED with one, UNAVAIL with none.

    Left out on purpose: deleting a file (TrueNAS's API has no file deletion; an
    empty write is covered by the 0-byte sizes), losing both copies for good (the
    storage feature covers data loss), and bringing back the stale member first after
    losing both (one scenario of its own covers that, at the end)."""

    rig: Rig  # set by the test function

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}
        self.snaps: list[tuple[str, dict[str, bytes]]] = []   # oldest first
        self.where: dict[str, str] = {}
        self.last_out: str | None = None   # with no volume attached: the last to leave
        self.rot_pending = 0               # rotten copies no scrub has seen yet
        self.directory = f"ex-{next(_examples)}"

    # --- the model ---------------------------------------------------------------
    @property
    def client(self) -> TrueNASClient:
        return self.rig.client

    @property
    def site(self) -> Site:
        return self.rig.site

    def path(self, name: str, directory: str | None = None) -> str:
        dataset = directory or f"{self.rig.pool}/{DATASET}"
        return f"/mnt/{dataset}/{self.directory}/{name}"

    def attached(self) -> list[str]:
        return [name for name, place in self.where.items() if place == IN]

    def available(self) -> bool:
        return bool(self.attached())

    def all_in(self) -> bool:
        return all(place == IN for place in self.where.values())

    def labels(self) -> list[str]:
        return [label for label, _ in self.snaps]

    def snapshot_files(self, label: str) -> dict[str, bytes]:
        return next(files for name, files in self.snaps if name == label)

    # --- setup -------------------------------------------------------------------
    @initialize()
    def a_fresh_pool(self):
        self.rig.fresh_pool()
        self.where = self.rig.whereabouts()
        assert self.all_in(), self.where

    # --- files -------------------------------------------------------------------
    # Data rules run while some member is attached; with none attached, one rule
    # tries them all and expects each to be refused (so an example does not spend
    # most of its steps on a pool that cannot answer).
    @precondition(lambda self: self.available())
    @rule(name=st.sampled_from(NAMES), data=PAYLOADS)
    def write(self, name: str, data: bytes):
        self.client.upload(self.path(name), data)
        self.files[name] = data

    @precondition(lambda self: self.available())
    @rule(name=st.sampled_from(NAMES), data=PAYLOADS)
    def append(self, name: str, data: bytes):
        self.client.upload(self.path(name), data, append=True)
        self.files[name] = self.files.get(name, b"") + data

    # --- snapshots ---------------------------------------------------------------
    @precondition(lambda self: self.available())
    @rule(label=st.sampled_from(LABELS))
    def snapshot(self, label: str):
        if label in self.labels():
            refused(lambda: snapshots.take(self.client, self.site, DATASET, label))
            return
        snapshots.take(self.client, self.site, DATASET, label)
        self.snaps.append((label, dict(self.files)))

    @precondition(lambda self: self.available() and self.snaps)
    @rule(data=st.data(), discard_newer=st.booleans())
    def rollback(self, data, discard_newer: bool):
        # Mostly a snapshot that exists (older ones too), sometimes one that does not.
        labels = self.labels()
        label = data.draw(st.sampled_from(labels) | st.sampled_from(LABELS), label="label")

        def roll_back() -> None:
            snapshots.rollback(self.client, self.site, DATASET, label,
                               discard_newer=discard_newer)

        if label not in labels:
            refused(roll_back)
            return
        newer = labels[labels.index(label) + 1:]
        if newer and not discard_newer:
            error = refused(roll_back)
            assert isinstance(error, TrueNASCallError) and error.errno == errno.EBUSY, error
            return
        roll_back()
        self.files = dict(self.snapshot_files(label))
        del self.snaps[labels.index(label) + 1:]

    @precondition(lambda self: self.available())
    @rule(label=st.sampled_from(LABELS))
    def destroy_snapshot(self, label: str):
        snapshot_id = f"{self.rig.pool}/{DATASET}@{label}"
        if label not in self.labels():
            refused(lambda: self.client.call("pool.snapshot.delete", snapshot_id))
            return
        assert self.client.call("pool.snapshot.delete", snapshot_id) is True
        self.snaps = [(name, files) for name, files in self.snaps if name != label]

    @precondition(lambda self: self.snaps and self.available())
    @rule(data=st.data())
    def restore_as_clone(self, data):
        """A clone beside the live data holds exactly the snapshot's files."""
        label = data.draw(st.sampled_from(self.labels()), label="snapshot")
        clone = snapshots.clone(self.client, self.site, DATASET, label,
                                f"restore-{next(_clones)}")
        try:
            expected = self.snapshot_files(label)
            assert self.listed(clone) == _top_level(expected), label
            for name, content in expected.items():
                got = self.client.download(self.path(name, clone))
                assert _digest(got) == _digest(content), f"{label}:{name}"
        finally:
            self.client.call("pool.dataset.delete", clone, {"recursive": True})

    @precondition(lambda self: not self.available())
    @rule(name=st.sampled_from(NAMES), data=PAYLOADS, label=st.sampled_from(LABELS))
    def everything_is_refused_without_a_member(self, name: str, data: bytes, label: str):
        client, site = self.client, self.site
        refused(lambda: client.upload(self.path(name), data))
        refused(lambda: client.upload(self.path(name), data, append=True))
        refused(lambda: snapshots.take(client, site, DATASET, label))
        for known in self.labels():
            refused(lambda known=known: snapshots.rollback(client, site, DATASET, known,
                                                           discard_newer=True))
            refused(lambda known=known: client.call(
                "pool.snapshot.delete", f"{self.rig.pool}/{DATASET}@{known}"))

    # --- volumes -----------------------------------------------------------------
    @precondition(lambda self: self.available() and not self.rot_pending)
    @rule(data=st.data())
    def detach(self, data):
        name = data.draw(st.sampled_from(self.attached()), label="volume")
        if len(self.attached()) == 1:
            self.last_out = name
        faults.detach_volume(self.rig.do, self.site, name)
        self.where[name] = OUT

    def _deletable(self) -> list[str]:
        # Only while its partner is attached: the partner holds every byte.
        return [name for name, place in self.where.items() if place in (IN, OUT)
                and all(self.where[other] == IN for other in self.where if other != name)]

    @precondition(lambda self: self._deletable() and not self.rot_pending)
    @rule(data=st.data())
    def delete_volume(self, data):
        name = data.draw(st.sampled_from(self._deletable()), label="volume")
        faults.delete_volume(self.rig.do, self.site, name)
        self.where[name] = GONE

    @precondition(lambda self: not self.available())
    @rule()
    def bring_back_the_last_to_leave(self):
        name = self.last_out
        assert name is not None and self.where[name] == OUT, (name, self.where)
        self.rig.attach(name)
        self.where[name] = IN
        self.last_out = None

    @precondition(lambda self: self.available() and not self.all_in())
    @rule()
    def repair(self):
        missing = {name: place for name, place in self.where.items() if place != IN}
        changes = self.rig.repair()
        for name, place in missing.items():
            if place == GONE:
                assert any(f"create replacement volume {name}" in c for c in changes), changes
                assert any(c.startswith("replace lost member") and c.endswith(name)
                           for c in changes), changes
            else:
                assert any(f"attach volume {name}" in c for c in changes), changes
        self.where = dict.fromkeys(self.where, IN)
        assert self.rig.repair() == [], "a repaired pool needs no second repair"

    # --- silent corruption and scrubs -----------------------------------------------
    def _rot(self, data) -> None:
        name = data.draw(st.sampled_from(sorted(n for n, b in self.files.items() if b)),
                         label="file")
        volume = data.draw(st.sampled_from(self.rig.volumes), label="volume")
        found = find_volume(self.rig.do, self.site, volume)
        assert found is not None
        self.rig.admin.bit_rot(found["id"], f"{self.rig.pool}/{DATASET}",
                               f"{self.directory}/{name}")
        self.rot_pending += 1

    def _scrub(self) -> dict:
        scan = scrub(self.client, self.site)
        assert scan["function"] == "SCRUB" and scan["state"] == "FINISHED", scan
        self.rot_pending = 0
        return scan

    def _can_rot(self) -> bool:
        # One rotten copy at a time: rot on both copies of a file would be real loss.
        return self.all_in() and any(self.files.values()) and not self.rot_pending

    @precondition(_can_rot)
    @rule(data=st.data())
    def bit_rot(self, data):
        """Left for reads to find (they heal the copy they trip over) or a scrub."""
        self._rot(data)

    @precondition(_can_rot)
    @rule(data=st.data())
    def bit_rot_then_scrub(self, data):
        self._rot(data)
        scan = self._scrub()
        assert scan["errors"] == 1, scan   # nothing read the file in between

    @precondition(lambda self: self.all_in())
    @rule()
    def scrub_the_pool(self):
        pending = self.rot_pending
        scan = self._scrub()
        # A read may already have healed the rotten copy; a scrub never invents errors.
        assert 0 <= scan["errors"] <= pending, (scan, pending)

    @rule(seconds=st.sampled_from([60.0, 3600.0]))
    def time_passes(self, seconds: float):
        self.rig.advance(seconds)

    # --- at the end of every example ------------------------------------------------
    def teardown(self):
        """Recover as an operator would, scrub, then prove that each member alone serves
        every byte: that is what a healthy mirror promises."""
        if sys.exc_info()[1] is not None:
            return   # the example failed already: report that, not what follows from it
        if not self.available():
            self.bring_back_the_last_to_leave()
        if not self.all_in():
            self.repair()
        self.scrub_the_pool()
        self.pool_health_follows_the_volumes()
        for name in self.rig.volumes:
            faults.detach_volume(self.rig.do, self.site, name)
            self.where[name] = OUT
            self.pool_health_follows_the_volumes()
            self.files_are_what_the_model_says()
            assert self.rig.repair() == [f"attach volume {name} to {self.rig.droplet['name']}"]
            self.where[name] = IN
        self.pool_health_follows_the_volumes()

    # --- the fake agrees with the model ----------------------------------------------
    def listed(self, dataset: str | None = None) -> set[str]:
        directory = self.path("", dataset).rstrip("/")
        try:
            return {entry["name"] for entry in self.client.call("filesystem.listdir",
                                                                 directory)}
        except TrueNASCallError as error:
            if error.errno != errno.ENOENT:
                raise
            return set()   # nothing written yet, or rolled back to before the first file

    @invariant()
    def pool_health_follows_the_volumes(self):
        report = pool_report(self.client, self.site)
        assert report.exists and report.layout == "MIRROR", report
        if self.all_in():
            assert report.status == "ONLINE" and report.healthy, report
            assert sorted(report.member_serials) == sorted(self.rig.volumes), report
        elif self.available():
            assert report.status == "DEGRADED" and not report.healthy, report
        else:
            assert report.status == "UNAVAIL" and not report.healthy, report

    @invariant()
    def files_are_what_the_model_says(self):
        if not self.available():
            for name in self.files:
                refused(lambda name=name: self.client.download(self.path(name)))
            return
        assert self.listed() == _top_level(self.files)
        for name, content in self.files.items():
            got = self.client.download(self.path(name))
            assert _digest(got) == _digest(content), name

    @invariant()
    def snapshots_are_what_the_model_says(self):
        if not self.available():
            return   # a pool that cannot be read answers nothing worth checking
        listed = [s["snapshot_name"] for s in snapshots.list_(self.client, self.site, DATASET)]
        assert listed == self.labels()


@pytest.fixture
def rig(tmp_path: Path):
    """A site brought up on its own world; the world stops and clients close, always."""
    with World(tmp_path / "world", acme=False) as world, contextlib.ExitStack() as closing:
        target = Target.from_world_file(world.world_file)
        site = build_site(SITE)
        do = DigitalOcean(target)
        closing.callback(do.client.close)
        state = StateDir(tmp_path / "state")
        Provisioner(site, do, state).up()
        droplet = find_droplet(do, site)
        assert droplet is not None
        client = open_node(site, target, state, public_ipv4(droplet))
        closing.callback(client.close)
        admin = FakeAdmin.from_world_file(world.world_file)
        yield Rig(world, target, site, do, state, client, admin, droplet)


def test_random_storage_operations_keep_what_the_model_says_survives(rig: Rig):
    StorageMachine.rig = rig
    run_state_machine_as_test(
        StorageMachine,
        # Every step is several round trips over HTTPS/WSS; explaining a failure
        # would replay each of them many times, so that phase is left out.
        settings=settings(max_examples=examples(fast=5, deep=20), stateful_step_count=25,
                          deadline=None,
                          suppress_health_check=[HealthCheck.too_slow],
                          phases=[p for p in Phase if p is not Phase.explain]),
    )


def test_a_mirror_is_healthy_again_when_the_stale_member_returns_first(rig: Rig):
    """Both volumes lost; the one that left first (missing the newest file) comes back
    first, the other later. ZFS keeps the first one's missing range until a source
    returns, resilvers it then, and a scrub leaves no error behind."""
    client, site = rig.client, rig.site
    first, second = rig.volumes
    old, new = f"/mnt/{rig.pool}/{DATASET}/old.bin", f"/mnt/{rig.pool}/{DATASET}/new.bin"
    client.upload(old, b"before either volume left")
    faults.detach_volume(rig.do, site, first)
    client.upload(new, b"written while only the second volume was there")
    faults.detach_volume(rig.do, site, second)
    rig.attach(first)
    rig.advance(600)             # its resilver has no source while the second is away
    rig.repair()                 # brings the second volume back
    scrub(client, site)
    report = pool_report(client, site)
    assert report.status == "ONLINE" and report.healthy, report
    assert client.download(old) == b"before either volume left"
    assert client.download(new) == b"written while only the second volume was there"
