"""The fake installer's JSON-RPC over a real WebSocket, as the real server answers
(fakes/installer/server.py names each upstream fact)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from infra.image.build import free_port


@pytest.fixture
def installer(tmp_path: Path):
    disk = tmp_path / "vda.raw"
    with open(disk, "wb") as handle:
        handle.truncate(16 * 1024**3)
    small = tmp_path / "vdb.raw"
    with open(small, "wb") as handle:
        handle.truncate(4 * 1024**3)        # under 8 GB: the installer hides it
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "fakes.installer", "--disk",
                                f"vda={disk}", "--disk", f"vdb={small}", "--port", str(port)])
    deadline = time.monotonic() + 20
    while True:
        try:
            with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=2, proxy=None):
                break
        except OSError:
            assert time.monotonic() < deadline, "the fake installer did not start"
            time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=10)


def _call(port: int, method: str, params=None, **extra) -> dict:
    with connect(f"ws://127.0.0.1:{port}/ws", proxy=None) as socket:
        request = {"jsonrpc": "2.0", "id": 7, "method": method, **extra}
        if params is not None:
            request["params"] = params
        socket.send(json.dumps(request))
        while True:
            answer = json.loads(socket.recv(timeout=10))
            if answer.get("id") == 7:
                return answer


def test_disks_under_8_gb_are_not_listed(installer):
    answer = _call(installer, "list_disks", [])
    assert [d["name"] for d in answer["result"]] == ["vda"]
    assert answer["result"][0] == {"name": "vda", "size": 16 * 1024**3,
                                   "model": "QEMU HARDDISK", "label": "",
                                   "zfs_members": [], "removable": False}


def test_install_takes_exactly_one_parameter(installer):
    answer = _call(installer, "install", [])
    assert answer["error"]["code"] == -32602
    assert answer["error"]["message"] == "1 parameter required, found 0"
    assert answer["error"]["data"] == {"errno": "EINVAL"}


def test_methods_without_a_schema_take_none(installer):
    answer = _call(installer, "is_adopted", [1])
    assert answer["error"]["message"] == "0 parameters required, found 1"


def test_the_user_is_truenas_admin_or_root(installer):
    answer = _call(installer, "install", [{"disks": ["vda"], "set_pmbr": False,
                                           "authentication": {"username": "admin",
                                                              "password": "secret1"}}])
    assert answer["error"]["code"] == -32602
    assert answer["error"]["data"] == {"errno": "EINVAL"}
    assert "'admin' is not one of" in answer["error"]["message"]


def test_an_unknown_disk_is_refused(installer):
    answer = _call(installer, "install", [{"disks": ["sdz"], "set_pmbr": False,
                                           "authentication": None}])
    assert answer["error"] == {"code": -32602, "message": "Disk 'sdz' does not exist",
                               "data": {"errno": "EFAULT"}}


def test_unknown_methods(installer):
    assert _call(installer, "adopt_me", [])["error"]["code"] == -32601


def test_only_ws_is_served(installer):
    with pytest.raises(Exception, match="404"):
        connect(f"ws://127.0.0.1:{installer}/websocket", proxy=None)


def test_system_info(installer):
    info = _call(installer, "system_info", [])["result"]
    assert info == {"installation_running": False, "installation_completed": False,
                    "installation_error": None, "version": "25.10.0", "efi": False}
