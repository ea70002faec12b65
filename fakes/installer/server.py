"""The installer's JSON-RPC 2.0 over a WebSocket at `/ws` (plain HTTP, as on the ISO).

Facts (truenas/truenas-installer `stable/goldeye`, commit f66c7830bc51):
- `__main__.py`: `--server` runs aiohttp on port 8080 with one route, GET `/ws`
  (`conf/nginx.conf` proxies port 80's `/ws` to it).
- `server/__init__.py`: aiohttp-rpc's WsJsonRpcServer; each text frame is handled in
  its own task (aiohttp_rpc/server/websocket.py), so calls on one socket overlap.
- `server/method.py`: a method with a parameter schema takes exactly one positional
  parameter, validated with jsonschema, else "1 parameter required, found N"; one
  without takes none ("0 parameters required, found N"); both errno EINVAL.
- `server/error.py`: an Error answers -32602 (aiohttp-rpc InvalidParams) with its
  text as message and `data.errno` the errno's name ("EFAULT", "EINVAL").
- `server/api/adoption.py`: once adopted, anything but `is_adopted`/`authenticate` on
  an unauthenticated socket answers -32602 "You must authenticate before making this
  call" with `data.errno` 13 (a number there).
- `server/api/install.py`: `install` takes `{disks, set_pmbr, authentication,
  wipe_disks?, post_install?}` (authentication null or `{username: truenas_admin|root,
  password: >= 6 chars}`), answers null when done; progress goes to every connected
  socket as the notification `installation_progress` with params
  `[{"progress", "message"}]` and no id. An unknown disk: "Disk 'x' does not exist".
- `server/api/power.py`: `shutdown` runs `shutdown now`: the machine goes away.
Unknown methods answer -32601 (aiohttp-rpc MethodNotFound); the exact message text
of aiohttp-rpc's errors is not traced here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
from functools import cache
from typing import Any

import jsonschema
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fakes.installer.models import InstallError, Machine

PATH = "/ws"

_INTERFACES = {
    "type": "array",
    "items": {"type": "object", "required": ["name"], "additionalProperties": False,
              "properties": {
                  "name": {"type": "string"},
                  "aliases": {"type": "array", "items": {
                      "type": "object", "required": ["type", "address", "netmask"],
                      "additionalProperties": False,
                      "properties": {"type": {"type": "string"},
                                     "address": {"type": "string"},
                                     "netmask": {"type": "integer"}}}},
                  "ipv4_dhcp": {"type": "boolean"},
                  "ipv6_auto": {"type": "boolean"}}},
}
INSTALL_SCHEMA = {
    "type": "object",
    "required": ["disks", "set_pmbr", "authentication"],
    "additionalProperties": False,
    "properties": {
        "wipe_disks": {"type": "array", "items": {"type": "string"}},
        "disks": {"type": "array", "items": {"type": "string"}},
        "set_pmbr": {"type": "boolean"},
        "authentication": {
            "type": ["object", "null"], "required": ["username", "password"],
            "additionalProperties": False,
            "properties": {"username": {"type": "string", "enum": ["truenas_admin", "root"]},
                           "password": {"type": "string", "minLength": 6}}},
        "post_install": {"type": "object", "additionalProperties": False,
                         "properties": {"network_interfaces": _INTERFACES}},
    },
}

AUTHENTICATE_SCHEMA = {"type": "string"}
_SCHEMAS = {"install": INSTALL_SCHEMA, "authenticate": AUTHENTICATE_SCHEMA}


@cache
def _validator(method: str) -> Any:
    """The method's parameter validator, its schema checked once per process
    (jsonschema.validate checks the schema again on every call)."""
    schema = _SCHEMAS[method]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _refusal(text: str, code: int = errno.EFAULT) -> RpcError:
    return RpcError(-32602, text, {"errno": errno.errorcode[code]})


class InstallerServer:
    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.sockets: set[ServerConnection] = set()
        self.powered_off = asyncio.Event()
        self._authenticated: set[ServerConnection] = set()

    # --- transport -----------------------------------------------------------------
    @staticmethod
    def _only_ws(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?")[0] != PATH:
            return connection.respond(404, "Not Found\n")
        return None

    async def serve(self, host: str, port: int) -> None:
        async with serve(self._handle, host, port, process_request=self._only_ws,
                         ping_interval=None, max_size=None):
            await self.powered_off.wait()

    async def _handle(self, socket: ServerConnection) -> None:
        self.sockets.add(socket)
        try:
            async for frame in socket:
                if isinstance(frame, str):
                    asyncio.ensure_future(self._answer(socket, frame))
        finally:
            self.sockets.discard(socket)

    async def _answer(self, socket: ServerConnection, frame: str) -> None:
        try:
            request = json.loads(frame)
        except ValueError:
            await socket.send(json.dumps({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32700, "message": "Parse error"}}))
            return
        request_id = request.get("id")
        try:
            result = await self._dispatch(socket, request)
            reply = {"jsonrpc": "2.0", "id": request_id, "result": result}
        except RpcError as error:
            body = {"code": error.code, "message": error.message}
            if error.data is not None:
                body["data"] = error.data
            reply = {"jsonrpc": "2.0", "id": request_id, "error": body}
        if request_id is not None:
            # A client that left gets nothing; the real server drops the reply too.
            with contextlib.suppress(ConnectionClosed):
                await socket.send(json.dumps(reply))

    def broadcast(self, progress: float, message: str) -> None:
        note = json.dumps({"method": "installation_progress", "jsonrpc": "2.0",
                           "params": [{"progress": progress, "message": message}]})
        for socket in list(self.sockets):
            asyncio.ensure_future(socket.send(note))

    # --- methods ---------------------------------------------------------------------
    async def _dispatch(self, socket: ServerConnection, request: dict) -> Any:
        method = request.get("method")
        params = request.get("params", [])
        args = params if isinstance(params, list) else []
        if self.machine.adopted and method not in ("is_adopted", "authenticate") \
                and socket not in self._authenticated:
            raise RpcError(-32602, "You must authenticate before making this call",
                           {"errno": errno.EACCES})
        handlers = {"is_adopted": self._is_adopted, "system_info": self._system_info,
                    "list_disks": self._list_disks, "list_network_interfaces": self._nics,
                    "install": self._install, "shutdown": self._power_off,
                    "reboot": self._power_off, "authenticate": self._authenticate}
        if method not in handlers:
            raise RpcError(-32601, "Method not found")
        if method in _SCHEMAS:
            if len(args) != 1:
                raise _refusal(f"1 parameter required, found {len(args)}", errno.EINVAL)
            error = jsonschema.exceptions.best_match(_validator(method).iter_errors(args[0]))
            if error is not None:   # what jsonschema.validate would raise
                raise _refusal(str(error), errno.EINVAL)
            return await handlers[method](socket, args[0])
        if args:
            raise _refusal(f"0 parameters required, found {len(args)}", errno.EINVAL)
        return await handlers[method](socket)

    async def _is_adopted(self, socket: ServerConnection) -> bool:
        return self.machine.adopted

    async def _authenticate(self, socket: ServerConnection, key: str) -> bool:
        # The fake never hands out an access key, so no key is right.
        if not self.machine.adopted:
            raise _refusal("The system is not adopted")
        raise _refusal("Invalid access key", errno.EINVAL)

    async def _system_info(self, socket: ServerConnection) -> dict:
        return self.machine.system_info()

    async def _list_disks(self, socket: ServerConnection) -> list[dict]:
        return self.machine.list_disks()

    async def _nics(self, socket: ServerConnection) -> list[dict]:
        return [{"name": "ens3"}]

    async def _install(self, socket: ServerConnection, params: dict) -> None:
        loop = asyncio.get_running_loop()

        def progress(fraction: float, message: str) -> None:
            loop.call_soon_threadsafe(self.broadcast, fraction, message)

        try:
            await asyncio.to_thread(self.machine.install, params["disks"], params["set_pmbr"],
                                    params["authentication"], params.get("post_install"),
                                    progress)
        except InstallError as error:
            raise _refusal(str(error)) from None

    async def _power_off(self, socket: ServerConnection) -> None:
        # `shutdown now` returns before the machine is gone: answer, then go away.
        asyncio.get_running_loop().call_later(0.05, self.powered_off.set)
