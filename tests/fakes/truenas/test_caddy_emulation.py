"""The fake `caddy` image (fakes/truenas/apps/caddy*.py) as a client sees it.

Each test serves a CaddyInstance on free 127.0.0.1 ports (an asyncio loop on a thread,
like the node's) and talks to it with http.client / ssl, the way a browser or the TLS
probe would. The host filesystem is a dict; the container sees it through the ingress
chart's bind mounts. Behaviour followed: Caddy 2.8.4 (see the module docstrings).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from fakes.truenas.apps.caddy import (
    BEHAVIOUR,
    CaddyConfigError,
    CaddyInstance,
    NotEmulated,
    host_path,
    parse_command,
)
from fakes.truenas.apps.caddy_http import host_matches, path_matches
from fakes.truenas.apps.images import ContainerFailed

POOL = "/mnt/tank/apps/ingress"
MOUNTS = {"/etc/caddy": f"{POOL}/config", "/certs": f"{POOL}/certs", "/srv/acme": f"{POOL}/acme"}
CONFIG_FILE = f"{POOL}/config/caddy.json"
COMMAND = ["caddy", "run", "--config", "/etc/caddy/caddy.json", "--watch"]


# ---------------------------------------------------------------------------------------
# The world around the container


class HostFiles:
    """The node's files under /mnt (what read_host_file reads)."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def read(self, path: str) -> bytes | None:
        with self._lock:
            return self._files.get(path)

    def write(self, path: str, data: bytes | str) -> None:
        with self._lock:
            self._files[path] = data.encode() if isinstance(data, str) else data

    def write_config(self, config: dict[str, Any]) -> None:
        self.write(CONFIG_FILE, json.dumps(config, indent=1))


class LoopThread:
    """An asyncio loop on its own thread serving the instance's services, like the node's
    network does; close() stops every listener, connection and task it started."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.AbstractServer] = []
        self.writers: set[asyncio.StreamWriter] = set()

    def call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def serve(self, services: dict[int, Any]) -> dict[int, int]:
        async def start() -> dict[int, int]:
            ports = {}
            for port, service in services.items():
                async def handle(reader, writer, service=service):
                    self.writers.add(writer)
                    try:
                        await service.handler(reader, writer)
                    finally:
                        self.writers.discard(writer)
                        writer.close()

                server = await asyncio.start_server(handle, "127.0.0.1", 0,
                                                    ssl=service.ssl_context)
                self.servers.append(server)
                ports[port] = server.sockets[0].getsockname()[1]
            return ports

        return self.call(start())

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


class EchoBackend:
    """A backend (the `uro` service) that answers with what it received, as JSON."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _echo(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                payload = json.dumps({"method": self.command, "path": self.path,
                                      "headers": [[k.lower(), v] for k, v in self.headers.items()],
                                      "body": body}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Backend", "uro")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _echo

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@dataclass
class Certs:
    ca_file: str
    ca: trustme.CA


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    peer_names: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Configs (the contract's subset, as helper F's chart writes it)


def ingress_config(*, routes: dict[str, str] | None = None, tls: bool = True,
                   protocol_min: str = "tls1.2", not_found_body: str | None = None,
                   healthz: bool = True) -> dict[str, Any]:
    body = not_found_body or "no service is published at {http.request.host}\n"
    http_routes = [{"match": [{"path": ["/.well-known/acme-challenge/*"]}],
                    "handle": [{"handler": "file_server", "root": "/srv/acme"}]}]
    if healthz:
        http_routes.append({"match": [{"path": ["/healthz"]}],
                            "handle": [{"handler": "static_response", "status_code": 200,
                                        "body": "ok\n"}]})
    http_routes.append({"handle": [{
        "handler": "static_response", "status_code": 308,
        "headers": {"Location": ["https://{http.request.host}{http.request.uri}"]}}]})
    servers: dict[str, Any] = {
        "http": {"listen": [":80"], "automatic_https": {"disable": True},
                 "routes": http_routes}}
    apps: dict[str, Any] = {"http": {"servers": servers}}
    if tls:
        apps["tls"] = {"certificates": {"load_files": [
            {"certificate": "/certs/fullchain.pem", "key": "/certs/privkey.pem"}]}}
        https_routes = [{"match": [{"host": [host]}],
                         "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}]}
                        for host, dial in (routes or {}).items()]
        https_routes.append({"handle": [{
            "handler": "static_response", "status_code": 404,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"]}, "body": body}]})
        servers["https"] = {"listen": [":443"], "automatic_https": {"disable": True},
                            "tls_connection_policies": [{"protocol_min": protocol_min}],
                            "routes": https_routes}
    return {"admin": {"disabled": True}, "apps": apps}


def install_cert(files: HostFiles, ca: trustme.CA, *names: str, stem: str = "") -> None:
    leaf = ca.issue_cert(*names)
    files.write(f"{POOL}/certs/{stem}fullchain.pem",
                b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    files.write(f"{POOL}/certs/{stem}privkey.pem", leaf.private_key_pem.bytes())


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = trustme.CA(organization_name="Caddy emulation test root")
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return Certs(ca_file=str(path), ca=ca)


@pytest.fixture
def upstreams(backend: EchoBackend) -> dict[str, tuple[str, int]]:
    return {"uro:4000": ("127.0.0.1", backend.port)}


def start(files: HostFiles, upstreams: dict[str, tuple[str, int]] | None = None,
          command: list[str] | None = None) -> CaddyInstance:
    table = dict(upstreams or {})
    instance = CaddyInstance.from_command(command or COMMAND, MOUNTS, files.read, table.get,
                                          check_interval=0.0)
    instance.load()
    return instance


def fetch(port: int, path: str = "/", *, host: str = "example.test", method: str = "GET",
          body: bytes | None = None, headers: dict[str, str] | None = None,
          tls: ssl.SSLContext | None = None, sni: str | None = None,
          conn: http.client.HTTPConnection | None = None) -> Reply:
    if conn is None:
        conn = connect(port, tls=tls, sni=sni)
    conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    names = []
    if isinstance(conn.sock, ssl.SSLSocket):
        cert = conn.sock.getpeercert()
        names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    return Reply(response.status, response.headers, data, names)


def connect(port: int, *, tls: ssl.SSLContext | None = None,
            sni: str | None = None) -> http.client.HTTPConnection:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=sni)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.sock = sock
    return conn


def trusting(certs: Certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certs.ca_file)


_OLD_TLS = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")


def old_tls_client(highest: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers nothing newer than `highest` (seclevel 0 so that OpenSSL on
    the client side lets TLS 1.0/1.1 out at all)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = highest
    return ctx


# ---------------------------------------------------------------------------------------
# Starting: what makes `caddy run` exit (the container crashes with that reason)


@dataclass
class StubContainer:
    """The parts of images.RunningContainer the caddy behaviour uses."""

    files: HostFiles
    command: list[str] = field(default_factory=lambda: list(COMMAND))
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, str] = field(default_factory=lambda: dict(MOUNTS))
    published_ports: list[int] = field(default_factory=lambda: [80, 443])
    healthcheck_test: tuple[str, ...] = ("CMD", "wget", "-q", "-O", "/dev/null",
                                         "http://127.0.0.1:80/healthz")
    state: dict[str, Any] = field(default_factory=dict)

    def read_host_file(self, path: str) -> bytes | None:
        return self.files.read(path)

    def resolve_upstream(self, dial: str) -> tuple[str, int] | None:
        return None


@pytest.mark.parametrize(("config", "reason"), [
    (b"{\"apps\": ", "config is not valid JSON"),
    (json.dumps({"apps": {"http": {"servers": {"s": {"listen": [":80"], "routes": [
        {"handle": [{"handler": "nope"}]}]}}}}}), "unknown module: http.handlers.nope"),
    (json.dumps({"apps": {"http": {"servers": {"s": {"listn": [":80"]}}}}}),
     'unknown field "listn"'),
    (json.dumps(ingress_config()), "open /certs/fullchain.pem: no such file or directory"),
    (json.dumps({"apps": {"http": {"servers": {"a": {"listen": [":80"]},
                                               "b": {"listen": [":80"]}}}}}),
     "listener address repeated"),
])
def test_a_config_caddy_refuses_crashes_the_container(files: HostFiles, config: bytes | str,
                                                      reason: str) -> None:
    files.write(CONFIG_FILE, config)
    with pytest.raises(ContainerFailed) as failed:
        BEHAVIOUR.start(StubContainer(files))
    assert reason in failed.value.reason
    assert failed.value.exit_code == 1


def test_a_missing_config_file_crashes_the_container(files: HostFiles) -> None:
    with pytest.raises(ContainerFailed, match="reading config from file: open "
                                              "/etc/caddy/caddy.json: no such file"):
        BEHAVIOUR.start(StubContainer(files))


def test_what_the_fake_does_not_emulate_is_refused_by_name(files: HostFiles) -> None:
    files.write_config({"apps": {"http": {"servers": {"s": {
        "listen": [":80"], "routes": [{"handle": [{"handler": "headers"}]}]}}}}})
    with pytest.raises(NotEmulated, match="http.handlers.headers"):
        start(files)
    files.write_config({"apps": {"http": {"servers": {"s": {"listen": [":443"]}}}}})
    with pytest.raises(NotEmulated, match="automatic HTTPS"):
        start(files)


def test_the_behaviour_publishes_a_service_for_every_published_port(files: HostFiles) -> None:
    files.write_config(ingress_config(tls=False))
    container = StubContainer(files)
    services = BEHAVIOUR.start(container)
    assert set(services) == {80, 443}
    assert all(service.ssl_context is None for service in services.values())
    BEHAVIOUR.stop(container)
    assert "caddy" not in container.state


def test_the_command_line_is_read_like_caddy_run() -> None:
    assert parse_command(COMMAND).config_path == "/etc/caddy/caddy.json"
    assert parse_command(COMMAND).watch
    assert not parse_command(["caddy", "run", "--config=/etc/caddy/caddy.json"]).watch
    with pytest.raises(NotEmulated, match="caddyfile"):
        parse_command(None)                      # the image's default CMD: a Caddyfile
    with pytest.raises(CaddyConfigError, match="unknown flag: --bogus"):
        parse_command(["caddy", "run", "--bogus"])


def test_container_paths_resolve_through_the_longest_mount() -> None:
    mounts = {"/srv": "/mnt/a", "/srv/acme": "/mnt/b"}
    assert host_path("/srv/acme/x", mounts) == "/mnt/b/x"
    assert host_path("/srv/other/../acme/y", mounts) == "/mnt/b/y"
    assert host_path("/srv/z", mounts) == "/mnt/a/z"
    assert host_path("/etc/passwd", mounts) is None


# ---------------------------------------------------------------------------------------
# Port 80: ACME http-01 tokens, health, redirect to https


def test_http_redirects_to_https_with_the_host_and_the_uri(files: HostFiles,
                                                           loop: LoopThread) -> None:
    files.write_config(ingress_config(tls=False))
    ports = loop.serve(start(files).services())
    reply = fetch(ports[80], "/docs/a%20b?x=1&y=2", host="Uro.Example.Test:80")
    assert reply.status == 308
    assert reply.headers["Location"] == "https://Uro.Example.Test/docs/a%20b?x=1&y=2"
    assert reply.headers["Server"] == "Caddy"
    assert reply.body == b""


def test_an_acme_token_is_served_from_the_acme_mount(files: HostFiles,
                                                     loop: LoopThread) -> None:
    files.write_config(ingress_config(tls=False))
    token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
    files.write(f"{POOL}/acme/.well-known/acme-challenge/{token}", f"{token}.thumbprint")
    ports = loop.serve(start(files).services())
    reply = fetch(ports[80], f"/.well-known/acme-challenge/{token}", host="uro.example.test")
    assert (reply.status, reply.body) == (200, f"{token}.thumbprint".encode())
    assert reply.headers.get("Content-Type") is None      # no extension: no sniffing
    missing = fetch(ports[80], "/.well-known/acme-challenge/unknown", host="uro.example.test")
    assert (missing.status, missing.body) == (404, b"")
    posted = fetch(ports[80], f"/.well-known/acme-challenge/{token}", method="POST",
                   body=b"x", host="uro.example.test")
    assert posted.status == 405 and posted.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", [
    "/../config/caddy.json",
    "/%2e%2e/%2e%2e/config/caddy.json",
    "/.well-known/acme-challenge/../../../config/caddy.json",
    "/.well-known/acme-challenge/..%2f..%2f..%2fconfig/caddy.json",
])
def test_file_server_never_serves_a_file_outside_its_root(files: HostFiles, loop: LoopThread,
                                                          path: str) -> None:
    files.write_config({"apps": {"http": {"servers": {"files": {
        "listen": [":80"], "routes": [{"handle": [{"handler": "file_server",
                                                   "root": "/srv/acme"}]}]}}}}})
    ports = loop.serve(start(files).services())
    reply = fetch(ports[80], path)
    assert reply.status == 404
    assert b"apps" not in reply.body


def test_the_healthcheck_probe_answers_from_the_config(files: HostFiles) -> None:
    files.write_config(ingress_config(tls=False))
    container = StubContainer(files)
    BEHAVIOUR.start(container)
    assert BEHAVIOUR.healthy(container)
    # without the /healthz route, wget gets the redirect to https://127.0.0.1: unhealthy
    files.write_config(ingress_config(tls=False, healthz=False))
    assert not BEHAVIOUR.healthy(container)


def test_the_probe_works_on_a_thread_that_runs_an_event_loop(files: HostFiles) -> None:
    """Probes run under the node's lock on whatever thread advances the clock."""
    files.write_config(ingress_config(tls=False))
    container = StubContainer(files)
    BEHAVIOUR.start(container)

    async def inside_a_loop() -> bool:
        return BEHAVIOUR.healthy(container)

    assert asyncio.run(inside_a_loop())


def test_a_request_from_inside_the_container(files: HostFiles, loop: LoopThread) -> None:
    files.write_config(ingress_config(tls=False))
    instance = start(files)
    status, headers, body = loop.call(instance.local_request(80, "/healthz"))
    assert (status, body, headers["server"]) == (200, b"ok\n", "Caddy")
    status, headers, _ = loop.call(instance.local_request(80, "/elsewhere?q=1"))
    assert (status, headers["location"]) == (308, "https://127.0.0.1/elsewhere?q=1")


def test_head_gets_the_headers_of_get_without_the_body(files: HostFiles,
                                                       loop: LoopThread) -> None:
    files.write_config(ingress_config(tls=False))
    ports = loop.serve(start(files).services())
    reply = fetch(ports[80], "/healthz", method="HEAD")
    assert (reply.status, reply.body, reply.headers["Content-Length"]) == (200, b"", "3")


def test_a_request_no_route_handles_gets_an_empty_200(files: HostFiles,
                                                      loop: LoopThread) -> None:
    files.write_config({"apps": {"http": {"servers": {"s": {"listen": [":80"], "routes": [
        {"match": [{"host": ["only.example.test"]}],
         "handle": [{"handler": "static_response", "body": "only"}]}]}}}}})
    ports = loop.serve(start(files).services())
    assert fetch(ports[80], host="ONLY.example.test").body == b"only"
    reply = fetch(ports[80], host="other.example.test")
    assert (reply.status, reply.body) == (200, b"")


# ---------------------------------------------------------------------------------------
# Port 443: certificates by SNI, versions, the 404 page, the proxy


def test_each_hostname_gets_its_own_certificate(certs: Certs, files: HostFiles,
                                                loop: LoopThread) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    install_cert(files, certs.ca, "gocd.example.test", stem="gocd-")
    install_cert(files, certs.ca, "*.apps.example.test", stem="apps-")
    config = ingress_config()
    config["apps"]["tls"]["certificates"]["load_files"] += [
        {"certificate": "/certs/gocd-fullchain.pem", "key": "/certs/gocd-privkey.pem"},
        {"certificate": "/certs/apps-fullchain.pem", "key": "/certs/apps-privkey.pem"}]
    files.write_config(config)
    ports = loop.serve(start(files).services())
    for name, expected in [("uro.example.test", "uro.example.test"),
                           ("gocd.example.test", "gocd.example.test"),
                           ("ci.apps.example.test", "*.apps.example.test")]:
        reply = fetch(ports[443], host=name, tls=trusting(certs), sni=name)
        assert reply.peer_names == [expected]      # and it verified for that name
        assert reply.status == 404


@pytest.mark.parametrize("sni", ["unknown.example.test", None])
def test_a_name_without_certificate_fails_the_handshake(certs: Certs, files: HostFiles,
                                                        loop: LoopThread,
                                                        sni: str | None) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config())
    ports = loop.serve(start(files).services())
    client = trusting(certs)
    client.check_hostname = False
    # Go's crypto/tls answers a GetCertificate error with an internal_error alert
    with pytest.raises(ssl.SSLError, match="ALERT_INTERNAL_ERROR"):
        connect(ports[443], tls=client, sni=sni)


@_OLD_TLS
@pytest.mark.parametrize(("protocol_min", "refused", "accepted"), [
    ("tls1.2", ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2),
    ("tls1.3", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3),
])
def test_tls_older_than_protocol_min_is_refused(certs: Certs, files: HostFiles,
                                                loop: LoopThread, protocol_min: str,
                                                refused: ssl.TLSVersion,
                                                accepted: ssl.TLSVersion) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config(protocol_min=protocol_min))
    ports = loop.serve(start(files).services())
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        connect(ports[443], tls=old_tls_client(refused), sni="uro.example.test")
    conn = connect(ports[443], tls=old_tls_client(accepted), sni="uro.example.test")
    assert conn.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[accepted]
    conn.close()


@_OLD_TLS
def test_tls_1_0_is_refused_too(certs: Certs, files: HostFiles, loop: LoopThread) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config())
    ports = loop.serve(start(files).services())
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        connect(ports[443], tls=old_tls_client(ssl.TLSVersion.TLSv1), sni="uro.example.test")


def test_a_hostname_without_a_route_gets_a_404_page_naming_it(certs: Certs, files: HostFiles,
                                                              loop: LoopThread,
                                                              upstreams: dict) -> None:
    install_cert(files, certs.ca, "uro.example.test", "www.example.test")
    files.write_config(ingress_config(routes={"uro.example.test": "uro:4000"}))
    ports = loop.serve(start(files, upstreams).services())
    reply = fetch(ports[443], "/x", host="www.example.test", tls=trusting(certs),
                  sni="www.example.test")
    assert reply.status == 404
    assert reply.body == b"no service is published at www.example.test\n"
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_reverse_proxy_forwards_the_request_and_streams_the_answer(
        certs: Certs, files: HostFiles, loop: LoopThread, upstreams: dict) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config(routes={"uro.example.test": "uro:4000"}))
    ports = loop.serve(start(files, upstreams).services())
    reply = fetch(ports[443], "/api/things?page=2", method="POST", body=b'{"a": 1}',
                  host="URO.example.test", tls=trusting(certs), sni="uro.example.test",
                  headers={"X-Forwarded-For": "6.6.6.6", "Connection": "keep-alive, X-Drop",
                           "X-Drop": "hop", "Content-Type": "application/json"})
    assert reply.status == 201
    assert reply.headers["X-Backend"] == "uro"
    assert "Caddy" in reply.headers.get_all("Server")
    seen = json.loads(reply.body)
    headers = dict(seen["headers"])
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/api/things?page=2",
                                                            '{"a": 1}')
    assert headers["host"] == "URO.example.test"               # passed through as sent
    assert headers["x-forwarded-for"] == "127.0.0.1"           # the client's is not trusted
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == "URO.example.test"
    assert "x-drop" not in headers and "connection" not in headers


@pytest.mark.parametrize("reachable", [False, True])
def test_an_unreachable_upstream_is_a_502(certs: Certs, files: HostFiles, loop: LoopThread,
                                          reachable: bool) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config(routes={"uro.example.test": "uro:4000"}))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    table = {"uro:4000": ("127.0.0.1", dead_port)} if reachable else {}
    ports = loop.serve(start(files, table).services())
    reply = fetch(ports[443], host="uro.example.test", tls=trusting(certs),
                  sni="uro.example.test")
    assert (reply.status, reply.body) == (502, b"")


# ---------------------------------------------------------------------------------------
# --watch: reloads


def test_a_changed_config_is_served_without_closing_the_listener(
        certs: Certs, files: HostFiles, loop: LoopThread) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config(not_found_body="v1 {http.request.host}"))
    instance = start(files)
    ports = loop.serve(instance.services())
    kept = connect(ports[443], tls=trusting(certs), sni="uro.example.test")
    assert fetch(ports[443], host="uro.example.test", conn=kept).body == b"v1 uro.example.test"
    files.write_config(ingress_config(not_found_body="v2 {http.request.host}"))
    fresh = fetch(ports[443], host="uro.example.test", tls=trusting(certs),
                  sni="uro.example.test")
    assert fresh.body == b"v2 uro.example.test"                # same listener, new config
    # a connection kept alive across the reload gets the new config, then is closed
    # (Caddy's graceful shutdown of the old server)
    again = fetch(ports[443], host="uro.example.test", conn=kept)
    assert again.body == b"v2 uro.example.test"
    assert again.headers["Connection"] == "close"
    assert instance.reloads == 1


def test_a_reload_that_fails_keeps_the_old_config(certs: Certs, files: HostFiles,
                                                  loop: LoopThread) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config(not_found_body="old"))
    instance = start(files)
    ports = loop.serve(instance.services())
    broken = ingress_config(not_found_body="new")
    broken["apps"]["tls"]["certificates"]["load_files"][0]["certificate"] = "/certs/gone.pem"
    files.write_config(broken)
    reply = fetch(ports[443], host="uro.example.test", tls=trusting(certs),
                  sni="uro.example.test")
    assert reply.body == b"old"
    assert "open /certs/gone.pem: no such file" in (instance.last_reload_error or "")
    assert instance.watching                        # a failed load does not stop watching
    files.write_config(ingress_config(not_found_body="fixed"))
    assert fetch(ports[443], host="uro.example.test", tls=trusting(certs),
                 sni="uro.example.test").body == b"fixed"


def test_a_config_file_that_is_not_json_stops_the_watcher(files: HostFiles,
                                                          loop: LoopThread) -> None:
    """Caddy 2.8.4 watchConfigFile returns when the file does not load as JSON: the
    running config stays, and later changes are no longer picked up."""
    files.write_config(ingress_config(tls=False, not_found_body="x"))
    instance = start(files)
    ports = loop.serve(instance.services())
    files.write(CONFIG_FILE, b"{ half written")
    assert fetch(ports[80], "/healthz").body == b"ok\n"
    assert not instance.watching
    files.write_config({"apps": {"http": {"servers": {"s": {"listen": [":80"]}}}}})
    assert fetch(ports[80], "/healthz").body == b"ok\n"


def test_new_certificate_files_are_served_once_the_config_changes(
        certs: Certs, files: HostFiles, loop: LoopThread) -> None:
    """Caddy's watcher compares the config file only: renewed certificate files are
    loaded by the reload a changed config causes, not by themselves."""
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config())
    ports = loop.serve(start(files).services())

    def served_serial() -> int:
        conn = connect(ports[443], tls=trusting(certs), sni="uro.example.test")
        der = conn.sock.getpeercert(binary_form=True)
        conn.close()
        return x509.load_der_x509_certificate(der).serial_number

    first = served_serial()
    install_cert(files, certs.ca, "uro.example.test")      # renewed files, same config
    assert served_serial() == first
    config = ingress_config()
    config["apps"]["tls"]["certificates"]["load_files"][0]["tags"] = ["renewed"]
    files.write_config(config)
    assert served_serial() != first


def test_the_https_listener_starts_when_a_reload_adds_it(certs: Certs, files: HostFiles,
                                                         loop: LoopThread) -> None:
    """The http-01 order: the config has only the http server until the certificate
    exists; 443 is published from the start and answers once the config listens."""
    files.write_config(ingress_config(tls=False))
    instance = start(files)
    ports = loop.serve(instance.services([80, 443]))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        connect(ports[443], tls=trusting(certs), sni="uro.example.test")
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config())
    reply = fetch(ports[443], host="uro.example.test", tls=trusting(certs),
                  sni="uro.example.test")
    assert reply.status == 404


def test_a_listener_the_new_config_drops_stops_answering(certs: Certs, files: HostFiles,
                                                        loop: LoopThread) -> None:
    install_cert(files, certs.ca, "uro.example.test")
    files.write_config(ingress_config())
    ports = loop.serve(start(files).services())
    assert fetch(ports[443], host="uro.example.test", tls=trusting(certs),
                 sni="uro.example.test").status == 404
    files.write_config(ingress_config(tls=False))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        connect(ports[443], tls=trusting(certs), sni="uro.example.test")
    assert fetch(ports[80], "/healthz").status == 200


# ---------------------------------------------------------------------------------------
# Matchers (matchers.go), directly


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("/.well-known/acme-challenge/*", "/.well-known/acme-challenge/abc", True),
    ("/.well-known/acme-challenge/*", "/.well-known/acme-challenge", False),
    ("/.well-known/acme-challenge/*", "/.WELL-KNOWN/ACME-CHALLENGE/abc", True),
    ("/.well-known/acme-challenge/*", "/x/../.well-known//acme-challenge/t", True),
    ("/healthz", "/healthz", True),
    ("/healthz", "/healthz/", False),
    ("/foo*", "/foobar", True),
    ("*.php", "/a/b.PHP", True),
    ("*/api/*", "/v1/api/x", True),
    ("/accounts/*/info", "/accounts/42/info", True),
    ("/accounts/*/info", "/accounts/4/2/info", False),
])
def test_path_matcher(pattern: str, path: str, matches: bool) -> None:
    assert path_matches(pattern.lower(), path) is matches


@pytest.mark.parametrize(("pattern", "host", "matches"), [
    ("uro.example.test", "URO.Example.TEST", True),
    ("*.example.test", "uro.example.test", True),
    ("*.example.test", "a.b.example.test", False),
    ("*.example.test", "example.test", False),
])
def test_host_matcher(pattern: str, host: str, matches: bool) -> None:
    assert host_matches(pattern, host) is matches


_SEGMENT = st.text(alphabet="abcxyz019-_.~%", min_size=1, max_size=8).filter(
    lambda s: s not in (".", ".."))


@given(st.lists(_SEGMENT, min_size=1, max_size=6), st.booleans())
def test_a_prefix_pattern_matches_every_path_below_it(segments: list[str],
                                                      upper: bool) -> None:
    path = "/.well-known/acme-challenge/" + "/".join(segments)
    assert path_matches("/.well-known/acme-challenge/*", path.upper() if upper else path)
    assert not path_matches("/.well-known/acme-challenge/*", "/elsewhere/" + "/".join(segments))
