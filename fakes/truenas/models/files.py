"""Files on datasets, under `/mnt/<pool>/<dataset path>/<file>`.

Facts followed (reference/truenas-api.md §4 Files; filesystem.put.json, filesystem.stat.json):
- `filesystem.put <path> {append, mode}` writes the uploaded bytes (creating missing
  parent directories, as middleware's put does with makedirs);
- `filesystem.get <path>` streams the file out;
- `filesystem.stat` fields: realpath, type FILE|DIRECTORY|SYMLINK|OTHER, size,
  allocation_size, mode (st_mode with the file type bits), mount_id, uid, gid,
  atime/mtime/ctime/btime as float seconds, dev, inode, nlink, acl,
  is_mountpoint, is_ctldir, attributes, user, group; a missing path is
  CallError ENOENT "Path <path> not found";
- `filesystem.listdir` entries add name, path, xattrs and zfs_attrs.
The fake stores files only on imported pools' datasets: any other path (the boot
disk's OS tree, a pool that is not imported) is an error, not a silent write.
Directories are implied by the files under them (the API has no mkdir here).

The API deletes no file: middleware's plugins/filesystem.py (@ 00371e5, master) has
mkdir, listdir, stat, statfs, get, put, ZFS attributes and a private file_receive, and
no unlink or rmdir. A file on a real node is deleted by a process there (an app, a
shell, a cron job): `remove_file` is that process's unlink(2), reached only through the
world's admin API. As on ZFS, the live dataset loses the file and its snapshots keep it
(a snapshot is immutable; the blocks stay referenced by it); a read-only dataset
refuses with EROFS.
"""

from __future__ import annotations

import errno
import hashlib
import posixpath
import stat as statmod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fakes.truenas.errors import CallError
from fakes.truenas.models import datasets

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool
    from fakes.truenas.models.storage import NodeStorage

ROOT_INODE = 34     # a ZFS filesystem's root directory object


def _not_found(path: str) -> CallError:
    return CallError(f"Path {path} not found", errno.ENOENT)


@dataclass
class Location:
    path: str
    pool: Pool | None     # None for /mnt itself
    rel: str              # dataset relative to the pool ("" = root dataset)
    inner: str            # path inside the dataset ("" = its root directory)

    @property
    def files(self) -> dict:
        assert self.pool is not None
        return self.pool.meta["datasets"][self.rel]["files"]

    @property
    def dataset_name(self) -> str:
        assert self.pool is not None
        return self.pool.full_name(self.rel)


def resolve(storage: NodeStorage, path: str) -> Location:
    if not isinstance(path, str) or not path.startswith("/"):
        raise CallError(f"{path!r}: an absolute path is required", errno.EINVAL)
    norm = posixpath.normpath(path)
    if norm == "/mnt":
        return Location(norm, None, "", "")
    if not norm.startswith("/mnt/"):
        raise CallError(f"{path}: the fake TrueNAS keeps files only on pool datasets "
                        "under /mnt/<pool>", errno.EACCES)
    parts = norm[len("/mnt/"):].split("/")
    pool = storage.pools.get(parts[0])
    if pool is None:
        raise CallError(f"[Errno 2] No such file or directory: '{path}' (no imported pool "
                        f"named {parts[0]!r})", errno.ENOENT)
    rel, depth = "", 1
    for i in range(2, len(parts) + 1):
        candidate = "/".join(parts[1:i])
        record = pool.meta["datasets"].get(candidate)
        if record is not None and record["type"] == "FILESYSTEM":
            rel, depth = candidate, i
    return Location(norm, pool, rel, "/".join(parts[depth:]))


def _is_dir(loc: Location) -> bool:
    if loc.inner == "":
        return True
    prefix = loc.inner + "/"
    return any(name.startswith(prefix) for name in loc.files)


def _check_parents_are_dirs(loc: Location) -> None:
    parts = loc.inner.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in loc.files:
            raise CallError(f"[Errno 20] Not a directory: '{loc.path}'", errno.ENOTDIR)


def write_file(storage: NodeStorage, path: str, data: bytes, append: bool = False,
               mode: int | None = None) -> None:
    loc = resolve(storage, path)
    if loc.pool is None or _is_dir(loc):
        raise CallError(f"[Errno 21] Is a directory: '{path}'", errno.EISDIR)
    pool = loc.pool
    pool.require_writable()
    _check_parents_are_dirs(loc)
    old = loc.files.get(loc.inner)
    content = bytes(data)
    if append and old is not None:
        content = pool.objects.get(old["oid"], what=loc.path) + content
    datasets.check_space(pool, loc.rel, len(content) - (old["size"] if old else 0))
    oid = pool.objects.put(content)
    now = storage.now()
    record = dict(old) if old else {"mode": 0o644, "uid": 0, "gid": 0, "btime": now,
                                     "inode": pool.next_inode()}
    record.update({"oid": oid, "size": len(content), "atime": now, "mtime": now, "ctime": now})
    if mode is not None:
        record["mode"] = mode & 0o7777
    loc.files[loc.inner] = record
    pool.commit()


def remove_file(storage: NodeStorage, path: str) -> None:
    """unlink(2) of a file by a process on the node (no API method does it)."""
    loc = resolve(storage, path)
    if loc.pool is None or _is_dir(loc):
        raise CallError(f"[Errno 21] Is a directory: '{path}'", errno.EISDIR)
    if loc.inner not in loc.files:
        raise _not_found(path)
    loc.pool.require_writable()
    datasets.check_space(loc.pool, loc.rel, 0)      # readonly=on: EROFS
    del loc.files[loc.inner]
    loc.pool.commit()


def read_file(storage: NodeStorage, path: str) -> bytes:
    loc = resolve(storage, path)
    if loc.pool is None or _is_dir(loc):
        raise CallError(f"[Errno 21] Is a directory: '{path}'", errno.EISDIR)
    record = loc.files.get(loc.inner)
    if record is None:
        raise CallError(f"[Errno 2] No such file or directory: '{path}'", errno.ENOENT)
    return loc.pool.objects.get(record["oid"], what=loc.path)


def _small_number(*parts: str) -> int:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def chown(storage: NodeStorage, path: str, uid: int | None, gid: int | None,
          recursive: bool = False, traverse: bool = False) -> None:
    """filesystem.chown: a None id leaves that one as it is; `recursive` takes what is
    under a directory but stops at child datasets (mount points) unless `traverse`.
    Owners are kept in the pool's metadata, so they move with the pool."""
    loc = resolve(storage, path)
    if loc.pool is None:
        raise CallError(f"{path}: changing the owner of /mnt itself is not allowed",
                        errno.EPERM)
    pool = loc.pool
    pool.require_writable()
    if not _is_dir(loc):
        record = loc.files.get(loc.inner)
        if record is None:
            raise _not_found(path)
        _set_owner(record, uid, gid)
        pool.commit()
        return
    _set_owner(_dir_owner(loc, create=True), uid, gid)
    if recursive:
        prefix = loc.inner + "/" if loc.inner else ""
        for name, record in loc.files.items():
            if name.startswith(prefix):
                _set_owner(record, uid, gid)
        dirs = loc.pool.meta["datasets"][loc.rel].setdefault("dir_owners", {})
        # every directory below, those only implied by the files in them included
        # (`chown -R` walks them all)
        for name in list(loc.files):
            if name.startswith(prefix):
                parts = name.split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    inner = "/".join(parts[:depth])
                    if inner.startswith(prefix):
                        dirs.setdefault(inner, {})
        for name, record in dirs.items():
            if name.startswith(prefix):
                _set_owner(record, uid, gid)
        if traverse:
            for child in datasets.children(pool, loc.rel):
                if pool.meta["datasets"][child]["type"] == "FILESYSTEM":
                    chown(storage, f"/mnt/{pool.full_name(child)}", uid, gid, True, True)
    pool.commit()


def _set_owner(record: dict, uid: int | None, gid: int | None) -> None:
    if uid is not None:
        record["uid"] = uid
    if gid is not None:
        record["gid"] = gid


def _dir_owner(loc: Location, create: bool = False) -> dict:
    """A directory's owner: the dataset's root keeps it in its record, a directory
    inside it in the dataset's `dir_owners` (root:root until changed)."""
    record = loc.pool.meta["datasets"][loc.rel]
    if loc.inner == "":
        owner = record.setdefault("owner", {}) if create else record.get("owner", {})
    else:
        owners = record.setdefault("dir_owners", {}) if create else record.get("dir_owners", {})
        owner = owners.setdefault(loc.inner, {}) if create else owners.get(loc.inner, {})
    return owner


def _stat_dir(storage: NodeStorage, loc: Location) -> dict:
    if loc.pool is None:
        created, dev, inode, mountpoint = storage.node.booted_at or storage.now(), 1, 2, False
        ds_guid = "mnt"
    else:
        record = loc.pool.meta["datasets"][loc.rel]
        ds_guid = record["guid"]
        created, dev = record["created"], _small_number(ds_guid) % 4096 + 64
        inode = ROOT_INODE if loc.inner == "" else _small_number(ds_guid, loc.inner)
        mountpoint = loc.inner == ""
    times = [created]
    if loc.pool is not None:
        prefix = loc.inner + "/" if loc.inner else ""
        times += [f["mtime"] for name, f in loc.files.items() if name.startswith(prefix)]
    latest = max(times)
    owner = _dir_owner(loc) if loc.pool is not None else {}
    return _stat_entry(loc.path, "DIRECTORY", statmod.S_IFDIR | 0o755, 2, latest, latest,
                       created, dev, inode, mountpoint, _small_number(ds_guid) % 1024,
                       uid=owner.get("uid", 0), gid=owner.get("gid", 0))


def _stat_entry(path: str, kind: str, mode: int, size: int, mtime: float, ctime: float,
                btime: float, dev: int, inode: int, mountpoint: bool, mount_id: int,
                atime: float | None = None, uid: int = 0, gid: int = 0) -> dict:
    return {
        "realpath": path, "type": kind, "size": size,
        "allocation_size": -(-size // 512) * 512, "mode": mode, "mount_id": mount_id,
        "uid": uid, "gid": gid, "atime": float(atime if atime is not None else mtime),
        "mtime": float(mtime), "ctime": float(ctime), "btime": float(btime), "dev": dev,
        "inode": inode, "nlink": 1 if kind == "FILE" else 2, "acl": False,
        "is_mountpoint": mountpoint, "is_ctldir": False, "attributes": [],
        "user": "root" if uid == 0 else None, "group": "root" if gid == 0 else None,
    }


def stat(storage: NodeStorage, path: str) -> dict:
    loc = resolve(storage, path)
    if loc.pool is None or _is_dir(loc):
        return _stat_dir(storage, loc)
    record = loc.files.get(loc.inner)
    if record is None:
        raise _not_found(path)
    ds = loc.pool.meta["datasets"][loc.rel]
    return _stat_entry(loc.path, "FILE", statmod.S_IFREG | record["mode"], record["size"],
                       record["mtime"], record["ctime"], record["btime"],
                       _small_number(ds["guid"]) % 4096 + 64, record["inode"], False,
                       _small_number(ds["guid"]) % 1024, atime=record["atime"],
                       uid=record["uid"], gid=record["gid"])


STAT_ONLY = frozenset({"atime", "btime", "ctime", "mtime", "dev", "inode", "nlink", "user",
                       "group"})


def listdir(storage: NodeStorage, path: str) -> list[dict]:
    loc = resolve(storage, path)
    if loc.pool is None:
        names = sorted(storage.pools)
    else:
        if not _is_dir(loc):
            if loc.inner in loc.files:
                raise CallError(f"Path {path} is not a directory", errno.ENOTDIR)
            raise CallError(f"Directory {path} does not exist", errno.ENOENT)
        prefix = loc.inner + "/" if loc.inner else ""
        names_set = {name[len(prefix):].split("/", 1)[0]
                     for name in loc.files if name.startswith(prefix)}
        if loc.inner == "":
            pool = loc.pool
            names_set.update(child.rsplit("/", 1)[-1] for child in datasets.children(pool, loc.rel)
                             if pool.meta["datasets"][child]["type"] == "FILESYSTEM")
        names = sorted(names_set)
    entries = []
    for name in names:
        child_path = posixpath.join(loc.path, name)
        entry = stat(storage, child_path)
        # FilesystemDirQueryResultItem (api/v25_10_2/filesystem.py) carries no times,
        # inode, dev, nlink, user or group: those are filesystem.stat's alone.
        listed = {key: value for key, value in entry.items() if key not in STAT_ONLY}
        entries.append({"name": name, "path": child_path, **listed, "xattrs": [],
                        "zfs_attrs": []})
    return entries
