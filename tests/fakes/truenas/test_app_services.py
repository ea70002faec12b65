"""The services of issue 5 as the fake node runs them: cockroach, redis and uro, and
the Caddy emulation stripping a path prefix in front of uro.

Runtime tests go through JSON-RPC on the virtual clock (test_apps_runtime.Env); one
test runs the apps on a fake droplet behind a DigitalOcean firewall and talks to them
over real sockets (as test_apps_wire.py does).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pydo
import pytest

from fakes.world import World
from tests.fakes.truenas.nodes import TIMEOUT, Rpc, advance, logged_in, truenas_droplet
from tests.fakes.truenas.test_apps_network import docker_on_a_pool
from tests.fakes.truenas.test_apps_runtime import Env, succeeded
from tests.fakes.truenas.test_caddy_emulation import (
    EchoBackend,
    HostFiles,
    LoopThread,
    fetch,
    start,
)

INTERNET = "127.3.0.1"
URO_ENV = {"URL": "https://uro.example.test/api/v1/", "ROOT_ORIGIN": "https://uro.example.test",
           "FRONTEND_URL": "https://uro.example.test/",
           "DATABASE_URL": "postgresql://root@cockroachdb:26257/uro?sslmode=disable",
           "REDIS_URL": "redis://redis:6379", "PORT": "4000",
           "PHOENIX_KEY_BASE": "k" * 64, "JOKEN_SIGNER": "j" * 32}
CHECK = {"test": ["CMD", "true"], "interval": "5s", "start_period": "30s",
         "start_interval": "1s"}


def cockroach_app(front: str, **extra) -> dict:
    return {"cockroachdb": {
        "image": "cockroachdb/cockroach:v25.1.1",
        "command": ["start-single-node", "--insecure", "--listen-addr=0.0.0.0:26257",
                    "--http-addr=0.0.0.0:8080"],
        "volumes": ["/mnt/tank/apps/cockroachdb/data:/cockroach/cockroach-data"],
        "healthcheck": CHECK, "restart": "unless-stopped", "networks": ["front"], **extra}}


def uro_app(env: dict | None = None, **uro) -> dict:
    return {
        "redis": {"image": "redis:7.4.2", "volumes": ["/mnt/tank/apps/uro/redis:/data"],
                  "healthcheck": CHECK, "restart": "unless-stopped", "networks": ["front"]},
        "uro": {"image": "ghcr.io/example/uro:2025.06", "environment": env or URO_ENV,
                "depends_on": {"redis": {"condition": "service_healthy"}},
                "healthcheck": CHECK, "networks": ["front"], **uro}}


@pytest.fixture
def docker(tmp_path) -> Env:
    return docker_on_a_pool(tmp_path)


def front(name: str = "site-front", external: bool = True) -> dict:
    return {"front": {"name": name, "external": external}}


def ingress(env: Env) -> None:
    """The app that creates the shared network (as the ingress chart does)."""
    job = env.create("ingress", {"caddy": {"image": "nginx:1.27", "networks": ["front"]}},
                     networks=front(external=False))
    env.advance(6)
    succeeded(job)


def container(env: Env, app: str, service: str):
    return env.node.apps.apps[app].containers[service]


# --- the runtime ---------------------------------------------------------------------------
def test_uro_becomes_healthy_only_after_cockroach_and_redis(docker):
    ingress(docker)
    job = docker.create("uro", uro_app(), networks=front())
    docker.advance(6)
    docker.advance(5)
    succeeded(job)
    # redis is healthy, uro started after it but cannot migrate: no database yet
    for _ in range(10):
        assert docker.states("uro") == {"redis": "running", "uro": "starting"}
        docker.advance(3)
    uro = container(docker, "uro", "uro").running_view
    assert uro.state["phase"] == "migrating"
    assert uro.ask("redis:6379", b"PING\r\n") == b"+PONG\r\n"
    assert uro.ask("cockroachdb:26257", b"") is None

    db_job = docker.create("cockroachdb", cockroach_app("site-front"), networks=front())
    docker.advance(5.5)      # the pull, then it starts
    succeeded(db_job)
    assert docker.states("cockroachdb") == {"cockroachdb": "starting"}
    assert docker.states("uro")["uro"] == "starting"
    docker.advance(3)
    assert uro.ask("cockroachdb:26257", b"") is None     # not ready before ~5 s
    docker.advance(10)
    assert docker.states("cockroachdb") == {"cockroachdb": "running"}
    assert docker.states("uro") == {"redis": "running", "uro": "running"}
    assert uro.state["migrations"]
    assert docker.app("uro")["state"] == "RUNNING"


def test_a_missing_uro_variable_crashes_it_naming_the_variable(docker):
    without = {k: v for k, v in URO_ENV.items() if k != "JOKEN_SIGNER"}
    ingress(docker)
    job = docker.create("uro", uro_app(without), networks=front())
    docker.advance(12)
    succeeded(job)
    assert docker.app("uro")["state"] == "CRASHED"
    uro = container(docker, "uro", "uro")
    assert (uro.exit_code, uro.error) == (
        1, "** (RuntimeError) environment variable JOKEN_SIGNER is missing.")


def test_redis_answers_resp_and_keeps_its_data_in_data(docker):
    ingress(docker)
    job = docker.create("uro", uro_app(), networks=front())
    docker.advance(11)
    succeeded(job)
    uro = container(docker, "uro", "uro").running_view
    assert uro.ask("redis:6379", b"*3\r\n$3\r\nSET\r\n$4\r\nuser\r\n$3\r\nada\r\n") == b"+OK\r\n"
    assert uro.ask("redis:6379", b"GET user\r\nGET nobody\r\n") == b"$3\r\nada\r\n$-1\r\n"
    assert uro.ask("redis:6379", b"FLY me\r\n").startswith(b"-ERR unknown command 'FLY'")

    succeeded(docker.call("app.stop", "uro"))          # redis saves on shutdown
    with docker.lock:
        assert docker.node.storage.read_file("/mnt/tank/apps/uro/redis/dump.rdb")
    job = docker.call("app.start", "uro")
    docker.advance(11)
    succeeded(job)
    uro = container(docker, "uro", "uro").running_view
    assert uro.ask("redis:6379", b"GET user\r\n") == b"$3\r\nada\r\n"


# --- the Caddy emulation ---------------------------------------------------------------------
def test_the_caddy_emulation_strips_a_path_prefix_before_proxying(files: HostFiles,
                                                                  loop: LoopThread,
                                                                  backend: EchoBackend):
    files.write_config({"admin": {"disabled": True}, "apps": {"http": {"servers": {"http": {
        "listen": [":80"], "automatic_https": {"disable": True}, "routes": [
            {"match": [{"host": ["uro.example.test"], "path": ["/api/v1/*"]}],
             "handle": [{"handler": "rewrite", "strip_path_prefix": "/api/v1"},
                        {"handler": "reverse_proxy", "upstreams": [{"dial": "uro:4000"}]}],
             "terminal": True},
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "uro:4000"}]}]},
        ]}}}}})
    ports = loop.serve(start(files, {"uro:4000": ("127.0.0.1", backend.port)}).services())

    def path_seen(path: str) -> str:
        reply = fetch(ports[80], path, host="uro.example.test")
        assert reply.status == 201
        return json.loads(reply.body)["path"]

    assert path_seen("/api/v1/health") == "/health"
    assert path_seen("/api/v1/health?full=1") == "/health?full=1"
    assert path_seen("/API/V1//avatars/a%20b.png") == "/avatars/a%20b.png"
    assert path_seen("/api/v1/") == "/"
    assert path_seen("/api/v2/health") == "/api/v2/health"     # not matched: not stripped


# --- over the wire, behind a cloud firewall -------------------------------------------------
@pytest.fixture(scope="module")
def world(slow_world: World) -> World:
    return slow_world


@pytest.fixture(scope="module")
def droplet(world, slow_client) -> Iterator[tuple[object, Rpc, pydo.Client, int]]:
    made = truenas_droplet(world, slow_client, "svc")
    with logged_in(world, made["id"]) as rpc:
        yield world.truenas.node_for(made["id"]), rpc, slow_client, made["id"]


def http_get(address: str, port: int, path: str, source: str) -> tuple[int, bytes]:
    with socket.create_connection((address, port), timeout=TIMEOUT,
                                  source_address=(source, 0)) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def refused(address: str, port: int, source: str) -> bool:
    """True when the connection is refused or reset before any byte comes back."""
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT,
                                      source_address=(source, 0)) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            return conn.recv(16) == b""
    except (ConnectionRefusedError, ConnectionResetError):
        return True


def test_services_answer_over_the_wire_and_internal_ports_stay_behind_the_firewall(
        world, droplet) -> None:
    entry, rpc, client, droplet_id = droplet
    address = entry.node.address
    disks = sorted(d["devname"] for d in rpc.result("disk.query", [["bus", "=", "SCSI"]]))
    assert rpc.job(world, "pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": disks}]}})["state"] == "SUCCESS"
    assert rpc.job(world, "docker.update", {"pool": "tank"}, seconds=15)["state"] == "SUCCESS"
    firewall = client.firewalls.create(body={
        "name": "services-fw", "droplet_ids": [droplet_id],
        "inbound_rules": [{"protocol": "tcp", "ports": "18081",
                           "sources": {"addresses": ["127.0.0.0/24"]}}]})["firewall"]
    try:
        db = {"app_name": "cockroachdb", "custom_app": True, "custom_compose_config": {
            "services": cockroach_app("site-front", ports=["18081:8080"]),
            "networks": front("wire-front", external=False)}}
        assert rpc.job(world, "app.create", db, seconds=6)["state"] == "SUCCESS"
        assert http_get(address, 18081, "/health?ready=1", "127.0.0.1")[0] == 503
        uro = {"app_name": "uro", "custom_app": True, "custom_compose_config": {
            "services": uro_app(), "networks": front("wire-front")}}
        assert rpc.job(world, "app.create", uro, seconds=8)["state"] == "SUCCESS"
        advance(world, 20)

        status, body = http_get(address, 18081, "/health?ready=1", "127.0.0.1")
        assert status == 200 and json.loads(body)["nodeId"] == 1
        assert refused(address, 18081, INTERNET)          # the console: admin CIDR only
        internal = {owner: port for port, owner in entry.server.published().items()
                    if owner.startswith("internal:")}
        assert set(internal) == {"internal:cockroachdb", "internal:uro"}
        uro_port = next(p for p, o in entry.server.published().items()
                        if o == "internal:uro" and http_probe(address, p))
        # the node's own traffic (its containers) reaches uro; the internet does not
        status, body = http_get(address, uro_port, "/health", address)
        assert (status, json.loads(body)) == (200, {"services": {"uro": "healthy"}})
        assert refused(address, uro_port, INTERNET)
        [app] = rpc.result("app.query", [["name", "=", "uro"]])
        assert app["state"] == "RUNNING"
    finally:
        client.firewalls.delete(firewall["id"])
        for name in ("uro", "cockroachdb"):
            rpc.job(world, "app.delete", name)


def http_probe(address: str, port: int) -> bool:
    """Whether an HTTP server answers there (uro's 4000, not redis's 6379)."""
    try:
        return http_get(address, port, "/health", address)[0] > 0
    except (OSError, ValueError, IndexError):
        return False
