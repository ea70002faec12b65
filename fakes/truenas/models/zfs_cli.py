"""The commands a replication runs on the other node's shell, over SSH.

zettarepl drives the remote side of a PUSH with `zfs` commands through an SSH
exec channel (zettarepl/transport/zfscli/__init__.py, dataset/list.py,
snapshot/list.py, snapshot/destroy.py, dataset/data.py @ bbf2526). The fake's SSH
server (fakes/truenas/ssh.py) runs these, on the node's model:

    zfs list -H -p -o <props> [-t <types>] [-r] [-d <depth>] <dataset>
        props: name, guid, type, readonly, receive_resume_token, createtxg,
        mountpoint, mounted; types: filesystem, volume, snapshot, all
    zfs recv -s -F [-u] [-x <prop>]... [-o <prop>=<value>]... <dataset>  (stdin: stream)
    zfs recv -A <dataset>
    zfs set readonly=on|off <dataset>;  zfs inherit readonly <dataset>
    zfs destroy [-r] <dataset>;  zfs destroy <dataset>@<snap>[,<snap>...]
    zfs create -p <dataset>
    ls -1A <path>                 (zettarepl's check that a target holds no data)
    sudo zfs ...                  (when the task sets `sudo`)
Each returns (exit status, stdout, stderr) as the shell would. A user other than
root may list but gets "permission denied" for anything that changes a pool
unless it runs `sudo zfs` and may (sudo_commands_nopasswd holds /usr/sbin/zfs);
real ZFS also allows `zfs allow` delegation, which is not modelled. Anything else
is "command not found" (127). The stream format is models/zstream.py's.
"""

from __future__ import annotations

import errno
import shlex
from typing import TYPE_CHECKING

from fakes.truenas.errors import CallError
from fakes.truenas.models import datasets, files, keychain, snapshots, zstream

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool
    from fakes.truenas.node import TrueNASNode

Result = tuple[int, bytes, bytes]


def _fail(message: str, status: int = 1) -> Result:
    return status, b"", (message.rstrip("\n") + "\n").encode()


def _ok(text: str = "") -> Result:
    return 0, text.encode(), b""


def run(node: TrueNASNode, username: str, command: str, stdin: bytes = b"") -> Result:
    """One command line, as `username` (call under the node's lock)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return _fail(f"sh: syntax error: {exc}", 2)
    sudo = False
    if argv[:1] == ["sudo"]:
        argv = argv[1:]
        sudo = True
    if not argv:
        return _ok()
    if argv[0] in ("zfs", keychain.ZFS_BINARY):
        privileged = username == "root" or (sudo and keychain.may_sudo_zfs(node, username))
        if sudo and not privileged:
            return _fail(f"sudo: a password is required (user {username})")
        try:
            return _zfs(node, argv[1:], stdin, privileged)
        except zstream.StreamError as exc:
            return _fail(exc.message)
        except CallError as exc:
            return _fail(exc.message)
    if argv[0] == "ls":
        return _ls(node, argv[1:])
    return _fail(f"sh: 1: {argv[0]}: not found", 127)


def _dataset(node: TrueNASNode, name: str) -> tuple[Pool, str] | None:
    return node.storage.find_dataset(name)


def _no_dataset(name: str) -> Result:
    return _fail(f"cannot open '{name}': dataset does not exist")


def _zfs(node: TrueNASNode, args: list[str], stdin: bytes, privileged: bool) -> Result:
    if not args:
        return _fail("usage: zfs command args ...", 2)
    verb, rest = args[0], args[1:]
    if verb == "list":
        return _list(node, rest)
    if not privileged:
        return _fail(f"cannot {verb}: permission denied")
    if verb in ("recv", "receive"):
        return _recv(node, rest, stdin)
    if verb == "set":
        return _set(node, rest)
    if verb == "inherit":
        return _inherit(node, rest)
    if verb == "destroy":
        return _destroy(node, rest)
    if verb == "create":
        return _create(node, rest)
    return _fail(f"unrecognized command '{verb}'", 2)


def _list(node: TrueNASNode, args: list[str]) -> Result:
    props, types, recursive, depth, names = ["name"], {"filesystem", "volume"}, False, None, []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-H", "-p"):
            pass
        elif arg == "-o":
            i += 1
            props = args[i].split(",")
        elif arg == "-t":
            i += 1
            types = set(args[i].split(","))
            if "all" in types:
                types = {"filesystem", "volume", "snapshot"}
        elif arg == "-r":
            recursive = True
        elif arg == "-d":
            i += 1
            depth, recursive = int(args[i]), True
        else:
            names.append(arg)
        i += 1
    lines = []
    for name in names:
        found = _dataset(node, name)
        if found is None:
            return _no_dataset(name)
        pool, rel = found
        rels = [rel] + (datasets.descendants(pool, rel) if recursive else [])
        if depth is not None:
            base = rel.count("/") + (1 if rel else 0)
            rels = [r for r in rels if (r.count("/") + (1 if r else 0)) - base <= depth]
        for r in rels:
            record = pool.meta["datasets"][r]
            kind = "volume" if record["type"] == "VOLUME" else "filesystem"
            if kind in types:
                lines.append(_row(pool, r, None, props))
            if "snapshot" in types:
                lines += [_row(pool, r, k, props) for k in snapshots.of_dataset(pool, r)]
    return _ok("".join(line + "\n" for line in lines))


def _row(pool: Pool, rel: str, snap_key: str | None, props: list[str]) -> str:
    values = []
    for prop in props:
        if prop == "name":
            values.append(snapshots.full_id(pool, snap_key) if snap_key else pool.full_name(rel))
        elif prop == "guid":
            values.append(zstream.snapshot_guid(pool, snap_key) if snap_key
                          else pool.meta["datasets"][rel]["guid"])
        elif prop == "type":
            values.append("snapshot" if snap_key else (
                "volume" if pool.meta["datasets"][rel]["type"] == "VOLUME" else "filesystem"))
        elif prop == "createtxg":
            record = pool.meta["snapshots"][snap_key] if snap_key else pool.meta["datasets"][rel]
            values.append(str(record["createtxg"]))
        elif prop == "readonly" and not snap_key:
            values.append(datasets.effective(pool, rel, "readonly")[0])
        elif prop == "receive_resume_token" and not snap_key:
            values.append(zstream.resume_token(pool, rel) or "-")
        elif prop == "mountpoint" and not snap_key:
            values.append(f"/mnt/{pool.full_name(rel)}")
        elif prop == "mounted" and not snap_key:
            values.append("yes")
        else:
            values.append("-")
    return "\t".join(values)


def _recv(node: TrueNASNode, args: list[str], stdin: bytes) -> Result:
    flags = {a for a in args if a.startswith("-") and a not in ("-x", "-o")}
    names = []
    i = 0
    while i < len(args):
        if args[i] in ("-x", "-o"):
            i += 2
            continue
        if not args[i].startswith("-"):
            names.append(args[i])
        i += 1
    if len(names) != 1:
        return _fail("usage: zfs receive [-FnsuvU] [-o <property>=<value>] ... <filesystem>", 2)
    name = names[0]
    pool_name = name.split("/", 1)[0]
    pool = node.storage.pools.get(pool_name)
    if pool is None:
        return _fail(f"cannot open '{pool_name}': dataset does not exist")
    rel = pool.rel_name(name)
    if "-A" in flags:
        if zstream.partial_state(pool, rel) is None:
            return _fail(f"'{name}' does not have any resumable receive state to abort")
        zstream.abort(pool, rel)
        pool.commit()
        return _ok()
    try:
        received = zstream.receive(pool, rel, stdin, now=node.storage.now())
    except zstream.StreamCut:
        pool.commit()
        raise
    pool.commit()
    return _ok(f"received {received}\n")


def _set(node: TrueNASNode, args: list[str]) -> Result:
    if len(args) != 2 or "=" not in args[0]:
        return _fail("usage: zfs set <property=value> ... <filesystem|volume|snapshot> ...", 2)
    prop, value = args[0].split("=", 1)
    if prop != "readonly" or value not in ("on", "off"):
        return _fail(f"cannot set property for '{args[1]}': the fake sets only readonly")
    found = _dataset(node, args[1])
    if found is None:
        return _no_dataset(args[1])
    pool, rel = found
    pool.meta["datasets"][rel]["props"]["readonly"] = value
    pool.commit()
    return _ok()


def _inherit(node: TrueNASNode, args: list[str]) -> Result:
    if len(args) != 2:
        return _fail("usage: zfs inherit [-rS] <property> <filesystem|volume|snapshot> ...", 2)
    found = _dataset(node, args[1])
    if found is None:
        return _no_dataset(args[1])
    pool, rel = found
    pool.meta["datasets"][rel]["props"].pop(args[0], None)
    pool.commit()
    return _ok()


def _destroy(node: TrueNASNode, args: list[str]) -> Result:
    recursive = "-r" in args
    names = [a for a in args if not a.startswith("-")]
    if len(names) != 1:
        return _fail("usage: zfs destroy [-fnpRrv] <filesystem|volume>", 2)
    name = names[0]
    if "@" in name:
        ds_name, snaps = name.split("@", 1)
        found = _dataset(node, ds_name)
        if found is None:
            return _no_dataset(ds_name)
        pool, rel = found
        for snap in snaps.split(","):
            key = snapshots.key(rel, snap)
            if key in pool.meta["snapshots"]:
                snapshots.delete(pool, key, recursive=recursive)
        pool.commit()
        return _ok()
    found = _dataset(node, name)
    if found is None:
        return _no_dataset(name)
    pool, rel = found
    datasets.delete(pool, rel, recursive=recursive)
    zstream.abort(pool, rel)
    pool.commit()
    return _ok()


def _create(node: TrueNASNode, args: list[str]) -> Result:
    names = [a for a in args if not a.startswith("-")]
    if len(names) != 1:
        return _fail("usage: zfs create [-p] <filesystem>", 2)
    pool = node.storage.pools.get(names[0].split("/", 1)[0])
    if pool is None:
        return _no_dataset(names[0])
    rel = pool.rel_name(names[0])
    if rel in pool.meta["datasets"]:
        if "-p" in args:
            return _ok()
        return _fail(f"cannot create '{names[0]}': dataset already exists")
    datasets.create(pool, rel, dataset_type="FILESYSTEM", local={}, user_props={},
                    create_ancestors="-p" in args, now=node.storage.now(),
                    attribute="zfs_create.dataset")
    pool.commit()
    return _ok()


def _ls(node: TrueNASNode, args: list[str]) -> Result:
    paths = [a for a in args if not a.startswith("-")]
    if len(paths) != 1:
        return _fail("ls: one path, please", 2)
    try:
        entries = files.listdir(node.storage, paths[0])
    except CallError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return _fail(f"ls: cannot access '{paths[0]}': No such file or directory", 2)
        raise
    return _ok("".join(entry["name"] + "\n" for entry in entries))
