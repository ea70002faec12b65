"""Replication between two fake TrueNAS droplets, over the real wire.

Two droplets from the TrueNAS image (production, staging), each driven over JSON-RPC
on WSS as infra/ drives them; the SSH connection between them goes from the source
droplet's address to the target's port 22 through the target's DigitalOcean
firewall. Every result of a keychaincredential.* / replication.* call is checked
against its vendored 25.10 schema. The bytes on both pools are compared directly.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import jsonschema
import pytest

from fakes.truenas.methods import replication as replication_methods
from fakes.truenas.models import zstream
from fakes.world import World
from tests.fakes.truenas.nodes import Rpc, advance, logged_in, truenas_droplet
from tests.fakes.truenas.test_app_services import INTERNET, refused
from tests.fakes.truenas.test_fleet import admin
from tests.reference import TRUENAS_SCHEMAS

MIB = 2**20
SCHEMA = "auto-%Y-%m-%d_%H-%M"
WAIT = 60.0


def checked(rpc: Rpc, method: str, *params):
    """The call's result, after checking it against the method's 25.10 schema."""
    result = rpc.result(method, *params)
    schema = json.loads((TRUENAS_SCHEMAS / f"{method}.json").read_text())
    if not schema["job"]:
        jsonschema.validate({"result": _plain(result)}, schema["result"],
                            cls=jsonschema.Draft202012Validator)
    return result


def _plain(value):
    if isinstance(value, dict):
        if set(value) == {"$date"}:
            import datetime

            return datetime.datetime.fromtimestamp(value["$date"] / 1000,
                                                   datetime.UTC).isoformat()
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def wait_job(world: World, rpc: Rpc, job_id: int) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        [job] = rpc.result("core.get_jobs", [["id", "=", job_id]])
        if job["state"] in ("SUCCESS", "FAILED", "ABORTED"):
            return job
        advance(world, 1)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


class Site:
    def __init__(self, world: World, droplet: dict, rpc: Rpc) -> None:
        self.world, self.droplet, self.rpc = world, droplet, rpc
        self.entry = world.truenas.node_for(droplet["id"])
        self.node = self.entry.node
        self.address = self.node.address

    def pool(self) -> None:
        disks = sorted(d["devname"] for d in self.rpc.result("disk.query",
                                                             [["bus", "=", "SCSI"]]))
        job = self.rpc.job(self.world, "pool.create", {"name": "tank", "topology": {
            "data": [{"type": "MIRROR", "disks": disks}]}})
        assert job["state"] == "SUCCESS", job

    def write(self, path: str, data: bytes) -> None:
        with self.world.backend.lock:
            self.node.storage.write_file(path, data)

    def files(self, dataset: str, snapshot: str | None = None) -> dict[str, bytes]:
        with self.world.backend.lock:
            pool, rel = self.node.storage.find_dataset(dataset)
            table = (pool.meta["snapshots"][f"{rel}@{snapshot}"]["files"] if snapshot
                     else pool.meta["datasets"][rel]["files"])
            return {p: pool.objects.get(r["oid"], what=p) for p, r in table.items()}

    def snapshots(self, dataset: str) -> list[str]:
        return [s["snapshot_name"] for s in self.rpc.result(
            "pool.snapshot.query", [["dataset", "=", dataset]], {"order_by": ["createtxg"]})]

    def resume_token(self, dataset: str) -> str | None:
        with self.world.backend.lock:
            found = self.node.storage.find_dataset(dataset)
            return zstream.resume_token(*found) if found else None

    def sent(self) -> list[int]:
        return replication_methods._sent_bytes(self.node)


@pytest.fixture(scope="module")
def world(slow_world: World) -> World:
    return slow_world


@pytest.fixture(scope="module")
def sites(world, slow_client) -> Iterator[tuple[Site, Site, object]]:
    prod = truenas_droplet(world, slow_client, "prod")
    stag = truenas_droplet(world, slow_client, "stag")
    with logged_in(world, prod["id"]) as prod_rpc, logged_in(world, stag["id"]) as stag_rpc:
        source, target = Site(world, prod, prod_rpc), Site(world, stag, stag_rpc)
        source.pool()
        target.pool()
        source.rpc.result("pool.dataset.create", {"name": "tank/data"})
        yield source, target, slow_client


def firewall_body(target: Site, source: Site, ssh: bool) -> dict:
    rules = [{"protocol": "tcp", "ports": "443",
              "sources": {"addresses": ["127.0.0.1"], "droplet_ids": [source.droplet["id"]]}}]
    if ssh:
        rules.append({"protocol": "tcp", "ports": "22",
                      "sources": {"droplet_ids": [source.droplet["id"]]}})
    return {"name": "staging-fw", "droplet_ids": [target.droplet["id"]],
            "inbound_rules": rules,
            "outbound_rules": [{"protocol": "tcp", "ports": "0",
                                "destinations": {"addresses": ["0.0.0.0/0"]}}]}


def test_push_replication_through_the_firewall_full_then_incremental(world, sites):
    source, target, client = sites
    firewall = client.firewalls.create(body=firewall_body(target, source, ssh=True))["firewall"]
    try:
        _the_whole_path(world, source, target, client, firewall)
    finally:
        client.firewalls.delete(firewall["id"])


def _the_whole_path(world, source: Site, target: Site, client, firewall) -> None:
    # 1. the SSH connection, semi-automatic: a token from the target, the rest on the source.
    # A token bound to the address that asked for it (match_origin, the default) is no
    # good from the source droplet's address
    setup = {"private_key": {"generate_key": True, "name": "staging-key"},
             "connection_name": "staging", "setup_type": "SEMI-AUTOMATIC",
             "semi_automatic_setup": {"url": f"https://{target.address}", "verify_ssl": False,
                                      "username": "root",
                                      "token": target.rpc.result("auth.generate_token")}}
    error = source.rpc.error("keychaincredential.setup_ssh_connection", setup)
    assert "Invalid token" in error["data"]["reason"]
    assert source.rpc.result("keychaincredential.query") == []   # the new key is gone again
    token = target.rpc.result("auth.generate_token", 600, {}, False, True)
    credential = checked(source.rpc, "keychaincredential.setup_ssh_connection", {
        "private_key": {"generate_key": True, "name": "staging-key"},
        "connection_name": "staging", "setup_type": "SEMI-AUTOMATIC",
        "semi_automatic_setup": {"url": f"https://{target.address}", "token": token,
                                 "verify_ssl": False, "username": "root"}})
    assert credential["type"] == "SSH_CREDENTIALS"
    assert credential["attributes"]["host"] == target.address
    assert credential["attributes"]["port"] == 22
    scanned = checked(source.rpc, "keychaincredential.remote_ssh_host_key_scan",
                      {"host": target.address})
    assert set(scanned.splitlines()) == set(credential["attributes"]["remote_host_key"]
                                             .splitlines())
    keys = checked(source.rpc, "keychaincredential.query")
    assert {k["name"] for k in keys} == {"staging-key", "staging"}
    # sshd now listens on the target, for the source droplet only
    assert target.entry.server.published()[22] == "ssh"
    assert refused(target.address, target.entry.server.listening_port(22), INTERNET)

    # 2. the task: bound to a periodic snapshot task, read-only target, no from-scratch
    # (off until step 7: an hourly firing in between would add snapshots the steps
    # before do not expect, at whatever wall time the test runs)
    snap_task = source.rpc.result("pool.snapshottask.create", {
        "dataset": "tank/data", "naming_schema": SCHEMA, "lifetime_value": 1,
        "lifetime_unit": "WEEK", "schedule": {"minute": "00", "hour": "*"}, "enabled": False})
    task = checked(source.rpc, "replication.create", {
        "name": "to-staging", "direction": "PUSH", "transport": "SSH",
        "ssh_credentials": credential["id"], "source_datasets": ["tank/data"],
        "target_dataset": "tank/data", "recursive": False,
        "periodic_snapshot_tasks": [snap_task["id"]], "auto": True,
        "retention_policy": "SOURCE", "readonly": "SET", "allow_from_scratch": False})
    assert task["state"] == {"state": "PENDING"}

    # 3. the first run: a full send
    big = os.urandom(20 * MIB)
    source.write("/mnt/tank/data/big.bin", big)
    source.write("/mnt/tank/data/notes/readme.txt", b"production")
    first = source.rpc.result("pool.snapshot.create", {"dataset": "tank/data",
                                                       "naming_schema": SCHEMA})
    started = time.monotonic()
    job = wait_job(world, source.rpc, source.rpc.result("replication.run", task["id"]))
    full_wall = time.monotonic() - started
    assert job["state"] == "SUCCESS", job
    assert target.files("tank/data", first["snapshot_name"]) == \
        source.files("tank/data", first["snapshot_name"])
    [entry] = checked(source.rpc, "replication.query", [["id", "=", task["id"]]])
    assert entry["state"]["state"] == "FINISHED"
    assert entry["state"]["last_snapshot"] == first["name"]
    dataset = target.rpc.result("pool.dataset.get_instance", "tank/data")
    assert dataset["readonly"]["value"] == "ON"
    full = source.sent()[-1]

    # 4. the second run sends only the change
    changed = bytearray(big)
    changed[7 * MIB:8 * MIB] = os.urandom(MIB)
    source.write("/mnt/tank/data/big.bin", bytes(changed))
    advance(world, 60)
    second = source.rpc.result("pool.snapshot.create", {"dataset": "tank/data",
                                                        "naming_schema": SCHEMA})
    started = time.monotonic()
    job = wait_job(world, source.rpc, source.rpc.result("replication.run", task["id"]))
    incremental_wall = time.monotonic() - started
    assert job["state"] == "SUCCESS", job
    incremental = source.sent()[-1]
    assert MIB <= incremental < MIB + 64 * 1024 < full
    assert target.files("tank/data") == source.files("tank/data", second["snapshot_name"])
    assert target.snapshots("tank/data") == [first["snapshot_name"], second["snapshot_name"]]
    print(f"\nreplication of 20 MiB: full {full} B in {full_wall:.2f} s, "
          f"incremental (1 MiB changed) {incremental} B in {incremental_wall:.2f} s")

    # 5. without the rule for 22, the source cannot connect: the run fails, nothing moves
    client.firewalls.update(firewall["id"], body=firewall_body(target, source, ssh=False))
    source.write("/mnt/tank/data/late.txt", b"late")
    advance(world, 60)
    third = source.rpc.result("pool.snapshot.create", {"dataset": "tank/data",
                                                       "naming_schema": SCHEMA})
    job = wait_job(world, source.rpc, source.rpc.result("replication.run", task["id"]))
    assert job["state"] == "FAILED"
    assert "port 22" in job["error"]
    [entry] = source.rpc.result("replication.query", [["id", "=", task["id"]]])
    assert entry["state"]["state"] == "ERROR"
    assert target.snapshots("tank/data")[-1] == second["snapshot_name"]

    # 6. the rule removed mid-transfer: a resume token, no half snapshot; then resumed
    client.firewalls.update(firewall["id"], body=firewall_body(target, source, ssh=True))
    checked(source.rpc, "replication.update", task["id"], {"speed_limit": 4 * MIB})
    source.write("/mnt/tank/data/big.bin", os.urandom(8 * MIB))
    advance(world, 60)
    fourth = source.rpc.result("pool.snapshot.create", {"dataset": "tank/data",
                                                        "naming_schema": SCHEMA})
    job_id = source.rpc.result("replication.run", task["id"])
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        [entry] = source.rpc.result("replication.query", [["id", "=", task["id"]]])
        progress = entry["state"].get("progress", {})
        if progress.get("snapshot") == fourth["snapshot_name"] and progress["bytes_sent"] > MIB:
            break
        time.sleep(0.02)
    client.firewalls.update(firewall["id"], body=firewall_body(target, source, ssh=False))
    job = wait_job(world, source.rpc, job_id)
    assert job["state"] == "FAILED", job
    assert target.snapshots("tank/data")[-1] == third["snapshot_name"]
    assert (target.resume_token("tank/data") or "").startswith("1-")
    client.firewalls.update(firewall["id"], body=firewall_body(target, source, ssh=True))
    checked(source.rpc, "replication.update", task["id"], {"speed_limit": None})
    job = wait_job(world, source.rpc, source.rpc.result("replication.run", task["id"]))
    assert job["state"] == "SUCCESS", job
    assert target.resume_token("tank/data") is None
    assert target.files("tank/data") == source.files("tank/data", fourth["snapshot_name"])
    assert source.sent()[-1] < 8 * MIB                   # resumed, not sent again

    # 7. scheduled: the snapshot task fires on the clock, the bound task follows
    source.write("/mnt/tank/data/scheduled.txt", b"on the hour")
    source.rpc.result("pool.snapshottask.update", snap_task["id"], {"enabled": True})
    advance(world, 3600)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        [entry] = source.rpc.result("replication.query", [["id", "=", task["id"]]])
        if entry["state"]["state"] == "FINISHED" and \
                entry["state"]["last_snapshot"] != fourth["name"]:
            break
        advance(world, 1)
        time.sleep(0.05)
    latest = entry["state"]["last_snapshot"].split("@", 1)[1]
    assert latest in source.snapshots("tank/data") and latest in target.snapshots("tank/data")
    assert target.files("tank/data") == source.files("tank/data", latest)
    assert target.files("tank/data")["scheduled.txt"] == b"on the hour"

    # 8. promotion, as the receiving site would do it: the task off, the copy writable
    from fakes.truenas.errors import CallError

    with pytest.raises(CallError, match="Read-only file system"):
        target.write("/mnt/tank/data/staging.txt", b"staging")
    checked(source.rpc, "replication.update", task["id"], {"enabled": False})
    target.rpc.result("pool.dataset.update", "tank/data", {"readonly": "OFF"})
    target.write("/mnt/tank/data/staging.txt", b"staging")
    assert target.files("tank/data")["staging.txt"] == b"staging"
    checked(source.rpc, "replication.update", task["id"], {"enabled": True})
    # The hourly task ends with this test: left on, it fired at a later test's full hour
    # and took the snapshot name (minutes, SCHEMA) that test then asked for by hand,
    # which the node refuses (EEXIST), as a real one would.
    source.rpc.result("pool.snapshottask.update", snap_task["id"], {"enabled": False})


def _a_replicating_task(world, source: Site, target: Site, name: str) -> dict:
    """A task of this test's own (its key, connection and task named `name`), with one
    complete run behind it, whatever ran in this module before: no test here depends on
    another's state. No snapshot task is bound, so no hourly run joins in."""
    token = target.rpc.result("auth.generate_token", 600, {}, False, True)
    credential = source.rpc.result("keychaincredential.setup_ssh_connection", {
        "private_key": {"generate_key": True, "name": f"{name}-key"},
        "connection_name": name, "setup_type": "SEMI-AUTOMATIC",
        "semi_automatic_setup": {"url": f"https://{target.address}", "token": token,
                                 "verify_ssl": False, "username": "root"}})
    task = source.rpc.result("replication.create", {
        "name": name, "direction": "PUSH", "transport": "SSH",
        "ssh_credentials": credential["id"], "source_datasets": ["tank/data"],
        "target_dataset": "tank/data", "recursive": False, "auto": False,
        "also_include_naming_schema": [SCHEMA], "retention_policy": "NONE", "readonly": "SET",
        "allow_from_scratch": False})
    source.write(f"/mnt/tank/data/{name}.txt", b"before the loss")
    advance(world, 60)
    source.rpc.result("pool.snapshot.create", {"dataset": "tank/data", "naming_schema": SCHEMA})
    job = wait_job(world, source.rpc, source.rpc.result("replication.run", task["id"]))
    assert job["state"] == "SUCCESS", job
    return task


def test_the_source_lost_mid_transfer_leaves_the_target_at_its_last_snapshot(world, sites):
    source, target, client = sites
    firewall = client.firewalls.create(body=firewall_body(target, source, ssh=True))["firewall"]
    try:
        task = _a_replicating_task(world, source, target, "to-staging-lost")
        source.rpc.result("replication.update", task["id"], {"speed_limit": 4 * MIB})
        before = target.snapshots("tank/data")
        source.write("/mnt/tank/data/big.bin", os.urandom(8 * MIB))
        advance(world, 60)
        made = source.rpc.result("pool.snapshot.create", {"dataset": "tank/data",
                                                          "naming_schema": SCHEMA})
        source.rpc.result("replication.run", task["id"])
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            [entry] = source.rpc.result("replication.query", [["id", "=", task["id"]]])
            progress = entry["state"].get("progress", {})
            if progress.get("snapshot") == made["snapshot_name"] and \
                    progress["bytes_sent"] > MIB:
                break
            time.sleep(0.02)
        failed = admin(world, "POST", f"/droplets/{source.droplet['id']}/host-failure")
        assert failed.status_code == 200, failed.text
        deadline = time.monotonic() + WAIT
        while target.resume_token("tank/data") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (target.resume_token("tank/data") or "").startswith("1-")
        assert target.snapshots("tank/data") == before       # no half snapshot shows
    finally:
        client.firewalls.delete(firewall["id"])
