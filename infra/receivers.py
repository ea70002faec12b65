"""A source node's receivers, seen from the source: which are still there, which a lost
run abandoned, and removing what an abandoned one left (`truenas-site sweep-receivers`).

A receiving site's `up` makes on the source node an SSH key pair `<r>-replication-key`,
an SSH connection `<r>-replication` using it, and tasks `<r>:<dataset>` over that
connection (infra/resources/replication.py). When the receiving run is abandoned (killed,
its state directory lost, its droplet swept) nothing takes them down, and the tasks fail
at every run. Here a receiver is only what carries the whole convention: a task counts
when its name is `<r>:...` AND its SSH connection is `<r>-replication`; a connection
when its key pair is `<r>-replication-key`. A task made by hand (another name, or other
credentials, or LOCAL) is never a receiver's, whatever its name looks like.

A receiver is abandoned only when all of these hold, and kept otherwise:
- no droplet carries its site tag `truenas-site:<r>` on the account;
- no droplet on the account has the address its connection pushes to;
- none of its tasks' last run succeeded or is going on: each is in ERROR (zettarepl's
  state; replication.query `state.state`). A receiver on a node of its own or on
  another account has no droplet here, but its runs succeed: it is kept. An abandoned
  one is found after its first failed run.
A key pair alone (an interrupted pairing: no connection, no task) is abandoned on the
first alone.

Removal deletes exactly the tasks and credentials found (by id), tasks first; a
connection that some other task still uses stays (keychaincredential.delete without
cascade refuses it). Everything is decided first; `dry_run` only reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.events import Reporter
from infra.resources import droplet
from infra.resources import replication as tasks
from infra.truenas.client import TrueNASClient

FAILED = "ERROR"


@dataclass
class Receiver:
    """What one receiving site made on this node (ids and names, never key material)."""

    name: str
    tasks: list[dict] = field(default_factory=list)        # {id, name, state, error}
    credentials: list[dict] = field(default_factory=list)  # {id, name, type}
    host: str | None = None
    abandoned: bool = False
    why: str = ""

    def describe(self) -> str:
        made = [t["name"] for t in self.tasks] + [c["name"] for c in self.credentials]
        return f"{self.name}: {', '.join(made)} ({self.why})"


@dataclass
class ReceiversReport:
    dry_run: bool
    removed: list[Receiver] = field(default_factory=list)   # dry_run: would be removed
    kept: list[Receiver] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _id(value: object) -> object:
    return value.get("id") if isinstance(value, dict) else value


def on_node(client: TrueNASClient) -> list[Receiver]:
    """The receivers whose convention the node's credentials and tasks carry (reads only)."""
    # A key pair's attributes hold its private key: only names, ids, the connection's
    # host and key pair id are kept from the answer, so no key lingers in a report, a
    # log or a traceback's frame.
    credentials = [_brief(c) for c in client.call("keychaincredential.query")]
    by_name = {c.get("name"): c for c in credentials}
    found: dict[str, Receiver] = {}
    connections: dict[object, str] = {}
    for credential in credentials:
        name = str(credential.get("name", ""))
        if credential.get("type") == "SSH_CREDENTIALS" and \
                name.endswith(tasks.CONNECTION_SUFFIX):
            receiver = name[:-len(tasks.CONNECTION_SUFFIX)]
            key = by_name.get(receiver + tasks.KEY_SUFFIX)
            if not receiver or key is None or key.get("type") != "SSH_KEY_PAIR" or \
                    credential["key_id"] != key.get("id"):
                continue                 # not paired by a receiver's `up`
            entry = found.setdefault(receiver, Receiver(receiver))
            entry.host = credential["host"]
            entry.credentials += [_public(credential), _public(key)]
            connections[credential.get("id")] = receiver
    for credential in credentials:       # a key pair whose pairing never finished
        name = str(credential.get("name", ""))
        receiver = name[:-len(tasks.KEY_SUFFIX)] if name.endswith(tasks.KEY_SUFFIX) else ""
        if receiver and credential.get("type") == "SSH_KEY_PAIR" and receiver not in found \
                and (receiver + tasks.CONNECTION_SUFFIX) not in by_name:
            found[receiver] = Receiver(receiver, credentials=[_public(credential)])
    for task in client.call("replication.query"):
        receiver = connections.get(_id(task.get("ssh_credentials")))
        if receiver is None or not str(task.get("name", "")).startswith(
                receiver + tasks.TASK_SEPARATOR):
            continue                     # by hand: other credentials, or another name
        state = task.get("state") if isinstance(task.get("state"), dict) else {}
        found[receiver].tasks.append({"id": task["id"], "name": task["name"],
                                      "state": tasks.state_of(task),
                                      "error": state.get("error")})
    return [found[name] for name in sorted(found)]


def _brief(credential: dict) -> dict:
    """What is read of a keychain entry: never its key material."""
    attributes = credential.get("attributes") if isinstance(credential.get("attributes"),
                                                            dict) else {}
    connection = credential.get("type") == "SSH_CREDENTIALS"
    return {"id": credential.get("id"), "name": credential.get("name"),
            "type": credential.get("type"),
            "host": attributes.get("host") if connection else None,
            # an SSH connection's `private_key` is the key pair's id, not a key
            "key_id": _id(attributes.get("private_key")) if connection else None}


def _public(credential: dict) -> dict:
    return {"id": credential["id"], "name": credential["name"], "type": credential["type"]}


def judge(do: DigitalOcean, receivers: list[Receiver]) -> list[Receiver]:
    """Mark each receiver abandoned or kept, with why (reads the account only)."""
    addresses: dict[str, str] = {}
    for found in do.list_all("list droplets", do.client.droplets.list, "droplets"):
        if address := droplet.public_ipv4(found):
            addresses[address] = found["name"]
    for receiver in receivers:
        tag = f"{desired.SITE_TAG_PREFIX}{receiver.name}"
        tagged = droplet.find_tagged(do, tag)
        if tagged:
            receiver.why = f"its droplet {tagged[0]['name']} carries {tag}"
        elif receiver.host in addresses:
            receiver.why = (f"its connection pushes to {receiver.host}, droplet "
                            f"{addresses[receiver.host]}")
        elif going := [t for t in receiver.tasks if t["state"] != FAILED]:
            receiver.why = (f"no droplet carries {tag}, but {going[0]['name']}'s last run is "
                            f"{going[0]['state']}: a receiver on its own node or another "
                            "account; judged again once its runs fail")
        else:
            receiver.abandoned = True
            failed = next((t for t in receiver.tasks if t.get("error")), None)
            receiver.why = (f"no droplet carries {tag} or has its address "
                            f"{receiver.host or '(no connection)'}" +
                            (f"; {failed['name']} failed: {failed['error']}" if failed else
                             "; no task"))
    return receivers


def abandoned(client: TrueNASClient, do: DigitalOcean) -> list[Receiver]:
    return [r for r in judge(do, on_node(client)) if r.abandoned]


def sweep(client: TrueNASClient, do: DigitalOcean, dry_run: bool,
          reporter: Reporter | None = None) -> ReceiversReport:
    """Remove what abandoned receivers left on the node (all decided first)."""
    reporter = reporter or Reporter()
    report = ReceiversReport(dry_run)
    for receiver in judge(do, on_node(client)):
        (report.removed if receiver.abandoned else report.kept).append(receiver)
    if dry_run:
        return report
    for receiver in report.removed:
        for task in receiver.tasks:
            reporter.step(f"delete replication {task['name']}")
            client.call(tasks.DELETE, task["id"])
            report.done.append(f"delete replication {task['name']}")
        in_use = {_id(t.get("ssh_credentials")) for t in client.call("replication.query")}
        # The connection before its key pair: the key is in use while it exists.
        for credential in sorted(receiver.credentials,
                                 key=lambda c: c["type"] != "SSH_CREDENTIALS"):
            if credential["id"] in in_use:
                reporter.note(f"{credential['name']} stays: a task that is not "
                              f"{receiver.name}'s uses it")
                break
            reporter.step(f"delete {credential['type']} {credential['name']}")
            client.call(tasks.DELETE_CREDENTIAL, credential["id"], {"cascade": False})
            report.done.append(f"delete {credential['name']}")
    return report
