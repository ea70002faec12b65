"""The fake GoCD images: a server keeping its config on the pool, its API, agents registering.

Apps are deployed through the fake node's JSON-RPC methods on the virtual clock
(test_apps_runtime's Env: the node's listeners are a recording stand-in), and the
services the server publishes are served on a loop of the test's own, so the API is
spoken over real HTTP.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.truenas.apps import images
from fakes.truenas.apps.deploy import PULL_SECONDS
from fakes.truenas.apps.gocd import STARTUP_SECONDS, parse_server_url
from fakes.truenas.apps.gocd_config import CruiseConfig
from fakes.truenas.apps.images import ContainerFailed
from tests.budget import examples
from tests.fakes.truenas.helpers import LoopThread
from tests.fakes.truenas.test_apps_runtime import Env, succeeded

SERVER_IMAGE = "gocd/gocd-server:v25.3.0"
AGENT_IMAGE = "gocd/gocd-agent-ubuntu-24.04:v25.3.0"
GODATA = "/mnt/tank/apps/gocd/godata"
CONFIG = f"{GODATA}/config/cruise-config.xml"
PORT = 18153
V1 = "application/vnd.go.cd.v1+json"
V7 = "application/vnd.go.cd.v7+json"


def server_service(**extra: Any) -> dict:
    return {"image": SERVER_IMAGE, "ports": [f"{PORT}:8153"],
            "volumes": [f"{GODATA}:/godata", "/mnt/tank/apps/gocd/home:/home/go"],
            "healthcheck": {"test": ["CMD-SHELL",
                                     "curl -fsS http://localhost:8153/go/api/v1/health"],
                            "interval": "10s", "start_period": "120s",
                            "start_interval": "5s"},
            "restart": "unless-stopped", **extra}


AGENT_GODATA = "/mnt/tank/apps/gocd/agent"


def agent_service(key: str | None, volumes: tuple[str, ...] = (f"{AGENT_GODATA}:/godata",),
                  **env_extra: str) -> dict:
    environment = {"GO_SERVER_URL": "http://gocd-server:8153/go",
                   "AGENT_AUTO_REGISTER_HOSTNAME": "site-agent-1", **env_extra}
    if key is not None:
        environment["AGENT_AUTO_REGISTER_KEY"] = key
    return {"image": AGENT_IMAGE, "environment": environment, "restart": "unless-stopped",
            "volumes": list(volumes),
            "depends_on": {"gocd-server": {"condition": "service_healthy"}},
            "healthcheck": {"test": ["CMD-SHELL",
                                     "grep -qa agent-bootstrapper /proc/[0-9]*/cmdline"],
                            "interval": "10s", "start_interval": "2s",
                            "start_period": "30s"}}


def seed_config(env, key: str, groups: tuple[str, ...] = (), owned: bool = True) -> None:
    """cruise-config.xml written as infra's deploy does: filesystem.put (root's), then,
    when `owned`, given to go (1000:0) with the directory put made for it."""
    body = "".join(f'  <pipelines group="{g}" />\n' for g in groups)
    xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<cruise schemaVersion="139">\n'
           f'  <server agentAutoRegisterKey="{key}" />\n{body}</cruise>\n')
    with env.lock:
        env.node.storage.write_file(CONFIG, xml.encode())
    if owned:
        for path in (f"{GODATA}/config", CONFIG):
            job = env.call("filesystem.chown", {"path": path, "uid": 1000, "gid": 0})
            env.advance(1)
            succeeded(job)


def read_config(env) -> CruiseConfig:
    with env.lock:
        return CruiseConfig.parse(env.node.storage.read_file(CONFIG))


class Client:
    """HTTP to whatever the server currently publishes on PORT (a restart publishes a
    new service: it is served again)."""

    def __init__(self, env, loop: LoopThread) -> None:
        self.env = env
        self.loop = loop
        self._served: dict[int, int] = {}

    def request(self, method: str, path: str, *, accept: str | None = None,
                body: Any = None, content_type: str | None = "application/json",
                ) -> tuple[int, str, Any]:
        service = self.env.network.services[PORT]
        if id(service) not in self._served:
            self._served[id(service)] = self.loop.serve({8153: service})[8153]
        conn = http.client.HTTPConnection("127.0.0.1", self._served[id(service)], timeout=10)
        headers = {"Host": "ci.example.test"}
        if accept:
            headers["Accept"] = accept
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            if content_type:
                headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            ctype = response.getheader("Content-Type", "")
        finally:
            conn.close()
        return response.status, ctype, (json.loads(raw) if raw else None)


@pytest.fixture
def gocd(tmp_path, loop) -> Iterator[Client]:
    """A node with a mirrored pool and Docker running on it (as test_apps_runtime's)."""
    docker = Env(tmp_path)
    succeeded(docker.call("pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    job = docker.call("docker.update", {"pool": "tank"})
    docker.advance(15)
    succeeded(job)
    give_godata_to(docker, 1000)      # as infra's deploy does (charts/gocd owner)
    yield Client(docker, loop)
    for app in list(docker.call("app.query")):
        job = docker.call("app.delete", app["name"])
        docker.advance(1)
        succeeded(job)


def give_godata_to(env, uid: int) -> None:
    """The server's /godata as its own dataset, owned by `uid` (filesystem.chown)."""
    existing = {d["name"] for d in env.call("pool.dataset.query")}
    for name in ("tank/apps", "tank/apps/gocd", "tank/apps/gocd/godata",
                 "tank/apps/gocd/agent"):
        if name not in existing:
            env.call("pool.dataset.create", {"name": name, "type": "FILESYSTEM"})
    job = env.call("filesystem.chown", {"path": AGENT_GODATA, "uid": 1000, "gid": 0})
    env.advance(1)
    succeeded(job)
    job = env.call("filesystem.chown", {"path": GODATA, "uid": uid, "gid": 0,
                                        "options": {"recursive": True}})
    env.advance(1)
    succeeded(job)


def deploy(env, services: dict, seconds: float = STARTUP_SECONDS + 15) -> None:
    job = env.create("gocd", services)
    env.advance(seconds)
    env.advance(seconds)       # the agent starts once the server is healthy
    succeeded(job)


def container(env, service: str):
    app = env.node.apps.apps["gocd"]
    return app.containers[service]


def restart(env) -> None:
    job = env.call("app.stop", "gocd")
    env.advance(1)
    succeeded(job)
    job = env.call("app.start", "gocd")
    env.advance(STARTUP_SECONDS + 15)
    succeeded(job)


# --- the config file -------------------------------------------------------------------
def test_a_first_start_writes_a_config_with_a_fresh_key_and_server_id(gocd):
    deploy(gocd.env, {"gocd-server": server_service()})
    config = read_config(gocd.env)
    assert len(config.agent_auto_register_key) >= 32
    assert config.server_id
    assert config.groups() == []
    key = config.agent_auto_register_key
    restart(gocd.env)
    assert read_config(gocd.env).agent_auto_register_key == key     # reused, not renewed


def test_a_config_already_on_the_pool_is_used_and_completed(gocd):
    seed_config(gocd.env, "seeded-key-0001", groups=("seeded",))
    deploy(gocd.env, {"gocd-server": server_service()})
    config = read_config(gocd.env)
    assert config.agent_auto_register_key == "seeded-key-0001"
    assert config.server_id                      # what the server generates was added
    status, _, body = gocd.request("GET", "/go/api/admin/pipeline_groups", accept=V1)
    assert status == 200
    assert [g["name"] for g in body["_embedded"]["groups"]] == ["seeded"]


def test_a_config_that_is_not_xml_crashes_the_server_naming_the_file(gocd):
    with gocd.env.lock:
        gocd.env.node.storage.write_file(CONFIG, b"{not xml")
    for path in (f"{GODATA}/config", CONFIG):
        succeeded(gocd.env.call("filesystem.chown", {"path": path, "uid": 1000, "gid": 0}))
    gocd.env.create("gocd", {"gocd-server": server_service(restart="no")})
    gocd.env.advance(60)
    assert gocd.env.app("gocd")["state"] == "CRASHED"
    assert "cruise-config.xml" in container(gocd.env, "gocd-server").error


def test_a_godata_the_go_user_does_not_own_crashes_the_server(gocd):
    """GoCD runs as uid 1000 (gid 0): a /godata left to root (a fresh dataset) cannot be
    written; the entrypoint's mkdir fails and `try` exits 111 (gocd/docker-gocd-server
    docker-entrypoint.sh @a5d686bc lines 17-19, 41-43). charts/gocd gives its datasets
    to 1000:0."""
    give_godata_to(gocd.env, 0)
    gocd.env.create("gocd", {"gocd-server": server_service(restart="no")})
    gocd.env.advance(60)
    assert gocd.env.app("gocd")["state"] == "CRASHED"
    server = container(gocd.env, "gocd-server")
    assert server.exit_code == 111
    assert "Permission denied" in server.error


def test_a_config_directory_put_left_to_root_fails_the_entrypoint(gocd):
    """filesystem.put made godata/config as root: the entrypoint cannot copy
    logback-include.xml into it and exits 111 (docker-entrypoint.sh lines 61-63). This
    is what writing the chart's files AFTER chowning the dataset produced."""
    seed_config(gocd.env, "seeded-key-0001", owned=False)
    gocd.env.create("gocd", {"gocd-server": server_service(restart="no")})
    gocd.env.advance(60)
    server = container(gocd.env, "gocd-server")
    assert (gocd.env.app("gocd")["state"], server.exit_code) == ("CRASHED", 111)
    assert "logback-include.xml" in server.error


def test_a_config_file_left_to_root_stops_the_server(gocd):
    """Even with the directory given to go, a root-owned cruise-config.xml (0644)
    cannot be rewritten by GoCD as uid 1000: the server does not come up."""
    seed_config(gocd.env, "seeded-key-0001")
    job = gocd.env.call("filesystem.chown", {"path": CONFIG, "uid": 0, "gid": 0})
    gocd.env.advance(1)
    succeeded(job)
    gocd.env.create("gocd", {"gocd-server": server_service(restart="no")})
    gocd.env.advance(60)
    assert gocd.env.app("gocd")["state"] == "CRASHED"
    assert "AccessDenied" in container(gocd.env, "gocd-server").error


def test_a_read_only_godata_stops_the_server(gocd):
    """A replication's copy (readonly=on) is GoCD's own config and data, owners and
    all, and still no process writes there: the server does not come up [I: which
    write fails first]. After readonly off (a promotion) it starts on that data."""
    seed_config(gocd.env, "seeded-key-0001", groups=("production",))
    first = gocd.env.call("pool.dataset.update", "tank/apps/gocd", {"readonly": "ON"})
    assert first["readonly"]["value"] == "ON"
    gocd.env.create("gocd", {"gocd-server": server_service(restart="no")})
    gocd.env.advance(60)
    assert gocd.env.app("gocd")["state"] == "CRASHED"
    assert "Read-only file system" in container(gocd.env, "gocd-server").error
    gocd.env.call("pool.dataset.update", "tank/apps/gocd", {"readonly": "OFF"})
    job = gocd.env.call("app.redeploy", "gocd")
    gocd.env.advance(STARTUP_SECONDS + 15)
    succeeded(job)
    status, _, body = gocd.request("GET", "/go/api/admin/pipeline_groups", accept=V1)
    assert (status, [g["name"] for g in body["_embedded"]["groups"]]) == (200, ["production"])


# --- health --------------------------------------------------------------------------------
def test_health_is_503_while_starting_then_ok(gocd):
    job = gocd.env.create("gocd", {"gocd-server": server_service()})
    gocd.env.advance(PULL_SECONDS + 1)             # pulled and started, not up yet
    status, _, body = gocd.request("GET", "/go/api/v1/health")
    assert status == 503
    assert gocd.env.app("gocd")["state"] == "DEPLOYING"
    gocd.env.advance(STARTUP_SECONDS + 10)
    succeeded(job)
    status, ctype, body = gocd.request("GET", "/go/api/v1/health")
    assert (status, body) == (200, {"health": "OK"})
    assert ctype.startswith("application/json")
    assert gocd.env.app("gocd")["state"] == "RUNNING"


# --- pipeline groups -------------------------------------------------------------------------
def test_pipeline_groups_are_created_listed_and_deleted_in_the_config_file(gocd):
    deploy(gocd.env, {"gocd-server": server_service()})
    status, ctype, body = gocd.request("POST", "/go/api/admin/pipeline_groups", accept=V1,
                                       body={"name": "first"})
    assert status == 200, body
    assert ctype.startswith(V1)
    assert body["name"] == "first"
    assert body["_links"]["self"]["href"] == \
        "http://ci.example.test/go/api/admin/pipeline_groups/first"
    assert [g.name for g in read_config(gocd.env).groups()] == ["first"]

    for duplicate in ("first", "FIRST"):
        status, _, body = gocd.request("POST", "/go/api/admin/pipeline_groups", accept=V1,
                                       body={"name": duplicate})
        assert status == 422
        assert "already exists" in body["message"]

    status, _, body = gocd.request("GET", "/go/api/admin/pipeline_groups/first", accept=V1)
    assert (status, body["name"]) == (200, "first")
    status, ctype, body = gocd.request("DELETE", "/go/api/admin/pipeline_groups/first",
                                       accept=V1)
    assert status == 200 and ctype.startswith(V1)
    assert read_config(gocd.env).groups() == []
    status, _, _ = gocd.request("DELETE", "/go/api/admin/pipeline_groups/first", accept=V1)
    assert status == 404


def test_a_restart_keeps_groups_and_a_rolled_back_file_brings_the_old_ones_back(gocd):
    deploy(gocd.env, {"gocd-server": server_service()})
    gocd.request("POST", "/go/api/admin/pipeline_groups", accept=V1, body={"name": "kept"})
    with gocd.env.lock:
        before = gocd.env.node.storage.read_file(CONFIG)
    gocd.request("POST", "/go/api/admin/pipeline_groups", accept=V1, body={"name": "later"})

    restart(gocd.env)
    _, _, body = gocd.request("GET", "/go/api/admin/pipeline_groups", accept=V1)
    assert [g["name"] for g in body["_embedded"]["groups"]] == ["kept", "later"]

    with gocd.env.lock:                       # what a dataset rollback does to the file
        gocd.env.node.storage.write_file(CONFIG, before)
    restart(gocd.env)
    _, _, body = gocd.request("GET", "/go/api/admin/pipeline_groups", accept=V1)
    assert [g["name"] for g in body["_embedded"]["groups"]] == ["kept"]


def test_the_api_wants_its_media_types(gocd):
    deploy(gocd.env, {"gocd-server": server_service()})
    status, _, _ = gocd.request("GET", "/go/api/admin/pipeline_groups",
                                accept="application/json")
    assert status == 404
    status, ctype, _ = gocd.request("GET", "/go/api/admin/pipeline_groups",
                                    accept="application/vnd.go.cd+json")
    assert status == 200 and ctype.startswith(V1)
    status, _, _ = gocd.request("POST", "/go/api/admin/pipeline_groups", accept=V1,
                                body={"name": "x"}, content_type="text/plain")
    assert status == 415
    status, _, body = gocd.request("POST", "/go/api/admin/pipeline_groups", accept=V1,
                                   body={"name": ".hidden"})
    assert status == 422 and "Invalid group name" in body["message"]
    status, _, _ = gocd.request("GET", "/go/api/agents", accept=V1)
    assert status == 404
    assert read_config(gocd.env).groups() == []


# --- agents ---------------------------------------------------------------------------------
def agents(gocd) -> list[dict]:
    status, ctype, body = gocd.request("GET", "/go/api/agents", accept=V7)
    assert status == 200 and ctype.startswith(V7)
    return body["_embedded"]["agents"]


def test_an_agent_with_the_servers_key_registers_itself_enabled(gocd):
    seed_config(gocd.env, "right-key")
    deploy(gocd.env, {"gocd-server": server_service(),
                      "gocd-agent": agent_service("right-key",
                                                  AGENT_AUTO_REGISTER_RESOURCES="linux")})
    [agent] = agents(gocd)
    assert agent["hostname"] == "site-agent-1"
    assert agent["agent_config_state"] == "Enabled"
    assert agent["agent_state"] == "Idle"
    assert agent["resources"] == ["linux"]
    assert gocd.env.app("gocd")["state"] == "RUNNING"

    restart(gocd.env)                # same agent again, not a second one
    gocd.env.advance(700)
    assert [a["uuid"] for a in agents(gocd)] == [agent["uuid"]]


def test_an_agent_without_its_own_godata_registers_anew_when_recreated(gocd):
    """The agent keeps its identity in /godata/config/guid.txt; the image declares
    VOLUME /godata (gocd/gocd Dockerfile.agent.ftl @024dd9b7), an anonymous volume that
    dies with the container: without the chart's mount each recreation is a new agent."""
    seed_config(gocd.env, "right-key")
    deploy(gocd.env, {"gocd-server": server_service(),
                      "gocd-agent": agent_service("right-key", volumes=())})
    [first] = agents(gocd)
    restart(gocd.env)
    gocd.env.advance(700)
    assert len({a["uuid"] for a in agents(gocd)} | {first["uuid"]}) == 2


def test_an_agent_with_a_wrong_key_is_not_enabled_and_keeps_trying(gocd):
    seed_config(gocd.env, "right-key")
    deploy(gocd.env, {"gocd-server": server_service(),
                      "gocd-agent": agent_service("wrong-key")})
    assert [a["agent_config_state"] for a in agents(gocd)] == ["Pending"]
    gocd.env.advance(3600)
    assert [a["agent_config_state"] for a in agents(gocd)] == ["Pending"]
    assert gocd.env.app("gocd")["state"] == "RUNNING"          # it keeps running
    assert container(gocd.env, "gocd-agent").restarts == 0


def test_an_agent_stopped_is_shown_as_lost(gocd):
    seed_config(gocd.env, "k")
    deploy(gocd.env, {"gocd-server": server_service(), "gocd-agent": agent_service("k")})
    with gocd.env.lock:
        container(gocd.env, "gocd-agent").process_exited(137, "killed")
    assert [a["agent_state"] for a in agents(gocd)] == ["LostContact"]


def test_an_agent_without_a_server_url_exits_naming_it(gocd):
    services = {"gocd-server": server_service(),
                "gocd-agent": {**agent_service("k"), "environment": {}, "restart": "no"}}
    job = gocd.env.create("gocd", services)
    gocd.env.advance(STARTUP_SECONDS + 15)
    gocd.env.advance(10)
    agent = container(gocd.env, "gocd-agent")
    assert agent.state == "crashed"
    assert "GO_SERVER_URL" in agent.error
    succeeded(job)                  # compose started it; the process then exited
    assert gocd.env.app("gocd")["state"] == "CRASHED"


def test_an_agent_that_cannot_reach_the_server_is_not_listed(gocd):
    # the server on a network the agent does not share: its name does not resolve
    services = {"gocd-server": {**server_service(), "networks": ["ci"]},
                "gocd-agent": {**agent_service(None), "depends_on": {},
                               "networks": ["other"]}}
    job = gocd.env.create("gocd", services, networks={"ci": {}, "other": {}})
    gocd.env.advance(STARTUP_SECONDS + 15)
    succeeded(job)
    gocd.env.advance(60)
    assert agents(gocd) == []
    assert container(gocd.env, "gocd-agent").state == "running"


# --- units --------------------------------------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("http://gocd-server:8153/go", ("gocd-server", 8153)),
    ("https://ci.example.test/go/", ("ci.example.test", 443)),
])
def test_server_urls_the_agent_accepts(url, expected):
    assert parse_server_url(url) == expected


@pytest.mark.parametrize("url", ["gocd-server:8153", "http://gocd-server:8153/",
                                 "ftp://x/go", "http://x:99999/go"])
def test_server_urls_the_agent_refuses_name_the_variable(url):
    with pytest.raises(ContainerFailed, match="GO_SERVER_URL"):
        parse_server_url(url)


NAMES = st.from_regex(r"[a-zA-Z0-9_\-][a-zA-Z0-9_\-.]{0,20}", fullmatch=True)


@settings(max_examples=examples(fast=15, deep=50), deadline=None)
@given(st.lists(NAMES, max_size=8, unique_by=str.lower))
def test_groups_survive_the_file_round_trip(names):
    config = CruiseConfig.default()
    for name in names:
        config.add_group(name)
    again = CruiseConfig.parse(config.to_bytes())
    assert [g.name for g in again.groups()] == names
    assert again.agent_auto_register_key == config.agent_auto_register_key


def test_both_images_are_known_to_the_runtime():
    assert type(images.behaviour_for("gocd/gocd-server")).__name__ == "GoCDServerImage"
    assert type(images.behaviour_for("gocd/gocd-agent-ubuntu-24.04")).__name__ == \
        "GoCDAgentImage"
