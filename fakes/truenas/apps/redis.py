"""The `redis` image (7.4.x), as the fake runs it: a tiny RESP server on 6379.

Facts followed (redis.io docs, RESP2 protocol spec; the official image's defaults):
- RESP: a command is an array of bulk strings (`*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n`)
  or an inline command line (`PING\\r\\n`); replies `+PONG`, `$<n>\\r\\n<bytes>`, `$-1`
  for a missing key, `+OK`, `:<n>` integers, errors `-ERR ...`;
- `PING` -> `+PONG`, `PING <msg>` -> the message as a bulk string; `SET k v` -> `+OK`;
  `GET k`; `DEL k...` -> how many existed; `EXISTS`; `DBSIZE`; `SAVE` -> `+OK`;
  `QUIT` -> `+OK` and the connection closes; an unknown command -> `-ERR unknown
  command '<cmd>', with args beginning with: ...`;
- the official image runs with `/data` as its working directory, where the dump
  (`dump.rdb`) is written on SAVE, at the configured save points and on shutdown,
  and read back at start.
What the fake models: strings only (no expiry, no other types, no AUTH, no
databases but 0); the dump is written on SAVE, on stop, and every SAVE_SECONDS
virtual seconds when something changed (a simplification of Redis's save points);
its format is the fake's own JSON behind a marker line, not RDB (a real Redis cannot
read it, and the fake cannot read a real one: it starts empty then).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from typing import Any

from fakes.truenas.apps.images import ImageBehaviour, RunningContainer
from fakes.truenas.server import StreamService

log = logging.getLogger(__name__)

PORT = 6379
DATA_DIR = "/data"
DUMP = f"{DATA_DIR}/dump.rdb"
MAGIC = b"FAKE-REDIS-DUMP 1\n"
SAVE_SECONDS = 60.0


class Store:
    """One server's keyspace (bytes -> bytes) and whether it changed since the dump."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})
        self.dirty = False

    def dump(self) -> bytes:
        encoded = {base64.b64encode(k).decode(): base64.b64encode(v).decode()
                   for k, v in dict(self.data).items()}
        return MAGIC + json.dumps(encoded, sort_keys=True).encode()

    @classmethod
    def load(cls, raw: bytes | None) -> Store:
        if not raw or not raw.startswith(MAGIC):
            return cls()
        try:
            decoded = json.loads(raw[len(MAGIC):])
            return cls({base64.b64decode(k): base64.b64decode(v) for k, v in decoded.items()})
        except (ValueError, TypeError):
            return cls()


# --- RESP ------------------------------------------------------------------------------
def bulk(value: bytes | None) -> bytes:
    return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)


def parse_commands(buffer: bytes) -> tuple[list[list[bytes]], bytes]:
    """The complete commands at the start of `buffer`, and what is left over."""
    commands: list[list[bytes]] = []
    while buffer:
        if buffer.startswith(b"*"):
            parsed = _parse_array(buffer)
            if parsed is None:
                break
            command, buffer = parsed
        else:
            line, sep, rest = buffer.partition(b"\r\n")
            if not sep:
                line, sep, rest = buffer.partition(b"\n")
                if not sep:
                    break
            buffer = rest
            command = line.split()
        if command:
            commands.append(command)
    return commands, buffer


def _parse_array(buffer: bytes) -> tuple[list[bytes], bytes] | None:
    header, sep, rest = buffer.partition(b"\r\n")
    if not sep:
        return None
    count = int(header[1:] or b"0")
    items = []
    for _ in range(count):
        line, sep, rest = rest.partition(b"\r\n")
        if not sep or not line.startswith(b"$"):
            return None
        size = int(line[1:])
        if len(rest) < size + 2:
            return None
        items.append(rest[:size])
        rest = rest[size + 2:]
    return items, rest


def execute(store: Store, command: list[bytes]) -> tuple[bytes, bool]:
    """The reply to one command, and whether the connection closes after it."""
    name, args = command[0].upper(), command[1:]
    if name == b"PING":
        return (b"+PONG\r\n" if not args else bulk(args[0])), False
    if name == b"SET" and len(args) >= 2:
        store.data[args[0]] = args[1]
        store.dirty = True
        return b"+OK\r\n", False
    if name == b"GET" and len(args) == 1:
        return bulk(store.data.get(args[0])), False
    if name in (b"DEL", b"EXISTS") and args:
        found = sum(1 for key in args if key in store.data)
        if name == b"DEL":
            for key in args:
                store.data.pop(key, None)
            store.dirty = store.dirty or bool(found)
        return b":%d\r\n" % found, False
    if name == b"DBSIZE":
        return b":%d\r\n" % len(store.data), False
    if name == b"QUIT":
        return b"+OK\r\n", True
    if name in (b"SET", b"GET", b"DEL", b"EXISTS"):
        return (b"-ERR wrong number of arguments for '%s' command\r\n"
                % name.lower()), False
    shown = b" ".join(b"'%s'" % a for a in args[:3])
    return (b"-ERR unknown command '%s', with args beginning with: %s\r\n"
            % (command[0], shown)), False


# --- the image ---------------------------------------------------------------------------
class Redis(ImageBehaviour):
    def start(self, container: RunningContainer) -> dict[int, Any]:
        store = Store.load(container.read_file(DUMP))
        container.state["store"] = store
        container.call_later(SAVE_SECONDS, lambda: self._autosave(container))

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            buffer = b""
            while data := await reader.read(65536):
                buffer += data
                commands, buffer = parse_commands(buffer)
                for command in commands:
                    if command[0].upper() == b"SAVE":
                        saved = await asyncio.to_thread(self._save, container)
                        reply, close = (b"+OK\r\n" if saved else
                                        b"-ERR the dump could not be written\r\n"), False
                    else:
                        reply, close = execute(store, command)
                    writer.write(reply)
                    await writer.drain()
                    if close:
                        return

        return {PORT: StreamService(serve)}

    def healthy(self, container: RunningContainer) -> bool:
        return True          # `redis-cli ping` answers PONG once the server runs

    def answer(self, container: RunningContainer, port: int, request: bytes) -> bytes | None:
        store = container.state["store"]
        commands, _ = parse_commands(request)
        replies = b""
        for command in commands:
            reply, close = execute(store, command)
            replies += reply
            if close:
                break
        return replies

    def stop(self, container: RunningContainer) -> None:
        self._save(container)            # shutdown with save points configured: SAVE

    def _autosave(self, container: RunningContainer) -> None:
        store: Store = container.state["store"]
        if store.dirty:
            self._save(container)
        container.call_later(SAVE_SECONDS, lambda: self._autosave(container))

    def _save(self, container: RunningContainer) -> bool:
        store: Store | None = container.state.get("store")
        host = container.host_path(DUMP)
        if store is None or host is None:
            return False                  # no volume on /data: the dump dies with it
        with contextlib.suppress(Exception):
            container.write_host_file(host, store.dump())
            store.dirty = False
            return True
        log.info("redis in %s could not write its dump", container.name)
        return False


BEHAVIOUR = Redis()
