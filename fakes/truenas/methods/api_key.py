"""api_key.* and the EULA (middleware 25.10 `plugins/api_key.py`, `plugins/truenas.py`).

- `api_key.create {name, username, expires_at?}`: only for an existing user with a
  role (the fake knows one account, truenas_admin); the answer is the entry plus
  `key` = "<id>-<64 letters and digits>", shown this once (`generate_string(64)`);
  the node keeps only a hash. `api_key.query`/`get_instance` list entries without
  it; `api_key.delete id` removes the key at once. A key revoked over plain ws://
  stays listed with `revoked: true` (`api_key.revoke`).
- `truenas.accept_eula` removes the pending-EULA marker (returns null);
  `truenas.is_eula_accepted` says whether it is gone. A fresh install has it pending.
Entries live on the node's boot disk (`node.boot_state`), so they survive a reboot.
Keys the world baked into an image have entries made for them on first listing
(named `baked-in-<id>`: what such an image would hold is the world's choice).
"""

from __future__ import annotations

import errno
import hashlib
import secrets
import string

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import ValidationErrors
from fakes.truenas.methods.common import crud_event, instance_not_found
from fakes.truenas.methods.params import EMPTY, MISSING, NOT_GIVEN, Field, Int, Obj, Str, parse
from fakes.truenas.methods.query import QUERY_ARGS, QUERY_OPTIONS, filter_list
from fakes.truenas.node import ADMIN_USER

ALPHABET = string.ascii_letters + string.digits
ADMIN_USER_ID = 70        # the account's row id in a fresh 25.10 database [I]
CREATE = Obj({"name": Field(Str(min_length=1)), "username": Field(Str(nullable=True)),
              "expires_at": Field(Str(nullable=True), NOT_GIVEN)})


def _entries(node) -> dict[int, dict]:
    entries = node.boot_state.setdefault("api_keys", {})
    for key, username in node.api_keys.items():
        key_id = _key_id(key)
        if key_id is not None and key_id not in entries:
            entries[key_id] = _entry(node, key_id, f"baked-in-{key_id}", username, key)
    return entries


def _key_id(key: str) -> int | None:
    head = key.split("-", 1)[0]
    return int(head) if head.isdecimal() else None


def _entry(node, key_id: int, name: str, username: str, key: str) -> dict:
    digest = hashlib.sha512(key.encode()).hexdigest()
    return {"id": key_id, "name": name, "username": username,
            "user_identifier": ADMIN_USER_ID, "keyhash": f"$sha512$fake${digest}",
            "created_at": Timestamp(node.clock.now()), "expires_at": None, "local": True,
            "revoked": False, "revoked_reason": None}


def revoke(node, key: str, reason: str) -> None:
    """api_key.revoke: the key stops working and its entry says why."""
    key_id = _key_id(key)
    entry = _entries(node).get(key_id) if key_id is not None else None
    node.api_keys.pop(key, None)
    if entry is not None:
        entry.update(revoked=True, revoked_reason=reason)


def create(node, params, ctx):
    (data,) = parse(params, [("api_key_create", CREATE, MISSING)])
    entries = _entries(node)
    if data["username"] != ADMIN_USER:
        raise ValidationErrors([("api_key_create", "User does not exist.", errno.EINVAL)])
    if any(e["name"] == data["name"] for e in entries.values()):
        # _validate: the name must be unique (wording as far as known [I])
        raise ValidationErrors([("api_key_create.name", "name must be unique",
                                 errno.EINVAL)])
    key_id = max([*entries, *(i for i in map(_key_id, node.api_keys) if i)], default=0) + 1
    key = f"{key_id}-" + "".join(secrets.choice(ALPHABET) for _ in range(64))
    entry = _entry(node, key_id, data["name"], ADMIN_USER, key)
    entries[key_id] = entry
    node.api_keys[key] = ADMIN_USER
    result = {**entry, "key": key}
    crud_event(node, "api_key", "create", entry)
    return result


def query(node, params, ctx):
    filters, options = parse(params, QUERY_ARGS)
    return filter_list([dict(e) for e in _entries(node).values()], filters, options)


def get_instance(node, params, ctx):
    key_id, options = parse(params, [("id", Int(), MISSING), ("options", QUERY_OPTIONS, EMPTY)])
    entry = _entries(node).get(key_id)
    if entry is None:
        raise instance_not_found("API key", key_id)
    return filter_list([dict(entry)], [], {**options, "get": True})


def delete(node, params, ctx):
    (key_id,) = parse(params, [("id", Int(), MISSING)])
    entries = _entries(node)
    if key_id not in entries:
        raise instance_not_found("API key", key_id)
    del entries[key_id]
    for key in [k for k in node.api_keys if _key_id(k) == key_id]:
        del node.api_keys[key]
    crud_event(node, "api_key", "delete", True, key_id)
    return True


def accept_eula(node, params, ctx):
    parse(params, [])
    node.boot_state["eula_accepted"] = True
    return None


def is_eula_accepted(node, params, ctx):
    parse(params, [])
    return bool(node.boot_state.get("eula_accepted", False))


METHODS = {
    "api_key.create": create,
    "api_key.query": query,
    "api_key.get_instance": get_instance,
    "api_key.delete": delete,
    "truenas.accept_eula": accept_eula,
    "truenas.is_eula_accepted": is_eula_accepted,
}
