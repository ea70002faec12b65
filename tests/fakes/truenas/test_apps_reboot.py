"""Apps come back after the droplet is power-cycled, as on a real TrueNAS.

Through the public surfaces only: the droplet is power-cycled through the
DigitalOcean API (pydo), the node is driven over JSON-RPC/WSS, and the app's
published port is dialled on the droplet's address. The fake imports no pool by
itself at boot, so the test imports the apps pool (pool.import_find /
pool.import_pool), as a client recovering the node does.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pydo
import pytest

from fakes.truenas.apps import images
from fakes.world import World
from tests.fakes.truenas.nodes import TIMEOUT, Rpc, advance, logged_in, truenas_droplet
from tests.fakes.truenas.test_apps_wire import GREETER, Greeter

PORTS = {"keeper": 17200, "parked": 17201, "oneshot": 17202}
RESTART = {"keeper": "unless-stopped", "parked": "always", "oneshot": '"no"'}


@pytest.fixture(scope="module")
def world(slow_world: World) -> World:
    return slow_world


@pytest.fixture(scope="module")
def client(slow_client: pydo.Client) -> pydo.Client:
    return slow_client


@pytest.fixture(scope="module")
def greeter() -> Iterator[None]:
    images.register(GREETER, Greeter())
    yield
    images._REGISTRY.pop(GREETER, None)


def greeting(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=TIMEOUT,
                                  source_address=("127.0.0.1", 0)) as conn:
        return conn.makefile("rb").readline()


def states(rpc: Rpc) -> dict[str, str]:
    return {app["name"]: app["state"] for app in rpc.result("app.query")}


def compose(name: str) -> str:
    return (f"services:\n  {name}:\n    image: {GREETER}:1\n"
            f"    ports: ['{PORTS[name]}:7000']\n    restart: {RESTART[name]}\n"
            "    healthcheck: {test: [CMD, 'true'], interval: 5s}\n")


@pytest.fixture(scope="module")
def rebooted(world, client, greeter) -> dict:
    """Three apps on pool tank (one stopped by hand), then a power cycle and the pool
    imported again; what the node said along the way."""
    droplet = truenas_droplet(world, client, "reboot")
    seen: dict = {"droplet": droplet["id"]}
    with logged_in(world, droplet["id"]) as rpc:
        disks = sorted(d["devname"] for d in rpc.result("disk.query", [["bus", "=", "SCSI"]]))
        assert rpc.job(world, "pool.create", {"name": "tank", "topology": {
            "data": [{"type": "MIRROR", "disks": disks}]}})["state"] == "SUCCESS"
        assert rpc.job(world, "docker.update", {"pool": "tank"}, seconds=15)["state"] \
            == "SUCCESS"
        for name in PORTS:
            created = rpc.job(world, "app.create", {
                "app_name": name, "custom_app": True,
                "custom_compose_config_string": compose(name)}, seconds=6)
            assert created["state"] == "SUCCESS", created
        advance(world, 6)                # first healthchecks pass
        assert rpc.job(world, "app.stop", "parked")["state"] == "SUCCESS"
        seen["before"] = states(rpc)

    client.droplet_actions.post(droplet["id"], {"type": "power_cycle"})
    advance(world, 15)
    entry = world.truenas.node_for(droplet["id"])
    seen["address"] = entry.node.address
    with logged_in(world, droplet["id"]) as rpc:
        advance(world, 100)
        seen["system_state"] = rpc.result("system.state")
        seen["config_at_boot"] = rpc.result("docker.config")
        seen["apps_before_import"] = rpc.result("app.query")
        [found] = rpc.job(world, "pool.import_find")["result"]
        assert rpc.job(world, "pool.import_pool", {"guid": found["guid"]})["state"] == "SUCCESS"
        seen["docker_after_import"] = rpc.result("docker.status")["status"]
        advance(world, 10)               # dockerd starts; images are still on the pool
        seen["docker"] = rpc.result("docker.status")["status"]
        seen["while_starting"] = states(rpc)
        advance(world, 10)               # the first healthcheck passes
        seen["after"] = states(rpc)
    return seen


def test_apps_run_and_answer_before_the_reboot(rebooted) -> None:
    assert rebooted["before"] == {"keeper": "RUNNING", "parked": "STOPPED",
                                  "oneshot": "RUNNING"}


def test_docker_config_survives_and_docker_waits_for_its_pool(rebooted) -> None:
    assert rebooted["system_state"] == "READY"
    assert rebooted["config_at_boot"]["pool"] == "tank"
    assert rebooted["config_at_boot"]["dataset"] == "tank/ix-apps"
    assert rebooted["apps_before_import"] == []
    assert rebooted["docker_after_import"] == "INITIALIZING"
    assert rebooted["docker"] == "RUNNING"


def test_an_app_with_a_restart_policy_starts_again_and_answers(rebooted) -> None:
    assert rebooted["while_starting"]["keeper"] == "DEPLOYING"
    assert rebooted["after"]["keeper"] == "RUNNING"
    assert greeting(rebooted["address"], PORTS["keeper"]).startswith(b"hello from")


def test_an_app_stopped_by_hand_stays_stopped(rebooted) -> None:
    assert rebooted["after"]["parked"] == "STOPPED"
    with pytest.raises(ConnectionRefusedError):
        greeting(rebooted["address"], PORTS["parked"])


def test_an_app_without_a_restart_policy_does_not_start(rebooted) -> None:
    assert rebooted["after"]["oneshot"] == "STOPPED"
    with pytest.raises(ConnectionRefusedError):
        greeting(rebooted["address"], PORTS["oneshot"])


def test_the_app_files_are_on_the_pool(world, rebooted) -> None:
    with logged_in(world, rebooted["droplet"]) as rpc:
        names = {e["name"] for e in rpc.result(
            "filesystem.listdir", "/mnt/tank/ix-apps/app_configs")}
    assert names == set(PORTS)
