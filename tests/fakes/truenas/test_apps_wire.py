"""An app deployed over WSS on a fake droplet answers on the droplet's address.

End to end through the public surfaces: DigitalOcean through pydo (a droplet from a
TrueNAS image with two volumes), the node through JSON-RPC over WSS (pool, Docker,
app.create as legacy jobs watched with core.get_jobs), and the app's published
ports through plain TCP on the droplet's address. The world runs at speed 1 and the
test moves its clock.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pydo
import pytest

from fakes.truenas.apps import images
from fakes.truenas.apps.images import ImageBehaviour
from fakes.truenas.server import StreamService
from fakes.world import World
from tests.fakes.truenas.nodes import TIMEOUT, Rpc, advance, logged_in, truenas_droplet

GREETER = "example.test/greeter"


class Greeter(ImageBehaviour):
    """A test image that says hello on its container port 7000."""

    def start(self, container):
        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(f"hello from {container.service}\n".encode())
            await writer.drain()
            writer.close()

        return {7000: StreamService(hello)}


@pytest.fixture(scope="module")
def world(slow_world: World) -> World:
    return slow_world


@pytest.fixture(scope="module")
def client(slow_client: pydo.Client) -> pydo.Client:
    return slow_client


@pytest.fixture
def greeter() -> Iterator[None]:
    images.register(GREETER, Greeter())
    yield
    images._REGISTRY.pop(GREETER, None)


@pytest.fixture(scope="module")
def node(world, client) -> Iterator[tuple[str, Rpc]]:
    droplet = truenas_droplet(world, client, "apps")
    with logged_in(world, droplet["id"]) as rpc:
        yield world.truenas.node_for(droplet["id"]).node.address, rpc


def test_an_app_publishes_its_ports_on_the_droplets_address(world, node, greeter) -> None:
    address, rpc = node
    disks = sorted(d["devname"] for d in rpc.result("disk.query", [["bus", "=", "SCSI"]]))
    pool = rpc.job(world, "pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": disks}]}})
    assert pool["state"] == "SUCCESS", pool
    docker = rpc.job(world, "docker.update", {"pool": "tank"}, seconds=15)
    assert docker["state"] == "SUCCESS", docker
    assert rpc.result("docker.status")["status"] == "RUNNING"

    compose = ("services:\n"
               f"  hello:\n    image: {GREETER}:1\n    ports: ['17000:7000']\n"
               "    healthcheck: {test: [CMD, 'true'], interval: 5s}\n"
               "  plain:\n    image: nginx:1.27\n    ports: ['17080:80']\n")
    created = rpc.job(world, "app.create", {"app_name": "hello", "custom_app": True,
                                            "custom_compose_config_string": compose},
                      seconds=6)
    assert created["state"] == "SUCCESS", created
    advance(world, 6)
    [app] = rpc.result("app.query", [["name", "=", "hello"]])
    assert app["state"] == "RUNNING"
    assert {p["container_port"] for p in app["active_workloads"]["used_ports"]} == {7000, 80}

    with socket.create_connection((address, 17000), timeout=TIMEOUT,
                                  source_address=("127.0.0.1", 0)) as conn:
        assert conn.makefile("rb").readline() == b"hello from hello\n"
    with socket.create_connection((address, 17080), timeout=TIMEOUT) as conn:
        assert conn.recv(16) == b""      # nothing listens in the container: accepted, closed

    deleted = rpc.job(world, "app.delete", "hello")
    assert deleted["state"] == "SUCCESS", deleted
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, 17000), timeout=TIMEOUT).close()
