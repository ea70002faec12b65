"""The fake's `zfs send` stream and `zfs recv -s -F` of it, on a pool's real bytes.

What one snapshot of a dataset (or the increment from an older one) carries from
one fake node to another. The format is the fake's own, not ZFS's DMU record
stream; it is written here so that the wire can be read with any tool:

    b"FAKEZFS1\\n"
    header   one line of JSON (sorted keys) and b"\\n":
             {"toname", "toguid", "fromguid" (null: a full send), "created",
              "user_props", "record_size", "payload" (payload length),
              "files": [[path, {"mode", "uid", "gid", "atime", "mtime", "ctime",
                                "btime", "size", "sha256", "records": [i, ...]}], ...],
              "owners": {"root": {"uid", "gid"}, "dirs": {path: {"uid", "gid"}}}}
    payload  for each file in header order, the records listed in "records"
             (record i is bytes [i*R, (i+1)*R) of the file), concatenated
    trailer  b"END " + sha256 hex of (header line + payload) + b"\\n"

The directories' owners travel with the files' (models/snapshots.py `owners_of`: a
stream is the snapshot's whole file system, directories included), so a received
copy belongs to whom the source's did.

A full send lists every record of every file. An incremental lists, per file, only
the records that differ from the same path in the base snapshot: ZFS sends the
blocks born after the base's txg, in records of `recordsize` (128 KiB by default,
reference/truenas-api.md §4 Datasets), so an unchanged file costs its header entry
only, and a 1 MiB change in a 20 MiB file costs about 1 MiB. A file missing from
the header is deleted in the new snapshot: a real incremental carries unlinks as
DRR_FREEOBJECTS/DRR_FREE records (openzfs/zfs include/sys/zfs_ioctl.h
`dmu_replay_record`, module/zfs/dmu_send.c), which hold no file data; here a deletion
costs no payload byte either (the real stream also rewrites the directory's blocks,
a few KiB: not modelled).

Receiving follows `zfs recv -s -F <dataset>` as zettarepl runs it
(zettarepl/transport/zfscli/__init__.py `zfs_recv` @ bbf2526, stable/goldeye):
- `-F`: the dataset is rolled back to its most recent snapshot first (what was
  written since is discarded); an incremental whose base (by guid) is not that
  most recent snapshot fails with "most recent snapshot of <ds> does not match
  incremental source" (zettarepl integration-tests/replication/
  test_bad_incremental_base.py @ 4188df8); a full stream into a dataset that has
  snapshots fails with "destination has snapshots" (zfs's own refusal, which
  zettarepl's resume path reads, zettarepl/replication/run.py @ bbf2526);
- `-s`: a stream cut short (after its header, ZFS's BEGIN record: before that
  nothing is kept) leaves the received part on the pool, no snapshot, no
  change to the files, and the dataset's `receive_resume_token`; `zfs send -t
  TOKEN` sends the rest (b"FAKEZFS1-RESUME <offset>\\n" then the stream from that
  offset), and the receiver completes the snapshot from both parts (zettarepl
  integration-tests/replication/test_replication_resume.py @ 0090ed8). A fresh
  stream onto a dataset holding a partial one fails with "contains
  partially-complete state" until `zfs recv -A` discards it. The token is
  "1-" + hex of a small JSON object: the real token's layout (checksum, length,
  packed nvlist) is not modelled, only that it starts with "1-" and names the
  snapshot and the offset.
Not modelled: properties in the stream (`-p`), `-R`, encryption, compression,
holds; a receiving node that loses power mid-stream keeps no partial state (the
next run restarts that snapshot), where real ZFS keeps what reached disk.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fakes.truenas.errors import CallError
from fakes.truenas.models import datasets, snapshots

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool

MAGIC = b"FAKEZFS1\n"
RESUME = b"FAKEZFS1-RESUME "
RECORD_SIZE = 128 * 1024
FILE_META = ("mode", "uid", "gid", "atime", "mtime", "ctime", "btime")


class StreamError(CallError):
    """What `zfs send` / `zfs recv` print when they refuse (exit status 1)."""


class StreamCut(StreamError):
    """The stream ended early: the part received is kept behind a resume token."""


def snapshot_guid(pool: Pool, snap_key: str) -> str:
    """A snapshot's ZFS guid: the same on every pool it was received into.

    A received snapshot keeps the sender's; one made here has a guid derived from
    the pool's guid, its name and txg (stable without being stored, so that a clock
    jump that never makes a snapshot draws no random number for it)."""
    record = pool.meta["snapshots"][snap_key]
    if "guid" in record:
        return record["guid"]
    seed = f"{pool.guid}/{snap_key}/{record['createtxg']}/{record['created']}".encode()
    return str(int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") or 1)


def _records(data: bytes, size: int = RECORD_SIZE) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def build(pool: Pool, rel: str, to_name: str, from_name: str | None) -> bytes:
    """`zfs send [-i @from] ds@to` of the pool's own bytes (call under the node's lock)."""
    to_key = snapshots.key(rel, to_name)
    snaps = pool.meta["snapshots"]
    if to_key not in snaps:
        raise StreamError(f"cannot open '{pool.full_name(rel)}@{to_name}': "
                          "dataset does not exist")
    base_files: dict = {}
    from_guid = None
    if from_name is not None:
        from_key = snapshots.key(rel, from_name)
        if from_key not in snaps:
            raise StreamError(f"cannot open '{pool.full_name(rel)}@{from_name}': "
                              "dataset does not exist")
        base_files = snaps[from_key]["files"]
        from_guid = snapshot_guid(pool, from_key)
    snap = snaps[to_key]
    files, payload = [], []
    for path in sorted(snap["files"]):
        record = snap["files"][path]
        data = pool.objects.get(record["oid"], what=f"{pool.full_name(rel)}@{to_name}:{path}")
        mine = _records(data)
        base = base_files.get(path)
        if base is not None and base["oid"] == record["oid"]:
            sent: list[int] = []               # the very same object: nothing changed
        elif base is not None:
            theirs = _records(pool.objects.get(base["oid"], what=path))
            sent = [i for i, chunk in enumerate(mine)
                    if i >= len(theirs) or theirs[i] != chunk]
        else:
            sent = list(range(len(mine)))
        payload.extend(mine[i] for i in sent)
        files.append([path, {**{k: record[k] for k in FILE_META}, "size": record["size"],
                             "sha256": pool.objects.table[record["oid"]]["sha256"],
                             "records": sent}])
    body = b"".join(payload)
    header = {"toname": to_name, "toguid": snapshot_guid(pool, to_key), "fromguid": from_guid,
              "created": snap["created"], "user_props": snap["user_props"],
              "record_size": RECORD_SIZE, "payload": len(body), "files": files,
              "owners": snap.get("owners") or {"root": {}, "dirs": {}}}
    head = json.dumps(header, sort_keys=True).encode() + b"\n"
    trailer = b"END " + hashlib.sha256(head + body).hexdigest().encode() + b"\n"
    return MAGIC + head + body + trailer


def encode_token(info: dict) -> str:
    return "1-" + json.dumps(info, sort_keys=True).encode().hex()


def decode_token(token: str) -> dict:
    try:
        if not token.startswith("1-"):
            raise ValueError(token)
        info = json.loads(bytes.fromhex(token[2:]))
        if not isinstance(info, dict) or not isinstance(info.get("bytes"), int):
            raise ValueError(token)
        return info
    except ValueError:
        raise StreamError("cannot resume send: 'token' is corrupt") from None


def resume(pool: Pool, rel: str, token: str) -> bytes:
    """`zfs send -t TOKEN`: the rest of the stream the token was cut from."""
    info = decode_token(token)
    guids = {snapshot_guid(pool, k): k for k in snapshots.of_dataset(pool, rel)}
    to_key = guids.get(info["toguid"])
    from_key = guids.get(info["fromguid"]) if info.get("fromguid") else None
    if to_key is None or (info.get("fromguid") and from_key is None):
        # zfs's wording, which zettarepl matches (replication/run.py @ bbf2526)
        raise StreamError("cannot resume send: the snapshot used in the initial send no "
                          "longer exists")
    stream = build(pool, rel, to_key.split("@", 1)[1],
                   from_key.split("@", 1)[1] if from_key else None)
    return RESUME + str(info["bytes"]).encode() + b"\n" + stream[info["bytes"]:]


@dataclass
class Parsed:
    header: dict
    payload: bytes


def _parse(stream: bytes) -> Parsed | None:
    """The stream's header and payload if it is whole (None when it was cut)."""
    if not stream.startswith(MAGIC):
        if len(stream) < len(MAGIC) and MAGIC.startswith(stream):
            return None
        raise StreamError("cannot receive: invalid stream (bad magic number)")
    end = stream.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    head = stream[len(MAGIC):end + 1]
    try:
        header = json.loads(head)
    except ValueError:
        raise StreamError("cannot receive: invalid stream (bad header)") from None
    body_end = end + 1 + header["payload"]
    trailer = stream[body_end:]
    if len(trailer) < 69:                  # b"END " + 64 hex + b"\n"
        return None
    body = stream[end + 1:body_end]
    if trailer[:4] != b"END " or trailer[4:68].decode() != hashlib.sha256(head + body).hexdigest():
        raise StreamError("cannot receive: invalid stream (checksum mismatch)")
    return Parsed(header, body)


def partial_state(pool: Pool, rel: str) -> dict | None:
    return pool.meta.setdefault("receiving", {}).get(rel)


def resume_token(pool: Pool, rel: str) -> str | None:
    state = partial_state(pool, rel)
    return state["token"] if state else None


def abort(pool: Pool, rel: str) -> None:
    """`zfs recv -A`: forget a partial receive (caller commits)."""
    pool.meta.setdefault("receiving", {}).pop(rel, None)


def _keep_partial(pool: Pool, rel: str, stream: bytes) -> str:
    guid = None
    fromguid = None
    first = stream.find(b"\n", len(MAGIC))
    if first > 0:
        try:
            header = json.loads(stream[len(MAGIC):first + 1])
            guid, fromguid = header["toguid"], header["fromguid"]
            toname = header["toname"]
        except (ValueError, KeyError):
            toname = None
    else:
        toname = None
    token = encode_token({"toguid": guid, "fromguid": fromguid, "toname": toname,
                          "bytes": len(stream)})
    oid = pool.objects.put(stream)
    pool.meta.setdefault("receiving", {})[rel] = {"token": token, "oid": oid,
                                                  "bytes": len(stream)}
    return token


def receive(pool: Pool, rel: str, data: bytes, *, now: float) -> str:
    """`zfs recv -s -F pool/rel` of everything that arrived (caller holds the lock
    and commits). Returns the snapshot's full name; raises StreamCut (a stream that
    ended early: the partial state is kept) or StreamError."""
    full = pool.full_name(rel)
    state = partial_state(pool, rel)
    if data.startswith(RESUME):
        line_end = data.find(b"\n")
        offset = int(data[len(RESUME):line_end])
        if state is None or state["bytes"] != offset:
            raise StreamError(f"cannot receive resume stream: destination {full} has no "
                              "matching partially-complete state")
        stream = pool.objects.get(state["oid"], what=f"{full} (partial receive)") \
            + data[line_end + 1:]
    else:
        if state is not None:
            raise StreamError(f"cannot receive new filesystem stream: destination {full} "
                              "contains partially-complete state from \"zfs receive -s\".")
        stream = data
    parsed = _parse(stream)
    if parsed is None:
        if stream.find(b"\n", len(MAGIC)) < 0:
            # zfs keeps resumable state only once the stream's BEGIN record is in
            abort(pool, rel)
            raise StreamCut("cannot receive: failed to read from stream")
        if stream:
            abort(pool, rel)
            if rel not in pool.meta["datasets"]:
                # a new filesystem's partial receive: the dataset exists from now on,
                # empty and without snapshots, holding the token (as zettarepl's
                # test_replication_resume.py sees it after a cut full send)
                datasets.create(pool, rel, dataset_type="FILESYSTEM", local={},
                                user_props={}, create_ancestors=True, now=now,
                                attribute="zfs_recv.dataset")
            token = _keep_partial(pool, rel, stream)
            raise StreamCut(f"cannot receive: failed to read from stream (resume token "
                            f"{token[:12]}... kept on {full})")
        raise StreamError("cannot receive: failed to read from stream")
    header = parsed.header
    ds = pool.meta["datasets"].get(rel)
    own = snapshots.of_dataset(pool, rel) if ds is not None else []
    base_files: dict = {}
    if header["fromguid"] is None:
        if own:
            raise StreamError(f"cannot receive new filesystem stream: destination has "
                              f"snapshots (eg. {snapshots.full_id(pool, own[-1])})\nmust "
                              "destroy them to overwrite it")
    else:
        if ds is None:
            raise StreamError(f"cannot receive incremental stream: destination '{full}' "
                              "does not exist")
        if not own or snapshot_guid(pool, own[-1]) != header["fromguid"]:
            raise StreamError(f"cannot receive incremental stream: most recent snapshot of "
                              f"{full} does not match incremental source")
        base_files = pool.meta["snapshots"][own[-1]]["files"]
    if snapshots.key(rel, header["toname"]) in pool.meta["snapshots"]:
        raise StreamError(f"cannot receive: destination snapshot {full}@{header['toname']} "
                          "exists")
    files = _assemble(pool, header, parsed.payload, base_files, full)
    if ds is None:
        datasets.create(pool, rel, dataset_type="FILESYSTEM", local={}, user_props={},
                        create_ancestors=True, now=now,
                        attribute="zfs_recv.dataset")
        ds = pool.meta["datasets"][rel]
    abort(pool, rel)
    ds["files"] = files                       # -F: whatever was written since is gone
    snapshots.restore_owners(ds, header.get("owners"))
    pool.meta["snapshots"][snapshots.key(rel, header["toname"])] = {
        "dataset": rel, "name": header["toname"], "created": header["created"],
        "createtxg": pool.meta["txg"] + 1, "files": copy.deepcopy(files),
        "owners": snapshots.owners_of(ds),
        "user_props": dict(header["user_props"]), "task_id": None,
        "guid": header["toguid"],
    }
    return f"{full}@{header['toname']}"


def _assemble(pool: Pool, header: dict, payload: bytes, base_files: dict, full: str) -> dict:
    files: dict = {}
    offset = 0
    size = header["record_size"]
    for path, meta in header["files"]:
        base = base_files.get(path)
        if base is not None and not meta["records"] and \
                pool.objects.table.get(base["oid"], {}).get("sha256") == meta["sha256"]:
            oid = base["oid"]                  # unchanged: share the base's object
        else:
            old = pool.objects.get(base["oid"], what=f"{full}/{path}") if base else b""
            chunks = _records(old, size)
            count = -(-meta["size"] // size)
            sent = set(meta["records"])
            out = []
            for i in range(count):
                if i in sent:
                    length = min(size, meta["size"] - i * size)
                    out.append(payload[offset:offset + length])
                    offset += length
                else:
                    out.append(chunks[i] if i < len(chunks) else b"")
            data = b"".join(out)[:meta["size"]]
            if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                raise StreamError(f"cannot receive: checksum mismatch in {full}/{path}")
            oid = pool.objects.put(data)
        record = {k: meta[k] for k in FILE_META}
        record.update({"oid": oid, "size": meta["size"],
                       "inode": base["inode"] if base else pool.next_inode()})
        files[path] = record
    return files
