"""The mount mirror of an app process (fakes/truenas/apps/process.py): what the process
writes reaches the pool while the mirror has backed off (nothing changed for a while),
and what it wrote last reaches the pool as soon as it exits, without waiting for the
next round."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from fakes.truenas.apps import process
from fakes.truenas.apps.process import ChildProcess, MirrorThread, Mount, MountMirror


def _mirror(tmp_path: Path) -> tuple[MountMirror, dict[str, bytes]]:
    pool = {"/mnt/tank/app/data/seed": b"seed"}

    def list_pool(source: str) -> dict[str, str]:
        prefix = source.rstrip("/") + "/"
        return {p[len(prefix):]: hashlib.sha1(d).hexdigest()
                for p, d in pool.items() if p.startswith(prefix)}

    def write_pool(path: str, data: bytes) -> None:
        pool[path] = data

    mirror = MountMirror(tmp_path / "root", [Mount("/data", "/mnt/tank/app/data", False)],
                         list_pool, pool.get, write_pool)
    return mirror, pool


def _eventually(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_write_after_a_quiet_spell_reaches_the_pool(tmp_path: Path) -> None:
    mirror, pool = _mirror(tmp_path)
    assert mirror.sync() is True            # the seed file, copied in
    assert mirror.sync() is False           # nothing changed since
    syncs = []
    thread = MirrorThread(lambda: syncs.append(1) or mirror.sync(), "test-mirror").start()
    try:
        assert _eventually(lambda: len(syncs) >= 5)      # backed off to its longest wait
        (mirror.host_path("/data") / "written").write_bytes(b"by the process")
        assert _eventually(lambda: pool.get("/mnt/tank/app/data/written") ==
                           b"by the process")
    finally:
        thread.stop()


def test_the_last_write_reaches_the_pool_when_the_process_exits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no round would come within the test: only the exit can make the mirror sync
    monkeypatch.setattr(process, "MIRROR_SECONDS", 3600.0)
    monkeypatch.setattr(process, "MIRROR_MAX_SECONDS", 3600.0)
    mirror, pool = _mirror(tmp_path)
    mirror.sync()
    target = mirror.host_path("/data") / "dump"
    thread = MirrorThread(mirror.sync, "test-mirror").start()
    child = ChildProcess(["sh", "-c", f"sleep 0.2; echo saved > '{target}'"],
                         tmp_path / "child.log", {"PATH": "/usr/bin:/bin"}, tmp_path).start()
    thread.poke_on_exit(child)
    try:
        assert _eventually(lambda: pool.get("/mnt/tank/app/data/dump") == b"saved\n")
    finally:
        thread.stop()
        child.stop(1.0)
