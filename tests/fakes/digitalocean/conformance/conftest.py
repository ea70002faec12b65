"""Capture every HTTP response a pydo client sees and check it against DigitalOcean's
published OpenAPI document (reference/digitalocean-api.md §1).

Responses are validated strictly (every schema failure is reported); requests are not
validated at all, because the published request schemas are stricter than the real API
(TXT records without `flags`/`tag`, §1 gotcha 5). The spec's only server is
https://api.digitalocean.com, so each captured call is replayed against that host name.

A test module provides the `spec_checker` fixture (`spec_loader(path)`), so that it
owns the spec's location and can skip itself as a whole when the spec is not there.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

SPEC_HOST = "https://api.digitalocean.com"


@dataclass(frozen=True)
class Exchange:
    """One HTTP response as the client saw it, with the request that caused it."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Operation:
    operation_id: str
    template: str

    def describe(self, exchange: Exchange) -> str:
        return (f"{self.operation_id} ({exchange.method} {self.template} "
                f"-> {exchange.status})")


class SpecChecker:
    """Finds the spec operation behind a call and validates the response against it."""

    @staticmethod
    @functools.cache
    def load(path: Path) -> SpecChecker:
        """Loading and checking the 1.9 MB document takes seconds: once per session."""
        return SpecChecker(json.loads(path.read_text()))

    def __init__(self, spec: dict) -> None:
        from openapi_core import Config, OpenAPI

        # The document is not checked again on each load (seconds of CPU):
        # tests/test_reference_documents.py checks the vendored one.
        self.openapi = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
        self._operations: list[tuple[re.Pattern[str], int, str, dict]] = []
        for template, item in spec["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$")
            # A literal segment beats a parameter: /v2/volumes/actions is not {volume_id}.
            weight = template.count("{")
            self._operations.append((pattern, weight, template, item))
        self._operations.sort(key=lambda entry: entry[1])

    def operation(self, method: str, path: str) -> Operation | None:
        for pattern, _weight, template, item in self._operations:
            if pattern.match(path) and method.lower() in item:
                return Operation(item[method.lower()]["operationId"], template)
        return None

    def problem(self, exchange: Exchange) -> str | None:
        """None when the response matches the spec, else one readable sentence."""
        from openapi_core.testing import MockRequest, MockResponse

        request = MockRequest(SPEC_HOST, exchange.method, exchange.path, args=exchange.query)
        response = MockResponse(
            exchange.body, status_code=exchange.status, headers=exchange.headers,
            content_type=exchange.headers.get("content-type", ""),
        )
        try:
            self.openapi.validate_response(request, response)
        except Exception as exc:  # openapi-core raises a family of error types
            return _explain(exc)
        return None

    def failures(self, exchanges: list[Exchange]) -> list[str]:
        found = []
        for exchange in exchanges:
            operation = self.operation(exchange.method, exchange.path)
            if operation is None:
                found.append(f"{exchange.method} {exchange.path} -> {exchange.status}: "
                             "no operation in the published spec")
                continue
            problem = self.problem(exchange)
            if problem:
                found.append(f"{operation.describe(exchange)}: {problem}")
        return found

    def failures_of(self, method: str, path: str, status: int, body) -> list[str]:
        """Check one made-up JSON response, as if the API had sent it."""
        exchange = Exchange(method, path, {}, status, {"content-type": "application/json"},
                            json.dumps(body).encode())
        return self.failures([exchange])

    def operation_ids(self, exchanges: list[Exchange]) -> set[str]:
        return {op.operation_id for e in exchanges
                if (op := self.operation(e.method, e.path)) is not None}


def _explain(exc: BaseException, limit: int = 300) -> str:
    """openapi-core wraps jsonschema errors a few levels deep; surface those, or else
    the chain of messages (e.g. "unknown status", "missing content type")."""
    schema_errors, messages = [], []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for error in getattr(current, "schema_errors", None) or []:
            where = "/".join(str(p) for p in error.absolute_path) or "(body)"
            message = error.message
            if len(message) > limit:
                message = message[:limit] + "..."
            schema_errors.append(f"at {where}: {message}")
        if str(current):
            messages.append(f"{type(current).__name__}: {str(current)[:limit]}")
        current = current.__cause__ or current.__context__
    return "; ".join(dict.fromkeys(schema_errors or messages or [type(exc).__name__]))


class Recorder:
    """A pydo `raw_response_hook` that keeps every response the client receives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []

    def __call__(self, pipeline_response) -> None:
        request = pipeline_response.http_request
        response = pipeline_response.http_response
        url = urlsplit(request.url)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        exchange = Exchange(
            method=request.method.upper(), path=url.path, query=query,
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=response.body() or b"",
        )
        with self._lock:
            self.exchanges.append(exchange)


@pytest.fixture(scope="session")
def spec_loader():
    """path -> SpecChecker, each document loaded once per session."""
    return SpecChecker.load


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A fake world of this module's own (the session world may have faults set)."""
    import requests

    from fakes.world import World

    with World(tmp_path_factory.mktemp("conformance-world"), acme=False) as started:
        # Polling at 500x is many virtual requests a minute: never let a 429 in.
        with requests.Session() as admin:
            admin.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
            admin.post(f"{started.endpoint}/_admin/ratelimit", verify=str(started.ca.ca_path),
                       headers={"X-Admin-Secret": started.admin_secret}, timeout=10,
                       json={"per_hour": 10**9, "per_minute": 10**9}).raise_for_status()
        yield started


class Conformance:
    """A pydo client whose every response is recorded, and the check of those responses."""

    def __init__(self, world, checker: SpecChecker) -> None:
        self.world = world
        self.checker = checker
        self.recorder = Recorder()
        self._clients: list = []
        self.client = self.client_with_token(world.token)

    def client_with_token(self, token: str):
        import pydo

        client = pydo.Client(
            token, endpoint=self.world.endpoint, connection_verify=str(self.world.ca.ca_path),
            retry_total=0, raw_response_hook=self.recorder,
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        # Release the keep-alive connections before the module's world stops.
        for client in self._clients:
            client.close()

    @property
    def exchanges(self) -> list[Exchange]:
        return list(self.recorder.exchanges)

    def assert_all_conform(self, covering: set[str]) -> None:
        """Every recorded response matches the spec, and the flow really exercised
        each operation in `covering` (so a test cannot pass by doing nothing)."""
        exchanges = self.exchanges
        failures = self.checker.failures(exchanges)
        assert not failures, (
            f"{len(failures)} of {len(exchanges)} responses do not match DigitalOcean's "
            "published schema:\n  " + "\n  ".join(failures)
        )
        missing = covering - self.checker.operation_ids(exchanges)
        assert not missing, f"the flow never called {sorted(missing)}"


@pytest.fixture
def conformance(world, spec_checker: SpecChecker) -> Iterator[Conformance]:
    checked = Conformance(world, spec_checker)
    yield checked
    checked.close()
