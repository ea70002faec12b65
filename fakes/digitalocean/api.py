"""The HTTP adapter: one gate every `/v2` request passes, then a route handler.

The gate does what the real API does to every request, in this order: request id,
bearer auth (401), rate limit (429 with headers), then any injected fault. A route
handler only parses the call, asks a store, and serialises (no rules here).
"""

from __future__ import annotations

import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response

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

    def page(self, key: str, items: Sequence[Any],
             serialize: Callable[[Any], dict] | None = None) -> dict:
        """One page of `items`; `serialize` turns only that page's items into JSON
        objects, so a page costs what it returns (issue 14 item 5)."""
        chunk, links, meta = paginate(items, self.query, self.base_url)
        if serialize is not None:
            chunk = [serialize(item) for item in chunk]
        return {key: chunk, "links": links, "meta": meta}

    @property
    def origin(self) -> str:
        """scheme://host[:port] of the API, for the absolute URIs the API hands out."""
        return self.base_url.split("/v2", 1)[0]


def to_dict(model: Any) -> dict:
    """The JSON object of a model that serialises itself (a page's items, one by one)."""
    return model.to_dict()


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

    def gate_and_handle(self, handler: Handler | None, call: Call, auth: str | None,
                        due_by: float | None = None) -> Reply:
        """Answer one call under the world lock, after the events due by now (by `due_by`
        if given) have fired."""
        request_id = str(uuid.uuid4())
        with self.backend.lock:
            self.clock.run_due(due_by)
            reply = self._handle(handler, call, auth)
            reply.headers["x-request-id"] = request_id
            if reply.status >= 400 and isinstance(reply.body, dict) and "id" in reply.body:
                # Only DigitalOcean's usual error body carries request_id (error.yml);
                # the tag service's {error, messages, root_causes} does not.
                reply.body.setdefault("request_id", request_id)
            self.journal.append(JournalEntry(
                self.clock.now(), call.method, call.path,
                "&".join(f"{k}={v}" for k, v in call.query.items()),
                reply.status, request_id,
            ))
            return reply

    def answer_read_here(self, handler: Handler | None, call: Call,
                         auth: str | None) -> Reply | None:
        """A GET or HEAD answered on the calling thread (the server's event loop), or None
        when it must go to a worker thread as every other call does. Here only when the
        world lock is free and nothing on the clock is due: the answer is then the one a
        worker would give, without the hand-off (about a quarter of a request's serving
        CPU, bench/bench_request_cpu.py), and no event fires on the loop (events run code
        that blocks or runs its own event loop, as fakes/truenas/ssh.py does). A read's
        handler only reads the stores."""
        if call.method not in ("GET", "HEAD"):
            return None
        lock = self.backend.lock
        if not lock.acquire(blocking=False):
            return None
        try:
            now = self.clock.now()
            due = self.clock.next_due()
            if due is not None and due <= now:
                return None
            return self.gate_and_handle(handler, call, auth, due_by=now)
        finally:
            lock.release()

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
    return Reply(exc.status, exc.body())


async def _parse_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _MALFORMED


_MALFORMED = object()


def _endpoint(service: DigitalOceanService, handlers: dict[str, Handler] | None):
    """One endpoint per path: `handlers` maps each method the path serves to its handler
    (None: a path the API does not have)."""

    async def endpoint(request: Request) -> Response:
        body = await _parse_body(request)
        path = _canonical(request.url.path)
        call = Call(
            method=request.method,
            path=path,
            params=dict(request.path_params),
            query=dict(request.query_params),
            body=body,
            base_url=f"{request.url.scheme}://{request.url.netloc}{path}",
        )
        chosen = _choose(handlers, request.method)
        if body is _MALFORMED and chosen is not None:
            # A handler may name its operation's own error for an unparsable body.
            error = getattr(chosen, "malformed_body", lambda: canned(400))()

            def chosen(_backend, _call):  # noqa: E306
                return error_reply(error)
        auth = request.headers.get("authorization")
        reply = service.answer_read_here(chosen, call, auth)
        if reply is None:
            reply = await anyio.to_thread.run_sync(service.gate_and_handle, chosen, call, auth)
        return _to_response(reply)

    return endpoint


def _canonical(path: str) -> str:
    # One trailing slash means the same resource (see build_routes).
    return path[:-1] if path.endswith("/") and path != "/v2/" else path


def _choose(handlers: dict[str, Handler] | None, method: str) -> Handler | None:
    """The handler for `method`, or one answering 405 with the path's methods."""
    if handlers is None:
        return None  # the gate answers DigitalOcean's JSON 404
    if method in handlers:
        return handlers[method]
    if method == "HEAD" and "GET" in handlers:
        return handlers["GET"]  # Starlette serves HEAD wherever GET is; so did this fake
    allowed = ", ".join(allowed_methods(handlers))

    def not_allowed(_backend: DigitalOceanBackend, _call: Call) -> Reply:
        # What the real API answers to a method a path does not serve (and to OPTIONS)
        # is not documented (no operation of reference/digitalocean-openapi-subset.json
        # lists a 405, and reference/digitalocean-api.md says nothing of it). This fake
        # answers 405 in DigitalOcean's error body, after the auth gate like any
        # request, with an Allow header naming every method the path serves (RFC 9110
        # §15.5.6 requires Allow on a 405).
        return Reply(405, {"id": "method_not_allowed",
                           "message": f"{method} is not allowed here; allowed: {allowed}"},
                     {"allow": allowed})

    return not_allowed


def allowed_methods(handlers: dict[str, Handler]) -> list[str]:
    methods = list(handlers)
    if "GET" in methods:
        methods.append("HEAD")
    return sorted(methods)


def _to_response(reply: Reply) -> Response:
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return Response(
        json.dumps(reply.body), status_code=reply.status, headers=reply.headers,
        media_type="application/json",
    )


def route_table() -> dict[str, dict[str, Handler]]:
    """path template -> {method: handler}, templates in first-listed order (Starlette
    tries routes in order: a literal segment must come before a parameter)."""
    from fakes.digitalocean.routes import ALL_ROUTES

    table: dict[str, dict[str, Handler]] = {}
    for method, path, handler in ALL_ROUTES:
        table.setdefault(path, {})[method] = handler
    return table


def build_routes(service: DigitalOceanService) -> list[Route]:
    """Every path answers with and without one trailing slash, the same, for every
    method and with no redirect: python-digitalocean (koalalorenzo/python-digitalocean
    digitalocean/Manager.py @681a682, "droplets/", "domains/", "images/",
    "account/keys/") sends such paths, certbot-dns-digitalocean uses that library
    (certbot/certbot certbot-dns-digitalocean/.../dns_digitalocean.py @f769e35), so
    the real API serves them; a redirected POST is not safe to replay.
    One route per path, whatever the method, so that a method the path does not
    serve gets the 405 above (through the gate) instead of Starlette's plain text."""
    routes = []
    for path, handlers in route_table().items():
        endpoint = _AnyMethod(_endpoint(service, handlers))
        routes.append(Route(path, endpoint))
        routes.append(Route(path + "/", endpoint))
    # Anything else under /v2 gets DigitalOcean's JSON 404, through the gate; DOTALL, so
    # that a path with an encoded newline (schemathesis sends them) is no exception.
    fallback = Route("/v2/{rest:path}", _AnyMethod(_endpoint(service, None)))
    fallback.path_regex = re.compile(r"^/v2/(?P<rest>.*)$", re.DOTALL)
    routes.append(fallback)
    return routes


class _AnyMethod:
    """An endpoint as a plain ASGI app: Starlette then routes every method to it (a
    function endpoint would get GET/HEAD only), and the endpoint decides."""

    def __init__(self, endpoint: Callable[[Request], Any]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


def build_app(service: DigitalOceanService, extra_routes: list[Route] | None = None) -> Starlette:
    return Starlette(routes=[*(extra_routes or []), *build_routes(service)])


