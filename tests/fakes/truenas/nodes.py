"""A fake TrueNAS droplet reached through the public surfaces, for the wire tests.

The droplet is built through pydo (a custom TrueNAS image, two volumes), and the node
is driven over JSON-RPC/WSS with its self-signed certificate pinned. The worlds
these tests use run at speed 1 (`slow_world` in tests/conftest.py), so the tests
move the clock themselves with `advance`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pydo
from websockets.sync.client import connect

from fakes.world import World
from tests.fake_clients import ssh_key

REGION = "nyc3"
TIMEOUT = 10.0
IMAGE_URL = "https://images.example.test/TrueNAS-SCALE-25.10.2.img.gz"
IMPORT_SECONDS = 400        # a custom image import, on the fake's clock
BOOT_SECONDS = 150          # droplet active (50) and TrueNAS READY (90), with room


def advance(world: World, seconds: float) -> None:
    with world.backend.lock:
        world.clock.advance(seconds)


class Rpc:
    """JSON-RPC 2.0 over one websocket: results, and legacy jobs read back."""

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

    def error(self, method: str, *params) -> dict:
        """The JSON-RPC error a call answers (it must fail)."""
        request_id = next(self.ids)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                 "params": list(params)}))
        while True:
            message = json.loads(self.ws.recv(timeout=TIMEOUT))
            if message.get("id") == request_id:
                assert "error" in message, message
                return message["error"]

    def job(self, world: World, method: str, *params, seconds: float = 0.0) -> dict:
        """Start a legacy job, move the clock, and read how it ended."""
        job_id = self.result(method, *params)
        advance(world, seconds)
        [job] = self.result("core.get_jobs", [["id", "=", job_id]])
        return job


def truenas_droplet(world: World, client: pydo.Client, name: str) -> dict:
    """A droplet from a TrueNAS image with two 10 GiB volumes, its node READY."""
    image = client.images.create_custom({"name": f"scale-25-10-{name}", "url": IMAGE_URL,
                                         "region": REGION, "distribution": "Unknown"})["image"]
    advance(world, IMPORT_SECONDS)
    volumes = [client.volumes.create({"name": f"{name}-{i}", "size_gigabytes": 10,
                                      "region": REGION})["volume"]["id"] for i in range(2)]
    droplet = client.droplets.create({"name": f"nas-{name}", "region": REGION,
                                      "size": "s-4vcpu-8gb", "image": image["id"],
                                      "volumes": volumes,
                                      "ssh_keys": [ssh_key(client)]})["droplet"]
    advance(world, BOOT_SECONDS)
    return droplet


@contextmanager
def logged_in(world: World, droplet_id: int) -> Iterator[Rpc]:
    """A session with the droplet's node, logged in with the image's API key."""
    entry = world.truenas.node_for(droplet_id)
    assert entry is not None and entry.server.wait_ready(TIMEOUT)
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
        yield rpc
