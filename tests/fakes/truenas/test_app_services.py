"""The services of issue 5 as the fake node runs them: cockroach, redis and uro.

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

pytestmark = pytest.mark.redis        # uro's Redis is the real redis-server

INTERNET = "127.3.0.1"
URO_ENV = {"URL": "https://uro.example.test/api/v1/", "ROOT_ORIGIN": "https://uro.example.test",
           "FRONTEND_URL": "https://uro.example.test/",
           "DATABASE_URL": "postgresql://root@cockroachdb:26257/uro",
           "REDIS_URL": "redis://redis:6379", "PORT": "4000",
           "PHOENIX_KEY_BASE": "k" * 64, "JOKEN_SIGNER": "j" * 32}
CHECK = {"test": ["CMD", "true"], "interval": "5s", "start_period": "30s",
         "start_interval": "1s"}


def cockroach_app(front: str, **extra) -> dict:
    return {"cockroachdb": {
        "image": "cockroachdb/cockroach:v25.1.1",
        "command": ["start-single-node", "--insecure", "--http-addr=0.0.0.0:8080"],
        "environment": {"COCKROACH_DATABASE": "uro"},
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



def test_a_rollback_of_redis_dataset_restores_the_rdb_redis_wrote(docker):
    """Real redis-server with --dir on the app's dataset: its dump.rdb is a real RDB
    file on the pool, a snapshot holds it, and a rollback brings the data back."""
    for name in ("tank/apps", "tank/apps/uro", "tank/apps/uro/redis"):
        docker.call("pool.dataset.create", {"name": name, "type": "FILESYSTEM"})
    ingress(docker)
    job = docker.create("uro", uro_app(), networks=front())
    docker.advance(11)
    succeeded(job)
    uro = container(docker, "uro", "uro").running_view
    assert uro.ask("redis:6379", b"SET user ada\r\nSAVE\r\n") == b"+OK\r\n+OK\r\n"
    _wait_for_pool_file(docker, "/mnt/tank/apps/uro/redis/dump.rdb", b"ada")
    docker.call("pool.snapshot.create", {"dataset": "tank/apps/uro/redis", "name": "before"})
    assert uro.ask("redis:6379", b"SET user bob\r\nSAVE\r\n") == b"+OK\r\n+OK\r\n"
    succeeded(docker.call("app.stop", "uro"))
    with docker.lock:
        assert b"bob" in docker.node.storage.read_file("/mnt/tank/apps/uro/redis/dump.rdb")
    assert docker.call("pool.snapshot.rollback", "tank/apps/uro/redis@before") is None
    with docker.lock:
        rdb = docker.node.storage.read_file("/mnt/tank/apps/uro/redis/dump.rdb")
    assert rdb.startswith(b"REDIS") and b"ada" in rdb and b"bob" not in rdb
    job = docker.call("app.start", "uro")
    docker.advance(11)
    succeeded(job)
    uro = container(docker, "uro", "uro").running_view
    assert uro.ask("redis:6379", b"GET user\r\n") == b"$3\r\nada\r\n"


def _wait_for_pool_file(docker, path: str, needle: bytes, seconds: float = 5.0) -> None:
    """The mirror copies what Redis wrote to the pool within MIRROR_SECONDS (wall)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with docker.lock:
            try:
                if needle in docker.node.storage.read_file(path):
                    return
            except Exception:  # noqa: BLE001 - not there yet
                pass
        time.sleep(0.02)
    raise AssertionError(f"{path} never held {needle!r}")

# --- the images' contracts (each names the upstream fact it enforces) ------------------------
@pytest.mark.parametrize("listen", ["0.0.0.0:26257", "cockroachdb:26257", ":26000"])
def test_cockroach_start_single_node_refuses_a_listen_addr_it_cannot_use(docker, listen):
    """cockroachdb/cockroach build/deploy/cockroach.sh @02dbd5658dff parse_command_line:
    start-single-node takes --listen-addr only on 127.0.0.1/localhost and port 26257."""
    ingress(docker)
    app = cockroach_app("site-front")
    app["cockroachdb"]["command"].append(f"--listen-addr={listen}")
    job = docker.create("cockroachdb", app, networks=front())
    docker.advance(6)
    succeeded(job)
    node = container(docker, "cockroachdb", "cockroachdb")
    assert docker.app("cockroachdb")["state"] != "RUNNING"      # it exits, restarts, exits
    assert node.exit_code == 1
    assert "of listen_addr must be" in node.error


def _cockroach_store_with(docker, databases: list[str]) -> None:
    with docker.lock:
        docker.node.storage.write_file(
            "/mnt/tank/apps/cockroachdb/data/fake-cluster.json",
            json.dumps({"cluster_id": "c1", "databases": databases}).encode())


def _uro_against_existing_store(docker, with_init: bool) -> str:
    ingress(docker)
    _cockroach_store_with(docker, ["defaultdb", "postgres", "system"])
    app = cockroach_app("site-front")
    if with_init:
        app["db-init"] = {"image": "cockroachdb/cockroach:v25.1.1", "restart": "on-failure",
                          "command": ["sql", "--insecure", "--host=cockroachdb:26257",
                                      "--execute=CREATE DATABASE IF NOT EXISTS uro"],
                          "depends_on": {"cockroachdb": {"condition": "service_healthy"}},
                          "networks": ["front"]}
    succeeded_later = docker.create("cockroachdb", app, networks=front())
    docker.advance(20)
    succeeded(succeeded_later)
    job = docker.create("uro", uro_app(), networks=front())
    docker.advance(20)
    succeeded(job)
    return docker.app("uro")["state"]


def test_cockroach_database_is_created_only_on_an_empty_store(docker):
    """cockroach.sh run_single_node: COCKROACH_DATABASE is created when cockroach-data is
    empty; on a store that holds data it is not, and uro's ecto.migrate fails (3D000)."""
    assert _uro_against_existing_store(docker, with_init=False) == "CRASHED"
    uro = container(docker, "uro", "uro")
    assert 'database "uro" does not exist' in (uro.error or "")


def test_the_db_init_job_creates_uros_database_on_a_store_that_holds_data(docker):
    """The cockroachdb chart's db-init service (`cockroach sql ... CREATE DATABASE IF NOT
    EXISTS`, which cockroach.sh execs as the binary's own mode) closes that gap."""
    assert _uro_against_existing_store(docker, with_init=True) == "RUNNING"


def test_uro_serves_uploads_from_app_uploads(docker):
    """V-Sekai/uro @6783075f lib/uro/endpoint.ex: Plug.Static at /uploads from
    Path.expand("./uploads") under WORKDIR /app; a mount elsewhere serves nothing."""
    ingress(docker)
    db = docker.create("cockroachdb", cockroach_app("site-front"), networks=front())
    docker.advance(12)
    succeeded(db)
    with docker.lock:
        docker.node.storage.write_file("/mnt/tank/apps/uro/uploads/a.png", b"png")
    for target, found in (("/app/uploads", b"png"), ("/app/priv/static/uploads", None)):
        job = docker.create("uro", uro_app(volumes=[f"/mnt/tank/apps/uro/uploads:{target}"]),
                            networks=front())
        docker.advance(20)
        succeeded(job)
        uro = container(docker, "uro", "uro").running_view
        assert uro.read_file("/app/uploads/a.png") == found
        succeeded(docker.call("app.delete", "uro", {"remove_images": False}))


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


def test_the_charts_run_uro_on_a_cockroach_store_that_already_holds_data(docker, tmp_path):
    """charts/cockroachdb + charts/uro as `up` renders them, on a pool whose store was
    made without uro's database (an older chart, an init cut short): the chart's db-init
    job creates it, and uro migrates and runs. Without db-init uro crashes (3D000)."""
    from infra.charts.validate import prepare_site
    from infra.state import StateDir
    from steps.sites import build_site

    site = build_site("apps-1")
    rendered = {a.name: a for a in prepare_site(site, StateDir(tmp_path / "state"),
                                                  tls_ready=True, environ={})}
    for name in ("tank/apps", "tank/apps/cockroachdb", "tank/apps/cockroachdb/data",
                 "tank/apps/uro", "tank/apps/uro/uploads", "tank/apps/uro/redis"):
        docker.call("pool.dataset.create", {"name": name, "type": "FILESYSTEM"})
    ingress_job = docker.create("ingress", {"caddy": {"image": "nginx:1.27",
                                                      "networks": ["front"]}},
                                networks={"front": {"name": f"{site.name}-front"}})
    docker.advance(6)
    succeeded(ingress_job)
    _cockroach_store_with(docker, ["defaultdb", "postgres", "system"])
    for name in ("cockroachdb", "uro"):
        compose = {k: v for k, v in rendered[name].compose.items() if k != "x-truenas-site"}
        job = docker.call("app.create", {"app_name": name, "custom_app": True,
                                         "custom_compose_config": compose})
        docker.advance(30)
        succeeded(job)
        docker.advance(30)
    assert docker.app("uro")["state"] == "RUNNING"
    assert container(docker, "uro", "uro").running_view.state["migrations"]
