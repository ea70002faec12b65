"""An app deployed over WSS on a fake droplet answers on the droplet's address.

End to end through the public surfaces: DigitalOcean through pydo (a droplet from a
TrueNAS image with two volumes), the node through JSON-RPC over WSS (pool, Docker,
app.create as legacy jobs watched with core.get_jobs), and the app's published
ports through plain TCP on the droplet's address. The world runs at speed 1 and the
test moves its clock.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterator

import pydo
import pytest
from websockets.sync.client import connect

from fakes.truenas.apps import images
from fakes.truenas.apps.images import ImageBehaviour
from fakes.truenas.server import StreamService
from fakes.world import World

REGION = "nyc3"
TIMEOUT = 10.0
IMAGE_URL = "https://images.example.test/TrueNAS-SCALE-25.10.2.img.gz"
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
def world(tmp_path_factory) -> Iterator[World]:
    with World(tmp_path_factory.mktemp("truenas-apps"), speed=1.0) as started:
        yield started


@pytest.fixture(scope="module")
def client(world) -> Iterator[pydo.Client]:
    do = pydo.Client(world.token, endpoint=world.endpoint,
                     connection_verify=str(world.ca.ca_path), retry_total=0)
    try:
        yield do
    finally:
        do.close()


@pytest.fixture
def greeter() -> Iterator[None]:
    images.register(GREETER, Greeter())
    yield
    images._REGISTRY.pop(GREETER, None)


def advance(world: World, seconds: float) -> None:
    with world.backend.lock:
        world.clock.advance(seconds)


class Rpc:
    def __init__(self, websocket) -> None:
        self.ws = websocket
        self.ids = iter(range(1, 10_000))

    def result(self, method: str, *params):
        request_id = next(self.ids)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                 "params": list(params)}))
        while True:
            message = json.loads(self.ws.recv(timeout=TIMEOUT))
            if message.get("id") == request_id:
                assert "error" not in message, message
                return message["result"]

    def job(self, world: World, method: str, *params, seconds: float = 0.0) -> dict:
        """Start a legacy job, move the clock, and read how it ended."""
        job_id = self.result(method, *params)
        advance(world, seconds)
        [job] = self.result("core.get_jobs", [["id", "=", job_id]])
        return job


@pytest.fixture(scope="module")
def node(world, client) -> Iterator[tuple[str, Rpc]]:
    image = client.images.create_custom({"name": "scale-25-10", "url": IMAGE_URL,
                                         "region": REGION, "distribution": "Unknown"})["image"]
    advance(world, 400)
    volumes = [client.volumes.create({"name": f"apps-{i}", "size_gigabytes": 10,
                                      "region": REGION})["volume"]["id"] for i in range(2)]
    droplet = client.droplets.create({"name": "nas-apps", "region": REGION,
                                      "size": "s-4vcpu-8gb", "image": image["id"],
                                      "volumes": volumes})["droplet"]
    advance(world, 50)
    entry = world.truenas.node_for(droplet["id"])
    assert entry is not None and entry.server.wait_ready(TIMEOUT)
    advance(world, 100)
    context = ssl.create_default_context(cafile=str(entry.server.cert.cert_path))
    context.check_hostname = False
    context.maximum_version = ssl.TLSVersion.TLSv1_2   # see test_transport.websocket_tls
    with connect(entry.server.url("wss"), ssl=context, proxy=None,
                 open_timeout=TIMEOUT) as websocket:
        rpc = Rpc(websocket)
        answer = rpc.result("auth.login_ex", {
            "mechanism": "API_KEY_PLAIN", "username": "truenas_admin",
            "api_key": world.describe()["truenas"]["api_key"]})
        assert answer["response_type"] == "SUCCESS"
        yield entry.node.address, rpc


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
