"""Unit tests of infra's TrueNAS client functions.

A tiny JSON-RPC server over real TLS on 127.0.0.1 (websockets' sync server, plus a
stdlib HTTPS server for /_upload and /_download) stands in for a TrueNAS node, only
to test one client function at a time; the spec itself talks to the fake world.
"""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import json
import os
import socket
import ssl
import stat
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.sync.server import ServerConnection, serve

from infra.errors import InfraError, WaitTimeout
from infra.secrets import Secret
from infra.target import Timing
from infra.truenas import (
    AuthenticationFailed,
    CallLog,
    CertificateChanged,
    CertificatePins,
    InsecureTransport,
    JobFailed,
    MethodNotFound,
    NotAuthenticated,
    TrueNASCallError,
    TrueNASClient,
    TrueNASTLSError,
    TrueNASUnavailable,
    TrueNASValidationError,
    connect_node,
    fetch_certificate,
    ssl_context_for,
    wait_until_ready,
)
from infra.truenas import client as client_module
from infra.truenas.pinning import PINS_FILE, fingerprint
from infra.truenas.wss import drain_post_handshake

KEY = "1-" + "5ecret" * 10
USER = "truenas_admin"
TIMING = Timing(poll_interval=0.01, time_scale=0.0001, min_deadline=1.0, backoff=0.01)


# --- certificates ------------------------------------------------------------
def self_signed(name: str = "truenas.local") -> tuple[str, str]:
    """A self-signed leaf like a fresh TrueNAS node's (CA:FALSE, no keyCertSign)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                     False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def server_context(cert_pem: str, key_pem: str, directory: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load(context, cert_pem, key_pem, directory)
    return context


def load(context: ssl.SSLContext, cert_pem: str, key_pem: str, directory: Path) -> None:
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_text(cert_pem)
    key_file.write_text(key_pem)
    context.load_cert_chain(cert_file, key_file)


# --- the stand-in node ---------------------------------------------------------
class Fault(Exception):
    def __init__(self, code: int, message: str, data: dict | None = None) -> None:
        self.error = {"code": code, "message": message, "data": data}


def call_error(reason: str, errno: int = 14, errname: str = "EFAULT") -> Fault:
    return Fault(-32001, "Method call error",
                 {"error": errno, "errname": errname, "reason": reason, "trace": None,
                  "extra": None})


Handler = Callable[[list, dict, ServerConnection], Any]


class Node:
    """JSON-RPC 2.0 over WSS, the way reference/truenas-api.md §1-§3 describes it."""

    NO_AUTH = {"auth.login_ex", "core.set_options", "core.ping", "system.state"}

    def __init__(self, directory: Path, cert: tuple[str, str] | None = None) -> None:
        self.directory = directory
        self.cert_pem, key_pem = cert or self_signed()
        self.context = server_context(self.cert_pem, key_pem, directory)
        self.calls: list[tuple[str, Any]] = []
        self.jobs: dict[int, list[dict]] = {}   # job id -> states, one per poll
        self.polls: dict[int, int] = {}
        self.files: dict[str, bytes] = {}
        self.download_tokens: dict[int, str] = {}
        self.revoked: set[str] = set()
        self.handlers: dict[str, Handler] = {
            "auth.login_ex": self._login,
            "core.set_options": lambda params, session, ws: None,
            "core.get_jobs": self._get_jobs,
            "core.download": self._download,
        }
        self.server = serve(self._serve, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/api/current"

    def present(self, cert: tuple[str, str]) -> None:
        """From now on, hand out another certificate (the node was rebuilt, or not)."""
        self.cert_pem = cert[0]
        load(self.context, cert[0], cert[1], self.directory)

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def add_job(self, *states: dict) -> int:
        job_id = len(self.jobs) + 100
        self.jobs[job_id] = [{"id": job_id, "method": "x", "progress": {"percent": 0},
                              "result": None, "error": None, "exc_info": None, **state}
                             for state in states]
        self.polls[job_id] = 0
        return job_id

    def _serve(self, ws: ServerConnection) -> None:
        session: dict[str, Any] = {"user": None}
        for raw in ws:
            message = json.loads(raw)
            method, params = message["method"], message.get("params", [])
            self.calls.append((method, params))
            handler = self.handlers.get(method)
            try:
                if handler is None:
                    raise Fault(-32601, "Method does not exist")
                if session["user"] is None and method not in self.NO_AUTH:
                    raise call_error("Not authenticated", 207, "ENOTAUTHENTICATED")
                reply = {"result": handler(params, session, ws)}
            except Fault as fault:
                reply = {"error": fault.error}
            ws.send(json.dumps({"jsonrpc": "2.0", "id": message["id"], **reply}))

    def _login(self, params: list, session: dict, ws: ServerConnection) -> dict:
        options = params[0]
        assert options["mechanism"] == "API_KEY_PLAIN"
        if options["api_key"] in self.revoked:
            return {"response_type": "EXPIRED"}
        if options["api_key"] != KEY or options["username"] != USER:
            return {"response_type": "AUTH_ERR"}
        session["user"] = options["username"]
        return {"response_type": "SUCCESS", "authenticator": "LEVEL_1",
                "user_info": {"pw_name": USER}}

    def _get_jobs(self, params: list, session: dict, ws: ServerConnection) -> list:
        (_, _, job_id), = params[0]
        if job_id not in self.jobs:
            return []
        states = self.jobs[job_id]
        job = states[min(self.polls[job_id], len(states) - 1)]
        self.polls[job_id] += 1
        # a push between our request and its reply, as a subscribed node would send
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "collection_update",
                            "params": {"msg": "changed", "collection": "core.get_jobs",
                                       "id": job_id, "fields": job}}))
        return [job]

    def _download(self, params: list, session: dict, ws: ServerConnection) -> list:
        method, (path,), _, _ = params
        assert method == "filesystem.get"
        job_id = self.add_job({"state": "RUNNING"}, {"state": "SUCCESS", "result": None})
        self.download_tokens[job_id] = token = f"tok{job_id}"
        self.files.setdefault(f"/_download/{job_id}", self.files.get(path, b""))
        return [job_id, f"/_download/{job_id}?auth_token={token}"]


class HTTPSide:
    """/_upload and /_download over HTTPS, with the node's certificate."""

    def __init__(self, node: Node, context: ssl.SSLContext) -> None:
        self.node = node
        self.uploads: list[dict] = []
        side = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes, kind: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._answer(401, b'{"message": "Unauthorized"}')
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
                parts = [(part.get_param("name", header="content-disposition"),
                          part.get_payload(decode=True)) for part in message.iter_parts()]
                side.uploads.append({"parts": parts})
                data = json.loads(parts[0][1])
                side.node.files[data["params"][0]] = parts[1][1]
                job_id = side.node.add_job({"state": "RUNNING"},
                                           {"state": "SUCCESS", "result": True})
                return self._answer(200, json.dumps({"job_id": job_id}).encode())

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                job_id = int(url.path.rsplit("/", 1)[1])
                token = parse_qs(url.query).get("auth_token", [""])[0]
                if side.node.download_tokens.get(job_id) != token:
                    return self._answer(401, b'{"message": "Unauthorized"}')
                self._answer(200, side.node.files[url.path], "application/octet-stream")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    (tmp_path / "node").mkdir()
    stand_in = Node(tmp_path / "node")
    yield stand_in
    stand_in.server.shutdown()


def open_client(node: Node, log: CallLog | None = None, **kwargs: Any) -> TrueNASClient:
    return TrueNASClient(node.url, Secret(KEY), USER, ssl_context_for(node.cert_pem), TIMING,
                         log, **kwargs)


@pytest.fixture
def client(node: Node) -> Iterator[TrueNASClient]:
    with open_client(node) as logged_in:
        logged_in.login()
        yield logged_in


def assert_no_key(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(exc.args), repr(vars(exc))):
        assert KEY not in text


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- transport ----------------------------------------------------------------
@pytest.mark.parametrize("url", ["ws://127.0.0.1:1/api/current",
                                 "http://127.0.0.1:1/api/current",
                                 "https://127.0.0.1:1/api/current"])
def test_anything_but_wss_is_refused_before_any_connection(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []
    monkeypatch.setattr(client_module, "open_websocket", lambda *a, **k: attempts.append(a[0]))
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: attempts.append(str(a)))
    with pytest.raises(InsecureTransport, match="revokes an API key") as refused:
        TrueNASClient(url, Secret(KEY), USER, ssl_context_for(self_signed()[0]), TIMING)
    assert attempts == []
    assert_no_key(refused.value)


def test_a_context_that_does_not_verify_is_refused(node: Node) -> None:
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with pytest.raises(InsecureTransport):
        TrueNASClient(node.url, Secret(KEY), USER, unverified, TIMING)
    assert node.calls == []


# --- trust on first use ---------------------------------------------------------
def test_first_use_pins_the_certificate_in_a_0600_file(node: Node, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with connect_node("127.0.0.1", Secret(KEY), USER, state, TIMING, port=node.port) as c:
        assert c.user_info == {"pw_name": USER}
    pins = state / PINS_FILE
    assert stat.S_IMODE(os.stat(pins).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    entry = json.loads(pins.read_text())[f"127.0.0.1:{node.port}"]
    assert entry["sha256"] == fingerprint(node.cert_pem)
    assert fingerprint(entry["pem"]) == fingerprint(node.cert_pem)
    # a second connection with the same certificate is accepted
    connect_node("127.0.0.1", Secret(KEY), USER, state, TIMING, port=node.port).close()


def test_a_changed_certificate_is_refused_until_repinned(node: Node, tmp_path: Path) -> None:
    state = tmp_path / "state"
    connect_node("127.0.0.1", Secret(KEY), USER, state, TIMING, port=node.port).close()
    old = fingerprint(node.cert_pem)
    node.present(self_signed())
    new = fingerprint(node.cert_pem)
    logins = node.methods().count("auth.login_ex")

    with pytest.raises(CertificateChanged) as changed:
        connect_node("127.0.0.1", Secret(KEY), USER, state, TIMING, port=node.port)
    message = str(changed.value)
    assert f"127.0.0.1:{node.port}" in message and old in message and new in message
    assert "repin=True" in message
    assert node.methods().count("auth.login_ex") == logins  # the key was not sent

    connect_node("127.0.0.1", Secret(KEY), USER, state, TIMING, port=node.port,
                 repin=True).close()
    assert CertificatePins(state).get("127.0.0.1", node.port).sha256 == new
    connect_node("127.0.0.1", Secret(KEY), USER, state, TIMING, port=node.port).close()


def test_the_context_trusts_only_the_pinned_certificate(node: Node) -> None:
    stranger = ssl_context_for(self_signed()[0])
    with pytest.raises(TrueNASTLSError, match="does not match the pinned"):
        TrueNASClient(node.url, Secret(KEY), USER, stranger, TIMING)
    with pytest.raises(TrueNASTLSError, match="not the pinned"):
        open_client(node, fingerprint=fingerprint(self_signed()[0]))
    assert node.calls == []


def test_a_ca_issued_leaf_can_be_pinned_by_itself(tmp_path: Path) -> None:
    # Without VERIFY_X509_PARTIAL_CHAIN OpenSSL would ask for the issuing CA.
    leaf = trustme.CA().issue_cert("truenas.local")
    node = Node(tmp_path, (leaf.cert_chain_pems[0].bytes().decode(),
                           leaf.private_key_pem.bytes().decode()))
    try:
        presented = fetch_certificate("127.0.0.1", node.port)
        with TrueNASClient(node.url, Secret(KEY), USER, ssl_context_for(presented),
                           TIMING) as c:
            c.login()
    finally:
        node.server.shutdown()


# --- login ---------------------------------------------------------------------
def test_login_sends_an_api_key_plain_login_ex(node: Node, client: TrueNASClient) -> None:
    method, (options,) = node.calls[-1]
    assert method == "auth.login_ex"
    assert options == {"mechanism": "API_KEY_PLAIN", "username": USER, "api_key": KEY}
    assert client.user_info == {"pw_name": USER}


def test_a_secret_parameter_is_revealed_only_in_the_message(
        node: Node, client: TrueNASClient) -> None:
    # A failed call's traceback, in pytest's long style, shows each frame's arguments:
    # a secret passed as a Secret shows as Secret('********'); the node gets the value.
    token = "single-use-" + "70ken" * 8
    with pytest.raises(MethodNotFound) as failed:
        client.call("no.such.method", {"token": Secret(token)})
    assert node.calls[-1] == ("no.such.method", [{"token": token}])
    shown = str(failed.getrepr(style="long", funcargs=True))
    assert "Secret('********')" in shown and token not in shown


def test_a_wrong_key_is_an_auth_err(node: Node) -> None:
    with TrueNASClient(node.url, Secret("2-wrong"), USER, ssl_context_for(node.cert_pem),
                       TIMING) as c, pytest.raises(AuthenticationFailed, match="AUTH_ERR"):
        c.login()


def test_a_revoked_key_says_so(node: Node) -> None:
    node.revoked.add(KEY)
    with open_client(node) as c, pytest.raises(AuthenticationFailed) as refused:
        c.login()
    assert refused.value.response_type == "EXPIRED"
    assert "the API key was revoked" in str(refused.value)
    assert_no_key(refused.value)


def test_a_call_before_login_is_not_authenticated(node: Node) -> None:
    node.handlers["pool.query"] = lambda params, session, ws: []
    with open_client(node) as c, pytest.raises(NotAuthenticated, match="login") as refused:
        c.call("pool.query")
    assert refused.value.errno == 207


# --- errors --------------------------------------------------------------------
def test_a_validation_error_names_the_attributes(node: Node, client: TrueNASClient) -> None:
    def refuse(params: list, session: dict, ws: ServerConnection) -> None:
        raise Fault(-32602, "Invalid params", {
            "error": 22, "errname": "EINVAL",
            "reason": "[EINVAL] pool_create.name: already exists\n",
            "extra": [["pool_create.name", "A pool named tank already exists", 17],
                      ["data.topology.data.0.type", "Input should be 'MIRROR'", 22]],
        })

    node.handlers["pool.dataset.create"] = refuse
    with pytest.raises(TrueNASValidationError) as refused:
        client.call("pool.dataset.create", {"name": "tank"})
    error = refused.value
    assert error.attributes == ["pool_create.name", "data.topology.data.0.type"]
    assert error.errors[0] == ("pool_create.name", "A pool named tank already exists", 17)
    assert "pool_create.name" in str(error) and "data.topology.data.0.type" in str(error)
    assert str(error).startswith("pool.dataset.create")
    assert isinstance(error, InfraError)


def test_a_call_error_carries_errno_and_reason(node: Node, client: TrueNASClient) -> None:
    def fail(params: list, session: dict, ws: ServerConnection) -> None:
        raise call_error("[ENOENT] No such pool", 2, "ENOENT")

    node.handlers["pool.scrub.run"] = fail
    with pytest.raises(TrueNASCallError) as failed:
        client.call("pool.scrub.run", "tank")
    assert (failed.value.errno, failed.value.errname) == (2, "ENOENT")
    assert failed.value.reason == "[ENOENT] No such pool"
    assert failed.value.code == -32001
    assert "pool.scrub.run" in str(failed.value)


def test_an_unknown_method_is_method_not_found(client: TrueNASClient) -> None:
    with pytest.raises(MethodNotFound, match="no.such"):
        client.call("no.such")


# --- jobs ----------------------------------------------------------------------
def test_a_legacy_job_is_polled_until_success(node: Node) -> None:
    job_id = node.add_job({"state": "WAITING"}, {"state": "RUNNING"},
                          {"state": "SUCCESS", "result": {"name": "tank", "status": "ONLINE"}})
    node.handlers["pool.create"] = lambda params, session, ws: job_id
    log = CallLog()
    with open_client(node, log) as c:
        c.login()
        result = c.call_job("pool.create", {"name": "tank"}, real_seconds=600)
        assert result == {"name": "tank", "status": "ONLINE"}
        # the pushed collection_update messages were read past and kept
        assert len(c.notifications) == 3
        assert c.notifications[0]["method"] == "collection_update"
    assert log.by_method() == {"auth.login_ex": 1, "pool.create": 1, "core.get_jobs": 3}
    assert log.mutating_calls() == ["pool.create"]
    assert node.calls[-1] == ("core.get_jobs", [[["id", "=", job_id]]])


def test_a_failed_job_raises_its_error(node: Node, client: TrueNASClient) -> None:
    job_id = node.add_job({"state": "RUNNING"}, {
        "state": "FAILED", "error": "[EFAULT] Failed to replace disk",
        "exc_info": {"type": "CallError", "errno": 14, "extra": None}})
    node.handlers["pool.replace"] = lambda params, session, ws: job_id
    with pytest.raises(JobFailed) as failed:
        client.call_job("pool.replace", 1, {"label": "123", "disk": "{serial}VOL2"})
    assert failed.value.job_id == job_id and failed.value.state == "FAILED"
    assert failed.value.errno == 14 and "Failed to replace disk" in str(failed.value)
    assert "pool.replace" in str(failed.value)


def test_a_job_that_fails_validation_names_the_attributes(
        node: Node, client: TrueNASClient) -> None:
    job_id = node.add_job({"state": "FAILED", "error": "[EINVAL] options.disk: not found",
                           "exc_info": {"type": "VALIDATION", "errno": 22, "extra": [
                               ["options.disk", "Disk not found.", 2]]}})
    node.handlers["pool.replace"] = lambda params, session, ws: job_id
    with pytest.raises(TrueNASValidationError) as refused:
        client.call_job("pool.replace", 1, {"label": "123", "disk": "nope"})
    assert refused.value.attributes == ["options.disk"]
    assert refused.value.job_id == job_id
    assert "options.disk" in str(refused.value)


def test_a_job_that_never_finishes_is_a_bounded_wait(node: Node, client: TrueNASClient) -> None:
    job_id = node.add_job({"state": "RUNNING", "progress": {"percent": 40}})
    node.handlers["pool.scrub"] = lambda params, session, ws: job_id
    with pytest.raises(WaitTimeout) as timed_out:
        client.call_job("pool.scrub", 1, "START", real_seconds=3600)
    message = str(timed_out.value)
    assert "pool.scrub" in message and f"job {job_id}" in message and "RUNNING" in message
    assert node.polls[job_id] > 5


def test_new_style_jobs_hold_the_reply(node: Node) -> None:
    node.handlers["pool.create"] = lambda params, session, ws: {"name": "tank"}
    with open_client(node, legacy_jobs=False) as c:
        c.login()
        assert c.call_job("pool.create", {"name": "tank"}) == {"name": "tank"}
    assert node.calls[0] == ("core.set_options", [{"legacy_jobs": False}])
    assert "core.get_jobs" not in node.methods()


# --- extended JSON ---------------------------------------------------------------
def test_dates_are_decoded(node: Node, client: TrueNASClient) -> None:
    node.handlers["system.info"] = lambda params, session, ws: {
        "boottime": {"$date": 1_760_000_000_123},
        "day": {"$type": "date", "$value": "2026-08-04"},
        "tags": {"$set": ["a"]},
    }
    info = client.call("system.info")
    assert info["boottime"] == datetime.datetime(2025, 10, 9, 8, 53, 20, 123000,
                                                 tzinfo=datetime.UTC)
    assert info["day"] == datetime.date(2026, 8, 4)
    assert info["tags"] == {"a"}


def test_dates_are_encoded_in_params(node: Node, client: TrueNASClient) -> None:
    node.handlers["x.echo"] = lambda params, session, ws: params[0]
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert client.call("x.echo", {"at": moment}) == {"at": moment}
    assert node.calls[-1][1] == [{"at": {"$date": int(moment.timestamp() * 1000)}}]


# --- secrets ---------------------------------------------------------------------
def test_the_api_key_never_appears_in_errors_or_reprs(node: Node, tmp_path: Path) -> None:
    def echo_the_key(params: list, session: dict, ws: ServerConnection) -> None:
        raise call_error(f"bad key {KEY}")

    def validation_with_the_key(params: list, session: dict, ws: ServerConnection) -> None:
        raise Fault(-32602, "Invalid params", {"error": 22, "reason": KEY,
                                               "extra": [["api_key", f"{KEY} is bad", 22]]})

    node.handlers["x.echo_key"] = echo_the_key
    node.handlers["x.validate"] = validation_with_the_key
    raised: list[BaseException] = []
    with open_client(node) as c:
        assert KEY not in repr(c) and KEY not in str(vars(c))
        for attempt in (lambda: c.call("pool.query"), c.login,
                        lambda: c.call("x.echo_key"), lambda: c.call("x.validate")):
            try:
                attempt()
            except InfraError as exc:
                raised.append(exc)
    node.revoked.add(KEY)
    with open_client(node) as c:
        try:
            c.login()
        except InfraError as exc:
            raised.append(exc)
    try:
        TrueNASClient(f"ws://127.0.0.1:{node.port}/api/current", Secret(KEY), USER,
                      ssl_context_for(node.cert_pem), TIMING)
    except InfraError as exc:
        raised.append(exc)
    assert len(raised) == 5
    for exc in raised:
        assert_no_key(exc)


# --- files -------------------------------------------------------------------------
@pytest.fixture
def http_side(node: Node) -> Iterator[HTTPSide]:
    side = HTTPSide(node, node.context)
    yield side
    side.server.shutdown()


def test_upload_and_download_trust_the_pin_not_the_environment(
        node: Node, http_side: HTTPSide, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A CA bundle from the environment must neither replace nor widen the pin.
    other = tmp_path / "other-ca.pem"
    other.write_text(trustme.CA().cert_pem.bytes().decode())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other))
    log = CallLog()
    with open_client(node, log, http_url=http_side.url,
                     fingerprint=fingerprint(node.cert_pem)) as c:
        c.login()
        assert c.upload("/mnt/tank/hello.txt", b"hello\x00world") is True
        parts = http_side.uploads[0]["parts"]
        assert [name for name, _ in parts] == ["data", "file"]
        assert json.loads(parts[0][1]) == {"method": "filesystem.put",
                                           "params": ["/mnt/tank/hello.txt", {}]}
        assert parts[1][1] == b"hello\x00world"
        assert c.download("/mnt/tank/hello.txt") == b"hello\x00world"
    assert log.count("filesystem.put") == 1 and log.count("core.download") == 1


def test_upload_to_another_certificate_is_refused(node: Node, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = server_context(*self_signed(), tmp_path / "other")
    side = HTTPSide(node, other)
    try:
        with open_client(node, http_url=side.url) as c:
            c.login()
            with pytest.raises(TrueNASTLSError) as refused:
                c.upload("/mnt/tank/f", b"x")
        assert side.uploads == []
        assert_no_key(refused.value)
    finally:
        side.server.shutdown()


def test_upload_with_a_refused_key_is_not_authenticated(node: Node, http_side: HTTPSide) -> None:
    with TrueNASClient(node.url, Secret("2-other"), USER, ssl_context_for(node.cert_pem),
                       TIMING, http_url=http_side.url) as c, \
            pytest.raises(NotAuthenticated) as refused:
        c.upload("/mnt/tank/f", b"x")
    assert "2-other" not in str(refused.value)


# --- waiting for a node --------------------------------------------------------------
def test_wait_until_ready_rides_out_refusals_and_booting(node: Node) -> None:
    states = iter(["BOOTING", "BOOTING"])
    node.handlers["system.state"] = lambda params, session, ws: next(states, "READY")
    refused_port = closed_port()
    attempts = []

    def factory() -> TrueNASClient:
        attempts.append(1)
        if len(attempts) <= 2:  # the node's port is not open yet
            return TrueNASClient(f"wss://127.0.0.1:{refused_port}/api/current", Secret(KEY),
                                 USER, ssl_context_for(node.cert_pem), TIMING)
        client = open_client(node)
        client.login()
        return client

    with wait_until_ready(factory, TIMING, real_seconds=900) as ready:
        assert ready.call("system.state") == "READY"
    assert len(attempts) == 3
    assert node.methods().count("system.state") == 4


def test_wait_until_ready_says_what_it_waited_for() -> None:
    port = closed_port()

    def factory() -> TrueNASClient:
        return TrueNASClient(f"wss://127.0.0.1:{port}/api/current", Secret(KEY), USER,
                             ssl_context_for(self_signed()[0]), TIMING)

    with pytest.raises(WaitTimeout) as timed_out:
        wait_until_ready(factory, TIMING, real_seconds=900, what="node alpha-truenas")
    assert "node alpha-truenas to be READY" in str(timed_out.value)
    assert "could not open" in str(timed_out.value)


def test_wait_until_ready_does_not_retry_a_refused_key(node: Node) -> None:
    node.revoked.add(KEY)
    calls = []

    def factory() -> TrueNASClient:
        calls.append(1)
        client = open_client(node)
        client.login()
        return client

    with pytest.raises(AuthenticationFailed):
        wait_until_ready(factory, TIMING)
    assert calls == [1]


def test_fetch_certificate_of_a_closed_port_is_unavailable() -> None:
    with pytest.raises(TrueNASUnavailable):
        fetch_certificate("127.0.0.1", closed_port(), timeout=1)


# --- the TLS 1.3 ticket race in websockets' sync client ---------------------------------
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_session_tickets_are_read_before_the_reader_thread_starts(
        node: Node, version: ssl.TLSVersion) -> None:
    context = ssl_context_for(node.cert_pem)
    context.maximum_version = version
    with socket.create_connection(("127.0.0.1", node.port)) as raw, \
            context.wrap_socket(raw) as tls:
        drained = drain_post_handshake(tls, grace=1.0)
        # OpenSSL servers send two TLS 1.3 tickets after the handshake; 1.2 has none
        assert drained >= 1 if version == ssl.TLSVersion.TLSv1_3 else drained == 0
        assert tls.gettimeout() is None  # blocking again, as websockets expects
        assert tls.pending() == 0


def test_many_connections_in_a_row_all_open(node: Node) -> None:
    # Without the drain, about one TLS 1.3 connection in 150 hung until open_timeout.
    for _ in range(150):
        with open_client(node) as c:
            c.login()
