"""infra.tls_probe against local servers started here: TLS servers with trustme
certificates (right, wrong host, unknown CA, expired), a server still accepting
TLS 1.0/1.1, a plain-HTTP redirecting server, a port that refuses, one that
resets, one that never answers. Each server stops with its fixture."""

from __future__ import annotations

import datetime
import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.tls_probe import (
    facts_from_pem,
    old_tls_attempts,
    probe_redirect,
    probe_tls,
    refuses_old_tls,
)

HOST = "www.example.test"
OTHER = "elsewhere.example.test"
LOOPBACK = "127.0.0.1"
INTERNET_SOURCE = "127.3.0.1"  # contract: the "internet" source address of tests
TIMEOUT = 5.0


# --- servers --------------------------------------------------------------------
class Server:
    """Accepts connections on 127.0.0.1 in a thread; `handle(conn)` serves one."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle = handle
        self.peers: list[str] = []
        self.errors: list[BaseException] = []
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(16)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(peer[0])
            conn.settimeout(TIMEOUT)
            try:
                self.handle(conn)
            except (OSError, ValueError) as exc:
                self.errors.append(exc)
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.listener.close()


@contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[Server]:
    server = Server(handle)
    try:
        yield server
    finally:
        server.close()


def tls_handler(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # until the client closes
        except (ssl.SSLError, OSError):
            pass  # the client refused us, or we refused it: that is the test
    return handle


def server_context(certfile: str, keyfile: str, *, oldest: ssl.TLSVersion | None = None
                   ) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    if oldest is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = oldest
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Probe Test Root")


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("tls")
    leaf = ca.issue_cert(HOST, "site.example.test")
    paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem",
             "key": directory / "key.pem", "other_ca": directory / "other.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    paths["cert"].write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    trustme.CA().cert_pem.write_to_path(str(paths["other_ca"]))
    expired_cert, expired_key = _expired_leaf(ca)
    paths["expired_cert"] = directory / "expired.pem"
    paths["expired_key"] = directory / "expired.key"
    paths["expired_cert"].write_bytes(expired_cert)
    paths["expired_key"].write_bytes(expired_key)
    return {name: str(path) for name, path in paths.items()}


def _expired_leaf(ca: trustme.CA) -> tuple[bytes, bytes]:
    """trustme cannot backdate, so build a leaf that expired yesterday by hand."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture()
def good_server(files: dict[str, str]) -> Iterator[Server]:
    with serving(tls_handler(server_context(files["cert"], files["key"]))) as server:
        yield server


def _now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more: connecting is refused
    return port


# --- probe_tls -------------------------------------------------------------------
def test_a_valid_certificate_verifies_and_is_described(good_server: Server,
                                                       files: dict[str, str]) -> None:
    now = _now()
    result = probe_tls(LOOPBACK, good_server.port, HOST, files["ca"], timeout=TIMEOUT, now=now)
    expected = facts_from_pem(Path(files["cert"]).read_text())
    assert result.ok, result.problem
    assert result.failure is None and result.reachable
    assert result.protocol in ("TLSv1.2", "TLSv1.3")
    assert "Probe Test Root" in result.issuer
    assert set(result.sans) == {HOST, "site.example.test"}
    assert result.fingerprint == expected.fingerprint
    assert result.serial == expected.serial
    assert result.not_after == expected.not_after
    assert result.days_left == pytest.approx((expected.not_after - now) / 86400)


def test_days_left_and_expiry_follow_the_target_clock(good_server: Server,
                                                      files: dict[str, str]) -> None:
    not_after = facts_from_pem(Path(files["cert"]).read_text()).not_after
    soon = probe_tls(LOOPBACK, good_server.port, HOST, files["ca"], timeout=TIMEOUT,
                     now=not_after - 2.5 * 86400)
    assert soon.ok and soon.days_left == pytest.approx(2.5)
    later = probe_tls(LOOPBACK, good_server.port, HOST, files["ca"], timeout=TIMEOUT,
                      now=not_after + 86400)
    assert not later.ok and later.failure == "expired"
    assert "target clock" in later.problem
    assert later.days_left == pytest.approx(-1.0)


def test_a_hostname_the_certificate_does_not_name_is_a_mismatch(
        good_server: Server, files: dict[str, str]) -> None:
    result = probe_tls(LOOPBACK, good_server.port, OTHER, files["ca"], timeout=TIMEOUT,
                       now=_now())
    assert not result.ok and result.failure == "hostname-mismatch"
    assert OTHER in result.problem
    # the presented certificate is still described, to say what it does name
    assert HOST in result.sans


def test_a_certificate_from_another_ca_is_an_unknown_ca(good_server: Server,
                                                        files: dict[str, str]) -> None:
    result = probe_tls(LOOPBACK, good_server.port, HOST, files["other_ca"], timeout=TIMEOUT,
                       now=_now())
    assert not result.ok and result.failure == "unknown-ca"
    assert files["other_ca"] in result.problem
    assert result.reachable


def test_an_expired_certificate_is_reported_expired(files: dict[str, str]) -> None:
    context = server_context(files["expired_cert"], files["expired_key"])
    with serving(tls_handler(context)) as server:
        result = probe_tls(LOOPBACK, server.port, HOST, files["ca"], timeout=TIMEOUT,
                           now=_now())
    assert not result.ok and result.failure == "expired"
    assert result.days_left is not None and result.days_left < 0


def test_a_closed_port_is_refused_not_raised(files: dict[str, str]) -> None:
    port = _closed_port()
    result = probe_tls(LOOPBACK, port, HOST, files["ca"], timeout=TIMEOUT, now=_now())
    assert not result.ok and result.failure == "refused" and not result.reachable
    assert f"{LOOPBACK}:{port}" in result.problem


def _reset(conn: socket.socket) -> None:
    # SO_LINGER 0: close() sends RST, as the fake world does to a firewalled source
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_reset_connection_is_unreachable(files: dict[str, str]) -> None:
    with serving(_reset) as server:
        result = probe_tls(LOOPBACK, server.port, HOST, files["ca"], timeout=TIMEOUT,
                           now=_now())
    assert not result.ok and result.failure == "reset" and not result.reachable


def test_a_peer_that_never_answers_times_out(files: dict[str, str]) -> None:
    silent = socket.socket()
    silent.bind((LOOPBACK, 0))
    silent.listen(1)  # the kernel completes the TCP handshake; nobody speaks TLS
    try:
        result = probe_tls(LOOPBACK, silent.getsockname()[1], HOST, files["ca"],
                           timeout=0.3, now=_now())
    finally:
        silent.close()
    assert not result.ok and result.failure == "timeout" and not result.reachable


def test_plain_http_on_the_port_is_a_tls_failure(files: dict[str, str]) -> None:
    def http(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with serving(http) as server:
        result = probe_tls(LOOPBACK, server.port, HOST, files["ca"], timeout=TIMEOUT,
                           now=_now())
    assert not result.ok and result.failure in ("tls", "reset")


def test_the_probe_connects_from_the_source_address_it_is_given(
        good_server: Server, files: dict[str, str]) -> None:
    probe_tls(LOOPBACK, good_server.port, HOST, files["ca"], source_address=INTERNET_SOURCE,
              timeout=TIMEOUT, now=_now())
    assert good_server.peers[-1] == INTERNET_SOURCE


# --- TLS 1.0 / 1.1 ---------------------------------------------------------------
def test_a_server_with_tls_1_2_as_minimum_refuses_1_0_and_1_1(good_server: Server) -> None:
    attempts = old_tls_attempts(LOOPBACK, good_server.port, HOST, timeout=TIMEOUT)
    assert {name: a.refused for name, a in attempts.items()} == {"TLSv1": True,
                                                                 "TLSv1.1": True}
    assert all("refused" in a.detail for a in attempts.values())
    assert refuses_old_tls(LOOPBACK, good_server.port, HOST, timeout=TIMEOUT) == {
        "TLSv1": True, "TLSv1.1": True}


def test_a_server_that_still_speaks_tls_1_0_is_caught(files: dict[str, str]) -> None:
    # The control that proves the client really offers the old versions: a
    # refusal above is the server's doing, not this machine's OpenSSL policy.
    context = server_context(files["cert"], files["key"], oldest=ssl.TLSVersion.TLSv1)
    with serving(tls_handler(context)) as server:
        attempts = old_tls_attempts(LOOPBACK, server.port, HOST, timeout=TIMEOUT)
        refused = refuses_old_tls(LOOPBACK, server.port, HOST, timeout=TIMEOUT)
    assert attempts["TLSv1"].refused is False and "TLSv1" in attempts["TLSv1"].detail
    assert attempts["TLSv1.1"].refused is False
    assert refused == {"TLSv1": False, "TLSv1.1": False}


def test_an_unreachable_port_refuses_nothing_it_is_undecided() -> None:
    attempts = old_tls_attempts(LOOPBACK, _closed_port(), HOST, timeout=TIMEOUT)
    assert all(a.refused is None and "refused" in a.detail for a in attempts.values())


# --- http -> https ---------------------------------------------------------------
def redirect_handler(location_for: Callable[[str, str], str], status: int = 308
                     ) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        lines = data.decode().split("\r\n")
        target = lines[0].split(" ")[1]
        host = next(line.split(":", 1)[1].strip() for line in lines[1:]
                    if line.lower().startswith("host:"))
        conn.sendall(f"HTTP/1.1 {status} Moved\r\nLocation: {location_for(host, target)}\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    return handle


def test_http_redirects_to_https_with_host_path_and_query() -> None:
    with serving(redirect_handler(lambda host, uri: f"https://{host}{uri}")) as server:
        result = probe_redirect(LOOPBACK, server.port, HOST, INTERNET_SOURCE, timeout=TIMEOUT)
        assert server.peers[-1] == INTERNET_SOURCE
    assert result.ok, result.problem
    assert result.status == 308
    assert result.location == f"https://{HOST}/some/path?q=1"


def test_a_redirect_that_drops_the_query_is_wrong() -> None:
    with serving(redirect_handler(lambda host, uri: f"https://{host}{uri.split('?')[0]}",
                                  status=301)) as server:
        result = probe_redirect(LOOPBACK, server.port, HOST, timeout=TIMEOUT)
    assert not result.ok and result.failure == "wrong-location"
    assert f"https://{HOST}/some/path" in result.problem


def test_a_redirect_to_plain_http_is_wrong() -> None:
    with serving(redirect_handler(lambda host, uri: f"http://{host}{uri}")) as server:
        result = probe_redirect(LOOPBACK, server.port, HOST, timeout=TIMEOUT)
    assert not result.ok and result.failure == "wrong-location"


def test_a_page_served_over_http_is_not_a_redirect() -> None:
    def page(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")

    with serving(page) as server:
        result = probe_redirect(LOOPBACK, server.port, HOST, timeout=TIMEOUT)
    assert not result.ok and result.status == 200 and result.failure == "not-redirected"


def test_port_80_closed_is_reported_not_raised() -> None:
    result = probe_redirect(LOOPBACK, _closed_port(), HOST, timeout=TIMEOUT)
    assert not result.ok and result.failure == "refused"
