"""What the fake app runtime runs for `gocd/gocd-server` and `gocd/gocd-agent-*` images.

The server (`GoCDServerImage`, its state `GoCDServer`; its HTTP API is gocd_api.py, its
config file gocd_config.py) keeps pipeline groups in cruise-config.xml on the pool and
answers once up; the agent (`GoCDAgentImage`, `AgentProcess`) registers with it on the
virtual clock. Both images run as go, uid 1000 with primary group 0: their entrypoints
make their /godata directories and copy their logback files there first, exiting 111
when they cannot (`_entrypoint`, with the upstream files and commits named there); the
server does not come up on a read-only /godata (a replication's copy) [I]; a
file or directory they write is theirs (1000:0). The server rewrites cruise-config.xml
at start, so one it may not write stops it; the agent keeps its identity in
/godata/config/guid.txt, so an agent without its own /godata registers anew when
recreated. Each class says the facts it follows; [I] marks an inference, not a fact
read in GoCD's source or documentation.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fakes.truenas.apps import gocd_api
from fakes.truenas.apps.gocd_config import (
    ConfigInvalid,
    ConfigNotSaved,
    CruiseConfig,
    Group,
    GroupNotEmpty,
)
from fakes.truenas.apps.images import ContainerFailed, ImageBehaviour, RunningContainer, register
from fakes.truenas.errors import CallError
from fakes.truenas.server import StreamService

log = logging.getLogger(__name__)

HTTP_PORT = 8153                 # the gocd-server image exposes only 8153 (reference §4)
GO_UID = 1000
CONFIG_PATH = "/godata/config/cruise-config.xml"
STARTUP_SECONDS = 30.0           # [I] a guess: real servers take tens of seconds
AGENT_BOOT_SECONDS = 5.0         # [I] the agent's JVM start before its first contact
PING_SECONDS = 10.0              # agents ping the server about every 10 s
RETRY_FAST_FOR = 600.0
SLOW_PING_SECONDS = 600.0
SERVER_VERSION = "25.3.0"

SERVER_REPOSITORY = "gocd/gocd-server"
# the agent images GoCD publishes for v25.x [I: the list changes between releases]
AGENT_REPOSITORIES = ("gocd/gocd-agent-ubuntu-24.04", "gocd/gocd-agent-ubuntu-22.04",
                      "gocd/gocd-agent-ubuntu-20.04", "gocd/gocd-agent-wolfi",
                      "gocd/gocd-agent-alpine-3.21", "gocd/gocd-agent-alpine-3.20",
                      "gocd/gocd-agent-debian-12", "gocd/gocd-agent-docker-dind")

ENABLED, PENDING = "Enabled", "Pending"


@dataclass
class Agent:
    uuid: str
    hostname: str
    ip_address: str
    config_state: str
    state: str = "Idle"
    resources: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    sandbox: str = "/go"
    operating_system: str = "Linux"


class GoCDServer:
    """One running gocd-server process: its config, its agents, whether it is up.

    - Pipeline groups live in cruise-config.xml only: each change through the API is
      written to it at once, and a restart (or a dataset rollback followed by a
      restart) rereads it. A real server also notices a file changed under it while
      running and reloads it [I]; the fake rereads it on start only.
    - It is up STARTUP_SECONDS (virtual) after the start. That figure is a guess: a
      real server takes tens of seconds (JVM, H2 database, plugins) depending on the
      machine. Before then /go/api/v1/health and every API answer 503 and the
      healthcheck fails.
    - Agents are kept in the server process's memory. A real server keeps them in
      its database under /godata/db, so an enabled agent stays listed across
      restarts; here a running agent appears again at its next ping after a server
      restart.
    - No authentication is modelled: a fresh GoCD has no authorization configuration
      and its API is open; the fake stays that way."""

    def __init__(self, container: RunningContainer, config: CruiseConfig,
                 config_host_path: str | None) -> None:
        self.container = container
        self.config = config
        self.config_host_path = config_host_path
        self.ready_at = container.now() + STARTUP_SECONDS
        self.agents: dict[str, Agent] = {}
        self._lock = threading.Lock()        # the in-memory state
        self._writing = threading.Lock()     # one config change at a time, in file order

    # --- state ------------------------------------------------------------------------
    def up(self) -> bool:
        return self.container.running and self.container.now() >= self.ready_at

    # --- pipeline groups (persisted in cruise-config.xml) --------------------------------
    def groups(self) -> list[Group]:
        with self._lock:
            return self.config.groups()

    def group(self, name: str) -> Group | None:
        with self._lock:
            return self.config.find_group(name)

    def create_group(self, name: str) -> Group:
        """Raises GroupExists, ConfigNotSaved. Takes node.lock (call it off the
        node's loop)."""
        with self._writing:
            with self._lock:
                group = self.config.add_group(name)
                data = self.config.to_bytes()
            try:
                self._persist(data)
            except ConfigNotSaved:
                with self._lock:
                    self.config.remove_group(name)
                raise
            return group

    def delete_group(self, name: str) -> Group:
        """Raises GroupNotFound, GroupNotEmpty, ConfigNotSaved (gocd_config). Takes node.lock."""
        with self._writing:
            with self._lock:
                existing = self.config.find_group(name)
                if existing is not None and existing.pipelines:
                    raise GroupNotEmpty(existing.name)
                group = self.config.remove_group(name)
                data = self.config.to_bytes()
            try:
                self._persist(data)
            except ConfigNotSaved:
                with self._lock:
                    self.config.add_group(group.name)
                raise
            return group

    def _persist(self, data: bytes) -> None:
        if self.config_host_path is None:
            return           # no mount: the container's own layer, lost with it
        try:
            self.container.write_host_file(self.config_host_path, data)
        except CallError as exc:
            raise ConfigNotSaved(f"could not save {CONFIG_PATH}: {exc}") from exc

    # --- agents ---------------------------------------------------------------------------
    def register(self, agent: Agent, key: str) -> str:
        """An agent's registration or ping; returns its agent_config_state."""
        with self._lock:
            known = self.agents.get(agent.uuid)
            if known is not None and known.config_state == ENABLED:
                known.state = "Idle"
                return ENABLED
            # the key is compared as given: an empty server key enables nobody
            server_key = self.config.agent_auto_register_key
            agent.config_state = ENABLED if server_key and key == server_key else PENDING
            agent.state = "Idle"
            self.agents[agent.uuid] = agent
            return agent.config_state

    def lost(self, agent_uuid: str) -> None:
        with self._lock:
            known = self.agents.get(agent_uuid)
            if known is not None:
                known.state = "LostContact"

    def agent_list(self) -> list[Agent]:
        with self._lock:
            return [Agent(**vars(a)) for a in self.agents.values()]


# ---------------------------------------------------------------------------------------
# The images


class GoCDServerImage(ImageBehaviour):
    """On start the server reads /godata/config/cruise-config.xml through the
    container's mounts; a missing file is created with a fresh serverId and
    agentAutoRegisterKey, as GoCD's first start does, and written back to the pool; a
    file lacking those attributes gets them and is written back. A file that is not a
    <cruise> XML document makes the process exit 1 with the reason [I: a real server
    logs the parse error and does not come up]."""

    def start(self, container: RunningContainer) -> dict[int, Any]:
        _entrypoint(container, SERVER_DIRS, SERVER_LOGBACK)
        godata = container.host_path("/godata")
        if godata is not None and container.host_read_only(godata):
            # [I] GoCD writes under /godata from its first moments: its logs
            # (/godata/logs), its H2 database (/godata/db, opened read-write) and
            # cruise-config.xml, which it rewrites at start (`_may_write` below). No
            # source read says which of them fails first on a read-only file system, nor
            # the exact line; that it cannot come up there is the inference.
            raise ContainerFailed(f"java.nio.file.FileSystemException: /godata/logs/"
                                  f"go-server.log: Read-only file system ({godata} is on a "
                                  "read-only dataset)")
        host_path = container.host_path(CONFIG_PATH)
        if host_path is not None and not _may_write(container, host_path):
            # GoCD rewrites cruise-config.xml at start (serverId, upgrades): as go it
            # cannot when the file is someone else's [I: the exact log line]
            raise ContainerFailed(f"java.nio.file.AccessDeniedException: {CONFIG_PATH} (the "
                                  f"server runs as uid {GO_UID}, gid {GO_GID})")
        data = container.read_host_file(host_path) if host_path else None
        if data is None:
            config, changed = CruiseConfig.default(), True
        else:
            try:
                config = CruiseConfig.parse(data)
            except ConfigInvalid as exc:
                raise ContainerFailed(f"Error: {exc}") from exc
            changed = config.complete()
        if changed and host_path is not None:
            try:
                container.write_host_file(host_path, config.to_bytes(), (GO_UID, GO_GID))
            except CallError as exc:
                raise ContainerFailed(f"Error: cannot write {CONFIG_PATH}: {exc}") from exc
        server = GoCDServer(container, config, host_path)
        container.state["server"] = server
        return {HTTP_PORT: StreamService(gocd_api.handler(server))}

    def healthy(self, container: RunningContainer) -> bool:
        server = container.state.get("server")
        return server is not None and server.up()

    def answer(self, container: RunningContainer, port: int, request: bytes) -> bytes | None:
        """An agent's registration or ping (the fake's simplified message, see the module
        docstring), or its goodbye when it stops."""
        server = container.state.get("server")
        if server is None or port != HTTP_PORT:
            return None
        try:
            message = json.loads(request)
        except ValueError:
            return json.dumps({"status": 400}).encode()
        if not server.up():
            return json.dumps({"status": 503}).encode()
        if message.get("op") == "lost":
            server.lost(str(message.get("uuid", "")))
            return json.dumps({"status": 200}).encode()
        agent = Agent(uuid=str(message["uuid"]), hostname=str(message["hostname"]),
                      ip_address=str(message.get("ip_address", "")), config_state=PENDING,
                      resources=list(message.get("resources", [])),
                      environments=list(message.get("environments", [])))
        state = server.register(agent, str(message.get("key", "")))
        return json.dumps({"status": 200, "agent_config_state": state}).encode()


def parse_server_url(url: str) -> tuple[str, int]:
    """GO_SERVER_URL -> (host, port). Raises ContainerFailed as the agent exits."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ContainerFailed(f"GO_SERVER_URL must be an http(s) URL, not {url!r}")
    if parts.path.rstrip("/") != "/go":
        raise ContainerFailed(f"GO_SERVER_URL must end with /go: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ContainerFailed(f"GO_SERVER_URL has an invalid port: {url!r}") from exc
    return parts.hostname, port


def _listed(value: str | None) -> list[str]:
    return sorted({item.strip() for item in (value or "").split(",") if item.strip()})


class AgentProcess:
    """One running agent: pings its server on the virtual clock.

    AGENT_BOOT_SECONDS after start, then every PING_SECONDS, it reaches the server at
    the URL's host:port over the container networks and registers. A real agent
    registers over HTTP (/go/admin/agent, with a token handshake first); the fake
    sends one simplified JSON message with RunningContainer.ask (the runtime's
    in-model exchange: the name must resolve over a shared network and the server must
    listen on that port, else it is "connection refused"), answered by
    GoCDServerImage.answer, so that registration happens on the virtual clock without
    socket I/O under the node's lock. That message is the fake's own, not GoCD's wire
    format; the public API (gocd_api.py) is real HTTP.

    A key equal to the server's agentAutoRegisterKey makes the agent "Enabled" at
    once; any other key leaves it "Pending" (awaiting an administrator), and it keeps
    pinging; a server that is not reachable or not up yet is retried. After
    RETRY_FAST_FOR of trying (or once enabled) the fake pings every SLOW_PING_SECONDS
    rather than every 10 s, so that moving the virtual clock weeks ahead does not run
    a ping every 10 s of it (a simplification, like the runtime's hourly probes of a
    healthy container)."""

    def __init__(self, container: RunningContainer, host: str, port: int,
                 agent_uuid: str) -> None:
        env = container.environment
        self.container = container
        self.host, self.port = host, port
        self.key = env.get("AGENT_AUTO_REGISTER_KEY", "")
        # Docker's default hostname is the container id's prefix; the fake uses its name
        self.hostname = env.get("AGENT_AUTO_REGISTER_HOSTNAME") or container.name
        self.uuid = agent_uuid
        self.resources = _listed(env.get("AGENT_AUTO_REGISTER_RESOURCES"))
        self.environments = _listed(env.get("AGENT_AUTO_REGISTER_ENVIRONMENTS"))
        self.started_at = container.now()
        self.config_state: str | None = None      # None: never reached a server
        self.last_problem: str | None = None

    def ping(self) -> None:
        """A clock callback (node.lock held): register or ping, then schedule the next."""
        dial = f"{self.host}:{self.port}"
        reply = self.container.ask(dial, json.dumps({
            "op": "register", "uuid": self.uuid, "hostname": self.hostname,
            "key": self.key, "ip_address": self.container.node_address,
            "resources": self.resources, "environments": self.environments}).encode())
        answer = _decoded(reply)
        if reply is None:
            self.last_problem = f"dial tcp {dial}: connection refused"
        elif answer.get("status") != 200:
            self.last_problem = f"the server answered {answer.get('status', 'nothing')}"
        else:
            self.config_state = str(answer.get("agent_config_state"))
            self.last_problem = None
        slow = (self.config_state == ENABLED
                or self.container.now() - self.started_at >= RETRY_FAST_FOR)
        self.container.call_later(SLOW_PING_SECONDS if slow else PING_SECONDS, self.ping)

    def stopped(self) -> None:
        if self.config_state is not None:
            self.container.ask(f"{self.host}:{self.port}",
                               json.dumps({"op": "lost", "uuid": self.uuid}).encode())


def _decoded(reply: bytes | None) -> dict:
    try:
        answer = json.loads(reply or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class GoCDAgentImage(ImageBehaviour):
    """The agent needs GO_SERVER_URL (http(s)://host:port/go; a missing or malformed
    one makes the process exit 1 naming it [I: the real image's entrypoint and
    agent-bootstrapper refuse to start without a usable server URL]);
    AGENT_AUTO_REGISTER_KEY, _HOSTNAME, _RESOURCES and _ENVIRONMENTS are read as the
    image documents them (gocd/docker-gocd-agent README).

    It has no HTTP endpoint: its healthcheck passes while the process runs. A chart's
    healthcheck should test for the process, e.g.
    `["CMD-SHELL", "grep -qa agent-bootstrapper /proc/[0-9]*/cmdline"]` (no procps
    needed [I: the image's java command line names agent-bootstrapper.jar]); the fake
    does not run the test. When it stops, the server shows it as LostContact at once
    (a real server waits for missed pings)."""

    def start(self, container: RunningContainer) -> dict[int, Any]:
        url = container.environment.get("GO_SERVER_URL", "").strip()
        if not url:
            raise ContainerFailed("GO_SERVER_URL is not set: the agent needs the server's "
                                  "URL (http://<server>:8153/go)")
        host, port = parse_server_url(url)
        _entrypoint(container, AGENT_DIRS, AGENT_LOGBACK)
        agent = AgentProcess(container, host, port, _agent_uuid(container))
        container.state["agent"] = agent
        container.call_later(AGENT_BOOT_SECONDS, agent.ping)
        return {}                     # the agent listens on nothing

    def healthy(self, container: RunningContainer) -> bool:
        return container.running

    def stop(self, container: RunningContainer) -> None:
        agent = container.state.get("agent")
        if agent is not None:
            agent.stopped()


# The images' entrypoints, as the go user (uid 1000, primary group root: server
# Dockerfile @a5d686bc line 65 `adduser -D -u ${UID} -s /bin/bash -G root go`, line 85
# `USER go`; agent: gocd/gocd DistroBehavior.groovy @024dd9b7 `useradd -l -u ${UID} -g
# root`). gocd/docker-gocd-server docker-entrypoint.sh @a5d686bc lines 37-43: mkdir -p
# /godata/{artifacts,config,db,logs,plugins} when missing; lines 61-63: copy
# logback-include.xml into /godata/config when missing; `try` exits 111 on a failure.
# The agent's (gocd/gocd buildSrc/.../gocd-docker-agent/docker-entrypoint.sh @06bf2b2f)
# does the same with config, logs, pipelines and its three logback files.
GO_GID = 0
SERVER_DIRS = ("artifacts", "config", "db", "logs", "plugins")
SERVER_LOGBACK = ("logback-include.xml",)
AGENT_DIRS = ("config", "logs", "pipelines")
AGENT_LOGBACK = ("agent-bootstrapper-logback-include.xml", "agent-launcher-logback-include.xml",
                 "agent-logback-include.xml")
EXIT_TRY = 111
GUID_FILE = "/godata/config/guid.txt"


def _may_write(container: RunningContainer, host_path: str) -> bool:
    """Whether go (1000:0) may write `host_path` (or create in it): the owner's bits for
    uid 1000; the fake keeps no group write bits (its directories are 0755 and files
    0644 as TrueNAS makes them), so gid 0 alone is not enough. A path that is not there
    is judged by its parent."""
    while host_path and host_path != "/":
        owner = container.host_owner(host_path)
        if owner is not None:
            return owner[0] == GO_UID
        host_path = host_path.rsplit("/", 1)[0]
    return False


def _entrypoint(container: RunningContainer, dirs: tuple[str, ...],
                logback: tuple[str, ...]) -> None:
    volume = container.host_path("/godata")
    if volume is None:
        return      # the image's own VOLUME /godata (go:root, chown -R in the Dockerfile)
    files = container.list_host_files(volume) or {}
    present = {name.split("/", 1)[0] for name in files}
    for each in dirs:
        if each not in present and not _may_write(container, volume):
            raise ContainerFailed(f"/docker-entrypoint.sh: cannot mkdir -v -p /godata/{each}"
                                  f" (mkdir: can't create directory '/godata/{each}': "
                                  "Permission denied)", exit_code=EXIT_TRY)
    for name in logback:
        if f"config/{name}" in files:
            continue
        target = f"{volume}/config/{name}"
        if not _may_write(container, f"{volume}/config"):
            raise ContainerFailed(f"/docker-entrypoint.sh: cannot cp -rfv /go-server/config/"
                                  f"{name} /go-working-dir/config/{name} (Permission denied)",
                                  exit_code=EXIT_TRY)
        container.write_host_file(target, b"<included/>\n", (GO_UID, GO_GID))


def _agent_uuid(container: RunningContainer) -> str:
    """The agent's identity: config/guid.txt under /godata, made on its first start
    (GoCD's docs on cloning an agent: the GUID file is `<agent working dir>/config/
    guid.txt`; the image's entrypoint links /go/config to /godata/config). Without a
    mount on /godata it lives in the container's anonymous volume and dies with the
    container: a recreated agent registers as a new one."""
    host = container.host_path(GUID_FILE)
    if host is not None:
        known = container.read_host_file(host)
        if known:
            return known.decode().strip()
        fresh = str(uuid.uuid4())
        container.write_host_file(host, fresh.encode(), (GO_UID, GO_GID))
        return fresh
    return str(uuid.uuid4())


SERVER = GoCDServerImage()
AGENT = GoCDAgentImage()
BEHAVIOUR = SERVER
BEHAVIOURS: dict[str, ImageBehaviour] = {SERVER_REPOSITORY: SERVER,
                                         **dict.fromkeys(AGENT_REPOSITORIES, AGENT)}
# every agent variant, not only those LAZY_MODULES names, once this module is loaded
for _repository, _behaviour in BEHAVIOURS.items():
    register(_repository, _behaviour)
