"""infra/receivers.py: which receivers a source node pushes to are abandoned, and
that removing them never touches a live receiver's or a hand-made task.

The node and the account are stubs answering as middleware 25.10 and DigitalOcean
do (replication.query shows `ssh_credentials` as the whole keychain entry; a
key pair's `private_key` is key material, never echoed); hypothesis draws the mix."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from infra import receivers
from infra.resources import replication as tasks

STATES = ("PENDING", "RUNNING", "FINISHED", "ERROR")


@dataclass
class Node:
    credentials: list[dict] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)

    def call(self, method: str, *args):
        self.calls.append((method, *args))
        if method == "keychaincredential.query":
            return [dict(c) for c in self.credentials]
        if method == "replication.query":
            by_id = {c["id"]: c for c in self.credentials}
            return [{**t, "ssh_credentials": by_id.get(t["ssh_credentials"])}
                    for t in self.tasks]
        if method == tasks.DELETE:
            self.tasks = [t for t in self.tasks if t["id"] != args[0]]
            return True
        if method == tasks.DELETE_CREDENTIAL:
            used = {t["ssh_credentials"] for t in self.tasks} | {
                c["attributes"].get("private_key") for c in self.credentials
                if c["type"] == "SSH_CREDENTIALS"}
            assert args[0] not in used, "This credential is used and no cascade option"
            self.credentials = [c for c in self.credentials if c["id"] != args[0]]
            return True
        raise AssertionError(f"unexpected call {method}")


class _Droplets:
    def __init__(self, droplets: list[dict]) -> None:
        self.droplets = droplets

    def list(self, tag_name: str | None = None, **_page) -> dict:
        found = [d for d in self.droplets if tag_name is None or tag_name in d["tags"]]
        return {"droplets": found, "links": {}}


class Account:
    def __init__(self, droplets: list[dict]) -> None:
        self.client = type("Client", (), {})()
        self.client.droplets = _Droplets(droplets)

    def list_all(self, _operation, fn, key, **filters):
        return fn(**filters)[key]


def _droplet(name: str, address: str, tags: list[str]) -> dict:
    return {"id": hash(name) % 10**6, "name": name, "tags": tags,
            "networks": {"v4": [{"type": "public", "ip_address": address}]}}


receiver_st = st.fixed_dictionaries({
    "droplet": st.booleans(),            # a droplet carries its site tag
    "address_is_a_droplet": st.booleans(),
    "states": st.lists(st.sampled_from(STATES), max_size=2),
    "key_only": st.booleans(),           # an interrupted pairing
})


@settings(max_examples=100, deadline=None)
@given(drawn=st.dictionaries(st.sampled_from(["stray", "mirror", "fork", "a-b", "x"]),
                             receiver_st, max_size=4),
       by_hand=st.lists(st.tuples(st.sampled_from(["stray", "mirror", "ops", "x"]),
                                  st.sampled_from(["LOCAL", "other", "none"])), max_size=3))
def test_only_receivers_without_droplet_whose_runs_fail_are_removed(drawn, by_hand):
    node, droplets, expected = Node(), [], set()
    ids = iter(range(1, 1000))
    other = {"id": next(ids), "name": "ops-backup", "type": "SSH_CREDENTIALS",
             "attributes": {"host": "198.51.100.9", "private_key": None}}
    node.credentials.append(other)
    for index, (name, r) in enumerate(sorted(drawn.items())):
        address = f"203.0.113.{index + 1}"
        key = {"id": next(ids), "name": name + tasks.KEY_SUFFIX, "type": "SSH_KEY_PAIR",
               "attributes": {"private_key": "KEY MATERIAL", "public_key": "ssh-rsa x"}}
        node.credentials.append(key)
        if r["droplet"]:
            droplets.append(_droplet(f"{name}-truenas", f"10.0.0.{index + 1}",
                                     [f"truenas-site:{name}"]))
        if r["address_is_a_droplet"]:
            droplets.append(_droplet(f"someone-{index}", address, []))
        if r["key_only"]:            # no connection: no address to find a droplet by
            if not r["droplet"]:
                expected.add(name)
            continue
        connection = {"id": next(ids), "name": name + tasks.CONNECTION_SUFFIX,
                      "type": "SSH_CREDENTIALS",
                      "attributes": {"host": address, "private_key": key["id"]}}
        node.credentials.append(connection)
        for number, state in enumerate(r["states"]):
            node.tasks.append({"id": next(ids), "name": f"{name}:ds{number}",
                               "transport": "SSH", "ssh_credentials": connection["id"],
                               "state": {"state": state, "error": "refused"
                                         if state == "ERROR" else None}})
        if not r["droplet"] and not r["address_is_a_droplet"] and \
                all(s == "ERROR" for s in r["states"]):
            expected.add(name)
    hand_ids = set()
    for name, credentials in by_hand:
        task_id = next(ids)
        hand_ids.add(task_id)
        node.tasks.append({"id": task_id, "name": f"{name}:by-hand",
                           "transport": "LOCAL" if credentials == "LOCAL" else "SSH",
                           "ssh_credentials": other["id"] if credentials == "other" else None,
                           "state": {"state": "ERROR", "error": "whatever"}})
    account = Account(droplets)

    found = receivers.judge(account, receivers.on_node(node))
    assert {r.name for r in found if r.abandoned} == expected
    assert not any(t["id"] in hand_ids for r in found for t in r.tasks)

    dry = receivers.sweep(node, account, dry_run=True)
    assert not [c for c in node.calls if c[0] in (tasks.DELETE, tasks.DELETE_CREDENTIAL)]
    assert {r.name for r in dry.removed} == expected

    before_tasks = {t["id"]: t for t in node.tasks}
    before_credentials = {c["id"] for c in node.credentials}
    receivers.sweep(node, account, dry_run=False)
    removed_tasks = set(before_tasks) - {t["id"] for t in node.tasks}
    assert all(before_tasks[i]["name"].split(":")[0] in expected for i in removed_tasks)
    assert not removed_tasks & hand_ids
    assert {t["id"] for t in node.tasks} >= hand_ids
    left = {c["name"] for c in node.credentials}
    for name in expected:
        assert not {name + tasks.KEY_SUFFIX, name + tasks.CONNECTION_SUFFIX} & left, left
    assert other["id"] in {c["id"] for c in node.credentials}
    assert before_credentials >= {c["id"] for c in node.credentials}
    # Nothing of a receiver that stays was touched.
    for r in found:
        if not r.abandoned:
            assert {t["id"] for t in r.tasks} <= {t["id"] for t in node.tasks}


def test_what_is_reported_carries_no_key_material():
    node = Node(credentials=[
        {"id": 1, "name": "gone" + tasks.KEY_SUFFIX, "type": "SSH_KEY_PAIR",
         "attributes": {"private_key": "-----BEGIN OPENSSH PRIVATE KEY----- SECRET"}},
        {"id": 2, "name": "gone" + tasks.CONNECTION_SUFFIX, "type": "SSH_CREDENTIALS",
         "attributes": {"host": "203.0.113.5", "private_key": 1}}],
        tasks=[{"id": 3, "name": "gone:data", "transport": "SSH", "ssh_credentials": 2,
                "state": {"state": "ERROR", "error": "Connection refused"}}])
    report = receivers.sweep(node, Account([]), dry_run=True)
    assert [r.name for r in report.removed] == ["gone"]
    assert "SECRET" not in repr(report.to_dict())
