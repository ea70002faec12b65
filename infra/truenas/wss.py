"""Opening the WSS connection, safe from a TLS 1.3 race in websockets' sync client.

websockets' sync client starts a thread that reads the socket as soon as the
connection object exists, then writes the HTTP upgrade request from the caller's
thread. OpenSSL does not support SSL_read and SSL_write running at once on one
connection (openssl/openssl#20446). With TLS 1.3 the server sends its session
tickets just after the handshake, so the reader thread is often processing one
exactly when the request is written. On loopback about one connection in 150
then lost its request and hung until the open timeout (measured with websockets
15 and 17, against both websockets servers, TLS 1.3 only, never with 1.2).

`TicketDrainingConnection` reads those post-handshake records before the reader
thread exists: it waits up to TICKET_GRACE for the first one (they arrive a round
trip after our Finished), then drains what follows within TICKET_SETTLE. No data
can be lost doing so, because a WebSocket server never speaks before the request.
"""

from __future__ import annotations

import logging
import select
import ssl
import time
from typing import Any

from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from infra.truenas.errors import TrueNASError

TICKET_GRACE = 0.2     # seconds to wait for the first ticket after the handshake
TICKET_SETTLE = 0.005  # then, for each further post-handshake record


def drain_post_handshake(sock: Any, grace: float = TICKET_GRACE,
                         settle: float = TICKET_SETTLE) -> int:
    """Process TLS 1.3 post-handshake records waiting on `sock`; how many were read."""
    if not isinstance(sock, ssl.SSLSocket) or sock.version() != "TLSv1.3":
        return 0
    processed = 0
    wait = grace
    end = time.monotonic() + grace + 1.0  # never more than this, whatever arrives
    sock.setblocking(False)
    try:
        while time.monotonic() < end:
            readable, _, _ = select.select([sock], [], [], wait)
            if not readable:
                break
            try:
                data = sock.recv(1)
            except ssl.SSLWantReadError:  # a record without application data
                processed += 1
                wait = settle
                continue
            if not data:
                break  # closed: the handshake that follows will say so
            raise TrueNASError("the server sent data before the WebSocket request; "
                               "this is not a TrueNAS API endpoint")
    finally:
        sock.settimeout(None)
    return processed


class TicketDrainingConnection(ClientConnection):
    def __init__(self, sock: Any, protocol: Any, **kwargs: Any) -> None:
        drain_post_handshake(sock)
        super().__init__(sock, protocol, **kwargs)


class _NoFrameLog(logging.LoggerAdapter):
    """websockets' own logger, never enabled for DEBUG. At DEBUG websockets logs the
    text of every frame (websockets/protocol.py, `if self.debug`), and our frames carry
    the TrueNAS API key (auth.login_with_api_key) and the DigitalOcean token (the ACME
    DNS authenticator): a `--log-level=DEBUG` run put the tail of both in its log and
    JUnit report. It decides once per connection, from isEnabledFor(DEBUG)."""

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WIRE_LOG = _NoFrameLog(logging.getLogger("websockets.client"))


def open_websocket(url: str, ssl_context: ssl.SSLContext, open_timeout: float,
                   max_size: int) -> Any:
    """websockets' connect(), not yet entered (enter it as a context manager)."""
    return ws_connect(
        url,
        ssl=ssl_context,
        # The node is reached directly by address; an environment proxy
        # (websockets honours HTTPS_PROXY by default) is not on that path.
        proxy=None,
        open_timeout=open_timeout,
        max_size=max_size,
        user_agent_header="truenas-site",
        create_connection=TicketDrainingConnection,
        logger=_WIRE_LOG,
    )
