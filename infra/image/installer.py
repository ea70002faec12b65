"""A client of the live ISO's installer: JSON-RPC 2.0 over a WebSocket at `/ws`.

truenas/truenas-installer `stable/goldeye` (commit f66c7830bc51): the server
(`truenas_installer/server/`, aiohttp-rpc) takes positional params (`method.py`: a
method with a schema takes exactly one parameter, the others none), answers errors as
`{code, message, data: {errno}}`, and while `install` runs sends every socket
`installation_progress` notifications (no id) with params `[{"progress", "message"}]`;
`install` itself answers only when the installation ended (`server/api/install.py`).
Under software emulation that takes long, so no keepalive pings: the guest may be too
slow to answer them in time, and the install's own deadline bounds the wait.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from infra.errors import InfraError
from infra.truenas.wss import _WIRE_LOG as NO_FRAME_LOG

PATH = "/ws"
Progress = Callable[[float, str], None]


class InstallerError(InfraError):
    """The installer refused a call, or could not be reached."""

    def __init__(self, message: str, code: int | None = None, errno: Any = None) -> None:
        super().__init__(message)
        self.code, self.errno = code, errno


class InstallerClient:
    def __init__(self, connection: ClientConnection, progress: Progress | None = None,
                 closer: contextlib.ExitStack | None = None) -> None:
        self._connection = connection
        self._closer = closer
        self._ids = itertools.count(1)
        self.progress = progress or (lambda fraction, message: None)
        # Texts never to repeat (the admin password): a schema refusal quotes the
        # whole parameter it rejected, password included.
        self.secrets: list[str] = []

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text

    @classmethod
    def connect(cls, port: int, *, timeout: float = 10.0,
                progress: Progress | None = None) -> InstallerClient:
        url = f"ws://127.0.0.1:{port}{PATH}"
        # Entered as a context manager: websockets 17 deprecates using connect()'s
        # return value directly (as infra/truenas/client.py does too).
        stack = contextlib.ExitStack()
        try:
            # websockets logs every frame's text at DEBUG; `install`'s carries the
            # admin password: the TrueNAS client's frame-less logger (one home).
            connection = stack.enter_context(connect(
                url, open_timeout=timeout, ping_interval=None, close_timeout=2,
                max_size=None, proxy=None, logger=NO_FRAME_LOG))
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
            raise InstallerError(f"no installer at {url}: {error}") from None
        return cls(connection, progress, stack)

    def close(self) -> None:
        if self._closer is not None:
            self._closer.close()
        else:
            self._connection.close()

    def __enter__(self) -> InstallerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, method: str, *params: Any, timeout: float = 60.0) -> Any:
        request_id = next(self._ids)
        self._connection.send(json.dumps({"jsonrpc": "2.0", "id": request_id,
                                          "method": method, "params": list(params)}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InstallerError(f"the installer did not answer {method} within "
                                     f"{timeout:.0f} s")
            try:
                frame = self._connection.recv(timeout=remaining)
            except TimeoutError:
                continue
            except ConnectionClosed:
                raise InstallerError(f"the installer closed the connection during "
                                     f"{method}") from None
            message = json.loads(frame)
            if message.get("method") == "installation_progress" and "id" not in message:
                for note in message.get("params") or []:
                    self.progress(float(note.get("progress", 0)), str(note.get("message", "")))
                continue
            if message.get("id") != request_id:
                continue
            if "error" in message:
                error = message["error"] or {}
                data = error.get("data") if isinstance(error.get("data"), dict) else {}
                text = self._scrub(str(error.get("message", "no message")))
                raise InstallerError(f"the installer refused {method}: {text}",
                                     error.get("code"), data.get("errno"))
            return message.get("result")

    def power_off(self, timeout: float = 60.0) -> None:
        """`shutdown`: the machine may go before it answers, which is fine."""
        try:
            self.call("shutdown", timeout=timeout)
        except InstallerError as error:
            if error.code is not None:
                raise


def wait_for_installer(port: int, machine_running: Callable[[], bool], deadline_s: float,
                       tick: Callable[[float], None], *, progress: Progress | None = None,
                       poll: float = 2.0) -> InstallerClient:
    """Connect once the live ISO's installer answers: the machine boots for minutes
    first (QEMU's port forward accepts and drops connections until then)."""
    started = time.monotonic()
    while True:
        if not machine_running():
            raise InstallerError("the machine stopped before its installer answered")
        client = None
        try:
            client = InstallerClient.connect(port, timeout=10.0, progress=progress)
            client.call("is_adopted", timeout=30.0)
            return client
        except InstallerError:
            if client is not None:
                client.close()
        elapsed = time.monotonic() - started
        if elapsed > deadline_s:
            raise InstallerError(f"the installer did not answer within {deadline_s:.0f} s "
                                 "of the machine starting")
        tick(elapsed)
        time.sleep(poll)
