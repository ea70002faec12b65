"""Client-side connections from a chosen source address (probes and steps).

A cloud firewall judges a connection by where it comes from, so a check of "the UI
is closed to the internet, open to the admin network" must choose its source
address: it binds the socket to that address before connecting (`source_address`).
In the fake world every address is a loopback 127.x.y.z, and any of them can be
bound here; on a real target the address must belong to this machine.

What "unreachable" looks like depends on the target. A real DigitalOcean firewall
drops the packets, so the connect times out. The fake accepts the TCP handshake
(the kernel does that before the listener sees it) and then resets the connection
at once. Callers must treat a refusal, a reset and a timeout alike.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

# How long tcp_reachable waits after the handshake for a reset or a close from a
# listener that refuses the source after accepting it (the fake's firewall).
RESET_GRACE_SECONDS = 0.25


def connect_tcp(host: str, port: int, *, source_address: str | None,
                timeout: float) -> socket.socket:
    """A connected TCP socket from `source_address` (any local address when None).

    Raises OSError: ConnectionRefusedError, TimeoutError (`timeout` covers the
    connect), or another OSError when the source cannot be bound or the network
    is unreachable. The socket keeps `timeout` for later reads and writes."""
    source = (source_address, 0) if source_address else None
    return socket.create_connection((host, port), timeout=timeout, source_address=source)


def tcp_reachable(host: str, port: int, *, source_address: str | None = None,
                  timeout: float, grace: float = RESET_GRACE_SECONDS) -> bool:
    """Whether a TCP connection from `source_address` to host:port gets through.

    Reachable means: the connect succeeds within `timeout`, and during the next
    `grace` seconds the peer neither resets nor closes the connection without
    sending a byte (a listener that is served waits for the client, or greets it).
    False on refused, reset, timeout, unreachable, or a close before any byte.

    A reset that a loaded peer sends later than `grace` is missed. A caller that
    needs certainty speaks the service's protocol instead (a TLS handshake, an
    HTTP request through `session_from`): a refused source then fails on the
    handshake or the request, whatever the timing."""
    try:
        sock = connect_tcp(host, port, source_address=source_address, timeout=timeout)
    except OSError:
        return False
    with sock:
        try:
            readable, _, _ = select.select([sock], [], [], min(grace, timeout))
            if not readable:
                return True                 # accepted; the server waits for us
            return sock.recv(1, socket.MSG_PEEK) != b""   # greeting vs. close
        except OSError:
            return False                    # reset


class SourceAddressAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections all leave from one local address."""

    def __init__(self, source_address: str, **kwargs: Any) -> None:
        # Set before HTTPAdapter.__init__, which builds the pool manager.
        self.source_address = source_address
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        # urllib3 hands `source_address` to every HTTP(S)Connection it opens, and
        # keeps it in the pool key, so pools never mix sources.
        pool_kwargs["source_address"] = (self.source_address, 0)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def session_from(source_address: str | None) -> requests.Session:
    """A Session whose connections leave from `source_address` (any when None).

    `trust_env` is off: a proxy from the environment would make the proxy, not
    this address, the source the firewall sees. That also means REQUESTS_CA_BUNDLE
    is not read: pass `verify=<the target's CA bundle>` per request (or set
    `session.verify`, which works when trust_env is off). No retries: a probe
    reports the first answer."""
    session = requests.Session()
    session.trust_env = False
    adapter = (SourceAddressAdapter(source_address, max_retries=0) if source_address
               else HTTPAdapter(max_retries=0))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class HttpAnswer:
    """One plain-HTTP GET: the answer, or why there was none (refused, reset,
    dropped by a firewall, timed out)."""

    status: int | None = None
    body: str = ""
    failure: str | None = None

    @property
    def answered(self) -> bool:
        return self.status is not None

    def describe(self) -> str:
        return f"{self.status} {self.body[:200]}" if self.answered else str(self.failure)

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, *, source_address: str | None = None, timeout: float) -> HttpAnswer:
    """GET `url` from `source_address`; never raises for a network failure."""
    try:
        with session_from(source_address) as session:
            response = session.get(url, timeout=timeout)
    except requests.RequestException as error:
        return HttpAnswer(failure=f"{type(error).__name__}: {error}")
    return HttpAnswer(response.status_code, response.text)


def https_request(address: str, port: int, hostname: str, method: str, path: str, *,
                  ca_bundle: str | None, timeout: float, headers: dict[str, str] | None = None,
                  body: bytes | None = None, source_address: str | None = None) -> HttpAnswer:
    """One request to `address:port` as a browser sends it to `hostname`: SNI and Host
    `hostname`, the chain verified against `ca_bundle` (None: the system's roots).
    Network and TLS failures raise (OSError, ssl.SSLError): the caller decides whether
    they are an answer."""
    context = (ssl.create_default_context(cafile=ca_bundle) if ca_bundle
               else ssl.create_default_context())
    raw = connect_tcp(address, port, source_address=source_address, timeout=timeout)
    with context.wrap_socket(raw, server_hostname=hostname) as tls:
        connection = http.client.HTTPConnection(hostname, timeout=timeout)
        connection.sock = tls
        connection.request(method, path, body=body, headers={"Host": hostname, **(headers or {})})
        response = connection.getresponse()
        return HttpAnswer(response.status, response.read().decode(errors="replace"))
