"""Replication on the models: two nodes' pools, zettarepl's run, real bytes.

No network: the target's shell is called in-process (`PeerShell`, the commands of
models/zfs_cli.py as the SSH server would run them), so that a stream can be cut at
any byte. The wire (a real SSH connection through the firewall) is in
test_replication_wire.py.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.clock import VirtualClock
from fakes.truenas.models import replication, snapshots, zfs_cli, zstream
from fakes.truenas.node import TrueNASNode
from tests.budget import examples

GIB = 2**30
MIB = 2**20
SCHEMA = "auto-%Y-%m-%d_%H-%M"


class PeerShell:
    """The target node's shell, in-process; `cut_at` ends the next stream after so
    many bytes, as a lost connection does."""

    def __init__(self, node: TrueNASNode, username: str = "root") -> None:
        self.node, self.username = node, username
        self.cut_at: int | None = None
        self.streamed = 0

    def exec(self, command, stdin=b"", on_sent=None):
        if stdin and self.cut_at is not None:
            cut, self.cut_at = self.cut_at, None
            with self.node.lock:
                zfs_cli.run(self.node, self.username, command, stdin[:cut])
            self.streamed += cut
            raise ConnectionError("client_loop: send disconnect: Broken pipe")
        with self.node.lock:
            result = zfs_cli.run(self.node, self.username, command, stdin)
        self.streamed += len(stdin)
        if on_sent is not None and stdin:
            on_sent(len(stdin))
        return result


class Pair:
    def __init__(self, root: Path) -> None:
        self.clock = VirtualClock(speed=1e-6, start=1_750_000_000)
        self.lock = threading.RLock()
        self.source = self._node(root, 1)
        self.target = self._node(root, 2)
        self.shell = PeerShell(self.target)

    def _node(self, root: Path, index: int) -> TrueNASNode:
        node = TrueNASNode(droplet_id=index, hostname=f"n{index}",
                           address=f"127.10.0.{4 + index}", clock=self.clock, lock=self.lock,
                           state_dir=root / f"node{index}", api_keys={})
        with self.lock:
            self.clock.advance(100)
            for name in ("a", "b"):
                path = root / f"vol-{index}-{name}"
                path.mkdir()
                node.plug_disk(f"v{index}{name}", 10 * GIB, path)
            node.storage.create_pool("tank", [{"type": "MIRROR", "disks": ["sda", "sdb"]}],
                                     allow_duplicate_serials=False, other_vdevs={},
                                     encryption=False)
        return node

    def snapshot(self, dataset: str = "tank/data") -> str:
        with self.lock:
            self.clock.advance(3600)
            pool, rel = self.source.storage.find_dataset(dataset)
            from fakes.truenas.models import cron

            name = cron.format_name(SCHEMA, self.clock.now())
            snapshots.create(pool, rel, name, recursive=False, exclude=[],
                             now=self.clock.now())
            pool.commit()
            return name

    def task(self, **overrides) -> dict:
        config = {**replication.DEFAULTS, "id": 1, "name": "t", "direction": "PUSH",
                  "transport": "SSH", "source_datasets": ["tank/data"],
                  "target_dataset": "tank/copy", "recursive": False, "auto": False,
                  "retention_policy": "NONE", "also_include_naming_schema": [SCHEMA]}
        config.update(overrides)
        return config

    def run(self, config: dict) -> str | None:
        progress = replication.Progress(lambda *_: None)
        return replication.run(self.source, config, self.shell, self.lock, progress)

    def files(self, node: TrueNASNode, dataset: str, snap: str | None = None) -> dict:
        with self.lock:
            pool, rel = node.storage.find_dataset(dataset)
            table = (pool.meta["snapshots"][snapshots.key(rel, snap)]["files"] if snap
                     else pool.meta["datasets"][rel]["files"])
            return {path: pool.objects.get(rec["oid"], what=path) for path, rec in table.items()}

    def target_snapshots(self, dataset: str = "tank/copy") -> list[str]:
        with self.lock:
            found = self.target.storage.find_dataset(dataset)
            if found is None:
                return []
            pool, rel = found
            return [k.split("@", 1)[1] for k in snapshots.of_dataset(pool, rel)]

    def write(self, path: str, data: bytes, node: TrueNASNode | None = None) -> None:
        with self.lock:
            (node or self.source).storage.write_file(path, data)


@pytest.fixture
def pair(tmp_path):
    pair = Pair(tmp_path)
    with pair.lock:
        pool = pair.source.storage.pools["tank"]
        from fakes.truenas.models import datasets

        datasets.create(pool, "data", dataset_type="FILESYSTEM", local={}, user_props={},
                        create_ancestors=False, now=pair.clock.now())
        pool.commit()
    return pair


def test_full_then_incremental_sends_only_the_changed_records(pair):
    big = os.urandom(20 * MIB)
    pair.write("/mnt/tank/data/big.bin", big)
    pair.write("/mnt/tank/data/notes.txt", b"v1")
    first = pair.snapshot()
    pair.run(pair.task())
    full = pair.shell.streamed
    assert full >= 20 * MIB
    assert pair.files(pair.target, "tank/copy", first) == pair.files(pair.source, "tank/data",
                                                                      first)
    changed = bytearray(big)
    changed[5 * MIB:6 * MIB] = os.urandom(MIB)
    pair.write("/mnt/tank/data/big.bin", bytes(changed))
    pair.write("/mnt/tank/data/new.txt", b"new")
    with pair.lock:
        pair.source.storage.pools["tank"].meta["datasets"]["data"]["files"].pop("notes.txt")
        pair.source.storage.pools["tank"].commit()
    second = pair.snapshot()
    pair.shell.streamed = 0
    assert pair.run(pair.task()) == f"tank/data@{second}"
    assert MIB <= pair.shell.streamed < MIB + 64 * 1024     # the changed MiB and a header
    copy = pair.files(pair.target, "tank/copy")
    assert copy == pair.files(pair.source, "tank/data", second)
    assert "notes.txt" not in copy and copy["new.txt"] == b"new"
    assert pair.target_snapshots() == [first, second]


def test_a_copy_keeps_the_owners_of_its_files_and_directories(pair):
    """A service's data belongs to its user on the source (a GoCD dataset to 1000:0):
    the copy's files, directories and root belong to the same ids, and a rollback of
    the source to the snapshot brings its directories' owners back too."""
    from fakes.truenas.models import files

    pair.write("/mnt/tank/data/config/cruise-config.xml", b"<cruise/>")
    with pair.lock:
        storage = pair.source.storage
        files.chown(storage, "/mnt/tank/data", 1000, 0, recursive=True)
    snap = pair.snapshot()
    pair.run(pair.task())
    with pair.lock:
        target = pair.target.storage
        for path in ("/mnt/tank/copy", "/mnt/tank/copy/config",
                     "/mnt/tank/copy/config/cruise-config.xml"):
            stat = files.stat(target, path)
            assert (stat["uid"], stat["gid"]) == (1000, 0), (path, stat)
        files.chown(storage, "/mnt/tank/data", 0, 0, recursive=True)
        pool, rel = storage.find_dataset("tank/data")
        snapshots.rollback(pool, snapshots.key(rel, snap), recursive=False,
                           recursive_clones=False, recursive_rollback=False)
        assert files.stat(storage, "/mnt/tank/data/config")["uid"] == 1000


def test_readonly_set_require_ignore(pair):
    pair.write("/mnt/tank/data/a", b"a")
    pair.snapshot()
    pair.run(pair.task(readonly="IGNORE"))
    with pair.lock:
        pool, rel = pair.target.storage.find_dataset("tank/copy")
        assert pool.meta["datasets"][rel]["props"].get("readonly") is None
    pair.snapshot()
    with pytest.raises(replication.ReplicationError, match="does not have readonly=on"):
        pair.run(pair.task(readonly="REQUIRE"))
    pair.run(pair.task(readonly="SET"))
    with pair.lock:
        assert pool.meta["datasets"][rel]["props"]["readonly"] == "on"
    pair.snapshot()
    pair.run(pair.task(readonly="REQUIRE"))


def test_a_diverged_target_is_refused_unless_from_scratch(pair):
    pair.write("/mnt/tank/data/a", b"a")
    pair.snapshot()
    pair.run(pair.task())
    # the target gets a snapshot of its own under a name the source never had: the
    # newest common one is still there, so the next run rolls the target back to it
    with pair.lock:
        pool, rel = pair.target.storage.find_dataset("tank/copy")
        pool.meta["snapshots"] = {k: v for k, v in pool.meta["snapshots"].items()
                                  if v["dataset"] != rel}     # the target lost its history
        pool.commit()
    pair.write("/mnt/tank/data/a", b"b")
    pair.snapshot()
    with pytest.raises(replication.ReplicationError, match="Refusing to overwrite existing data"):
        pair.run(pair.task())
    pair.run(pair.task(allow_from_scratch=True))
    assert pair.files(pair.target, "tank/copy") == {"a": b"b"}


def test_a_target_snapshot_that_differs_does_not_match_the_incremental_source(pair):
    pair.write("/mnt/tank/data/a", b"a")
    first = pair.snapshot()
    pair.run(pair.task())
    with pair.lock:
        pool, rel = pair.target.storage.find_dataset("tank/copy")
        pool.meta["snapshots"][snapshots.key(rel, first)]["guid"] = "1"
        pool.commit()
    pair.snapshot()
    with pytest.raises(replication.ReplicationError,
                       match="does not match incremental source"):
        pair.run(pair.task())


def test_retention_on_the_target(pair):
    pair.write("/mnt/tank/data/a", b"a")
    names = [pair.snapshot() for _ in range(3)]
    pair.run(pair.task(retention_policy="SOURCE"))
    with pair.lock:
        pool, rel = pair.source.storage.find_dataset("tank/data")
        snapshots.delete(pool, snapshots.key(rel, names[0]), recursive=False)
        pool.commit()
    names.append(pair.snapshot())
    pair.run(pair.task(retention_policy="SOURCE"))
    assert pair.target_snapshots() == names[1:]
    names.append(pair.snapshot())
    with pair.lock:
        pair.clock.advance(60)       # the one made 2 h ago is now older than 2 h
    pair.run(pair.task(retention_policy="CUSTOM", lifetime_value=2, lifetime_unit="HOUR"))
    assert pair.target_snapshots() == names[-2:]


@settings(max_examples=examples(fast=8, deep=25),
          deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_cut_at_any_byte_leaves_no_half_snapshot_and_the_next_run_resumes(tmp_path_factory,
                                                                           data):
    pair = Pair(tmp_path_factory.mktemp("cut"))
    with pair.lock:
        from fakes.truenas.models import datasets

        pool = pair.source.storage.pools["tank"]
        datasets.create(pool, "data", dataset_type="FILESYSTEM", local={}, user_props={},
                        create_ancestors=False, now=pair.clock.now())
        pool.commit()
    pair.write("/mnt/tank/data/x.bin", os.urandom(300_000))
    first = pair.snapshot()
    incremental = data.draw(st.booleans(), label="incremental")
    # where to cut, as a share of the stream (its length varies with the header)
    share = data.draw(st.integers(0, 10**6), label="cut, in millionths of the stream")
    last = first
    if incremental:
        pair.run(pair.task())
        pair.write("/mnt/tank/data/x.bin", os.urandom(300_000))
        pair.write("/mnt/tank/data/y.txt", b"y")
        last = pair.snapshot()
    with pair.lock:
        pool, rel = pair.source.storage.find_dataset("tank/data")
        stream = zstream.build(pool, rel, last, first if incremental else None)
    size = len(stream)
    header = stream.index(b"\n", len(zstream.MAGIC)) + 1
    cut = 1 + share * (size - 2) // 10**6
    before = pair.target_snapshots()
    before_files = pair.files(pair.target, "tank/copy") if before else None
    pair.shell.cut_at = cut
    with pytest.raises(ConnectionError):
        pair.run(pair.task())
    assert pair.target_snapshots() == before                # nothing half-received shows
    if before:
        assert pair.files(pair.target, "tank/copy") == before_files
    resumable = cut >= header        # zfs keeps nothing before the BEGIN record is in
    with pair.lock:
        found = pair.target.storage.find_dataset("tank/copy")
        token = zstream.resume_token(*found) if found is not None else None
    assert (token is not None and token.startswith("1-")) == resumable
    pair.shell.streamed = 0
    pair.run(pair.task())
    if resumable:
        assert pair.shell.streamed < size - cut + 64        # resumed, not restarted
    assert pair.target_snapshots()[-1] == last
    assert pair.files(pair.target, "tank/copy") == pair.files(pair.source, "tank/data", last)


@settings(max_examples=examples(fast=8, deep=20),
          deadline=None, suppress_health_check=list(HealthCheck))
@given(files=st.dictionaries(st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6})?", fullmatch=True),
                             st.binary(max_size=300_000), min_size=1, max_size=6),
       edits=st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                             st.binary(max_size=300_000), max_size=4))
def test_after_a_run_the_target_equals_the_source_at_the_snapshot(tmp_path_factory, files,
                                                                  edits):
    pair = Pair(tmp_path_factory.mktemp("eq"))
    with pair.lock:
        from fakes.truenas.models import datasets

        pool = pair.source.storage.pools["tank"]
        datasets.create(pool, "data", dataset_type="FILESYSTEM", local={}, user_props={},
                        create_ancestors=False, now=pair.clock.now())
        pool.commit()
    written: dict[str, bytes] = {}
    for path, content in files.items():
        try:
            pair.write(f"/mnt/tank/data/{path}", content)
            written[path] = content
        except Exception:  # noqa: BLE001 - a path under a file name: not a case here
            continue
    first = pair.snapshot()
    pair.run(pair.task())
    assert pair.files(pair.target, "tank/copy", first) == pair.files(pair.source, "tank/data",
                                                                      first)
    for path, content in edits.items():
        try:
            pair.write(f"/mnt/tank/data/{path}", content)
        except Exception:  # noqa: BLE001
            continue
    second = pair.snapshot()
    pair.run(pair.task())
    assert pair.files(pair.target, "tank/copy") == pair.files(pair.source, "tank/data", second)


def test_a_task_with_its_own_schedule_runs_on_its_cron_and_a_jump_runs_it_once(pair):
    from fakes.truenas.methods import replication as methods

    started: list[int] = []
    replication.set_starter(lambda node, task_id: started.append(task_id))
    try:
        with pair.lock:
            task = replication.create(pair.source, {
                "name": "hourly", "direction": "PUSH", "transport": "LOCAL",
                "source_datasets": ["tank/data"], "target_dataset": "tank/copy",
                "recursive": False, "auto": True, "retention_policy": "NONE",
                "also_include_naming_schema": [SCHEMA],
                "schedule": {"minute": "30", "hour": "*", "dom": "*", "month": "*",
                             "dow": "*", "begin": "00:00", "end": "23:59"}})
            pair.clock.advance(3600)
        assert started == [task["id"]]
        with pair.lock:
            pair.clock.advance(10 * 3600)   # ten firings, nothing else happening: one run
        assert started == [task["id"]] * 2
        with pair.lock:
            replication.update(pair.source, task["id"], {"enabled": False})
            pair.clock.advance(3 * 3600)
        assert len(started) == 2
    finally:
        replication.set_starter(methods._scheduled)


@settings(max_examples=examples(fast=8, deep=25),
          deadline=None, suppress_health_check=list(HealthCheck))
@given(size=st.integers(1, 3 * zstream.RECORD_SIZE + 1000),
       edits=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 200_000)), max_size=4),
       grow=st.integers(0, 70_000))
def test_an_incremental_carries_exactly_the_records_that_changed(tmp_path_factory, size,
                                                                 edits, grow):
    pair = Pair(tmp_path_factory.mktemp("inc"))
    with pair.lock:
        from fakes.truenas.models import datasets

        pool = pair.source.storage.pools["tank"]
        datasets.create(pool, "data", dataset_type="FILESYSTEM", local={}, user_props={},
                        create_ancestors=False, now=pair.clock.now())
        pool.commit()
    old = os.urandom(size)
    pair.write("/mnt/tank/data/f.bin", old)
    pair.write("/mnt/tank/data/same.bin", b"unchanged" * 1000)
    first = pair.snapshot()
    new = bytearray(old) + os.urandom(grow)
    for share, length in edits:
        offset = int(share * (len(new) - 1))
        new[offset:offset + length] = os.urandom(len(new[offset:offset + length]))
    pair.write("/mnt/tank/data/f.bin", bytes(new))
    second = pair.snapshot()
    record = zstream.RECORD_SIZE
    changed = sum(len(new[i:i + record]) for i in range(0, len(new), record)
                  if new[i:i + record] != old[i:i + record])
    with pair.lock:
        pool, rel = pair.source.storage.find_dataset("tank/data")
        stream = zstream.build(pool, rel, second, first)
    header = json.loads(stream[len(zstream.MAGIC):stream.index(b"\n", len(zstream.MAGIC)) + 1])
    assert header["payload"] == changed                  # the changed records, nothing else
    assert len(stream) - changed < 4096                  # plus a header and a trailer
    pair.run(pair.task())
    assert pair.files(pair.target, "tank/copy") == {"f.bin": bytes(new),
                                                    "same.bin": b"unchanged" * 1000}


def test_several_sources_and_children_land_under_the_target_by_their_paths(pair):
    from fakes.truenas.models import cron, datasets

    with pair.lock:
        pool = pair.source.storage.pools["tank"]
        for rel in ("data/sub", "apps"):
            datasets.create(pool, rel, dataset_type="FILESYSTEM", local={}, user_props={},
                            create_ancestors=False, now=pair.clock.now())
        pool.commit()
    pair.write("/mnt/tank/data/a", b"a")
    pair.write("/mnt/tank/data/sub/b", b"b")
    pair.write("/mnt/tank/apps/c", b"c")
    with pair.lock:
        pair.clock.advance(3600)
        name = cron.format_name(SCHEMA, pair.clock.now())
        for rel in ("data", "apps"):
            snapshots.create(pool, rel, name, recursive=True, exclude=[], now=pair.clock.now())
        pool.commit()
    pair.run(pair.task(source_datasets=["tank/data", "tank/apps"], recursive=True))
    assert pair.files(pair.target, "tank/copy/data") == {"a": b"a"}
    assert pair.files(pair.target, "tank/copy/data/sub") == {"b": b"b"}
    assert pair.files(pair.target, "tank/copy/apps") == {"c": b"c"}
    with pair.lock:
        target = pair.target.storage.pools["tank"]
        for rel in ("copy/data", "copy/apps"):
            assert datasets.effective(target, rel, "readonly")[0] == "on"
        assert datasets.effective(target, "copy/data/sub", "readonly") == \
            ("on", "INHERITED", "tank/copy/data")


def test_an_admin_user_replicates_only_through_sudo_for_zfs(pair):
    from fakes.truenas.models import keychain

    pair.write("/mnt/tank/data/a", b"a")
    pair.snapshot()
    pair.shell.username = "truenas_admin"
    with pytest.raises(replication.ReplicationError, match="permission denied"):
        pair.run(pair.task())
    with pair.lock:                 # what the semi-automatic setup with sudo gives the user
        keychain.update_user(pair.target, "truenas_admin", sudo=True)

    class Sudo(PeerShell):          # what zettarepl does with the task's `sudo`
        def exec(self, command, stdin=b"", on_sent=None):
            prefixed = "sudo " + command if command.startswith("zfs") else command
            return super().exec(prefixed, stdin, on_sent)

    pair.shell = Sudo(pair.target, "truenas_admin")
    pair.run(pair.task(sudo=True))
    assert pair.files(pair.target, "tank/copy") == {"a": b"a"}


def test_an_incremental_carries_deletions_and_sends_no_byte_for_them(pair):
    """A file a process unlinked on the source is gone from the target after the
    next incremental (ZFS sends the unlink as free records, no data), the other
    files read the same, and the older snapshot on the target still holds it."""
    kept = os.urandom(300_000)
    doomed = os.urandom(500_000)
    pair.write("/mnt/tank/data/kept.bin", kept)
    pair.write("/mnt/tank/data/dir/doomed.bin", doomed)
    first = pair.snapshot()
    pair.run(pair.task())
    with pair.lock:
        pair.source.storage.remove_file("/mnt/tank/data/dir/doomed.bin")
    second = pair.snapshot()
    with pair.lock:
        pool, rel = pair.source.storage.find_dataset("tank/data")
        stream = zstream.build(pool, rel, second, first)
    header = json.loads(stream[len(zstream.MAGIC):stream.index(b"\n", len(zstream.MAGIC)) + 1])
    assert header["payload"] == 0 and len(stream) < 4096
    pair.run(pair.task())
    assert pair.files(pair.target, "tank/copy") == {"kept.bin": kept}
    assert pair.files(pair.target, "tank/copy", first) == {"kept.bin": kept,
                                                           "dir/doomed.bin": doomed}
    assert pair.target_snapshots() == [first, second]


def test_a_process_cannot_unlink_on_a_read_only_copy(pair):
    pair.write("/mnt/tank/data/a", b"a")
    pair.snapshot()
    pair.run(pair.task(readonly="SET"))
    with pair.lock, pytest.raises(Exception, match="Read-only file system"):
        pair.target.storage.remove_file("/mnt/tank/copy/a")
    assert pair.files(pair.target, "tank/copy") == {"a": b"a"}


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(files=st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                             st.binary(max_size=200_000), min_size=1, max_size=6),
       data=st.data())
def test_whatever_is_deleted_and_written_the_target_equals_the_source(tmp_path_factory,
                                                                      files, data):
    pair = Pair(tmp_path_factory.mktemp("del"))
    with pair.lock:
        from fakes.truenas.models import datasets

        pool = pair.source.storage.pools["tank"]
        datasets.create(pool, "data", dataset_type="FILESYSTEM", local={}, user_props={},
                        create_ancestors=False, now=pair.clock.now())
        pool.commit()
    for path, content in files.items():
        pair.write(f"/mnt/tank/data/{path}", content)
    pair.snapshot()
    pair.run(pair.task())
    deleted = data.draw(st.sets(st.sampled_from(sorted(files))), label="deleted")
    rewritten = data.draw(st.dictionaries(st.sampled_from(sorted(files)),
                                          st.binary(max_size=200_000)), label="rewritten")
    for path in deleted:
        with pair.lock:
            pair.source.storage.remove_file(f"/mnt/tank/data/{path}")
    for path, content in rewritten.items():     # a deleted name may come back
        pair.write(f"/mnt/tank/data/{path}", content)
    second = pair.snapshot()
    pair.run(pair.task())
    expected = {p: c for p, c in files.items() if p not in deleted} | rewritten
    assert pair.files(pair.target, "tank/copy") == expected
    assert pair.files(pair.source, "tank/data", second) == expected
