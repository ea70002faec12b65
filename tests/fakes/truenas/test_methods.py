"""The fake TrueNAS's JSON-RPC methods, called the way the transport calls them.

Every call goes through `node.call(method, params, CallContext)` (no network):
handlers check positional params like middleware's strict pydantic models, job
methods return Jobs that finish on the virtual clock, and results fit the
TrueNAS 25.10 JSON Schemas in reference/truenas-schemas (datetimes
checked as the datetimes they stand for). The query filter/option helper is
checked against a plain Python reference with hypothesis.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.clock import VirtualClock
from fakes.truenas import ejson, events
from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError, MatchNotFound, ValidationErrors
from fakes.truenas.jobs import Job
from fakes.truenas.methods import METHODS
from fakes.truenas.methods.query import filter_list
from fakes.truenas.models import inject_bit_rot
from fakes.truenas.node import CallContext, TrueNASNode
from tests.budget import examples
from tests.reference import truenas_schema

GIB = 2**30
_ids = itertools.count(1)


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = VirtualClock(speed=1000)
        self.lock = threading.RLock()
        self.count = 0

    def node(self, hostname="n1", boot=True) -> TrueNASNode:
        self.count += 1
        node = TrueNASNode(droplet_id=self.count, hostname=hostname,
                           address=f"127.10.0.{4 + self.count}", clock=self.clock,
                           lock=self.lock, state_dir=self.root / f"node{self.count}",
                           api_keys={})
        if boot:
            self.clock.advance(100)
        return node

    def volume(self, name: str) -> Path:
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def plug(self, node, *names, size=10 * GIB):
        for name in names:
            node.plug_disk(name, size, self.volume(name))


def call(node, method, *params, pipe_input=None):
    """Call as the transport does; every answer must survive the wire encoding."""
    with node.lock:
        result = node.call(method, list(params),
                           CallContext(message_id=next(_ids), pipe_input=pipe_input))
    ejson.dumps(result.to_dict() if isinstance(result, Job) else result)
    return result


def job_result(job):
    assert job.state == "SUCCESS", (job.state, job.error, job.exc_info)
    ejson.dumps(job.to_dict())
    return job.result


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


@pytest.fixture
def node(env):
    node = env.node()
    env.plug(node, "vol-a", "vol-b")
    return node


@pytest.fixture
def tank(node):
    job_result(call(node, "pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    return node


def upload(node, path, data, **options):
    return job_result(call(node, "filesystem.put", path, options, pipe_input=data))


def download(node, path):
    job = call(node, "filesystem.get", path)
    job_result(job)
    return job.pipe_output


# --- JSON Schema conformance -------------------------------------------------
def as_schema_sees_it(value):
    """Datetimes as pydantic serialises them before the $date encoding."""
    if isinstance(value, Timestamp):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, dict):
        return {k: as_schema_sees_it(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_schema_sees_it(v) for v in value]
    return value


def conforms(method, value, key="result"):
    import jsonschema

    schema = truenas_schema(method, key)
    instance = {"result": value} if key == "result" else value
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    ).validate(as_schema_sees_it(instance))


# --- booting -----------------------------------------------------------------
def test_the_registry_serves_the_storage_surface():
    wanted = {f"pool.{m}" for m in ("create", "query", "get_instance", "replace", "scrub",
                                     "export", "import_find", "import_pool")}
    wanted |= {f"{ns}.{m}" for ns in ("pool.snapshot", "zfs.snapshot")
               for m in ("create", "query", "delete", "rollback", "clone")}
    wanted |= {f"pool.dataset.{m}" for m in ("create", "query", "delete")}
    wanted |= {f"pool.snapshottask.{m}" for m in ("create", "query", "update", "delete", "run")}
    wanted |= {f"filesystem.{m}" for m in ("put", "get", "stat", "listdir")}
    wanted |= {"system.state", "system.ready", "system.info", "system.version_short",
               "disk.query"}
    assert wanted <= set(METHODS)
    assert not any(name.startswith(("core.", "auth.")) for name in METHODS)


def test_only_state_methods_answer_while_booting(env):
    node = env.node(boot=False)
    assert call(node, "system.state") == "BOOTING"
    assert call(node, "system.ready") is False
    with pytest.raises(CallError) as caught:
        call(node, "pool.query")
    assert (caught.value.errno, caught.value.message) == (errno.EBUSY, "Middleware is not ready")
    env.clock.advance(100)
    assert call(node, "system.ready") is True
    assert call(node, "pool.query") == []


def test_system_info_fits_its_schema(node):
    info = call(node, "system.info")
    assert info["hostname"] == "n1"
    assert isinstance(info["boottime"], Timestamp)
    assert call(node, "system.version_short") == "25.10.2"
    conforms("system.info", info)
    conforms("system.state", call(node, "system.state"))


# --- disks and pools ---------------------------------------------------------
def test_disk_query_fills_pool_only_with_extra_pools(tank):
    plain = call(tank, "disk.query", [["name", "^", "sd"]], {"order_by": ["name"]})
    assert [d["name"] for d in plain] == ["sda", "sdb"]
    assert {d["pool"] for d in plain} == {None}
    with_pools = call(tank, "disk.query", [], {"extra": {"pools": True}})
    assert {d["name"]: d["pool"] for d in with_pools} == {
        "vda": "boot-pool", "sda": "tank", "sdb": "tank"}
    for entry in with_pools:
        conforms("disk.query", entry, key="item")
    assert call(tank, "disk.get_unused") == []


def test_pool_create_returns_an_online_entry_that_fits_the_schema(node):
    job = call(node, "pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}})
    assert job.method == "pool.create" and job.message_ids
    pool = job_result(job)
    assert (pool["status"], pool["healthy"], pool["path"]) == ("ONLINE", True, "/mnt/tank")
    conforms("pool.create", pool)
    [queried] = call(node, "pool.query", [["name", "=", "tank"]])
    conforms("pool.query", queried, key="item")
    assert call(node, "pool.get_instance", pool["id"])["guid"] == pool["guid"]


def test_argument_types_fail_at_once_with_pydantic_paths(node):
    with pytest.raises(ValidationErrors) as caught:
        call(node, "pool.create", {"topology": {"data": [{"type": "MIRRORED", "disks": "sda"}]},
                                   "bogus": 1})
    errors = {e[0]: e[1] for e in caught.value.errors}
    assert errors["data.name"] == "Field required"
    assert errors["data.topology.data.0.type"].startswith("Input should be 'RAIDZ1'")
    assert errors["data.topology.data.0.disks"] == "Input should be a valid list"
    assert errors["data.bogus"] == "Extra inputs are not permitted"
    with pytest.raises(ValidationErrors) as caught:
        call(node, "pool.replace", 1, {"label": "x", "disk": 5})
    assert caught.value.errors[0][:2] == ("options.disk", "Input should be a valid string")


def test_plugin_checks_fail_the_job_with_attribute_names(node):
    job = call(node, "pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda"]}]}})
    assert job.state == "FAILED" and job.exc_info["type"] == "VALIDATION"
    assert job.exc_info["extra"][0][0] == "pool_create.topology.data.0.disks"
    job = call(node, "pool.create", {"name": "tank", "topology": {
        "data": [{"type": "RAIDZ2", "disks": ["sda", "sdb", "vda", "sdz"]}]}})
    assert job.state == "FAILED"
    messages = [e[1] for e in job.exc_info["extra"]]
    assert "The following disks were not found in system: sdz." in messages
    assert "The following disks are already in use: vda." in messages


def test_replace_resilvers_on_the_clock_to_online(tank, env):
    data = os.urandom(2 * 2**20)
    upload(tank, "/mnt/tank/blob", data)
    pool = call(tank, "pool.query", [], {"get": True})
    leaves = call(tank, "pool.flatten_topology", pool["topology"])
    gone = next(leaf for leaf in leaves if leaf.get("disk") == "sda")
    tank.unplug_disk("vol-a")
    env.plug(tank, "vol-c")
    degraded = call(tank, "pool.get_instance", pool["id"])
    assert (degraded["status"], degraded["healthy"]) == ("DEGRADED", False)
    [mirror] = degraded["topology"]["data"]
    [missing] = [c for c in mirror["children"] if c["status"] != "ONLINE"]
    assert missing["unavail_disk"] is not None and missing["guid"] == gone["guid"]
    conforms("pool.query", degraded, key="item")
    new_disk = call(tank, "disk.query", [["serial", "=", "vol-c"]], {"get": True})
    # A disk that is not there, a label that is not there: attribute names.
    bad = call(tank, "pool.replace", pool["id"], {"label": "nope", "disk": "{serial}nope"})
    assert {e[0] for e in bad.exc_info["extra"]} == {"options.disk", "options.label"}
    job = call(tank, "pool.replace", pool["id"],
               {"label": gone["guid"], "disk": new_disk["identifier"]})
    assert job.state == "RUNNING"
    resilvering = call(tank, "pool.get_instance", pool["id"])
    scan = resilvering["scan"]
    assert (scan["function"], scan["state"]) == ("RESILVER", "SCANNING")
    [mirror] = resilvering["topology"]["data"]
    [replacing] = [c for c in mirror["children"] if c["type"] == "REPLACING"]
    assert [c["disk"] for c in replacing["children"]] == [None, new_disk["name"]]
    conforms("pool.query", resilvering, key="item")
    env.clock.advance(60)
    assert job_result(job) is True
    done = call(tank, "pool.get_instance", pool["id"])
    assert (done["status"], done["scan"]["state"]) == ("ONLINE", "FINISHED")
    conforms("pool.replace", True)
    tank.unplug_disk("vol-b")
    assert hashlib.sha256(download(tank, "/mnt/tank/blob")).digest() == \
        hashlib.sha256(data).digest()


def test_scrub_job_repairs_bit_rot(tank, env):
    upload(tank, "/mnt/tank/data.bin", b"important" * 1000)
    inject_bit_rot(env.volume("vol-b"), "tank", "data.bin")
    pool_id = call(tank, "pool.query", [], {"get": True})["id"]
    heard = []
    events.hub(tank).add(lambda *event: heard.append(event))
    job = call(tank, "pool.scrub", pool_id, "START")
    assert job.transient and job.state == "RUNNING"
    env.clock.advance(60)
    assert job_result(job) is None and job.progress["description"] == "Scrub finished"
    scan = call(tank, "pool.get_instance", pool_id)["scan"]
    assert (scan["function"], scan["state"], scan["errors"]) == ("SCRUB", "FINISHED", 1)
    assert {(c, m, i) for c, m, i, _, _ in heard} == {("pool.scan", "changed", "tank")}
    assert heard[-1][3]["scan"]["state"] == "FINISHED" and len(heard) >= 10
    stop = call(tank, "pool.scrub", pool_id, "STOP")
    assert stop.state == "FAILED" and stop.exc_info["errno"] == errno.ENOENT


def test_collections_send_added_changed_removed_where_middleware_does(node, env):
    heard = []
    events.hub(node).add(lambda *event: heard.append(event[:3] + (event[3] is not None,)
                                                      + (event[4],)))

    def took():
        taken = list(heard)
        heard.clear()
        return taken

    pool = job_result(call(node, "pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    assert took() == [("pool.query", "added", pool["id"], True, {})]       # pool_/pool.py
    call(node, "pool.dataset.create", {"name": "tank/apps"})
    call(node, "pool.dataset.update", "tank/apps", {"comments": "x"})
    call(node, "pool.dataset.delete", "tank/apps")
    assert took() == [("pool.dataset.query", "added", "tank/apps", True, {}),
                      ("pool.dataset.query", "changed", "tank/apps", True, {}),
                      ("pool.dataset.query", "removed", "tank/apps", False, {})]
    call(node, "pool.snapshot.create", {"dataset": "tank", "name": "a"})
    call(node, "pool.snapshot.delete", "tank@a")
    call(node, "zfs.snapshot.create", {"dataset": "tank", "name": "b"})
    assert took() == [("zfs.snapshot.query", "added", "tank@a", True, {}),
                      ("pool.snapshot.query", "added", "tank@a", True, {}),
                      ("zfs.snapshot.query", "removed", "tank@a", False, {}),
                      ("pool.snapshot.query", "removed", "tank@a", False, {"recursive": False}),
                      ("zfs.snapshot.query", "added", "tank@b", True, {})]
    task = call(node, "pool.snapshottask.create", {"dataset": "tank"})
    call(node, "pool.snapshottask.update", task["id"], {"enabled": False})
    call(node, "pool.snapshottask.delete", task["id"])
    assert [e[:4] for e in took()] == [("pool.snapshottask.query", "added", task["id"], True),
                                       ("pool.snapshottask.query", "changed", task["id"], True),
                                       ("pool.snapshottask.query", "removed", task["id"], False)]
    with pytest.raises(ValidationErrors):
        call(node, "pool.dataset.create", {"name": "tank/bad name!"})
    assert took() == []                                  # a refused change sends nothing
    job_result(call(node, "pool.export", pool["id"]))
    assert took() == [("pool.query", "removed", pool["id"], False, {})]  # pool_/export.py
    [found] = job_result(call(node, "pool.import_find"))
    job_result(call(node, "pool.import_pool", {"guid": found["guid"]}))
    assert [e[:2] for e in took()] == [("pool.query", "added")]   # pool_/import_pool.py


def test_datetimes_are_whole_seconds_and_creation_agrees_with_itself(tank, env):
    env.clock.advance(0.75)
    snapshot = call(tank, "pool.snapshot.create", {"dataset": "tank", "name": "s"})
    creation = snapshot["properties"]["creation"]
    wire = ejson.encode(creation["parsed"])
    assert wire == {"$date": int(creation["rawvalue"]) * 1000}
    boottime = ejson.encode(call(tank, "system.info")["boottime"])["$date"]
    assert boottime % 1000 == 0


def test_export_move_and_import_through_the_api(tank, env):
    call(tank, "pool.dataset.create", {"name": "tank/apps"})
    upload(tank, "/mnt/tank/apps/db.sqlite", b"rows")
    call(tank, "pool.snapshot.create", {"dataset": "tank/apps", "name": "nightly"})
    task = call(tank, "pool.snapshottask.create", {"dataset": "tank/apps"})
    pool_id = call(tank, "pool.query", [], {"get": True})["id"]
    job_result(call(tank, "pool.export", pool_id))
    assert call(tank, "pool.snapshottask.get_instance", task["id"])["enabled"] is False
    tank.unplug_disk("vol-a")
    tank.unplug_disk("vol-b")
    other = env.node("n2")
    env.plug(other, "vol-a", "vol-b")
    found = job_result(call(other, "pool.import_find"))
    conforms("pool.import_find", found)
    assert [(f["name"], f["status"], f["hostname"]) for f in found] == [("tank", "ONLINE", "n1")]
    assert job_result(call(other, "pool.import_pool", {"guid": found[0]["guid"]})) is True
    names = [d["name"] for d in call(other, "pool.dataset.query", [], {"order_by": ["name"]})]
    assert names == ["tank", "tank/apps"]
    assert download(other, "/mnt/tank/apps/db.sqlite") == b"rows"
    assert [s["name"] for s in call(other, "pool.snapshot.query")] == ["tank/apps@nightly"]
    conforms("pool.import_pool", True)
    conforms("pool.export", None)


# --- datasets, files, snapshots ----------------------------------------------
def test_dataset_create_query_delete(tank):
    entry = call(tank, "pool.dataset.create", {"name": "tank/media", "compression": "ZSTD",
                                               "comments": "films"})
    assert (entry["id"], entry["mountpoint"], entry["pool"]) == (
        "tank/media", "/mnt/tank/media", "tank")
    assert entry["compression"]["value"] == "ZSTD" and entry["compression"]["source"] == "LOCAL"
    assert entry["atime"]["source"] == "INHERITED"
    conforms("pool.dataset.create", entry)
    for item in call(tank, "pool.dataset.query"):
        conforms("pool.dataset.query", item, key="item")
    root = call(tank, "pool.dataset.query", [["id", "=", "tank"]], {"get": True})
    assert [c["name"] for c in root["children"]] == ["tank/media"]
    with pytest.raises(ValidationErrors) as caught:
        call(tank, "pool.dataset.create", {"name": "tank/a/b"})
    assert caught.value.errors[0][0] == "pool_dataset_create.name"
    assert caught.value.errors[0][2] == errno.ENOENT
    assert "Parent dataset (tank/a) does not exist." in caught.value.errors[0][1]
    with pytest.raises(ValidationErrors) as caught:
        call(tank, "pool.dataset.create", {"name": "tank/media"})
    assert caught.value.errors[0][2] == errno.EEXIST
    call(tank, "pool.dataset.create", {"name": "tank/a/b", "create_ancestors": True})
    with pytest.raises(CallError):
        call(tank, "pool.dataset.delete", "tank/a")
    assert call(tank, "pool.dataset.delete", "tank/a", {"recursive": True}) is True
    assert call(tank, "pool.dataset.delete", "tank/a") is None
    conforms("pool.dataset.delete", True)


def test_files_through_put_get_stat_and_listdir(tank):
    with pytest.raises(CallError) as caught:
        call(tank, "filesystem.put", "/mnt/tank/x", {})
    assert "/_upload" in caught.value.message
    assert upload(tank, "/mnt/tank/docs/readme.md", b"# hi\n", mode=0o640) is True
    upload(tank, "/mnt/tank/docs/readme.md", b"more\n", append=True)
    assert download(tank, "/mnt/tank/docs/readme.md") == b"# hi\nmore\n"
    stat = call(tank, "filesystem.stat", "/mnt/tank/docs/readme.md")
    conforms("filesystem.stat", stat)
    assert (stat["type"], stat["size"]) == ("FILE", 10)
    listing = call(tank, "filesystem.listdir", "/mnt/tank/docs", [["type", "=", "FILE"]])
    assert [e["name"] for e in listing] == ["readme.md"]
    failed = call(tank, "filesystem.get", "/mnt/tank/nothing")
    assert failed.state == "FAILED" and failed.exc_info["errno"] == errno.ENOENT


def test_snapshots_rollback_clone_and_the_zfs_alias(tank):
    upload(tank, "/mnt/tank/state.json", b'{"v": 1}')
    snap = call(tank, "pool.snapshot.create", {"dataset": "tank", "name": "one"})
    assert (snap["id"], snap["snapshot_name"], snap["type"]) == ("tank@one", "one", "SNAPSHOT")
    assert isinstance(snap["properties"]["creation"]["parsed"], Timestamp)
    conforms("pool.snapshot.create", snap)
    upload(tank, "/mnt/tank/state.json", b'{"v": 2}')
    named = call(tank, "zfs.snapshot.create", {"dataset": "tank",
                                               "naming_schema": "auto-%Y%m%d-%H%M"})
    assert named["snapshot_name"].startswith("auto-")
    for entry in call(tank, "pool.snapshot.query", [], {"extra": {"holds": True}}):
        conforms("pool.snapshot.query", entry, key="item")
    with pytest.raises(CallError):
        call(tank, "pool.snapshot.rollback", "tank@one")
    assert call(tank, "pool.snapshot.rollback", "tank@one", {"recursive": True}) is None
    assert download(tank, "/mnt/tank/state.json") == b'{"v": 1}'
    assert call(tank, "pool.snapshot.query", [], {"count": True}) == 1
    upload(tank, "/mnt/tank/state.json", b'{"v": 3}')
    assert call(tank, "pool.snapshot.clone", {"snapshot": "tank@one",
                                              "dataset_dst": "tank/restored"}) is True
    assert download(tank, "/mnt/tank/restored/state.json") == b'{"v": 1}'
    assert download(tank, "/mnt/tank/state.json") == b'{"v": 3}'
    clone = call(tank, "pool.dataset.get_instance", "tank/restored")
    assert clone["origin"]["value"] == "tank@one"
    with pytest.raises(ValidationErrors) as caught:
        call(tank, "pool.snapshot.create", {"dataset": "tank/nope", "name": "x"})
    assert caught.value.errors[0][0] == "pool_snapshot_create.dataset"
    with pytest.raises(CallError) as caught:
        call(tank, "pool.snapshot.delete", "tank@one")      # tank/restored depends on it
    assert caught.value.errno == errno.EBUSY
    assert call(tank, "pool.dataset.delete", "tank/restored") is True
    assert call(tank, "pool.snapshot.delete", "tank@one") is True
    conforms("pool.snapshot.delete", True)


def test_snapshot_tasks_fire_on_the_clock_and_keep_their_retention(tank, env):
    task = call(tank, "pool.snapshottask.create", {
        "dataset": "tank", "lifetime_value": 1, "lifetime_unit": "DAY",
        "schedule": {"minute": "0", "hour": "*"}})
    conforms("pool.snapshottask.create", task)
    assert task["state"] == {"state": "PENDING"}
    assert task["naming_schema"] == "auto-%Y-%m-%d_%H-%M"
    env.clock.advance(2 * 86400)
    snaps = call(tank, "pool.snapshot.query", [["snapshot_name", "^", "auto-"]],
                 {"extra": {"retention": True}, "order_by": ["createtxg"]})
    assert 24 <= len(snaps) <= 25
    assert snaps[0]["retention"]["periodic_snapshot_task_id"] == task["id"]
    entry = call(tank, "pool.snapshottask.get_instance", task["id"])
    assert entry["state"]["state"] == "FINISHED"
    updated = call(tank, "pool.snapshottask.update", task["id"], {"enabled": False})
    assert updated["enabled"] is False
    assert call(tank, "pool.snapshottask.run", task["id"]) is None
    assert call(tank, "pool.snapshottask.delete", task["id"]) is True
    with pytest.raises(ValidationErrors) as caught:
        call(tank, "pool.snapshottask.create", {"dataset": "tank", "naming_schema": "daily"})
    assert caught.value.errors[0][0] == "periodic_snapshot_create.naming_schema"
    with pytest.raises(ValidationErrors) as caught:
        call(tank, "pool.snapshottask.get_instance", 99)
    assert caught.value.errors[0][2] == errno.ENOENT


# --- query filters and options -----------------------------------------------
def test_query_get_with_no_match_is_match_not_found(tank):
    # service_exception.py: MatchNotFound is an IndexError, so rpc.py sends
    # `str(e) or repr(e)` with errno EINVAL and no "[EINVAL]" prefix.
    with pytest.raises(MatchNotFound) as caught:
        call(tank, "pool.query", [["name", "=", "nope"]], {"get": True})
    data = caught.value.data()
    assert (caught.value.code, data["error"], data["reason"]) == (-32001, 22, "MatchNotFound()")
    assert data["trace"]["class"] == "MatchNotFound"
    # InstanceNotFound is one ValidationError: its str() has no trailing newline.
    with pytest.raises(ValidationErrors) as caught:
        call(tank, "pool.get_instance", 42)
    assert caught.value.errors == [(None, "Pool 42 does not exist", errno.ENOENT)]
    assert caught.value.data()["reason"] == "[ENOENT] None: Pool 42 does not exist"
    assert caught.value.data()["trace"]["class"] == "InstanceNotFound"


_SECONDS = st.integers(min_value=0, max_value=4_000_000_000)
_COMPARE = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


@given(stamps=st.lists(_SECONDS, min_size=1, max_size=6), bound=_SECONDS,
       op=st.sampled_from(sorted(_COMPARE)), naive=st.booleans())
def test_a_date_filter_compares_datetimes_with_an_iso_string(stamps, bound, op, naive):
    # a client filters `field.$date` with an ISO-8601 string, never with the epoch
    # milliseconds the wire shows (filter_list.py @ af2c5ab, validate_filters)
    rows = [{"id": i, "at": Timestamp(t)} for i, t in enumerate(stamps)]
    moment = datetime.fromtimestamp(bound, UTC)
    iso = moment.replace(tzinfo=None).isoformat() if naive else moment.isoformat()
    found = filter_list(rows, [["at.$date", op, iso]])
    assert [r["id"] for r in found] == [
        r["id"] for r in rows if _COMPARE[op](int(r["at"]), bound)]


def test_a_date_filter_refuses_epoch_operands_and_other_operations():
    rows = [{"id": 1, "at": Timestamp(1_700_000_000)}]
    with pytest.raises(ValidationErrors) as caught:
        filter_list(rows, [["at.$date", ">", 1_700_000_000_000]])
    assert "must be an ISO-8601 formatted timestamp string" in caught.value.errors[0][1]
    with pytest.raises(ValidationErrors) as caught:
        filter_list(rows, [["at.$date", "^", "2023-11-14T22:13:20"]])
    assert "invalid timestamp operation" in caught.value.errors[0][1]


def test_filters_nested_keys_or_wildcards_select_and_order():
    entries = [
        {"id": 1, "name": "tank", "topology": {"data": [{"type": "MIRROR"}]}, "size": None},
        {"id": 2, "name": "Backup", "topology": {"data": [{"type": "DISK"}]}, "size": 5},
        {"id": 3, "name": "scratch", "topology": {"data": []}, "size": 7},
    ]
    assert filter_list(entries, [["topology.data.*.type", "=", "DISK"]]) == [entries[1]]
    assert filter_list(entries, [["topology.data.0.type", "=", "MIRROR"]]) == [entries[0]]
    assert [e["id"] for e in filter_list(entries, [["OR", [["id", "=", 1], ["id", "=", 3]]]])] \
        == [1, 3]
    assert filter_list(entries, [["name", "C=", "backup"]]) == [entries[1]]
    assert filter_list(entries, [["name", "~", "s.*h"]]) == [entries[2]]
    assert filter_list(entries, [["size", "^", "x"]]) == []
    assert filter_list(entries, [], {"select": ["id", ["topology.data", "vdevs"]],
                                     "order_by": ["-id"], "limit": 1}) == [
        {"id": 3, "vdevs": []}]
    assert [e["id"] for e in filter_list(entries, [], {"order_by": ["nulls_last:size"]})] \
        == [2, 3, 1]
    with pytest.raises(CallError):
        filter_list(entries, [], {"order_by": ["size"]})
    with pytest.raises(ValidationErrors):
        filter_list(entries, [["id", "≈", 1]])


ROWS = st.lists(st.fixed_dictionaries({
    "n": st.integers(-5, 5), "s": st.sampled_from(["a", "ab", "b", "ba", ""]),
    "maybe": st.one_of(st.none(), st.integers(0, 3)),
}), max_size=12).map(lambda rows: [{"id": i, **row} for i, row in enumerate(rows)])
FILTERS = st.one_of(
    st.tuples(st.just("n"), st.sampled_from(["=", "!=", ">", ">=", "<", "<="]),
              st.integers(-5, 5)),
    st.tuples(st.just("s"), st.sampled_from(["^", "$", "=", "!="]),
              st.sampled_from(["a", "b", ""])),
    st.tuples(st.just("n"), st.sampled_from(["in", "nin"]), st.lists(st.integers(-5, 5))),
    st.tuples(st.just("maybe"), st.sampled_from(["=", "!="]),
              st.one_of(st.none(), st.integers(0, 3))),
).map(list)

REFERENCE_OPS = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    "in": lambda a, b: a in b, "nin": lambda a, b: a not in b,
    "^": lambda a, b: a.startswith(b), "$": lambda a, b: a.endswith(b),
}


@settings(max_examples=examples(fast=50, deep=200), deadline=None)
@given(rows=ROWS, filters=st.lists(FILTERS, max_size=3), order=st.sampled_from(
    [[], ["n"], ["-n"], ["s", "-n"]]), offset=st.integers(0, 4), limit=st.integers(0, 4),
    count=st.booleans())
def test_filter_list_agrees_with_a_plain_reference(rows, filters, order, offset, limit, count):
    expected = [r for r in rows if all(REFERENCE_OPS[op](r[k], v) for k, op, v in filters)]
    options = {"order_by": order, "offset": offset, "limit": limit, "count": count}
    if count:
        assert filter_list(rows, filters, options) == len(expected)
        return
    for key in order:                      # successive stable sorts, as middleware does
        expected = sorted(expected, key=lambda r, k=key.lstrip("-"): r[k],
                          reverse=key.startswith("-"))
    expected = expected[offset:]
    if limit:
        expected = expected[:limit]
    assert filter_list(rows, filters, options) == expected
