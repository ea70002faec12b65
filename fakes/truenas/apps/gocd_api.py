"""The fake GoCD server's HTTP API on container port 8153 (HTTP/1.1 with h11, on the node's
loop). A protocol adapter: it parses, calls the server model (gocd.GoCDServer), serialises.

Facts followed (api.gocd.org; gocd/gocd api/ modules at HEAD):
- `GET /go/api/v1/health` -> 200 `{"health": "OK"}` once the server is up (reference §4);
  503 while it starts [I: a starting server answers 503 for everything];
- versioned APIs are chosen by the Accept header `application/vnd.go.cd.vN+json`
  (`application/vnd.go.cd+json` means the newest) and answer with that media type and
  `charset=utf-8`; a request without a supported Accept gets 404 [I: the message text is
  the fake's];
- pipeline groups, v1 (PipelineGroupsControllerV1): `GET /go/api/admin/pipeline_groups`
  lists `{"_links", "_embedded": {"groups": [...]}}`, each group `{"_links", "name",
  "authorization", "pipelines"}` (PipelineGroupRepresenter); `POST` with
  `Content-Type: application/json` and `{"name": ...}` creates one and answers 200 with it;
  an existing name (compared case-insensitively) is 422 with a message and the request's
  entity as `data` (HaltApiResponses.haltBecauseEntityAlreadyExists);
  `GET`/`DELETE /go/api/admin/pipeline_groups/<name>` show / delete one (404 when there is
  none; deleting a group with pipelines is 422);
  a POST without a JSON content type is 415 (haltBecauseJsonContentTypeExpected);
- agents, v7 (AgentsControllerV7, AgentRepresenter): `GET /go/api/agents` ->
  `{"_links", "_embedded": {"agents": [...]}}`, each agent with uuid, hostname,
  ip_address, sandbox, operating_system, agent_config_state, agent_state, agent_version,
  agent_bootstrapper_version, environments, build_state, free_space, resources.
Message texts marked [I] paraphrase GoCD's; the fake does not claim them word for word.
Not modelled: ETags/If-None-Match, PUT of a group, authentication (a fresh server has
none), the rest of the API (404).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import h11

from fakes.truenas.apps.gocd_config import (
    ConfigNotSaved,
    Group,
    GroupExists,
    GroupNotEmpty,
    GroupNotFound,
)

if TYPE_CHECKING:
    from fakes.truenas.apps.gocd import Agent, GoCDServer

log = logging.getLogger(__name__)

READ_CHUNK = 65536
MAX_BODY = 1 << 20
IDLE_TIMEOUT = 300.0
DOC = "https://api.gocd.org/current"
GROUPS_PATH = "/go/api/admin/pipeline_groups"
AGENTS_PATH = "/go/api/agents"
HEALTH_PATH = "/go/api/v1/health"
# GoCD's name rule (config xsd nameType): letters, digits, _ - . ; not starting with "."
NAME = re.compile(r"[a-zA-Z0-9_\-][a-zA-Z0-9_\-.]{0,254}")

Reply = tuple[int, dict[str, str], bytes]


def media_type(version: int) -> str:
    return f"application/vnd.go.cd.v{version}+json"


def _json(status: int, body: Any, content_type: str = "application/json") -> Reply:
    data = json.dumps(body, indent=2).encode() + b"\n"
    return status, {"Content-Type": f"{content_type}; charset=utf-8"}, data


def _message(status: int, message: str, content_type: str = "application/json",
             **extra: Any) -> Reply:
    return _json(status, {"message": message, **extra}, content_type)


def _accepts(accept: str, version: int) -> bool:
    wanted = {media_type(version), "application/vnd.go.cd+json"}
    return any(part.split(";")[0].strip().lower() in wanted for part in accept.split(","))


# ---------------------------------------------------------------------------------------
# Representations


def _group_json(base: str, group: Group, errors: dict[str, list[str]] | None = None) -> dict:
    name = quote(group.name, safe="")
    pipelines = f"{base}/go/api/admin/pipelines"
    body: dict[str, Any] = {
        "_links": {"self": {"href": f"{base}{GROUPS_PATH}/{name}"},
                   "doc": {"href": f"{DOC}/#pipeline-group-config"},
                   "find": {"href": f"{base}{GROUPS_PATH}/:group_name"}},
        "name": group.name,
        "authorization": {},
        "pipelines": [{"_links": {"self": {"href": f"{pipelines}/{p}"},
                                  "doc": {"href": f"{DOC}/#pipeline-config"},
                                  "find": {"href": f"{pipelines}/:pipeline_name"}},
                       "name": p} for p in group.pipelines],
    }
    if errors:
        body["errors"] = errors
    return body


def _agent_json(base: str, agent: Agent) -> dict:
    from fakes.truenas.apps.gocd import SERVER_VERSION

    return {
        "_links": {"self": {"href": f"{base}{AGENTS_PATH}/{agent.uuid}"},
                   "doc": {"href": f"{DOC}/#agents"},
                   "find": {"href": f"{base}{AGENTS_PATH}/:uuid"}},
        "uuid": agent.uuid, "hostname": agent.hostname, "ip_address": agent.ip_address,
        "sandbox": agent.sandbox, "operating_system": agent.operating_system,
        "agent_config_state": agent.config_state, "agent_state": agent.state,
        "agent_version": SERVER_VERSION, "agent_bootstrapper_version": SERVER_VERSION,
        "environments": [{"name": e, "origin": {"type": "gocd"}} for e in agent.environments],
        "build_state": "Idle", "free_space": "unknown", "resources": list(agent.resources),
    }


# ---------------------------------------------------------------------------------------
# Routes


class Api:
    def __init__(self, server: GoCDServer) -> None:
        self.server = server

    async def dispatch(self, method: str, target: str, headers: dict[str, str],
                       body: bytes) -> Reply:
        path = unquote(urlsplit(target).path)
        if not self.server.up():
            return _json(503, {"message": "GoCD server is starting"})   # [I]
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                return _message(405, "Method not allowed")
            return _json(200, {"health": "OK"})
        base = self._base(headers)
        accept = headers.get("accept", "")
        if path == GROUPS_PATH or path.startswith(GROUPS_PATH + "/"):
            if not _accepts(accept, 1):
                return self._not_found()
            name = path[len(GROUPS_PATH) + 1:] if path != GROUPS_PATH else None
            return await self._groups(method, name, headers, body, base)
        if path == AGENTS_PATH:
            if not _accepts(accept, 7):
                return self._not_found()
            if method not in ("GET", "HEAD"):
                return _message(405, "Method not allowed", media_type(7))
            agents = [_agent_json(base, a) for a in self.server.agent_list()]
            return _json(200, {"_links": {"self": {"href": f"{base}{AGENTS_PATH}"},
                                          "doc": {"href": f"{DOC}/#agents"}},
                               "_embedded": {"agents": agents}}, media_type(7))
        return self._not_found()

    @staticmethod
    def _not_found() -> Reply:
        return _message(404, "The url you are trying to reach appears to have been "
                             "removed.")   # [I]

    @staticmethod
    def _base(headers: dict[str, str]) -> str:
        """Links are absolute, built from the request as the proxy passed it."""
        scheme = headers.get("x-forwarded-proto", "http").split(",")[0].strip() or "http"
        host = headers.get("x-forwarded-host") or headers.get("host") or "localhost:8153"
        return f"{scheme}://{host.split(',')[0].strip()}"

    async def _groups(self, method: str, name: str | None, headers: dict[str, str],
                      body: bytes, base: str) -> Reply:
        v1 = media_type(1)
        if name is None:
            if method in ("GET", "HEAD"):
                groups = [_group_json(base, g) for g in self.server.groups()]
                return _json(200, {"_links": {"self": {"href": f"{base}{GROUPS_PATH}"},
                                              "doc": {"href": f"{DOC}/#pipeline-group-config"}},
                                   "_embedded": {"groups": groups}}, v1)
            if method == "POST":
                return await self._create(headers, body, base)
            return _message(405, "Method not allowed", v1)
        if method in ("GET", "HEAD"):
            group = self.server.group(name)
            if group is None:
                return _message(404, f"Pipeline group with name '{name}' was not found!", v1)
            return _json(200, _group_json(base, group), v1)
        if method == "DELETE":
            try:
                group = await asyncio.to_thread(self.server.delete_group, name)
            except GroupNotFound:
                return _message(404, f"Pipeline group with name '{name}' was not found!", v1)
            except GroupNotEmpty:
                return _message(422, f"Failed to delete group {name} because it was not "
                                     "empty.", v1)   # [I]
            except ConfigNotSaved as exc:
                return _message(500, str(exc), v1)
            return _message(200, f"The pipeline group '{group.name}' was deleted "
                                 "successfully.", v1)   # [I]
        return _message(405, "Method not allowed", v1)

    async def _create(self, headers: dict[str, str], body: bytes, base: str) -> Reply:
        v1 = media_type(1)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _message(415, "You must specify a 'Content-Type' of 'application/json'",
                            v1)
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return _message(400, "Payload data is not a valid JSON.", v1)   # [I]
        if not isinstance(payload, dict):
            return _message(400, "Payload data is not a valid JSON.", v1)
        name = payload.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            shown = name if isinstance(name, str) else ""
            problem = (f"Invalid group name '{shown}'. This must be alphanumeric and can "
                       "contain underscores, hyphens and periods (however, it cannot start "
                       "with a period). The maximum allowed length is 255 characters.")
            data = _group_json(base, Group(shown, ()), {"name": [problem]})
            return _message(422, f"Validations failed for pipelines '{shown}'. Error(s): "
                                 f"[{problem}]. Please correct and resubmit.", v1,
                            data=data)   # [I]
        try:
            group = await asyncio.to_thread(self.server.create_group, name)
        except GroupExists:
            problem = f"Pipeline group '{name}' already exists."
            data = _group_json(base, Group(name, ()), {"name": [problem]})
            return _message(422, f"Failed to add pipeline group '{name}'. Another pipeline "
                                 "group with the same name already exists!", v1,
                            data=data)   # [I] wording
        except ConfigNotSaved as exc:
            return _message(500, str(exc), v1)
        return _json(200, _group_json(base, group), v1)


# ---------------------------------------------------------------------------------------
# HTTP/1.1


def handler(server: GoCDServer) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                            Awaitable[None]]:
    api = Api(server)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _serve(api, reader, writer)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    return handle


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await asyncio.wait_for(reader.read(READ_CHUNK), IDLE_TIMEOUT)
        conn.receive_data(data)


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, *events: Any) -> None:
    for event in events:
        data = conn.send(event)
        if data:
            writer.write(data)
    await writer.drain()


async def _serve(api: Api, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER)
    while True:
        try:
            event = await _next_event(conn, reader)
        except (TimeoutError, h11.RemoteProtocolError, ConnectionError):
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    await _send(conn, writer, h11.Response(
                        status_code=400, headers=[("Content-Length", "0"),
                                                  ("Connection", "close")]))
            return
        if not isinstance(event, h11.Request):
            return        # ConnectionClosed or a stray event: done
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in event.headers}
        body = b""
        while True:
            part = await _next_event(conn, reader)
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > MAX_BODY:
                    return
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return
        method = event.method.decode("ascii", "replace")
        try:
            status, reply_headers, data = await api.dispatch(
                method, event.target.decode("latin-1"), headers, body)
        except Exception:  # noqa: BLE001 - the fake's bug is a 500, not a dead server
            log.exception("fake GoCD: %s %s failed", method, event.target)
            status, reply_headers, data = _message(500, "Internal server error")
        response = h11.Response(status_code=status, headers=[
            *reply_headers.items(), ("Content-Length", str(len(data))),
            ("Cache-Control", "max-age=0, private, must-revalidate")])
        events: list[Any] = [response]
        if method != "HEAD" and data:
            events.append(h11.Data(data=data))
        await _send(conn, writer, *events, h11.EndOfMessage())
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return
