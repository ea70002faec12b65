"""A fake TrueNAS node's storage keeps real bytes on its member volumes.

These drive `NodeStorage` directly (no network), the way the fleet and the
JSON-RPC methods do, and check what a user of a real node would see: a mirror
keeps serving every byte with one volume gone, a replacement disk really receives
the data, bit rot is found and repaired by a scrub, losing every copy is an error
and never silence, a pool moved to another droplet comes back whole, and
snapshots restore exactly the bytes they captured.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fakes.clock import VirtualClock
from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models import cron, inject_bit_rot, snapshots
from fakes.truenas.models.layout import MemberStore, sha256
from fakes.truenas.models.replace import replace
from fakes.truenas.models.scan import SCAN_BASE_SECONDS, start_scrub, stop_scrub
from fakes.truenas.node import TrueNASNode
from tests.budget import examples

GIB = 2**30


class FakeJob:
    """Just enough of a Job for the models' waiters."""

    def __init__(self) -> None:
        self.state, self.result, self.error, self.progress = "RUNNING", None, None, []

    def set_progress(self, percent, description="", extra=None):
        self.progress.append((percent, description))

    def succeed(self, result=None):
        self.state, self.result = "SUCCESS", result

    def fail(self, error):
        self.state, self.error = "FAILED", error


class World:
    """One clock, any number of nodes, and DigitalOcean-like volumes (directories)."""

    def __init__(self, root: Path, speed: float = 1000) -> None:
        self.root = root
        self.clock = VirtualClock(speed=speed)
        self.lock = threading.RLock()
        self.nodes: list[TrueNASNode] = []

    def node(self, hostname: str = "n1") -> TrueNASNode:
        index = len(self.nodes) + 1
        node = TrueNASNode(droplet_id=index, hostname=hostname, address=f"127.10.0.{4 + index}",
                           clock=self.clock, lock=self.lock,
                           state_dir=self.root / f"node{index}", api_keys={})
        self.nodes.append(node)
        self.clock.advance(100)          # past BOOT_SECONDS
        assert node.state == "READY"
        return node

    def volume(self, name: str) -> Path:
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


@pytest.fixture
def node(world):
    node = world.node()
    for name in ("vol-a", "vol-b"):
        node.plug_disk(name, 10 * GIB, world.volume(name))
    return node


def mirror(node, name="tank", disks=("sda", "sdb")):
    return node.storage.create_pool(name, [{"type": "MIRROR", "disks": list(disks)}],
                                    allow_duplicate_serials=False, other_vdevs={},
                                    encryption=False)


def leaf_statuses(pool):
    return [leaf.leaf()["status"] for leaf in pool.leaves]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {
    "/mnt/tank/small.txt": b"hello, mirror\n",
    "/mnt/tank/dir/blob.bin": os.urandom(3 * 2**20 + 17),
    "/mnt/tank/empty": b"",
}


def write_all(storage, files=FILES):
    for path, data in files.items():
        storage.write_file(path, data)


# --- disks and pool creation -------------------------------------------------
def test_volumes_appear_as_sd_disks_beside_the_boot_disk(node, world):
    entries = {d["name"]: d for d in node.storage.disk_entries(with_pools=True)}
    assert set(entries) == {"vda", "sda", "sdb"}
    assert entries["vda"]["pool"] == "boot-pool"
    assert entries["sda"]["serial"] == "vol-a"
    assert entries["sda"]["identifier"] == "{serial}vol-a"
    assert entries["sdb"]["size"] == 10 * GIB
    node.unplug_disk("vol-a")
    node.plug_disk("vol-c", GIB, world.volume("vol-c"))
    names = {d["serial"]: d["name"] for d in node.storage.disk_entries(with_pools=False)}
    assert names["vol-c"] == "sda"       # Linux hands out the lowest free sd name
    assert names["vol-b"] == "sdb"


def test_a_mirror_of_two_volumes_is_online_and_the_boot_disk_is_not_usable(node):
    pool = mirror(node)
    assert (pool.status, pool.healthy) == ("ONLINE", True)
    entry = pool.to_entry()
    assert entry["path"] == "/mnt/tank"
    [vdev] = entry["topology"]["data"]
    assert vdev["type"] == "MIRROR"
    assert sorted(child["disk"] for child in vdev["children"]) == ["sda", "sdb"]
    with pytest.raises(ValidationErrors) as caught:
        mirror(node, "other", ("vda", "sda"))
    attributes = {e[0] for e in caught.value.errors}
    assert "pool_create.topology" in attributes
    assert any("already in use: vda, sda" in e[1] for e in caught.value.errors)


def test_pool_creation_rules_name_the_attribute(node):
    with pytest.raises(ValidationErrors) as caught:
        node.storage.create_pool("tank", [{"type": "MIRROR", "disks": ["sda"]}],
                                 allow_duplicate_serials=False, other_vdevs={},
                                 encryption=False)
    assert caught.value.errors[0][0] == "pool_create.topology.data.0.disks"
    mirror(node)
    with pytest.raises(ValidationErrors) as caught:
        mirror(node)
    assert ("pool_create.name", errno.EEXIST) in [(e[0], e[2]) for e in caught.value.errors]


def test_raidz_is_a_valid_layout_the_fake_says_it_does_not_model(node, world):
    node.plug_disk("vol-c", 10 * GIB, world.volume("vol-c"))
    with pytest.raises(CallError) as caught:
        node.storage.create_pool("tank", [{"type": "RAIDZ1", "disks": ["sda", "sdb", "sdc"]}],
                                 allow_duplicate_serials=False, other_vdevs={},
                                 encryption=False)
    assert caught.value.errno == errno.ENOTSUP
    assert "does not model RAIDZ1" in caught.value.message


# --- a mirror losing and regaining members -----------------------------------
def test_a_degraded_mirror_serves_every_byte_from_the_surviving_member(node):
    pool = mirror(node)
    write_all(node.storage)
    node.unplug_disk("vol-a")
    assert (pool.status, pool.healthy) == ("DEGRADED", False)
    [vdev] = pool.to_entry()["topology"]["data"]
    removed = [c for c in vdev["children"] if c["status"] != "ONLINE"]
    assert [c["status"] for c in removed] == ["REMOVED"]
    assert removed[0]["unavail_disk"]["serial"] == "vol-a"
    for path, data in FILES.items():
        assert digest(node.storage.read_file(path)) == digest(data)


def test_replacing_the_lost_member_resilvers_every_byte_onto_the_new_volume(node, world):
    pool = mirror(node)
    write_all(node.storage)
    lost = next(leaf for leaf in pool.leaves if leaf.serial == "vol-a")
    node.unplug_disk("vol-a")
    node.plug_disk("vol-c", 10 * GIB, world.volume("vol-c"))
    job = FakeJob()
    replace(node.storage, pool, lost.guid, "{serial}vol-c", False, job)
    scan = pool.scan_entry()
    assert (scan["function"], scan["state"]) == ("RESILVER", "SCANNING")
    assert scan["bytes_to_process"] == sum(len(d) for d in FILES.values())
    assert pool.status == "DEGRADED"
    assert job.state == "RUNNING"
    # 30 virtual seconds + 1 per MiB: 3 MiB of data takes about 33 s.
    world.clock.advance(SCAN_BASE_SECONDS + 10)
    assert job.state == "SUCCESS" and job.result is True
    assert [p for p, _ in job.progress][:3] == [10.0, 20.0, 30.0]
    scan = pool.scan_entry()
    assert (scan["state"], scan["percentage"]) == ("FINISHED", 100.0)
    assert scan["end_time"] > scan["start_time"]
    assert (pool.status, pool.healthy) == ("ONLINE", True)
    assert sorted(leaf.serial for leaf in pool.leaves) == ["vol-b", "vol-c"]
    # The new volume's own directory holds every byte, checked against its manifest...
    store = MemberStore(world.volume("vol-c"))
    meta = store.read_meta()
    for path, data in FILES.items():
        record = meta["datasets"][""]["files"][path.removeprefix("/mnt/tank/")]
        assert store.get_object(record["oid"]) == data
        assert store.manifest[record["oid"]]["sha256"] == sha256(data)
    # ...so it serves everything alone once the old survivor is gone too.
    node.unplug_disk("vol-b")
    for path, data in FILES.items():
        assert node.storage.read_file(path) == data


def test_a_member_that_comes_back_is_resilvered_with_what_changed(node, world):
    pool = mirror(node)
    write_all(node.storage)
    node.unplug_disk("vol-a")
    node.storage.write_file("/mnt/tank/while-away.bin", b"new" * 1000)
    node.plug_disk("vol-a", 10 * GIB, world.volume("vol-a"))
    assert pool.status == "DEGRADED"
    assert pool.scan_entry()["function"] == "RESILVER"
    assert pool.scan_entry()["bytes_to_process"] == 3000
    world.clock.advance(SCAN_BASE_SECONDS + 5)
    assert pool.status == "ONLINE"
    node.unplug_disk("vol-b")
    assert node.storage.read_file("/mnt/tank/while-away.bin") == b"new" * 1000


def test_a_member_that_comes_back_unchanged_is_online_at_once(node, world):
    pool = mirror(node)
    write_all(node.storage)
    node.unplug_disk("vol-a")
    node.plug_disk("vol-a", 10 * GIB, world.volume("vol-a"))
    assert pool.status == "ONLINE"
    assert pool.scan_entry()["function"] is None


def test_losing_every_member_loses_the_data_loudly(node, world):
    pool = mirror(node)
    write_all(node.storage)
    node.unplug_disk("vol-a")
    node.unplug_disk("vol-b")
    assert (pool.status, pool.healthy) == ("UNAVAIL", False)
    with pytest.raises(CallError) as caught:
        node.storage.read_file("/mnt/tank/small.txt")
    assert caught.value.errno == errno.EIO
    assert "UNAVAIL" in caught.value.message
    with pytest.raises(CallError):
        node.storage.write_file("/mnt/tank/more.txt", b"x")
    node.plug_disk("vol-b", 10 * GIB, world.volume("vol-b"))
    assert pool.status == "DEGRADED"
    assert node.storage.read_file("/mnt/tank/small.txt") == FILES["/mnt/tank/small.txt"]


def test_a_stripe_keeps_each_file_on_exactly_one_member(node, world):
    pool = node.storage.create_pool("tank", [{"type": "STRIPE", "disks": ["sda", "sdb"]}],
                                    allow_duplicate_serials=False, other_vdevs={},
                                    encryption=False)
    for i in range(6):
        node.storage.write_file(f"/mnt/tank/f{i}", os.urandom(1000 + i))
    holders = [MemberStore(world.volume(v)).manifest for v in ("vol-a", "vol-b")]
    oids = set(pool.meta["objects"])
    assert all(sum(oid in held for held in holders) == 1 for oid in oids)
    assert all(holders)      # the allocator spreads files over both disks
    node.unplug_disk("vol-a")
    assert pool.status == "UNAVAIL"


# --- bit rot -----------------------------------------------------------------
def test_a_scrub_finds_and_repairs_bit_rot_on_one_member(node, world):
    pool = mirror(node)
    write_all(node.storage)
    inject_bit_rot(world.volume("vol-a"), "tank", "dir/blob.bin")
    rotten = MemberStore(world.volume("vol-a"))
    record = rotten.read_meta()["datasets"][""]["files"]["dir/blob.bin"]
    assert sha256(rotten.get_object(record["oid"])) != record.get("sha256", "") \
        and rotten.get_object(record["oid"]) != FILES["/mnt/tank/dir/blob.bin"]
    job = FakeJob()
    start_scrub(pool, job)
    assert pool.scan_entry()["function"] == "SCRUB"
    world.clock.advance(SCAN_BASE_SECONDS + 10)
    assert job.state == "SUCCESS" and job.progress[-1] == (100, "Scrub finished")
    scan = pool.scan_entry()
    assert (scan["state"], scan["errors"]) == ("FINISHED", 1)
    errors = {leaf.serial: leaf.leaf()["stats"]["checksum_errors"] for leaf in pool.leaves}
    assert errors == {"vol-a": 1, "vol-b": 0}
    assert rotten.get_object(record["oid"]) == FILES["/mnt/tank/dir/blob.bin"]
    assert pool.healthy


def test_a_read_heals_a_rotten_copy_and_rot_on_every_copy_is_an_error(node, world):
    pool = mirror(node)
    write_all(node.storage)
    inject_bit_rot(world.volume("vol-a"), "tank", "small.txt")   # the side read first
    assert node.storage.read_file("/mnt/tank/small.txt") == FILES["/mnt/tank/small.txt"]
    healed = {leaf.serial: leaf.checksum_errors for leaf in pool.leaves}
    assert healed == {"vol-a": 1, "vol-b": 0}
    store = MemberStore(world.volume("vol-a"))
    oid = store.read_meta()["datasets"][""]["files"]["small.txt"]["oid"]
    assert store.get_object(oid) == FILES["/mnt/tank/small.txt"]      # rewritten
    inject_bit_rot(world.volume("vol-a"), "tank", "small.txt")
    inject_bit_rot(world.volume("vol-b"), "tank", "small.txt")
    with pytest.raises(CallError) as caught:
        node.storage.read_file("/mnt/tank/small.txt")
    assert caught.value.errno == errno.EIO and "small.txt" in caught.value.message
    assert not pool.healthy and pool.to_entry()["status_code"] == "CORRUPT_DATA"


@pytest.fixture
def still_world(tmp_path):
    """A clock that moves only when told: at the default 1000 virtual seconds a wall
    second, a loaded machine let a 30 s scrub end between `advance(5)` and the pause
    ("cannot pause scrubbing tank: there is no active scrub", seen in a full run)."""
    return World(tmp_path, speed=1e-6)


def test_a_paused_scrub_resumes_and_a_stopped_one_is_cancelled(still_world):
    world = still_world
    node = world.node()
    for name in ("vol-a", "vol-b"):
        node.plug_disk(name, 10 * GIB, world.volume(name))
    pool = mirror(node)
    write_all(node.storage)
    first = FakeJob()
    start_scrub(pool, first)
    world.clock.advance(5)
    stop_scrub(pool, "PAUSE")
    assert first.state == "SUCCESS" and pool.scan_entry()["pause"] is not None
    world.clock.advance(1000)
    assert pool.scan_entry()["state"] == "SCANNING"
    second = FakeJob()
    start_scrub(pool, second)
    stop_scrub(pool, "STOP")
    assert pool.scan_entry()["state"] == "CANCELED" and second.state == "SUCCESS"


# --- moving a pool to another droplet ----------------------------------------
def test_an_exported_pool_imports_whole_on_another_node(node, world):
    storage = node.storage
    pool = mirror(node)
    write_all(storage)
    pool_guid = pool.guid
    from fakes.truenas.models import datasets

    datasets.create(pool, "apps", dataset_type="FILESYSTEM", local={"compression": "zstd"},
                    user_props={}, create_ancestors=False, now=storage.now())
    pool.commit()
    storage.write_file("/mnt/tank/apps/config.json", b'{"a": 1}')
    snapshots.create(pool, "apps", "before", recursive=False, exclude=[], now=storage.now())
    pool.commit()
    storage.write_file("/mnt/tank/apps/config.json", b'{"a": 2}')
    storage.export_pool(pool)
    assert storage.pools == {}
    for volume in ("vol-a", "vol-b"):
        node.unplug_disk(volume)

    other = world.node("n2")
    for volume in ("vol-b", "vol-a"):
        other.plug_disk(volume, 10 * GIB, world.volume(volume))
    found = other.storage.import_find()
    assert found == [{"name": "tank", "guid": pool_guid, "status": "ONLINE", "hostname": "n1"}]
    imported = other.storage.import_pool(pool_guid)
    assert (imported.status, imported.name) == ("ONLINE", "tank")
    assert sorted(imported.meta["datasets"]) == ["", "apps"]
    assert other.storage.read_file("/mnt/tank/apps/config.json") == b'{"a": 2}'
    for path, data in FILES.items():
        assert other.storage.read_file(path) == data
    assert list(imported.meta["snapshots"]) == ["apps@before"]
    snapshots.rollback(imported, "apps@before", recursive=False, recursive_clones=False,
                       recursive_rollback=False)
    imported.commit()
    assert other.storage.read_file("/mnt/tank/apps/config.json") == b'{"a": 1}'
    assert other.storage.import_find() == []
    labels = [MemberStore(world.volume(v)).read_label() for v in ("vol-a", "vol-b")]
    assert {(label["hostname"], label["exported"]) for label in labels} == {("n2", False)}


def test_a_pool_from_a_dead_droplet_imports_degraded_with_one_volume(node, world):
    pool = mirror(node)
    write_all(node.storage)
    node.shut_down()                   # no export: the droplet died
    other = world.node("n2")
    other.plug_disk("vol-b", 10 * GIB, world.volume("vol-b"))
    [found] = other.storage.import_find()
    assert (found["status"], found["hostname"]) == ("DEGRADED", "n1")
    imported = other.storage.import_pool(found["guid"], "rescued")
    assert imported.status == "DEGRADED"
    assert "UNAVAIL" in leaf_statuses(imported)
    assert other.storage.read_file("/mnt/rescued/small.txt") == FILES["/mnt/tank/small.txt"]
    assert pool.guid == imported.guid


def test_export_with_destroy_wipes_the_members(node, world):
    pool = mirror(node)
    write_all(node.storage)
    node.storage.export_pool(pool, destroy=True)
    assert not (world.volume("vol-a") / "zpool").exists()
    assert node.storage.import_find() == []


# --- snapshots and clones ----------------------------------------------------
def test_rollback_restores_the_exact_bytes_and_refuses_to_skip_newer_snapshots(node):
    storage = node.storage
    pool = mirror(node)
    original = os.urandom(50_000)
    storage.write_file("/mnt/tank/data.bin", original)
    snapshots.create(pool, "", "s1", recursive=False, exclude=[], now=storage.now())
    pool.commit()
    storage.write_file("/mnt/tank/data.bin", b"overwritten")
    storage.write_file("/mnt/tank/later.txt", b"added after s1")
    snapshots.create(pool, "", "s2", recursive=False, exclude=[], now=storage.now())
    pool.commit()
    with pytest.raises(CallError) as caught:
        snapshots.rollback(pool, "@s1", recursive=False, recursive_clones=False,
                           recursive_rollback=False)
    assert "more recent snapshots" in caught.value.message and "tank@s2" in caught.value.message
    snapshots.rollback(pool, "@s1", recursive=True, recursive_clones=False,
                       recursive_rollback=False)
    pool.commit()
    assert digest(storage.read_file("/mnt/tank/data.bin")) == digest(original)
    with pytest.raises(CallError):
        storage.read_file("/mnt/tank/later.txt")
    assert list(pool.meta["snapshots"]) == ["@s1"]


def test_a_clone_exposes_old_data_beside_the_new(node):
    storage = node.storage
    pool = mirror(node)
    storage.write_file("/mnt/tank/report.txt", b"version 1")
    snapshots.create(pool, "", "v1", recursive=False, exclude=[], now=storage.now())
    pool.commit()
    storage.write_file("/mnt/tank/report.txt", b"version 2")
    snapshots.clone(pool, "@v1", "restore", storage.now(), {})
    pool.commit()
    assert storage.read_file("/mnt/tank/report.txt") == b"version 2"
    assert storage.read_file("/mnt/tank/restore/report.txt") == b"version 1"
    with pytest.raises(CallError) as caught:
        snapshots.delete(pool, "@v1", recursive=False)
    assert caught.value.errno == errno.EBUSY


def test_files_stat_and_listdir_describe_datasets_and_files(node):
    storage = node.storage
    mirror(node)
    storage.write_file("/mnt/tank/a/b.txt", b"12345", mode=0o600)
    storage.write_file("/mnt/tank/a/b.txt", b"678", append=True)
    assert storage.read_file("/mnt/tank/a/b.txt") == b"12345678"
    stat = storage.stat("/mnt/tank/a/b.txt")
    assert (stat["type"], stat["size"], stat["mode"] & 0o7777) == ("FILE", 8, 0o600)
    assert isinstance(stat["mtime"], float)
    assert storage.stat("/mnt/tank")["is_mountpoint"] is True
    assert [e["name"] for e in storage.listdir("/mnt/tank")] == ["a"]
    assert storage.listdir("/mnt/tank/a")[0]["path"] == "/mnt/tank/a/b.txt"
    for bad, code in (("/mnt/tank/a", errno.EISDIR), ("/mnt/nopool/x", errno.ENOENT),
                      ("/etc/passwd", errno.EACCES), ("/mnt/tank/a/b.txt/c", errno.ENOTDIR)):
        with pytest.raises(CallError) as caught:
            storage.write_file(bad, b"x")
        assert caught.value.errno == code, bad
    with pytest.raises(CallError) as caught:
        storage.stat("/mnt/tank/missing")
    assert caught.value.errno == errno.ENOENT


# --- periodic snapshot tasks -------------------------------------------------
def test_hourly_snapshots_over_two_days_keep_one_day(node, world):
    storage = node.storage
    mirror(node)
    storage.write_file("/mnt/tank/f", b"x")
    task = storage.tasks.create({"dataset": "tank", "lifetime_value": 1, "lifetime_unit": "DAY",
                                 "naming_schema": "auto-%Y-%m-%d_%H-%M",
                                 "schedule": {"minute": "0", "hour": "*"}})
    start = storage.now()
    world.clock.advance(2 * 86400)
    pool = storage.pools["tank"]
    names = [pool.meta["snapshots"][k]["name"] for k in snapshots.of_dataset(pool, "")]
    assert 24 <= len(names) <= 25
    times = [cron.parse_name("auto-%Y-%m-%d_%H-%M", name) for name in names]
    assert all(t % 3600 == 0 for t in times)
    assert times == sorted(times) and times[-1] > start + 86400
    assert task.entry()["state"]["state"] == "FINISHED"


def test_cron_fields_steps_ranges_and_the_day_rule():
    assert cron.parse_field("minute", "*/15") == {0, 15, 30, 45}
    assert cron.parse_field("hour", "1-5/2,22") == {1, 3, 5, 22}
    assert cron.parse_field("dow", "7") == {0}
    with pytest.raises(ValueError):
        cron.parse_field("hour", "24")
    at = datetime(2026, 3, 2, 10, 30, tzinfo=UTC).timestamp()       # a Monday
    weekly = cron.Schedule.parse({"minute": "0", "hour": "3", "dow": "sun"})
    assert datetime.fromtimestamp(weekly.next_after(at), UTC) == datetime(
        2026, 3, 8, 3, 0, tzinfo=UTC)
    either = cron.Schedule.parse({"minute": "0", "hour": "0", "dom": "15", "dow": "fri"})
    assert datetime.fromtimestamp(either.next_after(at), UTC).day == 6    # Friday first
    window = cron.Schedule.parse({"minute": "0", "hour": "*", "begin": "22:00",
                                  "end": "02:00"})
    assert datetime.fromtimestamp(window.next_after(at), UTC).hour == 22
    assert cron.lifetime_start(datetime(2026, 3, 31, tzinfo=UTC).timestamp(), 1, "MONTH") \
        == datetime(2026, 2, 28, tzinfo=UTC).timestamp()


def test_volumes_moved_back_after_another_node_imported_do_not_rejoin(node, world):
    pool = mirror(node)
    write_all(node.storage)
    for volume in ("vol-a", "vol-b"):
        node.unplug_disk(volume)          # detached from a live droplet, no export
    other = world.node("n2")
    for volume in ("vol-a", "vol-b"):
        other.plug_disk(volume, 10 * GIB, world.volume(volume))
    [found] = other.storage.import_find()
    other.storage.import_pool(found["guid"])
    other.storage.write_file("/mnt/tank/from-n2.txt", b"newer")
    for volume in ("vol-a", "vol-b"):
        other.unplug_disk(volume)
        node.plug_disk(volume, 10 * GIB, world.volume(volume))
    assert pool.status == "UNAVAIL"      # n1's stale view does not take the volumes back
    assert MemberStore(world.volume("vol-a")).read_label()["hostname"] == "n2"
    assert node.storage.import_find() == []          # the pool is still known here
    node.storage.export_pool(pool)                      # forget the faulted pool...
    [found] = node.storage.import_find()
    node.storage.import_pool(found["guid"])             # ...and take n2's newer one
    assert node.storage.read_file("/mnt/tank/from-n2.txt") == b"newer"


# --- random sequences ----------------------------------------------------------
class MirrorMachine(RuleBasedStateMachine):
    """Writes, lost and returning volumes, replacements, bit rot and scrubs in any
    order: while one healthy copy is left, every file reads back exactly."""

    def __init__(self) -> None:
        super().__init__()
        # A clock that all but stops between steps, so each run replays the same.
        self.world = World(Path(tempfile.mkdtemp(prefix="mirror-machine-")), speed=1e-6)
        self.node = self.world.node()
        self.volumes = itertools.count()
        self.gone: list[str] = []
        for _ in range(2):
            self._plug(self._new_volume())
        self.pool = mirror(self.node)
        self.files: dict[str, bytes] = {}
        self.rot_pending = False

    def teardown(self) -> None:
        shutil.rmtree(self.world.root, ignore_errors=True)

    def _new_volume(self) -> str:
        return f"vol-{next(self.volumes)}"

    def _plug(self, name: str) -> None:
        self.node.plug_disk(name, GIB, self.world.volume(name))

    @property
    def healthy(self):
        return [leaf for leaf in self.pool.leaves if leaf.healthy]

    @rule(name=st.sampled_from(["a", "b", "d/c"]), data=st.binary(max_size=3000),
          append=st.booleans())
    def write(self, name, data, append):
        path = f"/mnt/tank/{name}"
        self.node.storage.write_file(path, data, append=append)
        self.files[path] = (self.files.get(path, b"") + data) if append else data

    @precondition(lambda self: not self.rot_pending)
    @rule(which=st.integers(0, 3))
    def lose_a_volume(self, which):
        online = [leaf for leaf in self.pool.leaves if leaf.online]
        leaf = online[which % len(online)]
        if not [other for other in self.healthy if other is not leaf]:
            return                          # never the last healthy copy
        self.node.unplug_disk(leaf.serial)
        self.gone.append(leaf.serial)

    @precondition(lambda self: self.gone)
    @rule()
    def a_lost_volume_comes_back(self):
        self._plug(self.gone.pop(0))

    @precondition(lambda self: any(not s.online and s.replacement is None
                                   for s in self.pool.vdevs[0].members))
    @rule()
    def replace_a_missing_member(self):
        slot = next(s for s in self.pool.vdevs[0].members
                    if not s.online and s.replacement is None)
        name = self._new_volume()
        self._plug(name)
        replace(self.node.storage, self.pool, slot.guid, f"{{serial}}{name}", False, FakeJob())

    @rule(seconds=st.sampled_from([1.0, 20.0, 100.0]))
    def time_passes(self, seconds):
        self.world.clock.advance(seconds)

    @precondition(lambda self: not self.rot_pending)
    @rule(which=st.integers(0, 3), name=st.sampled_from(["a", "b", "d/c"]))
    def bit_rot(self, which, name):
        path = f"/mnt/tank/{name}"
        if not self.files.get(path) or len(self.healthy) < 2 or self.pool.scan_entry()[
                "state"] == "SCANNING":
            return
        leaf = self.healthy[which % len(self.healthy)]
        inject_bit_rot(leaf.disk.backing_dir, "tank", name)
        self.rot_pending = True

    @precondition(lambda self: self.rot_pending)
    @rule()
    def scrub_repairs(self):
        if self.pool.scan_entry()["state"] == "SCANNING":
            return
        start_scrub(self.pool, FakeJob())
        self.world.clock.advance(SCAN_BASE_SECONDS + 10)
        self.rot_pending = False

    @invariant()
    def every_file_reads_back(self):
        assert self.pool.status in ("ONLINE", "DEGRADED")
        slots_healthy = all(s.slot_healthy for s in self.pool.vdevs[0].members)
        assert (self.pool.status == "ONLINE") == slots_healthy
        for path, data in self.files.items():
            assert self.node.storage.read_file(path) == data


@pytest.mark.slow
def test_mirror_survives_random_sequences():
    run_state_machine_as_test(MirrorMachine, settings=settings(
        max_examples=examples(fast=10, deep=40), stateful_step_count=25, deadline=None))
