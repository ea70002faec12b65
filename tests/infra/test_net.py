"""infra/net.py against local listeners on loopback addresses: the source address a
client chooses is the one the listener sees, and refused, reset, closed and
silently dropped connections all count as unreachable."""

from __future__ import annotations

import contextlib
import http.server
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
import requests

from infra.net import connect_tcp, http_get, session_from, tcp_reachable

SERVER = "127.0.0.1"
ADMIN = "127.0.0.2"          # stands for an address inside the admin CIDR
INTERNET = "127.3.0.1"       # outside it (contract: Addresses)


def _reset(conn: socket.socket) -> None:
    """Close with RST, as the fake's firewall does to a refused source."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class Listener:
    """A TCP listener on SERVER; `behaviour(conn, peer)` runs for each connection."""

    def __init__(self, behaviour) -> None:
        self.sock = socket.create_server((SERVER, 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self.held: list[socket.socket] = []
        self.behaviour = behaviour
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return          # closed by stop()
            self.peers.append(peer[0])
            self.accepted.set()
            self.behaviour(self, conn, peer[0])

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)
        for conn in self.held:
            conn.close()


def silent(listener: Listener, conn: socket.socket, peer: str) -> None:
    listener.held.append(conn)           # served: waits for the client to speak


def greeting(listener: Listener, conn: socket.socket, peer: str) -> None:
    conn.sendall(b"SSH-2.0-test\r\n")
    listener.held.append(conn)


def closing(listener: Listener, conn: socket.socket, peer: str) -> None:
    conn.close()


def firewalled(allowed: set[str]):
    def behaviour(listener: Listener, conn: socket.socket, peer: str) -> None:
        if peer in allowed:
            listener.held.append(conn)
        else:
            _reset(conn)
    return behaviour


@pytest.fixture
def listen() -> Iterator:
    started: list[Listener] = []

    def start(behaviour) -> Listener:
        started.append(Listener(behaviour))
        return started[-1]

    yield start
    for listener in started:
        listener.stop()


# --- connect_tcp ----------------------------------------------------------------------

@pytest.mark.parametrize("source", [ADMIN, INTERNET])
def test_the_listener_sees_the_chosen_source_address(listen, source):
    listener = listen(silent)
    with connect_tcp(SERVER, listener.port, source_address=source, timeout=5) as sock:
        assert sock.getsockname()[0] == source
        assert listener.accepted.wait(timeout=10)
    assert listener.peers == [source]


def _closed_port() -> int:
    probe = socket.create_server((SERVER, 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_connect_tcp_raises_refused_when_nothing_listens():
    with pytest.raises(ConnectionRefusedError):
        connect_tcp(SERVER, _closed_port(), source_address=INTERNET, timeout=5)


# --- tcp_reachable --------------------------------------------------------------------

def test_a_served_port_is_reachable(listen):
    assert tcp_reachable(SERVER, listen(silent).port, source_address=INTERNET, timeout=5,
                         grace=0.05)
    assert tcp_reachable(SERVER, listen(greeting).port, timeout=5)


def test_the_fakes_firewall_reset_makes_a_port_unreachable_from_that_source_only(listen):
    listener = listen(firewalled({ADMIN}))
    # A generous grace: the answer arrives as soon as the reset does.
    assert not tcp_reachable(SERVER, listener.port, source_address=INTERNET, timeout=5,
                             grace=5)
    assert tcp_reachable(SERVER, listener.port, source_address=ADMIN, timeout=5, grace=0.05)


def test_a_connection_closed_before_any_byte_is_unreachable(listen):
    assert not tcp_reachable(SERVER, listen(closing).port, timeout=5, grace=5)


def test_a_refused_port_is_unreachable():
    assert not tcp_reachable(SERVER, _closed_port(), source_address=INTERNET, timeout=5)


def test_a_dropped_syn_is_unreachable_after_the_timeout():
    # What a real DigitalOcean firewall does: the SYN is dropped, the connect times
    # out. Linux drops a SYN when the listener's accept queue is full (backlog 0, one
    # connection already waiting and never accepted).
    server = socket.socket()
    server.bind((SERVER, 0))
    server.listen(0)
    waiting = socket.create_connection(server.getsockname(), timeout=5)
    try:
        assert not tcp_reachable(SERVER, server.getsockname()[1], source_address=INTERNET,
                                 timeout=0.5)
    finally:
        waiting.close()
        server.close()


# --- session_from ---------------------------------------------------------------------

class _EchoPeer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _FirewalledHTTPServer(http.server.ThreadingHTTPServer):
    """Resets connections from sources outside `allowed` (None: everyone gets in)."""

    allowed: set[str] | None = None
    daemon_threads = True

    def get_request(self):
        conn, peer = super().get_request()
        if self.allowed is not None and peer[0] not in self.allowed:
            _reset(conn)
            raise OSError("refused by the firewall")   # socketserver drops the request
        return conn, peer


@pytest.fixture
def http_server() -> Iterator[_FirewalledHTTPServer]:
    server = _FirewalledHTTPServer((SERVER, 0), _EchoPeer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _url(server: _FirewalledHTTPServer) -> str:
    return f"http://{SERVER}:{server.server_address[1]}/"


@pytest.mark.parametrize("source", [ADMIN, INTERNET])
def test_a_session_from_an_address_connects_from_it(http_server, source):
    with session_from(source) as session:
        assert session.get(_url(http_server), timeout=5).text == source
        # a second request on the kept-alive pool still comes from the same address
        assert session.get(_url(http_server), timeout=5).text == source


def test_a_session_from_none_uses_any_local_address(http_server):
    with session_from(None) as session:
        assert session.get(_url(http_server), timeout=5).text == SERVER


def test_an_http_request_from_a_refused_source_fails_with_a_connection_error(http_server):
    http_server.allowed = {ADMIN}
    with session_from(INTERNET) as session, pytest.raises(requests.ConnectionError):
        session.get(_url(http_server), timeout=5)
    with session_from(ADMIN) as session:
        assert session.get(_url(http_server), timeout=5).status_code == 200


def test_a_session_ignores_proxies_from_the_environment(monkeypatch, http_server):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")   # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    with session_from(INTERNET) as session:
        assert session.get(_url(http_server), timeout=5).text == INTERNET


def test_http_get_answers_from_the_allowed_source_and_says_why_not_from_another(http_server):
    http_server.allowed = {ADMIN}
    answer = http_get(_url(http_server), source_address=ADMIN, timeout=5)
    assert answer.answered and (answer.status, answer.body) == (200, ADMIN)
    refused = http_get(_url(http_server), source_address=INTERNET, timeout=5)
    assert not refused.answered
    assert "ConnectionError" in refused.failure
