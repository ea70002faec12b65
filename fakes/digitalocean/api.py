"""The HTTP adapter: one gate every `/v2` request passes, then a route handler.

The gate does what the real API does to every request, in this order: request id,
bearer auth (401), rate limit (429 with headers), then any injected fault. A route
handler only parses the call, asks a store, and serialises (no rules here).
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fakes.clock import VirtualClock
from fakes.digitalocean.errors import ApiError, canned, not_found, unauthorized
from fakes.digitalocean.models import DigitalOceanBackend
from fakes.digitalocean.pagination import paginate
from fakes.digitalocean.ratelimit import RateLimiter
from fakes.faults import FaultPlan

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class Call:
    """One parsed request, as a handler sees it."""

    method: str
    path: str
    params: dict[str, Any]
    query: dict[str, str]
    body: Any
    base_url: str

    def page(self, key: str, items: list[dict]) -> dict:
        chunk, links, meta = paginate(items, self.query, self.base_url)
        return {key: chunk, "links": links, "meta": meta}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[DigitalOceanBackend, Call], Reply]


@dataclass
class JournalEntry:
    at: float
    method: str
    path: str
    query: str
    status: int
    request_id: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


class DigitalOceanService:
    """The fake API as a service: backend + the gate's state."""

    def __init__(self, backend: DigitalOceanBackend, clock: VirtualClock, token: str) -> None:
        self.backend = backend
        self.clock = clock
        self.tokens = {token}
        self.limiter = RateLimiter(clock)
        self.faults = FaultPlan()
        self.journal: deque[JournalEntry] = deque(maxlen=20000)

    def gate_and_handle(self, handler: Handler | None, call: Call, auth: str | None) -> Reply:
        request_id = str(uuid.uuid4())
        with self.backend.lock:
            self.clock.run_due()
            reply = self._handle(handler, call, auth)
            reply.headers["x-request-id"] = request_id
            if reply.status >= 400 and isinstance(reply.body, dict):
                reply.body.setdefault("request_id", request_id)
            self.journal.append(JournalEntry(
                self.clock.now(), call.method, call.path,
                "&".join(f"{k}={v}" for k, v in call.query.items()),
                reply.status, request_id,
            ))
            return reply

    def _handle(self, handler: Handler | None, call: Call, auth: str | None) -> Reply:
        token = auth[7:] if auth and auth.startswith("Bearer ") else None
        if token not in self.tokens:
            return error_reply(unauthorized())
        verdict = self.limiter.hit(token)
        if not verdict.allowed:
            reply = error_reply(canned(429))
            reply.headers.update(verdict.headers)
            return reply
        fault = self.faults.take(call.method, call.path)
        if fault is not None and fault.mode == "before":
            return self._fault_reply(fault.status, fault.retry_after, verdict.headers)
        try:
            reply = handler(self.backend, call) if handler else error_reply(not_found())
        except ApiError as exc:
            reply = error_reply(exc)
        if fault is not None and fault.mode == "after":
            return self._fault_reply(fault.status, fault.retry_after, verdict.headers)
        reply.headers.update(verdict.headers)
        return reply

    @staticmethod
    def _fault_reply(status: int, retry_after: int | None, headers: dict) -> Reply:
        reply = error_reply(canned(status))
        reply.headers.update(headers)
        if retry_after is not None:
            reply.headers["retry-after"] = str(retry_after)
        return reply


def error_reply(exc: ApiError) -> Reply:
    return Reply(exc.status, {"id": exc.error_id, "message": exc.message})


async def _parse_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _MALFORMED


_MALFORMED = object()


def _endpoint(service: DigitalOceanService, handler: Handler | None):
    async def endpoint(request: Request) -> Response:
        body = await _parse_body(request)
        call = Call(
            method=request.method,
            path=request.url.path,
            params=dict(request.path_params),
            query=dict(request.query_params),
            body=body,
            base_url=f"{request.url.scheme}://{request.url.netloc}{request.url.path}",
        )
        chosen = handler
        if body is _MALFORMED:
            def chosen(_backend, _call):  # noqa: E306
                return error_reply(canned(400))
        reply = await anyio.to_thread.run_sync(
            service.gate_and_handle, chosen, call, request.headers.get("authorization")
        )
        return _to_response(reply)

    return endpoint


def _to_response(reply: Reply) -> Response:
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return Response(
        json.dumps(reply.body), status_code=reply.status, headers=reply.headers,
        media_type="application/json",
    )


def build_routes(service: DigitalOceanService) -> list[Route]:
    from fakes.digitalocean.routes import ALL_ROUTES

    routes = [
        Route(path, _endpoint(service, handler), methods=[method])
        for method, path, handler in ALL_ROUTES
    ]
    # Anything else under /v2 gets DigitalOcean's JSON 404, through the gate.
    routes.append(Route("/v2/{rest:path}", _endpoint(service, None),
                        methods=["GET", "POST", "PUT", "PATCH", "DELETE"]))
    return routes


def build_app(service: DigitalOceanService, extra_routes: list[Route] | None = None) -> Starlette:
    return Starlette(routes=[*(extra_routes or []), *build_routes(service)])


