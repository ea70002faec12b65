"""A DigitalOcean client over pydo: bounded waits, our own retries, errors mapped.

pydo's own retry policy is switched off (`retry_total=0`): it retries POSTs on
500/503/504, which can create duplicate droplets (reference/digitalocean-api.md §4). Here
reads are retried on transient errors with backoff (honouring `retry-after`), and
creations go through `create_once`, which looks the resource up before any retry.
Operations whose documented OK codes include 404 come back from pydo as the error
body instead of raising (§4); `_call` turns those into `NotFound` too.

Each client sends exactly what pydo's default setup sends, at less CPU per request: the
environment requests would read on every request (proxies, NO_PROXY, ~/.netrc, the CA
bundle variables) is read once, when the client is made (`environment_settings`), and
the connection pool is shared by every client of the process (`_transport`).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import pydo
import requests.adapters
import requests.utils
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport

from infra.errors import CloudError, NotFound, TargetError
from infra.events import Reporter
from infra.target import Target
from infra.wait import Pending, wait_for

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PAGE_SIZE = 200
MAX_ATTEMPTS = 6
LOW_BUDGET = 50  # requests left in the hour below which we pace ourselves


class RequestLog:
    """Counts every request sent (attempts included), by method and path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.entries.append((method.upper(), path))

    @property
    def total(self) -> int:
        return len(self.entries)

    @property
    def mutating(self) -> int:
        return sum(1 for method, _ in self.entries if method in MUTATING)

    def mutating_requests(self) -> list[tuple[str, str]]:
        return [entry for entry in self.entries if entry[0] in MUTATING]

    def by_method(self) -> dict[str, int]:
        return dict(Counter(method for method, _ in self.entries))


def _is_error_body(result: Any) -> bool:
    return isinstance(result, dict) and "id" in result and "message" in result and len(result) <= 3


def _retry_after(exc: HttpResponseError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_from(operation: str, exc: Exception) -> CloudError:
    if isinstance(exc, HttpResponseError) and exc.response is not None:
        status = exc.status_code
        request_id = exc.response.headers.get("x-request-id")
        error_id, message = None, exc.reason or "request failed"
        try:
            body = exc.response.json()
            error_id = body.get("id")
            message = body.get("message", message)
            request_id = body.get("request_id", request_id)
        except Exception:  # a non-JSON error page (a proxy, a gateway)
            pass
        kind = NotFound if status == 404 else CloudError
        return kind(operation, status, error_id, message, request_id, _retry_after(exc))
    return CloudError(operation, None, None, f"no answer from DigitalOcean ({type(exc).__name__})")


def environment_settings(endpoint: str, ca_bundle: str | None
                         ) -> tuple[dict[str, str], str | bool, tuple[str, str] | None]:
    """What requests reads from the environment for a request to `endpoint` when its
    session trusts the environment (requests.Session.merge_environment_settings and
    prepare_request, requests 2.34), read by requests' own functions: the proxies
    (HTTPS_PROXY, ALL_PROXY...; none when NO_PROXY names the host), the CA bundle to
    verify with (REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, only where we name none), and
    the ~/.netrc (or $NETRC) login for the host, which requests sends as Basic auth."""
    proxies = requests.utils.get_environ_proxies(endpoint)
    verify = (ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE")
              or os.environ.get("CURL_CA_BUNDLE") or True)
    return proxies, verify, requests.utils.get_netrc_auth(endpoint)


# The connection pools of every client in the process, keyed by URL prefix. urllib3 keys
# each pool by host, port and TLS settings (CA bundle, client certificate), so clients
# of different endpoints or CAs never share a connection; clients of the same endpoint
# reuse one instead of each opening its own TLS connection.
_adapters: dict[str, requests.adapters.BaseAdapter] = {}
_adapters_lock = threading.Lock()


def _transport(endpoint: str, ca_bundle: str | None) -> RequestsTransport:
    """A transport for one client: its own requests session (its own cookies, as with
    pydo's default transport), the environment read once, the pools shared.

    requests would read the environment on every request (a quarter of the suite's CPU
    went to the DigitalOcean client, much of it there); here the session trusts nothing
    and is given what the environment said when the client was made. The one difference:
    an environment changed while a client lives is not seen by that client; the next
    client sees it. Every command and step makes its clients after its environment is
    set, and nothing here changes the environment mid-run. The settings are read for the
    endpoint's host: every request a client sends goes there (pydo's inference and agent
    endpoints are not used; azure-core's redirect policy would follow a 3xx elsewhere
    with the endpoint's proxy, where requests would look again, but no answer in the API's
    description, reference/digitalocean-openapi-subset.json, is a 3xx)."""
    proxies, verify, netrc_login = environment_settings(endpoint, ca_bundle)
    # use_env_settings=False: azure-core makes the session with trust_env off, and mounts
    # its adapters (no urllib3 retries, no redirects followed by requests).
    transport = RequestsTransport(use_env_settings=False, connection_verify=verify)
    transport.open()
    session = transport.session
    session.proxies.update(proxies)
    session.auth = netrc_login
    with _adapters_lock:
        if not _adapters:
            _adapters.update(session.adapters)
        for prefix, adapter in _adapters.items():
            session.mount(prefix, adapter)
    return transport


class DigitalOcean:
    def __init__(self, target: Target, log: RequestLog | None = None) -> None:
        if target.do_token is None:
            raise ValueError("this target has no DigitalOcean token")
        self.target = target
        self.timing = target.timing
        self.log = log or RequestLog()
        self.client = pydo.Client(
            target.do_token.reveal(),
            endpoint=target.do_endpoint,
            transport=_transport(target.do_endpoint, target.ca_bundle),
            retry_total=0,
            timeout=60,
            logging_enable=False,
            raw_request_hook=self._count,
            raw_response_hook=self._watch_rate_limit,
        )
        self.ratelimit_remaining: int | None = None
        # Told of every retry (what, seconds, why), so a CI log shows it: the CLI
        # sets its reporter's `retrying` here.
        self.on_retry: Callable[[str, float, str], None] | None = None

    def _retrying(self, operation: str, delay: float, error: CloudError) -> None:
        if self.on_retry is not None:
            why = f"{error.status} {error.error_id or ''}".strip() if error.status else \
                "no answer"
            self.on_retry(operation, delay, why)

    def _count(self, request) -> None:
        http = request.http_request
        if self.target.read_only and http.method.upper() in MUTATING:
            # The existing target never changes anything (DESIGN.md): refused before
            # it is sent, whatever code path asked for it.
            raise TargetError(f"{http.method} {urlparse(http.url).path} refused: the "
                              "existing target is read-only")
        self.log.record(http.method, urlparse(http.url).path)

    def _watch_rate_limit(self, response) -> None:
        remaining = response.http_response.headers.get("ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            self.ratelimit_remaining = int(remaining)

    def _pace(self) -> None:
        """Slow down as the hourly budget runs out, instead of running into 429s.

        `ratelimit-reset` is an epoch on the server's clock (a fake world's runs fast),
        so pacing uses only the remaining count: one poll interval per request while
        fewer than LOW_BUDGET requests are left.
        """
        if self.ratelimit_remaining is not None and self.ratelimit_remaining < LOW_BUDGET:
            time.sleep(self.timing.poll_interval)

    # --- calling -----------------------------------------------------------
    def call(self, operation: str, fn: Callable[..., Any], *args: Any,
             retry: bool = True, **kwargs: Any) -> Any:
        """Call one pydo operation; retry transient failures only if `retry`."""
        attempt = 0
        while True:
            attempt += 1
            self._pace()
            try:
                result = fn(*args, **kwargs)
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
                error = _error_from(operation, exc)
                if not (retry and error.transient and attempt < MAX_ATTEMPTS):
                    raise error from None
                self._sleep_before_retry(attempt, exc, operation, error)
                continue
            if _is_error_body(result):
                if result.get("id") == "not_found":
                    raise NotFound(operation, 404, "not_found", result.get("message", ""),
                                   result.get("request_id"))
                raise CloudError(operation, None, result.get("id"), result.get("message", ""),
                                 result.get("request_id"))
            return result

    def _sleep_before_retry(self, attempt: int, exc: Exception, operation: str,
                            error: CloudError) -> None:
        delay = _retry_after(exc) if isinstance(exc, HttpResponseError) else None
        if delay is None:
            delay = self.timing.backoff * (2 ** (attempt - 1))
        self._retrying(operation, min(delay, 60.0), error)
        time.sleep(min(delay, 60.0))

    def list_all(self, operation: str, fn: Callable[..., Any], key: str, **filters: Any) -> list:
        items: list = []
        page = 1
        while True:
            body = self.call(operation, fn, per_page=PAGE_SIZE, page=page, **filters)
            items.extend(body.get(key, []))
            if not body.get("links", {}).get("pages", {}).get("next"):
                return items
            page += 1

    def create_once(self, operation: str, create: Callable[[], Any],
                    find: Callable[[], Any | None]) -> Any:
        """Create something exactly once, even if an answer is lost or refused.

        A 5xx or 429 may come after the resource was really made, so before every
        retry the resource is looked up (by name and tag); if it is there, that is
        the result. A 409 means it exists already: the lookup decides whose it is.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.call(operation, create, retry=False)
            except CloudError as error:
                if not (error.transient or error.status == 409):
                    raise
                found = find()
                if found is not None:
                    return found
                if error.status == 409 or attempt >= MAX_ATTEMPTS:
                    raise
                delay = error.retry_after
                if delay is None:
                    delay = self.timing.backoff * (2 ** (attempt - 1))
                self._retrying(operation, min(delay, 60.0), error)
                time.sleep(min(delay, 60.0))

    def ignore_missing(self, operation: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Delete-style call that is fine if the thing is already gone."""
        try:
            self.call(operation, fn, *args)
            return True
        except NotFound:
            return False

    # --- waiting -----------------------------------------------------------
    def wait_until(self, what: str, check: Callable[[], Any], real_seconds: float,
                   reporter: Reporter | None = None) -> Any:
        """Poll `check` until it returns something truthy, or fail after the deadline
        (infra/wait.py, on this target's timing)."""
        def truthy() -> Any:
            result = check()
            return result if result else Pending()

        return wait_for(what, truthy, self.timing, real_seconds, reporter=reporter)

    def wait_action(self, action_id: int, what: str, real_seconds: float = 300,
                    reporter: Reporter | None = None) -> dict:
        def finished() -> dict | None:
            action = self.call("get action", self.client.actions.get, action_id)["action"]
            if action["status"] == "errored":
                raise CloudError(what, None, "action_errored",
                                 f"action {action_id} ({action['type']}) errored")
            return action if action["status"] == "completed" else None

        return self.wait_until(f"{what} (action {action_id})", finished, real_seconds,
                               reporter)
