"""The fake TrueNAS app runtime, driven through its JSON-RPC methods on the virtual clock.

Calls go through `node.call` as the transport makes them (no network); the node's
listeners are a recording stand-in for `node.network` (the real one is exercised
in test_apps_wire.py). Images are test behaviours registered for test-only
repositories, so each test says what its containers do.
"""

from __future__ import annotations

import errno
import itertools
import threading
from pathlib import Path

import pytest

from fakes.clock import VirtualClock
from fakes.truenas import ejson
from fakes.truenas.apps import images
from fakes.truenas.apps.deploy import ComposeUp
from fakes.truenas.apps.images import ContainerFailed, ImageBehaviour
from fakes.truenas.errors import ValidationErrors
from fakes.truenas.jobs import Job
from fakes.truenas.node import CallContext, TrueNASNode
from tests.reference import truenas_schema

GIB = 2**30
_ids = itertools.count(1)


class Network:
    """Records what the runtime publishes and withdraws, like NodeServer refuses a
    port someone already holds."""

    def __init__(self) -> None:
        self.owners: dict[int, str] = {443: "ui", 80: "ui"}
        self.services: dict[int, object] = {}
        self.log: list[tuple[str, object]] = []

    def publish(self, port, service, owner):
        if port in self.owners:
            raise OSError(f"port {port} on 127.10.0.5 is already used by {self.owners[port]}")
        self.owners[port] = owner
        self.services[port] = service
        self.log.append(("publish", port))
        return port + 10000

    def withdraw(self, owner):
        for port in [p for p, o in self.owners.items() if o == owner]:
            del self.owners[port]
            self.services.pop(port, None)
        self.log.append(("withdraw", owner))

    def published(self):
        return dict(self.owners)


class Scripted(ImageBehaviour):
    """A test image: healthy from `healthy_from` (virtual time), failing its first
    `fail_starts` starts, listening on `listens`."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.healthy_from: float | None = 0.0
        self.fail_starts = 0
        self.listens: dict[int, object] = {}
        self.seen: list = []
        self.stopped = 0

    def start(self, container):
        self.seen.append(container)
        if self.fail_starts:
            self.fail_starts -= 1
            raise ContainerFailed("Error: loading config: open /etc/app.json: no such file")
        return dict(self.listens)

    def healthy(self, container):
        return self.healthy_from is not None and self.clock.now() >= self.healthy_from

    def stop(self, container):
        self.stopped += 1


class Env:
    def __init__(self, root: Path, clock: VirtualClock | None = None) -> None:
        self.clock = clock or VirtualClock(speed=1e-6)
        self.lock = threading.RLock()
        self.node = TrueNASNode(droplet_id=1, hostname="n1", address="127.10.0.5",
                                clock=self.clock, lock=self.lock, state_dir=root / "node",
                                api_keys={})
        self.network = Network()
        self.node.network = self.network
        self.advance(100)
        for name in ("vol-a", "vol-b"):
            (root / name).mkdir()
            self.node.plug_disk(name, 10 * GIB, root / name)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock.advance(seconds)

    def now(self) -> float:
        return self.clock.now()

    def call(self, method, *params):
        with self.lock:
            result = self.node.call(method, list(params), CallContext(message_id=next(_ids)))
        ejson.dumps(result.to_dict() if isinstance(result, Job) else result)
        return result

    def app(self, name):
        found = self.call("app.query", [["name", "=", name]])
        return found[0] if found else None

    def create(self, name, services, **extra):
        return self.call("app.create", {"app_name": name, "custom_app": True,
                                        "custom_compose_config": {"services": services,
                                                                  **extra}})

    def states(self, name):
        return {c["service_name"]: c["state"]
                for c in self.app(name)["active_workloads"]["container_details"]}


def succeeded(job):
    assert job.state == "SUCCESS", (job.state, job.error, job.logs_excerpt)
    return job.result


def conforms(method, value, key="result"):
    import jsonschema

    schema = truenas_schema(method, key)
    instance = {"result": value} if key == "result" else value
    jsonschema.Draft202012Validator(schema).validate(instance)


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


@pytest.fixture
def docker(env):
    succeeded(env.call("pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    job = env.call("docker.update", {"pool": "tank"})
    env.advance(15)
    succeeded(job)
    return env


@pytest.fixture
def image(env):
    """A fresh test repository per test, with its behaviour."""
    behaviour = Scripted(env.clock)
    repository = f"example.test/probe-{next(_ids)}"
    images.register(repository, behaviour)
    behaviour.repository = repository
    yield behaviour
    images._REGISTRY.pop(repository, None)


def svc(image, **fields):
    return {"image": f"{image.repository}:1.0", **fields}


# --- Docker --------------------------------------------------------------------------
def test_docker_is_unconfigured_until_pointed_at_an_imported_pool(env):
    assert env.call("docker.status")["status"] == "UNCONFIGURED"
    assert env.call("docker.config")["pool"] is None
    job = env.call("docker.update", {"pool": "nope"})
    assert job.state == "FAILED"
    assert job.exc_info["type"] == "VALIDATION"
    assert job.exc_info["extra"] == [["docker_update.pool", "Pool not found.", errno.EINVAL]]


def test_docker_update_creates_ix_apps_and_the_job_ends_when_docker_runs(env):
    succeeded(env.call("pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    job = env.call("docker.update", {"pool": "tank"})
    assert job.state == "RUNNING"
    assert env.call("docker.status")["status"] == "INITIALIZING"
    env.advance(15)
    config = succeeded(job)
    assert (config["pool"], config["dataset"]) == ("tank", "tank/ix-apps")
    status = env.call("docker.status")
    assert status == {"status": "RUNNING", "description": "Application(s) are currently running"}
    names = {d["name"] for d in env.call("pool.dataset.query")}
    assert {"tank/ix-apps", "tank/ix-apps/app_configs", "tank/ix-apps/app_mounts",
            "tank/ix-apps/docker", "tank/ix-apps/truenas_catalog"} <= names
    conforms("docker.update", config)
    conforms("docker.status", status)
    assert env.call("docker.config") == config


def test_apps_are_refused_while_docker_has_no_pool(env):
    job = env.create("web", {"web": {"image": "nginx:1.27"}})
    assert (job.state, job.error) == ("FAILED", "[EFAULT] No pool configured for Docker")
    assert env.call("app.query") == []


# --- app.create's checks ----------------------------------------------------------------
@pytest.mark.parametrize("name, message", [
    ("Web", "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'"),
    ("web-", "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'"),
    ("1web", "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'"),
    ("a" * 41, "String should have at most 40 characters"),
    ("", "String should have at least 1 character"),
])
def test_app_names_follow_the_schema_before_any_job(docker, name, message):
    with pytest.raises(ValidationErrors) as caught:
        docker.create(name, {"web": {"image": "nginx"}})
    assert caught.value.errors == [("app_create.app_name", message, errno.EINVAL)]


def test_a_second_app_of_the_same_name_is_eexist(docker, image):
    first = docker.create("web", {"web": svc(image)})
    docker.advance(5)
    succeeded(first)
    job = docker.create("web", {"web": svc(image)})
    assert job.state == "FAILED"
    assert (job.exc_info["errno"], job.error) == (
        errno.EEXIST, "[EEXIST] Application with name web already exists")


@pytest.mark.parametrize("payload, attribute, message", [
    ({}, "app_create.custom_compose_config", "This field is required"),
    ({"custom_compose_config": {"services": {"a": {"image": "x"}}},
      "custom_compose_config_string": "services: {}"},
     "app_create.custom_compose_config_string", "Only one of these fields should be provided"),
    ({"custom_compose_config_string": "services: [unclosed"},
     "app_create.custom_compose_config_string", "Invalid YAML provided"),
    ({"custom_compose_config_string": "services:\n  db:\n    image: postgres\n    environment:"
                                      "\n      PASSWORD: ${DB_PASSWORD:?set the password}\n"},
     "app_create.custom_compose_config_string",
     "Invalid compose configuration: error while interpolating services.db.environment."
     "PASSWORD: required variable DB_PASSWORD is missing a value: set the password"),
])
def test_the_compose_file_is_judged_inside_the_job(docker, payload, attribute, message):
    job = docker.call("app.create", {"app_name": "web", "custom_app": True, **payload})
    assert job.state == "FAILED" and job.exc_info["type"] == "VALIDATION"
    assert job.exc_info["extra"] == [[attribute, message, errno.EINVAL]]
    assert docker.app("web") is None


# --- deploying -------------------------------------------------------------------------------
def test_an_app_is_deploying_when_create_returns_and_running_once_healthy(docker, image):
    job = docker.create("web", {"web": svc(image, ports=["8080:80"], healthcheck={
        "test": ["CMD", "true"], "interval": "10s"})})
    assert docker.app("web")["state"] == "STOPPED"       # pulling: no containers yet
    docker.advance(5)
    entry = succeeded(job)
    assert entry["state"] == "DEPLOYING"
    assert docker.states("web") == {"web": "starting"}
    conforms("app.create", entry)
    docker.advance(10)
    entry = docker.app("web")
    assert entry["state"] == "RUNNING"
    workloads = entry["active_workloads"]
    assert workloads["used_ports"] == [{"container_port": 80, "protocol": "tcp",
                                        "host_ports": [{"host_port": 8080,
                                                        "host_ip": "0.0.0.0"}]}]
    assert workloads["images"] == [f"{image.repository}:1.0"]
    assert (entry["custom_app"], entry["version"], entry["human_version"]) == (
        True, "1.0.0", "1.0.0_custom")
    conforms("app.query", entry, key="item")
    assert docker.network.owners[8080] == "app:web"


def test_retrieve_config_returns_the_compose_file_and_portals_use_the_node_address(docker, image):
    compose = {"services": {"web": svc(image, ports=["8080:80"])},
               "x-portals": [{"name": "Web UI", "scheme": "http", "host": "0.0.0.0",
                              "port": 8080, "path": "/ui"}],
               "x-notes": "hello"}
    succeeded_job = docker.call("app.create", {"app_name": "web", "custom_app": True,
                                               "custom_compose_config": compose})
    docker.advance(5)
    succeeded(succeeded_job)
    entry = docker.call("app.get_instance", "web", {"extra": {"retrieve_config": True}})
    assert entry["config"] == compose
    assert entry["portals"] == {"Web UI": "http://127.10.0.5:8080/ui"}
    assert entry["notes"] == "hello"
    assert "config" not in docker.app("web")


def test_service_healthy_dependencies_start_first(docker, image):
    image.healthy_from = docker.now() + 60
    job = docker.create("shop", {
        "db": svc(image, healthcheck={"test": "check", "interval": "10s",
                                      "start_period": "2m"}),
        "web": svc(image, ports=["8080:80"],
                   depends_on={"db": {"condition": "service_healthy"}})})
    docker.advance(30)
    assert job.state == "RUNNING"                     # compose up waits for db
    assert docker.states("shop") == {"db": "starting", "web": "created"}
    assert docker.app("shop")["state"] == "DEPLOYING"
    assert 8080 not in docker.network.owners
    docker.advance(40)
    succeeded(job)
    assert docker.states("shop") == {"db": "running", "web": "running"}
    assert docker.app("shop")["state"] == "RUNNING"


def test_a_dependency_that_never_gets_healthy_fails_the_create(docker, image):
    image.healthy_from = None
    job = docker.create("shop", {
        "db": svc(image, healthcheck={"test": "check", "interval": "5s", "retries": 2}),
        "web": svc(image, ports=["8080:80"],
                   depends_on={"db": {"condition": "service_healthy"}})})
    docker.advance(30)
    assert job.state == "FAILED"
    assert job.error == ("[EFAULT] Failed 'up' action for 'shop' app. Please check "
                         "/var/log/app_lifecycle.log for more details")
    assert "dependency failed to start: container ix-shop-db-1 is unhealthy" in job.logs_excerpt
    assert docker.app("shop") is None                 # cleaned up, as middleware does
    assert "app:shop" not in docker.network.owners.values()


def test_a_malformed_image_reference_fails_at_pull(docker):
    job = docker.create("web", {"web": {"image": "Nginx:1.27"}})
    assert job.state == "FAILED"
    assert "invalid reference format" in job.logs_excerpt
    assert docker.app("web") is None


@pytest.mark.parametrize("volume, reason", [
    ("/etc/app:/etc/app", "the fake TrueNAS mounts host paths only from pools under /mnt"),
    ("/mnt/other/app:/data", "bind source path does not exist: /mnt/other/app"),
    ({"type": "bind", "source": "/mnt/tank/missing", "target": "/data"},
     "bind source path does not exist: /mnt/tank/missing"),
])
def test_host_paths_the_node_cannot_give_fail_the_create(docker, image, volume, reason):
    job = docker.create("web", {"web": svc(image, volumes=[volume])})
    docker.advance(5)
    assert job.state == "FAILED"
    assert reason in job.logs_excerpt


def test_bind_mounts_on_the_pool_are_allowed(docker, image):
    job = docker.create("web", {"web": svc(image, volumes=[
        "/mnt/tank/apps/new:/data",
        {"type": "bind", "source": "/mnt/tank", "target": "/pool", "read_only": True}])})
    docker.advance(5)
    succeeded(job)
    mounts = docker.app("web")["active_workloads"]["container_details"][0]["volume_mounts"]
    assert mounts == [
        {"source": "/mnt/tank/apps/new", "destination": "/data", "mode": "rw", "type": "bind"},
        {"source": "/mnt/tank", "destination": "/pool", "mode": "ro", "type": "bind"}]


@pytest.mark.parametrize("services, reason", [
    ({"web": {"ports": ["443:443"]}}, "failed to bind host port for 0.0.0.0:443"),
    ({"a": {"ports": ["9000:80"]}, "b": {"ports": ["9000:81"]}},
     "Bind for 0.0.0.0:9000 failed: port is already allocated"),
])
def test_a_published_port_already_used_fails_the_start(docker, image, services, reason):
    job = docker.create("web", {name: svc(image, **body) for name, body in services.items()})
    docker.advance(5)
    assert job.state == "FAILED"
    assert reason in job.logs_excerpt
    assert "driver failed programming external connectivity on endpoint ix-web-" \
        in job.logs_excerpt


def test_a_port_another_app_holds_is_already_allocated(docker, image):
    first = docker.create("one", {"web": svc(image, ports=["9000:80"])})
    docker.advance(5)
    succeeded(first)
    job = docker.create("two", {"web": svc(image, ports=["9000:80"])})
    assert job.state == "FAILED"
    assert "Bind for 0.0.0.0:9000 failed: port is already allocated" in job.logs_excerpt
    assert docker.app("one")["state"] == "RUNNING"


def test_a_process_that_exits_at_once_crashes_the_app(docker, image):
    image.fail_starts = 1
    job = docker.create("web", {"web": svc(image, ports=["8080:80"])})
    docker.advance(5)
    succeeded(job)                  # `up -d` started it; the process died afterwards
    assert docker.app("web")["state"] == "CRASHED"
    assert docker.states("web") == {"web": "crashed"}
    assert 8080 not in docker.network.owners


def test_a_restart_policy_brings_a_crashed_container_back(docker, image):
    image.fail_starts = 3
    job = docker.create("web", {"web": svc(image, restart="unless-stopped")})
    docker.advance(5)
    succeeded(job)
    # waiting to restart, the container counts as "exited": with nothing running the
    # app reads STOPPED (ix_apps/query.py), not CRASHED
    assert docker.app("web")["state"] == "STOPPED"
    docker.advance(1)                                    # 0.1 + 0.2 + 0.4 s of backoff
    assert docker.app("web")["state"] == "RUNNING"
    assert len(image.seen) == 4


# --- changing an app ----------------------------------------------------------------------
def _running(env, image, name="web", ports=("8080:80",)):
    job = env.create(name, {"web": svc(image, ports=list(ports)),
                            "worker": svc(image)})
    env.advance(5)
    succeeded(job)
    return {c["service_name"]: c["id"]
            for c in env.app(name)["active_workloads"]["container_details"]}


def test_update_recreates_every_container_as_truenas_does(docker, image):
    before = _running(docker, image)
    docker.network.log.clear()
    job = docker.call("app.update", "web", {"custom_compose_config": {"services": {
        "web": svc(image, ports=["8081:80"]), "worker": svc(image)}}})
    entry = succeeded(job)
    after = {c["service_name"]: c["id"] for c in entry["active_workloads"]["container_details"]}
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    assert docker.network.log[0] == ("withdraw", "app:web")
    assert ("publish", 8081) in docker.network.log
    assert 8080 not in docker.network.owners and docker.network.owners[8081] == "app:web"


def test_plain_compose_up_keeps_unchanged_services_running(docker, image):
    from fakes.truenas.apps.compose import load

    before = _running(docker, image)
    runtime = docker.node.apps
    app = runtime.apps["web"]
    app.project = load({"services": {"web": svc(image, ports=["8081:80"]),
                                     "worker": svc(image)}})
    outcome = []
    with docker.lock:
        ComposeUp(runtime, app, outcome.append, force_recreate=False).begin()
    assert outcome == [None]
    after = {c["service_name"]: c["id"]
             for c in docker.app("web")["active_workloads"]["container_details"]}
    assert after["worker"] == before["worker"]
    assert after["web"] != before["web"]


def test_stop_start_and_an_update_while_stopped(docker, image):
    _running(docker, image)
    assert succeeded(docker.call("app.stop", "web")) is None
    entry = docker.app("web")
    assert entry["state"] == "STOPPED"
    assert entry["active_workloads"]["container_details"] == []
    assert "app:web" not in docker.network.owners.values()
    job = docker.call("app.update", "web", {"custom_compose_config": {"services": {
        "web": svc(image, ports=["8082:80"])}}})
    assert succeeded(job)["state"] == "STOPPED"           # no compose while STOPPED
    succeeded(docker.call("app.start", "web"))
    assert docker.app("web")["state"] == "RUNNING"
    assert docker.network.owners[8082] == "app:web"
    entry = succeeded(docker.call("app.redeploy", "web"))
    assert entry["state"] == "RUNNING"


def test_delete_takes_everything_down(docker, image):
    _running(docker, image)
    stops = image.stopped
    assert succeeded(docker.call("app.delete", "web", {"remove_images": True})) is True
    assert docker.app("web") is None
    assert image.stopped == stops + 2
    assert "app:web" not in docker.network.owners.values()
    job = docker.call("app.delete", "web")
    assert job.state == "FAILED"
    assert job.exc_info["extra"] == [[None, "App web does not exist", errno.ENOENT]]


def test_switching_docker_to_another_pool_hides_the_apps_of_the_first(docker, image):
    _running(docker, image)
    job = docker.call("docker.update", {"pool": None})
    succeeded(job)
    assert docker.call("app.query") == []
    assert docker.call("docker.status")["status"] == "UNCONFIGURED"
    job = docker.call("docker.update", {"pool": "tank"})
    docker.advance(15)
    succeeded(job)
    assert docker.app("web")["state"] == "STOPPED"


# --- what a container sees -------------------------------------------------------------------
def test_a_container_reads_its_bind_mounts_and_finds_its_neighbours(docker, image):
    with docker.lock:
        docker.node.storage.write_file("/mnt/tank/apps/cfg/app.json", b'{"ok": true}')
    job = docker.create("web", {
        "proxy": svc(image, volumes=["/mnt/tank/apps/cfg:/etc/app:ro", "cache:/cache"]),
        "api": svc(image, ports=["14000:4000"]),
        "db": svc(image)}, volumes={"cache": {}})
    docker.advance(5)
    succeeded(job)
    proxy = next(c for c in image.seen if c.service == "proxy")
    assert proxy.mounts == {
        "/etc/app": "/mnt/tank/apps/cfg",
        "/cache": "/mnt/.ix-apps/docker/volumes/ix-web_cache/_data"}
    assert proxy.read_only == {"/etc/app"}
    assert proxy.read_file("/etc/app/app.json") == b'{"ok": true}'
    assert proxy.read_file("/etc/app/missing.json") is None
    assert proxy.resolve_upstream("api:4000") == ("127.10.0.5", 24000)
    assert proxy.resolve_upstream("ix-web-api-1:4000") == ("127.10.0.5", 24000)
    assert proxy.resolve_upstream("db:5432") is None        # not published
    assert proxy.resolve_upstream("elsewhere:80") is None
    assert proxy.running


def test_a_published_port_the_image_does_not_listen_on_accepts_and_closes(docker, image):
    marker = object()
    image.listens = {80: marker}
    job = docker.create("web", {"web": svc(image, ports=["8080:80", "8443:443"])})
    docker.advance(5)
    succeeded(job)
    assert docker.network.services[8080] is marker
    stand_in = docker.network.services[8443]
    assert stand_in.handler is images.accept_and_close


def test_an_image_the_fake_cannot_run_fails_the_deploy_naming_it(env):
    """Never a silent stand-in: an image with no behaviour is refused by name."""
    succeeded(env.call("pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    job = env.call("docker.update", {"pool": "tank"})
    env.advance(15)
    succeeded(job)
    job = env.create("mystery", {"web": {"image": "example.test/unknown:1.0"}})
    env.advance(6)
    assert job.state == "FAILED"
    assert "cannot run image 'example.test/unknown:1.0'" in job.logs_excerpt
