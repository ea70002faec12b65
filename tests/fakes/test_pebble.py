"""The fake world's ACME server: a real pebble, reachable as world.json says.

Recipe: reference/this-machine.md §1 (pebble's listener cert from our CA, its root at
`/roots/0` on the management port).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests
from cryptography import x509

from fakes.world import World
from infra.target import REAL_CLI_REQUIRED, Target


def _described(world: World) -> dict:
    return json.loads(world.world_file.read_text())


@pytest.mark.acme
def test_directory_answers_over_https_verified_by_the_world_ca(world: World) -> None:
    described = _described(world)
    directory = requests.get(described["acme"]["directory"], verify=described["ca_bundle"],
                             timeout=10)
    assert directory.status_code == 200
    assert {"newNonce", "newAccount", "newOrder"} <= set(directory.json())


@pytest.mark.acme
def test_root_ca_file_holds_a_ca_certificate_other_than_the_world_ca(world: World) -> None:
    described = _described(world)
    root = x509.load_pem_x509_certificate(Path(described["acme"]["root_ca"]).read_bytes())
    world_ca = x509.load_pem_x509_certificate(Path(described["ca_bundle"]).read_bytes())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # Issued certificates chain to pebble's root, not to the CA of the fakes' listeners.
    assert root.subject != world_ca.subject


@pytest.mark.acme
def test_target_reads_the_acme_section(world: World) -> None:
    target = Target.from_world_file(world.world_file)
    assert target.acme_directory == _described(world)["acme"]["directory"]
    assert target.acme_root_ca is not None and os.path.exists(target.acme_root_ca)
    assert target.acme_unavailable is None


@pytest.mark.acme
def test_stopping_the_world_leaves_no_pebble_process(tmp_path) -> None:
    with World(tmp_path) as world:
        process = world.acme._process
        directory = world.acme.directory
        ca_bundle = str(world.ca.ca_path)
        assert process is not None and process.poll() is None
    assert process.poll() is not None
    assert not os.path.exists(f"/proc/{process.pid}") or _is_other_process(process.pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(directory, verify=ca_bundle, timeout=5)


def test_a_world_without_pebble_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with World(tmp_path / "world") as world:
        described = _described(world)
    assert described["acme"] is None
    assert "apt-get install pebble" in described["acme_unavailable"]
    target = Target.from_world_file(world.world_file)
    assert target.acme_directory is None
    assert "apt-get install pebble" in target.acme_unavailable


def test_a_real_target_defaults_to_lets_encrypt_staging() -> None:
    target = Target.real_from_env({"DIGITALOCEAN_TOKEN": "dop_v1_x"},
                                  required=REAL_CLI_REQUIRED)
    assert target.acme_directory == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert target.acme_root_ca is None
    chosen = Target.real_from_env({"DIGITALOCEAN_TOKEN": "dop_v1_x",
                                   "ACME_DIRECTORY": "https://acme.example.test/dir"},
                                  required=REAL_CLI_REQUIRED)
    assert chosen.acme_directory == "https://acme.example.test/dir"


def _is_other_process(pid: int) -> bool:
    """A reaped pid may already belong to someone else: then it is not pebble."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"pebble" not in handle.read()
    except OSError:
        return True
