"""What infra's DigitalOcean client and `Target.now` put on the wire, byte for byte.

infra/digitalocean.py reads the environment once per client and shares connection pools
(to cost less CPU per request); these tests hold it to sending exactly what pydo's default
setup sends (a `pydo.Client` made as infra made it before: its own requests session,
trusting the environment on every request). A loopback HTTPS server (a trustme CA)
records each request line, header (in order) and body; proxies, NO_PROXY, ~/.netrc and
the CA bundle variables are set in the environment and must act on both clients alike.
"""

from __future__ import annotations

import email.utils
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydo
import pytest
import requests
import trustme
from azure.core.exceptions import ServiceRequestError

from infra.digitalocean import DigitalOcean, RequestLog, environment_settings
from infra.secrets import Secret
from infra.target import Target, Timing

TOKEN = "dop_v1_" + "5eed" * 16
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
# azure-core's RequestIdPolicy stamps each request with a fresh uuid4.
REQUEST_ID = "x-ms-client-request-id"


@dataclass
class Seen:
    peer: tuple[str, int]
    line: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Recorder:
    """A loopback HTTP/1.1 server (keep-alive) that records what it is sent. CONNECT
    (a client tunnelling through it as a proxy) is recorded and refused."""

    seen: list[Seen] = field(default_factory=list)
    set_cookie: str | None = None
    server: ThreadingHTTPServer | None = None

    @property
    def netloc(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    @property
    def address(self) -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{self.netloc}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.seen.append(Seen(self.client_address, self.requestline,
                                          list(self.headers.items()),
                                          self.rfile.read(length)))

            def _answer(self) -> None:
                self._record()
                # the codes pydo expects: 202 for a create, 204 for a delete
                status = {"POST": 202, "DELETE": 204}.get(self.command, 200)
                body = b"" if status == 204 else \
                    b'{"account": {"status": "active"}, "droplet": {"id": 7}}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if recorder.set_cookie:
                    self.send_header("Set-Cookie", recorder.set_cookie)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def do_CONNECT(self) -> None:
                self._record()
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

        return Handler


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, str]]:
    ca = trustme.CA(organization_name="Wire Test Root")
    path = tmp_path_factory.mktemp("wire") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield ca, str(path)


@pytest.fixture
def recorder(ca_file: tuple[trustme.CA, str]) -> Iterator[Recorder]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca_file[0].issue_cert("127.0.0.1").configure_cert(context)
    yield from _serve(Recorder(), "127.0.0.1", context)


@pytest.fixture
def ca(ca_file: tuple[trustme.CA, str]) -> str:
    return ca_file[1]


def _serve(recorder: Recorder, host: str,
           tls: ssl.SSLContext | None = None) -> Iterator[Recorder]:
    recorder.server = ThreadingHTTPServer((host, 0), recorder.handler())
    if tls is not None:
        recorder.server.socket = tls.wrap_socket(recorder.server.socket, server_side=True)
    thread = threading.Thread(target=recorder.server.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy or netrc of this machine's: each test sets what it means."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def _target(endpoint: str, ca_bundle: str | None = None) -> Target:
    return Target("real", endpoint, Secret(TOKEN), ca_bundle, Timing())


def pydo_default(target: Target) -> pydo.Client:
    """The client as infra made it before: pydo's default transport, which trusts the
    environment on every request."""
    return pydo.Client(target.do_token.reveal(), endpoint=target.do_endpoint,
                       connection_verify=target.ca_bundle or True, retry_total=0,
                       timeout=60, logging_enable=False)


def ours(target: Target) -> pydo.Client:
    return DigitalOcean(target).client


CALLS: dict[str, Callable[[pydo.Client], object]] = {
    "get": lambda c: c.account.get(),
    "list with a query": lambda c: c.droplets.list(per_page=200, page=2, tag_name="site:a"),
    "create with a body": lambda c: c.droplets.create(
        {"name": "alpha-truenas", "region": "nyc3", "size": "s-2vcpu-4gb",
         "image": 1, "tags": ["truenas-site:alpha"]}),
    "update": lambda c: c.firewalls.update("fw-1", {"name": "alpha", "droplet_ids": [7]}),
    "delete": lambda c: c.droplets.destroy(7),
}


def _wire(seen: list[Seen]) -> list[tuple[str, list[tuple[str, str]], bytes]]:
    """What was sent, the per-request id aside (present on each, its value random)."""
    out = []
    for one in seen:
        assert sum(name.lower() == REQUEST_ID for name, _ in one.headers) == 1
        headers = [(n, "<uuid>" if n.lower() == REQUEST_ID else v) for n, v in one.headers]
        out.append((one.line, headers, one.body))
    return out


def _send(recorder: Recorder, make: Callable[[Target], pydo.Client],
          calls: list[Callable[[pydo.Client], object]], target: Target) -> list:
    recorder.seen.clear()
    client = make(target)
    for call in calls:
        call(client)
    return _wire(recorder.seen)


@pytest.mark.parametrize("name", list(CALLS))
def test_each_request_is_sent_as_pydo_sends_it(recorder: Recorder, ca: str, name: str) -> None:
    target = _target(recorder.address, ca)
    before = _send(recorder, pydo_default, [CALLS[name]], target)
    after = _send(recorder, ours, [CALLS[name]], target)
    assert after == before
    line, headers, _ = after[0]
    sent = {n.lower(): v for n, v in headers}
    assert sent["authorization"] == f"Bearer {TOKEN}"
    assert "pydo/" in sent["user-agent"]
    assert "accept" in sent and line.endswith("HTTP/1.1")


def test_a_netrc_login_acts_as_it_does_with_pydo(recorder: Recorder, ca: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # requests sends a ~/.netrc login for the host as Basic auth, in place of the token
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    target = _target(recorder.address, ca)
    before = _send(recorder, pydo_default, [CALLS["get"]], target)
    after = _send(recorder, ours, [CALLS["get"]], target)
    assert after == before
    assert dict(after[0][1])["Authorization"].startswith("Basic ")


def test_cookies_stay_with_the_client_that_got_them(recorder: Recorder, ca: str) -> None:
    recorder.set_cookie = "__cf_bm=abc; Path=/"
    target = _target(recorder.address, ca)
    sequences = []
    for make in (pydo_default, ours):
        recorder.seen.clear()
        first, second = make(target), make(target)
        first.account.get()
        first.account.get()
        second.account.get()
        sequences.append(_wire(recorder.seen))
    assert sequences[1] == sequences[0]
    cookies = [dict(headers).get("Cookie") for _, headers, _ in sequences[1]]
    assert cookies == [None, "__cf_bm=abc", None]


def test_clients_share_connections_and_count_their_own_requests(recorder: Recorder,
                                                                ca: str) -> None:
    target = _target(recorder.address, ca)
    logs = [RequestLog(), RequestLog()]
    first, second = (DigitalOcean(target, log) for log in logs)
    first.call("get account", first.client.account.get)
    second.call("get account", second.client.account.get)
    second.call("list droplets", second.client.droplets.list)
    assert [log.entries for log in logs] == [
        [("GET", "/v2/account")], [("GET", "/v2/account"), ("GET", "/v2/droplets")]]
    assert len({one.peer for one in recorder.seen}) == 1  # one connection, kept open


@pytest.fixture
def proxy() -> Iterator[Recorder]:
    yield from _serve(Recorder(), "127.0.0.3")


@pytest.mark.parametrize("make", [pydo_default, ours], ids=["pydo", "infra"])
def test_https_proxy_and_no_proxy_from_the_environment_take_effect(
        recorder: Recorder, ca: str, proxy: Recorder, make: Callable[[Target], pydo.Client],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.address)
    target = _target(recorder.address, ca)
    with pytest.raises(ServiceRequestError):  # the proxy refuses the tunnel
        make(target).account.get()
    assert [one.line for one in proxy.seen][:1] == [f"CONNECT {recorder.netloc} HTTP/1.0"]
    assert recorder.seen == []

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    proxy.seen.clear()
    make(target).account.get()
    assert proxy.seen == []
    assert [one.line for one in recorder.seen] == ["GET /v2/account HTTP/1.1"]


def test_the_ca_bundle_variables_apply_only_where_we_name_no_bundle(
        recorder: Recorder, ca: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = recorder.address
    assert environment_settings(endpoint, None)[1] is True
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "curl.pem"))
    assert environment_settings(endpoint, None)[1] == str(tmp_path / "curl.pem")
    assert environment_settings(endpoint, "/ours.pem")[1] == "/ours.pem"
    # the bundle the environment names is the one verified with: ours works...
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    before = _send(recorder, pydo_default, [CALLS["get"]], _target(endpoint))
    assert _send(recorder, ours, [CALLS["get"]], _target(endpoint)) == before
    # ...and a missing file is refused alike, before any connection
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "requests.pem"))
    failures = []
    for make in (pydo_default, ours):
        with pytest.raises(Exception) as refused:
            make(_target(endpoint)).account.get()
        failures.append((type(refused.value), str(refused.value)))
    assert failures[1] == failures[0]
    assert "requests.pem" in failures[0][1]


def test_the_target_clock_is_read_over_one_connection(recorder: Recorder, ca: str) -> None:
    recorder.set_cookie = "__cf_bm=abc; Path=/"
    target = Target("fake", recorder.address, None, ca, Timing(), own_clock=True)
    expected = email.utils.parsedate_to_datetime(email.utils.formatdate(usegmt=True))
    first, second = target.now(), target.now()
    assert abs(first - expected.timestamp()) <= 2 and second >= first
    now_calls = list(recorder.seen)
    requests.get(f"{recorder.address}/v2/account", timeout=10, verify=ca)
    fresh = recorder.seen[-1]
    # each as `requests.get` sends it, no cookie kept; both over one connection
    assert [(one.line, one.headers, one.body) for one in now_calls] == \
        [(fresh.line, fresh.headers, fresh.body)] * 2
    assert now_calls[0].peer == now_calls[1].peer
