"""A droplet built from a TrueNAS image runs a fake TrueNAS node on its own address.

Everything goes through the public surfaces: DigitalOcean through pydo, the node
through WSS on the droplet's address, the fault through the admin API. The world
runs at speed 1 and the test moves its clock, so BOOTING is seen for certain.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pydo
import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from fakes.world import World
from tests.fake_clients import ssh_key
from tests.fakes.truenas.wire import PinnedAdapter

REGION = "nyc3"
TIMEOUT = 10.0
IMAGE_URL = "https://images.example.test/TrueNAS-SCALE-25.10.2.img.gz"


@pytest.fixture(scope="module")
def world(slow_world: World) -> World:
    return slow_world


@pytest.fixture(scope="module")
def client(slow_client: pydo.Client) -> pydo.Client:
    return slow_client


@pytest.fixture(scope="module")
def truenas_image(world, client) -> dict:
    image = client.images.create_custom({"name": "scale-25-10", "url": IMAGE_URL,
                                         "region": REGION, "distribution": "Unknown"})["image"]
    advance(world, 400)          # import: queued, then minutes
    return client.images.get(image["id"])["image"]


def advance(world: World, seconds: float) -> None:
    with world.backend.lock:
        world.clock.advance(seconds)


def admin(world: World, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, f"{world.endpoint}/_admin{path}", json=body,
                            headers={"X-Admin-Secret": world.admin_secret},
                            verify=str(world.ca.ca_path), timeout=TIMEOUT)


def boot_droplet(world: World, client: pydo.Client, image: dict, name: str,
                 volumes: list[str] = ()) -> dict:
    droplet = client.droplets.create({"name": name, "region": REGION, "size": "s-4vcpu-8gb",
                                      "image": image["id"], "volumes": list(volumes),
                                      "ssh_keys": [ssh_key(client)]})["droplet"]
    advance(world, 50)           # a droplet boots in ~45 s
    return client.droplets.get(droplet["id"])["droplet"]


def public_ip(droplet: dict) -> str:
    return next(n["ip_address"] for n in droplet["networks"]["v4"] if n["type"] == "public")


def node_listing(world: World, droplet_id: int) -> dict | None:
    answer = admin(world, "GET", "/truenas/nodes")
    assert answer.status_code == 200, answer.text
    assert answer.json()["errors"] == []
    return next((n for n in answer.json()["nodes"] if n["droplet_id"] == droplet_id), None)


def pinned(cert_path: str) -> ssl.SSLContext:
    """Trust exactly the node's certificate; it names "localhost", not the address."""
    context = ssl.create_default_context(cafile=cert_path)
    context.check_hostname = False
    return context


class Node:
    """What a client knows of one node: its address, its ports and its certificate."""

    def __init__(self, world: World, droplet: dict) -> None:
        entry = world.truenas.node_for(droplet["id"])
        assert entry is not None, "no TrueNAS node for the droplet"
        assert entry.server.wait_ready(TIMEOUT)
        listing = node_listing(world, droplet["id"])
        self.address = public_ip(droplet)
        assert listing["address"] == self.address
        self.ports = listing["ports"]
        self.cert_path = listing["certificate"]
        self.api_key = world.describe()["truenas"]["api_key"]

    def url(self, scheme: str, path: str = "/api/current") -> str:
        port = self.ports["https" if scheme in ("wss", "https") else "http"]
        return f"{scheme}://{self.address}:{port}{path}"

    @contextmanager
    def rpc(self) -> Iterator[Rpc]:
        # TLS 1.2: websockets' sync client races TLS 1.3 session tickets (see
        # test_transport.websocket_tls).
        context = pinned(self.cert_path)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with connect(self.url("wss"), ssl=context, proxy=None,
                     open_timeout=TIMEOUT) as websocket:
            rpc = Rpc(websocket)
            answer = rpc.call("auth.login_ex", {"mechanism": "API_KEY_PLAIN",
                                                "username": "truenas_admin",
                                                "api_key": self.api_key})
            assert answer["result"]["response_type"] == "SUCCESS", answer
            yield rpc

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = self.cert_path
        session.mount("https://", PinnedAdapter(pinned(self.cert_path)))
        return session

    def standard_ports_taken(self, ports: dict[str, int]) -> bool:
        """The world's ports are held on this address by someone else: another world
        (in another process) hands out the same droplet addresses, so the node fell
        back to ports of its own, as fleet.py documents."""
        for port in ports.values():
            try:
                socket.create_connection((self.address, port), timeout=TIMEOUT).close()
            except ConnectionRefusedError:
                return False
        return True

    def refuses_connections(self) -> bool:
        for port in self.ports.values():
            try:
                socket.create_connection((self.address, port), timeout=TIMEOUT).close()
            except ConnectionRefusedError:
                continue
            return False
        return True




class Rpc:
    def __init__(self, websocket: ClientConnection) -> None:
        self.ws = websocket
        self.ids = iter(range(1, 10_000))

    def call(self, method: str, *params) -> dict:
        request_id = next(self.ids)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                 "params": list(params)}))
        while True:
            message = json.loads(self.ws.recv(timeout=TIMEOUT))
            if message.get("id") == request_id:
                return message

    def result(self, method: str, *params):
        answer = self.call(method, *params)
        assert "error" not in answer, answer
        return answer["result"]

    def volume_disks(self) -> list[dict]:
        """The SCSI disks: the attached volumes (vda is the droplet's own disk)."""
        return self.result("disk.query", [["bus", "=", "SCSI"]])

    def serials(self) -> set[str]:
        return {disk["serial"] for disk in self.volume_disks()}


def create_volume(client: pydo.Client, name: str) -> dict:
    return client.volumes.create({"name": name, "size_gigabytes": 10,
                                  "region": REGION})["volume"]


def volume_action(world: World, client: pydo.Client, volume: dict, kind: str,
                  droplet: dict) -> None:
    client.volume_actions.post_by_id(volume["id"], {"type": kind, "droplet_id": droplet["id"],
                                                    "region": REGION})
    advance(world, 10)           # attach/detach take a few seconds


# --- the tests -------------------------------------------------------------------------
def test_world_json_tells_how_to_reach_the_nodes(world) -> None:
    described = json.loads(world.world_file.read_text())["truenas"]
    assert described["username"] == "truenas_admin"
    assert described["image_url_marker"] == "truenas"
    key_id, secret = described["api_key"].split("-", 1)
    assert key_id.isdigit() and len(secret) == 64
    if os.geteuid() == 0:
        assert described["ports"] == {"https": 443, "http": 80}


def test_a_droplet_from_another_image_runs_no_truenas(world, client) -> None:
    droplet = client.droplets.create({"name": "plain", "region": REGION, "size": "s-1vcpu-1gb",
                                      "image": "ubuntu-24-04-x64"})["droplet"]
    advance(world, 50)
    assert client.droplets.get(droplet["id"])["droplet"]["status"] == "active"
    assert world.truenas.node_for(droplet["id"]) is None
    client.droplets.destroy(droplet["id"])


def test_a_truenas_droplet_boots_a_node_with_its_volumes_as_disks(
        world, client, truenas_image) -> None:
    first, second = create_volume(client, "fleet-a"), create_volume(client, "fleet-b")
    droplet = boot_droplet(world, client, truenas_image, "nas-1", [first["id"]])
    node = Node(world, droplet)
    assert node.ports == world.truenas.ports or node.standard_ports_taken(world.truenas.ports)
    with node.rpc() as rpc:
        assert rpc.result("system.state") == "BOOTING"
        advance(world, 100)      # middleware is up a minute or two after the droplet
        assert rpc.result("system.state") == "READY"
        assert rpc.result("system.info")["hostname"] == "nas-1"
        assert rpc.serials() == {"fleet-a"}

        volume_action(world, client, second, "attach", droplet)
        assert rpc.serials() == {"fleet-a", "fleet-b"}
        volume_action(world, client, second, "detach", droplet)
        assert rpc.serials() == {"fleet-a"}

        client.droplets.destroy(droplet["id"])
        # Delete requested: the node stops answering at once, before the droplet is gone.
        assert node.refuses_connections()
        with pytest.raises(ConnectionClosed):
            rpc.call("core.ping")
    advance(world, 20)
    assert node_listing(world, droplet["id"]) is None


def test_files_round_trip_through_a_pool_on_the_droplets_volumes(
        world, client, truenas_image) -> None:
    volumes = [create_volume(client, "mirror-a"), create_volume(client, "mirror-b")]
    droplet = boot_droplet(world, client, truenas_image, "nas-2", [v["id"] for v in volumes])
    node = Node(world, droplet)
    advance(world, 100)
    payload = os.urandom(50_000)
    with node.rpc() as rpc:
        disks = sorted(d["devname"] for d in rpc.volume_disks())
        rpc.result("core.set_options", {"legacy_jobs": False})
        pool = rpc.result("pool.create", {"name": "tank", "topology": {
            "data": [{"type": "MIRROR", "disks": disks}]}})
        assert pool["name"] == "tank"

        parts = {"data": (None, json.dumps({"method": "filesystem.put",
                                             "params": ["/mnt/tank/hello.bin", {}]})),
                 "file": ("hello.bin", payload, "application/octet-stream")}
        session = node.session()
        answer = session.post(node.url("https", "/_upload"), files=parts, timeout=TIMEOUT,
                              headers={"Authorization": f"Bearer {node.api_key}"})
        assert answer.status_code == 200, answer.text
        assert rpc.result("core.job_wait", answer.json()["job_id"]) is True

        _job_id, path = rpc.result("core.download", "filesystem.get",
                                   ["/mnt/tank/hello.bin"], "hello.bin", False)
        fetched = session.get(node.url("https", path), timeout=TIMEOUT)
        assert fetched.status_code == 200
        assert fetched.content == payload

    rot = admin(world, "POST", "/truenas/bitrot",
                {"volume_id": volumes[0]["id"], "dataset": "tank", "path": "hello.bin"})
    assert rot.status_code == 200, rot.text
    missing = admin(world, "POST", "/truenas/bitrot",
                    {"volume_id": volumes[0]["id"], "dataset": "tank", "path": "nope.bin"})
    assert missing.status_code == 404
    # A process on the node deletes the file (the API has no method that does).
    gone = admin(world, "POST", f"/truenas/nodes/{droplet['id']}/unlink",
                 {"path": "/mnt/tank/hello.bin"})
    assert gone.status_code == 200, gone.text
    with node.rpc() as rpc:
        answer = rpc.call("filesystem.stat", "/mnt/tank/hello.bin")
        assert "not found" in json.dumps(answer.get("error")), answer
    again = admin(world, "POST", f"/truenas/nodes/{droplet['id']}/unlink",
                  {"path": "/mnt/tank/hello.bin"})
    assert again.status_code == 404 and "not found" in again.text, again.text
    nowhere = admin(world, "POST", "/truenas/nodes/999999/unlink", {"path": "/mnt/tank/x"})
    assert nowhere.status_code == 404
    client.droplets.destroy(droplet["id"])
    advance(world, 20)


def test_a_failed_host_stops_the_node_at_once_and_power_brings_it_back(
        world, client, truenas_image) -> None:
    droplet = boot_droplet(world, client, truenas_image, "nas-3")
    node = Node(world, droplet)
    with node.rpc() as rpc:
        assert rpc.result("core.ping") == "pong"

    client.droplet_actions.post(droplet["id"], {"type": "power_off"})
    advance(world, 15)
    assert node.refuses_connections()
    client.droplet_actions.post(droplet["id"], {"type": "power_on"})
    advance(world, 15)
    again = Node(world, droplet)
    assert again.cert_path == node.cert_path      # the same boot disk, the same certificate
    with again.rpc() as rpc:
        assert rpc.result("system.state") == "BOOTING"

    failed = admin(world, "POST", f"/droplets/{droplet['id']}/host-failure")
    assert failed.status_code == 200, failed.text
    assert again.refuses_connections()
    assert node_listing(world, droplet["id"])["state"] == "SHUTTING_DOWN"
    advance(world, 100)          # the failed host's droplet goes away
    assert node_listing(world, droplet["id"]) is None
