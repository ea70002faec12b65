"""`python -m fakes` runs the world for any client; `python -m infra demo` uses it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydo
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the world did not write world.json"
        time.sleep(0.05)
    time.sleep(0.1)


def test_the_standalone_world_describes_itself_and_serves_any_client(tmp_path: Path) -> None:
    state = tmp_path / "world"
    process = subprocess.Popen([sys.executable, "-m", "fakes", "--state-dir", str(state)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(state / "world.json", process)
        world_file = state / "world.json"
        assert world_file.stat().st_mode & 0o777 == 0o600  # it holds the token
        assert state.stat().st_mode & 0o777 == 0o700
        world = json.loads(world_file.read_text())
        endpoint, token = world["digitalocean"]["endpoint"], world["digitalocean"]["token"]
        assert endpoint.startswith("https://127.")
        assert token.startswith("dop_v1_")
        assert Path(world["ca_bundle"]).is_file()
        assert world["dns"]["host"].startswith("127.") and world["dns"]["port"] > 0

        # a plain HTTPS client trusting only the world's CA
        answer = requests.get(f"{endpoint}/v2/account", verify=world["ca_bundle"],
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200 and "account" in answer.json()
        # pydo with its default authentication policy (bearer tokens need HTTPS)
        client = pydo.Client(token, endpoint=endpoint, connection_verify=world["ca_bundle"],
                             retry_total=0)
        assert client.regions.list()["meta"]["total"] > 0
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert b"fake world stopped" in out


@pytest.mark.skipif(shutil.which("pebble") is None,
                    reason="the demo's front door needs pebble (./dev installs it)")
def test_the_demo_brings_the_whole_site_up_proves_it_and_leaves_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "infra", "demo"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "200"})
    out = result.stdout
    failed = [line for line in out.splitlines() if "FAIL" in line or "error:" in line]
    assert result.returncode == 0, "\n".join(failed) + out[-2000:] + result.stderr[-3000:]
    assert "demo passed" in out
    rows = re.search(r"(\d+) of (\d+) check rows passed; the demo took [\d.]+ s", out)
    assert rows and rows.group(1) == rows.group(2), out[-3000:]
    for row in ("pool tank is healthy", "certificate for uro.example.test on 443",
                "app ingress runs", "app cockroachdb runs", "app gocd runs", "app uro runs",
                "gocd healthy at https://ci.example.test/go/api/v1/health",
                "uro healthy at https://uro.example.test/api/v1/health",
                "cockroachdb ready on its admin-only console port",
                "a snapshot of data taken and rolled back restores its bytes"):
        assert re.search(re.escape(row) + r".*│ pass", out), f"no passing row {row!r}"
    assert "Pebble" in out                     # the certificate is the fake ACME server's
    assert "nothing left" in out
    assert "dop_v1_" not in out + result.stderr


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_killing_the_world_kills_its_pebble(tmp_path: Path) -> None:
    """Even SIGKILL, which the world cannot catch, leaves no pebble running."""
    state = tmp_path / "world"
    process = subprocess.Popen([sys.executable, "-m", "fakes", "--state-dir", str(state)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(state / "world.json", process)
        world = json.loads((state / "world.json").read_text())
        if world.get("acme_unavailable"):
            pytest.skip(world["acme_unavailable"])
        children = _children(process.pid)
        assert children, "the world runs no pebble"
    finally:
        process.kill()
        process.wait(timeout=20)
    deadline = time.monotonic() + 10
    while any(_alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(child) for child in children), "pebble outlived its world"
