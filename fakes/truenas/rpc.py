"""JSON-RPC 2.0 over one WebSocket: the protocol adapter of a fake TrueNAS node.

One `RpcSession` per connection. It parses messages, keeps the session's options,
login and subscriptions, answers the session-level `core.*` and `auth.*` methods,
and hands every other method to `node.call(...)` under the node's lock. It holds
no storage rules. Facts followed, from middleware 25.10 (`stable/goldeye`) unless
noted:

- Messages (`api/base/server/ws_handler/rpc.py`, `utils/limits.py`): invalid JSON,
  a batch (a JSON array) or a non-object is -32700 with `id: null`; a request
  without `jsonrpc: "2.0"`, with a bad `id` or `method`, or with non-array
  `params` is -32600, answered only when the message has an `id`; a missing
  `params` means `[]`; a message without `id` is a notification and gets no reply.
  Neither error has `data`. An unknown method is -32601 "Method does not exist",
  also without `data`, and is checked before authentication. Too many positional
  params is -32602 "Too many arguments (expected N, found M)" at attribute ""
  (`api/base/handler/accept.py`), `core.ping("x")` included. Unauthenticated
  messages over 8 KiB close the socket (1007), authenticated ones over 64 KiB
  too (1009); a binary frame closes it with 1003.
- Authentication (`main.py:authorize_method_call`, `plugins/auth.py`): only the
  methods declared `authentication_required=False` work before login (NO_AUTH_METHODS,
  each from its `@api_method` in 25.10); anything else is CallError('Not
  authenticated', 207). `auth.login_ex` `API_KEY_PLAIN` with a valid key over a
  transport without TLS revokes that key and answers `{"response_type": "EXPIRED"}`;
  a revoked or wrong key is `AUTH_ERR`. `auth.login_with_api_key(key)` finds the
  key's user by the key's id, then is `login_ex` API_KEY_PLAIN with
  `user_info: false`, answering `response_type == SUCCESS` as a boolean (so over
  ws:// it revokes the key and answers false). Middleware sleeps 1-2 s before
  answering false for an unknown key id; the fake answers at once.
  `auth.login_with_token` is the same over TOKEN_PLAIN, `auth.login` over
  PASSWORD_PLAIN. `auth.mechanism_choices` lists AA_LEVEL1's mechanisms
  (`utils/auth.py`). `auth.me` is the session user's `user_info`.
- `core.get_methods(service, target)` (`service/core_service.py`): one entry per
  public method with `job`, `filterable`, `item_method`, `no_auth_required`,
  `downloadable`, `uploadable` as middleware computes them; `accepts`/`returns`
  are JSON Schemas there, and `{}` (any value) here: the fake does not carry its
  argument models as schemas. `roles` is `[]` (the role table is not modelled).
- Jobs (`api/base/server/method.py`, `job.py`, reference/truenas-api.md §2): with
  `legacy_jobs` (the default) a job method's result is its id at once; without,
  the response waits for the end of the job and is its result, or the envelope of
  the error the job raised (validation errors as -32602 with the `extra`
  triples). A job that was aborted has no error set in middleware
  (`asyncio.CancelledError` only sets ABORTED), so its held response is
  `result: null`. Every job change is pushed as `collection_update` for
  `core.get_jobs` to sessions subscribed to it (or to `*`).
- `core.download` answers `[job_id, "/_download/<id>?auth_token=<token>"]`
  (`service/core_service.py:_download`); see `tokens.py`.

Errors carry `data.trace` with the fake's own frames (errors.py says what is
left out). Not modelled: the per-connection concurrency limit (-32000), rate
limits on unauthenticated methods, the `py_exceptions` pickles, extended-JSON
decoding of incoming params.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from fakes.truenas import ejson
from fakes.truenas.errors import (
    ENOMETHOD,
    MESSAGES,
    CallError,
    InstanceNotFound,
    MethodNotFound,
    OtherError,
    RpcError,
    ValidationErrors,
    not_authenticated,
)
from fakes.truenas.events import hub
from fakes.truenas.jobs import Job
from fakes.truenas.node import CallContext
from fakes.truenas.tokens import DOWNLOAD_TOKEN_TTL, TokenStore

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603

UNAUTHENTICATED_LIMIT = 8192      # utils/limits.py MsgSizeLimit.UNAUTHENTICATED
AUTHENTICATED_LIMIT = 65536       # MsgSizeLimit.AUTHENTICATED
EXTENDED_METHODS = frozenset({"filesystem.file_receive"})   # may send up to 2 MiB
EXTENDED_LIMIT = 2097152

# `authentication_required=False` in 25.10: core_service.py (ping, set_options),
# plugins/auth.py (login, login_ex, login_ex_continue, login_with_api_key,
# login_with_token, mechanism_choices), plugins/system/lifecycle.py (boot_id).
NO_AUTH_METHODS = frozenset({
    "core.set_options", "core.ping", "auth.login", "auth.login_ex", "auth.login_ex_continue",
    "auth.login_with_api_key", "auth.login_with_token", "auth.mechanism_choices",
    "system.boot_id"})
LOGIN_MECHANISMS = ("PASSWORD_PLAIN", "API_KEY_PLAIN", "TOKEN_PLAIN", "OTP_TOKEN")
AAL1_MECHANISMS = ["API_KEY_PLAIN", "TOKEN_PLAIN", "PASSWORD_PLAIN"]   # utils/auth.py AA_LEVEL1
SESSION_OPTIONS = ("legacy_jobs", "private_methods", "py_exceptions")
_NOTHING = object()


class CloseRequest(NamedTuple):
    """The socket must be closed with this WebSocket close code and reason."""

    code: int
    reason: str


def node_methods() -> dict[str, Callable]:
    """The node's method table (models helper's METHODS); empty until it exists."""
    try:
        from fakes.truenas.methods import METHODS
    except ImportError:
        return {}
    return METHODS


class RpcSession:
    """One WebSocket connection's JSON-RPC session.

    `handle` is called from a worker thread, one message at a time; `send_text` must
    be thread-safe and must not block, because it is also called from job and
    event listeners, under the node's lock, on whichever thread changed the job.
    """

    def __init__(self, node: Any, tokens: TokenStore, send_text: Callable[[str], None],
                 secure: bool, origin: str | None = None) -> None:
        self.node = node
        self.tokens = tokens
        self.secure = secure
        self.origin = origin            # the client's address (tokens.py, match_origin)
        self._send_text = send_text
        self.options = {"legacy_jobs": True, "private_methods": False, "py_exceptions": False}
        self.username: str | None = None
        self.subscriptions: dict[str, str] = {}
        self._held: dict[int, Any] = {}       # job id -> request id (new-style job mode)
        self._lock = threading.Lock()
        self.closed = False
        # Appending is atomic under the GIL and emitters iterate over a copy, so a
        # session can join (and leave) without taking the world's lock.
        node.jobs.listeners.append(self._job_event)
        hub(node).add(self._server_event)
        self._session_methods: dict[str, Callable[[list, Any], Any]] = {
            "core.set_options": self._set_options,
            "core.ping": self._ping,
            "core.get_methods": self._get_methods,
            "auth.login": self._login,
            "auth.login_ex": self._login_ex,
            "auth.login_ex_continue": self._login_ex_continue,
            "auth.login_with_api_key": self._login_with_api_key,
            "auth.login_with_token": self._login_with_token,
            "auth.mechanism_choices": self._mechanism_choices,
            "auth.me": self._me,
            "auth.logout": self._logout,
            "auth.generate_token": self._generate_token,
            "core.get_jobs": self._get_jobs,
            "core.job_wait": self._job_wait,
            "core.job_abort": self._job_abort,
            "core.subscribe": self._subscribe,
            "core.unsubscribe": self._unsubscribe,
            "core.download": self._download,
        }

    @property
    def method_names(self) -> frozenset[str]:
        """The methods this adapter answers itself (the node answers the rest)."""
        return frozenset(self._session_methods)

    @property
    def legacy_jobs(self) -> bool:
        return self.options["legacy_jobs"]

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(ValueError):
            self.node.jobs.listeners.remove(self._job_event)
        hub(self.node).remove(self._server_event)
        with self._lock:
            self._held.clear()

    # --- one incoming text frame -----------------------------------------------
    def handle(self, text: str) -> CloseRequest | None:
        if self.username is None and len(text) > UNAUTHENTICATED_LIMIT:
            return CloseRequest(1007, "Anonymous connection max message length is 8 kB")
        if len(text) > EXTENDED_LIMIT:
            return CloseRequest(1009, "Max message length is 64 kB")
        try:
            message = json.loads(text)
        except ValueError as exc:
            self._error(None, PARSE_ERROR, str(exc))
            return None
        if isinstance(message, list):
            self._error(None, PARSE_ERROR, "Batch messages are not supported at this time")
            return None
        if not isinstance(message, dict):
            self._error(None, PARSE_ERROR, "Invalid Message Format")
            return None
        if len(text) > AUTHENTICATED_LIMIT and message.get("method") not in EXTENDED_METHODS:
            return CloseRequest(1009, "Max message length is 64 kB")

        has_id = "id" in message
        request_id = message.get("id")
        problem = _invalid_request(message)
        if problem:
            if has_id:
                self._error(request_id, INVALID_REQUEST, problem)
            return None
        method, params = message["method"], message.get("params", [])
        if method not in self._session_methods and method not in node_methods():
            if has_id:
                self._error(request_id, METHOD_NOT_FOUND, MESSAGES[METHOD_NOT_FOUND])
            return None
        reply = self._reply if has_id else _discard
        if self.username is None and method not in NO_AUTH_METHODS:
            reply(request_id, error=not_authenticated())
            return None
        self._call(method, params, request_id if has_id else None, reply)
        return None

    def _call(self, method: str, params: list, request_id: Any, reply: Callable) -> None:
        try:
            with self.node.lock:
                # What fell due by now has happened before the node answers (the world's
                # ticker may lag on a loaded machine), as the DigitalOcean fake does.
                self.node.clock.run_due()
                session_method = self._session_methods.get(method)
                if session_method is not None:
                    self.node.calls.append(method)   # node methods are journaled by the node
                    result = session_method(params, request_id)
                else:
                    context = CallContext(message_id=request_id, username=self.username,
                                          legacy_jobs=self.legacy_jobs)
                    result = self.node.call(method, params, context)
                if isinstance(result, Job):
                    self._job_result(result, request_id, reply)
                else:
                    reply(request_id, result=result)
        except RpcError as exc:
            reply(request_id, error=exc)
        except Exception as exc:  # a bug in the fake: answer as middleware would, and say so
            log.exception("fake TrueNAS: %s failed", method)
            reply(request_id, error=OtherError.of(exc))

    def _job_result(self, job: Job, request_id: Any, reply: Callable) -> None:
        if self.legacy_jobs:
            reply(request_id, result=job.id)
            return
        if reply is _discard:
            return
        with self._lock:
            held = not job.finished
            if held:
                self._held[job.id] = request_id
        if not held:
            self._job_outcome(request_id, job)

    def _job_outcome(self, request_id: Any, job: Job) -> None:
        if job.state == "SUCCESS":
            self._reply(request_id, result=job.result)
        elif job.state == "ABORTED":
            self._reply(request_id, result=None)
        else:
            self._reply(request_id, error=job_exception(job))

    # --- listeners (called under the node's lock, from any thread) --------------
    def _job_event(self, kind: str, job: Job) -> None:
        if self.closed:
            return
        if self._subscribed("core.get_jobs"):
            self._notify("collection_update", {"msg": kind, "collection": "core.get_jobs",
                                               "id": job.id, "fields": job.to_dict()})
        if job.finished:
            with self._lock:
                request_id = self._held.pop(job.id, _NOTHING)
            if request_id is not _NOTHING:
                self._job_outcome(request_id, job)

    def _server_event(self, collection: str, msg: str, id: Any, fields: Any,
                      extra: dict) -> None:
        if self.closed or not self._subscribed(collection):
            return
        params: dict = {"msg": msg, "collection": collection}
        if id is not None:
            params["id"] = id
        if msg in ("added", "changed") and fields is not None:
            params["fields"] = fields
        if extra:
            params["extra"] = extra
        self._notify("collection_update", params)

    def _subscribed(self, collection: str) -> bool:
        return any(name in (collection, "*") for name in list(self.subscriptions.values()))

    # --- sending -----------------------------------------------------------------
    def _reply(self, request_id: Any, result: Any = None, error: RpcError | None = None) -> None:
        if error is None:
            self._send({"jsonrpc": "2.0", "result": result, "id": request_id})
        elif isinstance(error, MethodNotFound):
            self._error(request_id, METHOD_NOT_FOUND, MESSAGES[METHOD_NOT_FOUND])
        else:
            self._error(request_id, error.code, MESSAGES[error.code], error.data())

    def _error(self, request_id: Any, code: int, message: str, data: Any = None) -> None:
        error: dict = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        self._send({"jsonrpc": "2.0", "error": error, "id": request_id})

    def _notify(self, method: str, params: dict) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _send(self, message: dict) -> None:
        if self.closed:
            return
        try:
            text = ejson.dumps(message)
        except (TypeError, ValueError) as exc:
            # rpc.py `send`: a result that cannot be serialised becomes -32603.
            log.exception("fake TrueNAS: cannot serialise a server message")
            text = ejson.dumps({"jsonrpc": "2.0", "id": message.get("id"), "error": {
                "code": INTERNAL_ERROR, "message": "Failed to JSON serialize server message",
                "data": CallError(str(exc), errnos.EFAULT).data()}})
        self._send_text(text)

    # --- session-level methods (called under the node's lock) ---------------------
    def _set_options(self, params: list, _request_id: Any) -> dict:
        (options,) = _arguments("core_set_options", params, [("options", {})])
        if not isinstance(options, dict):
            raise ValidationErrors([("options", "Input should be a valid dictionary", 22)])
        problems = ValidationErrors()
        for key, value in options.items():
            if key not in SESSION_OPTIONS:
                problems.add(f"options.{key}", "Extra inputs are not permitted")
            elif not isinstance(value, bool):
                problems.add(f"options.{key}", "Input should be a valid boolean")
        problems.check()
        self.options.update(options)
        return dict(self.options)

    def _ping(self, params: list, _request_id: Any) -> str:
        _arguments("core_ping", params, [])
        return "pong"

    def _login(self, params: list, request_id: Any) -> bool:
        username, password, otp_token = _arguments(
            "auth_login", params, [("username", _NOTHING), ("password", _NOTHING),
                                   ("otp_token", None)])
        _strings(username=username, password=password)
        answer = self._login_ex([{"mechanism": "PASSWORD_PLAIN", "username": username,
                                  "password": password,
                                  "login_options": {"user_info": False}}], request_id)
        return answer["response_type"] == "SUCCESS"

    def _login_ex_continue(self, params: list, request_id: Any) -> dict:
        # api/v25_10_2/auth.py AuthLoginExContinueArgs: OTP_TOKEN is its only mechanism.
        (data,) = _arguments("auth_login_ex_continue", params, [("data", _NOTHING)])
        if not isinstance(data, dict) or data.get("mechanism") != "OTP_TOKEN":
            raise ValidationErrors([("data.mechanism", "Input tag does not match any of the "
                                     "expected tags: 'OTP_TOKEN'", 22)])
        return self._login_ex(params, request_id)

    def _login_with_api_key(self, params: list, request_id: Any) -> bool:
        (api_key,) = _arguments("auth_login_with_api_key", params, [("api_key", _NOTHING)])
        _strings(api_key=api_key)
        username = self.node.api_key_user(api_key)
        if username is None:
            return False
        answer = self._login_ex([{"mechanism": "API_KEY_PLAIN", "username": username,
                                  "api_key": api_key,
                                  "login_options": {"user_info": False}}], request_id)
        return answer["response_type"] == "SUCCESS"

    def _login_with_token(self, params: list, request_id: Any) -> bool:
        (token,) = _arguments("auth_login_with_token", params, [("token", _NOTHING)])
        _strings(token=token)
        answer = self._login_ex([{"mechanism": "TOKEN_PLAIN", "token": token,
                                  "login_options": {"user_info": False}}], request_id)
        return answer["response_type"] == "SUCCESS"

    def _mechanism_choices(self, params: list, _request_id: Any) -> list:
        _arguments("auth_mechanism_choices", params, [])
        return list(AAL1_MECHANISMS)

    def _me(self, params: list, _request_id: Any) -> dict:
        _arguments("auth_me", params, [])
        return user_info(self.username)

    def _logout(self, params: list, _request_id: Any) -> bool:
        # plugins/auth.py logout: unsubscribes the session and ends its login.
        _arguments("auth_logout", params, [])
        self.subscriptions.clear()
        self.username = None
        return True

    def _get_methods(self, params: list, _request_id: Any) -> dict:
        service, target = _arguments("core_get_methods", params,
                                     [("service", None), ("target", "WS")])
        if service is not None and not isinstance(service, str):
            raise ValidationErrors([("service", "Input should be a valid string", 22)])
        if target not in ("WS", "CLI", "REST"):
            raise ValidationErrors([("target", "Input should be 'WS', 'CLI' or 'REST'", 22)])
        from fakes.truenas.methods import PRIVATE_METHODS

        names = sorted((set(self._session_methods) | set(node_methods())) - PRIVATE_METHODS)
        return {name: method_metadata(name) for name in names
                if service is None or name.rsplit(".", 1)[0] == service}

    def _login_ex(self, params: list, _request_id: Any) -> dict:
        (data,) = _arguments("auth_login_ex", params, [("data", _NOTHING)])
        if not isinstance(data, dict) or data.get("mechanism") not in LOGIN_MECHANISMS:
            raise ValidationErrors([("data.mechanism", "Input tag does not match any of the "
                                     f"expected tags: {', '.join(LOGIN_MECHANISMS)}", 22)])
        mechanism = data["mechanism"]
        required = {"API_KEY_PLAIN": ("username", "api_key"),
                    "PASSWORD_PLAIN": ("username", "password"),
                    "TOKEN_PLAIN": ("token",), "OTP_TOKEN": ("otp_token",)}[mechanism]
        problems = ValidationErrors()
        for name in required:
            if not isinstance(data.get(name), str):
                problems.add(f"data.{mechanism}.{name}", "Field required")
        problems.check()
        options = data.get("login_options") or {}
        want_user_info = options.get("user_info", True) if isinstance(options, dict) else True

        if mechanism == "API_KEY_PLAIN":
            key, username = data["api_key"], data["username"]
            if self.node.api_key_user(key) != username:
                return {"response_type": "AUTH_ERR"}
            if not self.secure:
                # plugins/auth.py: "Per NEP if plain API key auth occurs over insecure
                # transport the key should be automatically revoked."
                from fakes.truenas.methods.api_key import revoke

                revoke(self.node, key, "Attempt to use over an insecure transport")
                return {"response_type": "EXPIRED"}
        elif mechanism == "TOKEN_PLAIN":
            token = self.tokens.take(data["token"], self.origin)
            if token is None:
                return {"response_type": "AUTH_ERR"}
            username = token.username
        elif mechanism == "OTP_TOKEN":
            # plugins/auth.py: "OTP tokens are only permitted when prompted", i.e. after
            # an OTP_REQUIRED answer, which this node never gives (no 2FA account).
            raise CallError(f"{mechanism}: no authentication in progress", errnos.EINVAL)
        elif not self.node.password_valid(data["username"], data["password"]):
            return {"response_type": "AUTH_ERR"}
        else:
            username = data["username"]
        self.username = username
        return {"response_type": "SUCCESS",
                "user_info": user_info(username) if want_user_info else None,
                "authenticator": "LEVEL_1"}

    def _generate_token(self, params: list, _request_id: Any) -> str:
        ttl, attrs, match_origin, single_use = _arguments(
            "auth_generate_token", params,
            [("ttl", 600), ("attrs", {}), ("match_origin", True), ("single_use", False)])
        if not isinstance(ttl, int) or not isinstance(attrs, dict):
            raise ValidationErrors([("ttl", "Input should be a valid integer", 22)])
        return self.tokens.generate(self.username, float(ttl), attrs, bool(single_use),
                                    origin=self.origin if match_origin else None)

    def _get_jobs(self, params: list, _request_id: Any) -> Any:
        return query_jobs(list(self.node.jobs.jobs.values()), params)

    def _job_wait(self, params: list, request_id: Any) -> Job:
        (job_id,) = _arguments("core_job_wait", params, [("id", _NOTHING)])
        jobs = self.node.jobs
        target = jobs.get(job_id) if isinstance(job_id, int) else None

        def start(waiter: Job) -> None:
            if target is None:
                raise _job_not_found(job_id)

            def follow(_kind: str, job: Job) -> None:
                if job is not target:
                    return
                if target.finished:
                    jobs.listeners.remove(follow)
                    _mirror_end(waiter, target)
                else:
                    waiter.set_progress(**target.progress)

            if target.finished:
                _mirror_end(waiter, target)
            else:
                jobs.listeners.append(follow)

        # core_service.py: job_wait "is itself a job that wraps the target job".
        return jobs.submit("core.job_wait", [job_id], start, message_id=request_id)

    def _job_abort(self, params: list, _request_id: Any) -> None:
        (job_id,) = _arguments("core_job_abort", params, [("id", _NOTHING)])
        target = self.node.jobs.get(job_id) if isinstance(job_id, int) else None
        if target is None:
            raise _job_not_found(job_id)
        target.abort()
        return None

    def _subscribe(self, params: list, _request_id: Any) -> str:
        (name,) = _arguments("core_subscribe", params, [("event", _NOTHING)])
        if not isinstance(name, str):
            raise ValidationErrors([("event", "Input should be a valid string", 22)])
        ident = str(uuid.uuid4())
        self.subscriptions[ident] = name
        return ident

    def _unsubscribe(self, params: list, _request_id: Any) -> None:
        (ident,) = _arguments("core_unsubscribe", params, [("id", _NOTHING)])
        self.subscriptions.pop(ident, None)
        return None

    def _download(self, params: list, request_id: Any) -> list:
        method, args, filename, buffered = _arguments(
            "core_download", params,
            [("method", _NOTHING), ("args", []), ("filename", ""), ("buffered", False)])
        if method not in node_methods():
            raise CallError(f"Method {method!r} not found", ENOMETHOD)
        context = CallContext(message_id=request_id, username=self.username,
                              legacy_jobs=self.legacy_jobs)
        job = self.node.call(method, list(args), context)
        if not isinstance(job, Job):
            # What middleware says for a method that is not a job was not read.
            raise CallError(f"{method} is not a job and has no output to download",
                            errnos.EINVAL)
        token = self.tokens.generate(self.username, DOWNLOAD_TOKEN_TTL,
                                     {"filename": filename, "job": job.id}, single_use=True)
        self.tokens.register_download(job.id, bool(buffered))
        return [job.id, f"/_download/{job.id}?auth_token={token}"]


def _strings(**values: Any) -> None:
    """Arguments pydantic takes as `str` (strict): anything else is -32602."""
    problems = ValidationErrors()
    for name, value in values.items():
        if not isinstance(value, str):
            problems.add(name, "Input should be a valid string")
    problems.check()


def method_metadata(name: str) -> dict:
    """One `core.get_methods` entry (service/core_service.py get_methods)."""
    from fakes.truenas.methods import JOB_METHODS, PIPES

    namespace, _, attribute = name.rpartition(".")
    pipes = PIPES.get(name, ())
    return {
        "description": None, "cli_description": "", "examples": {},
        "item_method": attribute in ("update", "delete") and namespace in CRUD_NAMESPACES,
        "no_auth_required": name in NO_AUTH_METHODS,
        "filterable": attribute == "query" or name == "core.get_jobs",
        "filterable_schema": None,
        "pass_application": name.startswith(("auth.", "core.")),
        "require_websocket": name.startswith(("auth.", "core.")),
        "job": name in JOB_METHODS,
        "downloadable": "output" in pipes, "uploadable": "input" in pipes,
        "check_pipes": bool(pipes),
        "roles": [], "accepts": {}, "returns": {},
    }


# The CRUDService namespaces the fake serves (their update/delete are item methods).
CRUD_NAMESPACES = frozenset({"pool", "pool.dataset", "pool.snapshot", "zfs.snapshot",
                             "pool.snapshottask", "certificate", "acme.dns.authenticator",
                             "app", "disk", "api_key"})


def _discard(_request_id: Any, result: Any = None, error: Any = None) -> None:
    """The reply to a notification: none."""


def _invalid_request(message: dict) -> str | None:
    """ws_handler/rpc.py `validate_message`, with its texts."""
    if "jsonrpc" not in message:
        return "Missing 'jsonrpc' member"
    if message["jsonrpc"] != "2.0":
        return "'jsonrpc' member must be of type string and must be exactly '2.0'"
    if "id" in message and not isinstance(message["id"], (type(None), int, str)):
        return "'id' member must be of type null, string or number"
    if "method" not in message:
        return "Missing 'method' member"
    if not isinstance(message["method"], str) or not message["method"]:
        return "'method' member must be of type string"
    if "params" in message and not isinstance(message["params"], list):
        return "'params' member must be of type array"
    return None


def _arguments(prefix: str, params: list, spec: list[tuple[str, Any]]) -> list:
    """Positional arguments with defaults; too many or a missing one is -32602.

    Too many is `api/base/handler/accept.py` `model_dict_from_list`: attribute "",
    "Too many arguments (expected N, found M)". A missing one is pydantic's
    "Field required" at the argument's name.
    """
    if len(params) > len(spec):
        raise ValidationErrors([("", f"Too many arguments (expected {len(spec)}, "
                                 f"found {len(params)})", 22)])
    values = []
    for index, (name, default) in enumerate(spec):
        if index < len(params):
            values.append(params[index])
        elif default is _NOTHING:
            raise ValidationErrors([(name, "Field required", 22)])
        else:
            values.append(default.copy() if isinstance(default, (dict, list)) else default)
    return values


def _job_not_found(job_id: Any) -> InstanceNotFound:
    # core_service.py raises InstanceNotFound: a ValidationError with no attribute.
    return InstanceNotFound(f"Job with id {job_id} does not exist")


def _mirror_end(waiter: Job, target: Job) -> None:
    if target.state == "SUCCESS":
        waiter.succeed(target.result)
    elif target.state == "ABORTED":
        waiter.abort()
    else:
        waiter.fail(job_exception(target))


def job_exception(job: Job) -> RpcError:
    """The exception a failed job raised, rebuilt from its `exc_info` (jobs.py)."""
    info = job.exc_info or {}
    if info.get("type") == "VALIDATION":
        return ValidationErrors([tuple(item) for item in info.get("extra") or []])
    message = job.error or "Job failed"
    if info.get("type") == "CallError":
        errno = info.get("errno") or errnos.EFAULT
        prefix = f"[{CallError('', errno).data()['errname']}] "
        return CallError(message.removeprefix(prefix), errno, info.get("extra"))
    return CallError(message, errnos.EINVAL)


def user_info(username: str) -> dict:
    """`auth.me` for the image's admin (AuthUserInfo). Values are what a fresh
    25.10 install shows as far as known [I]: truenas_admin is uid/gid 950 and a
    member of builtin_administrators (544) with the FULL_ADMIN role."""
    return {
        "pw_name": username, "pw_gecos": "Local Administrator", "pw_dir": f"/home/{username}",
        "pw_shell": "/usr/bin/zsh", "pw_uid": 950, "pw_gid": 950, "grouplist": [950, 544],
        "sid": None, "source": "LOCAL", "local": True, "attributes": {},
        "two_factor_config": {}, "account_attributes": ["LOCAL", "SYS_ADMIN"],
        "privilege": {"name": "Local Administrator", "roles": {"FULL_ADMIN"},
                      "allowlist": [{"method": "*", "resource": "*"}], "web_shell": True},
    }


def query_jobs(jobs: list[Job], params: list) -> Any:
    """`core.get_jobs` takes the same (filters, options) as every query method: the
    methods package's parser and filter_list, so one query semantics serves all."""
    from fakes.truenas.methods.params import parse
    from fakes.truenas.methods.query import QUERY_ARGS, filter_list

    filters, options = parse(params, QUERY_ARGS)
    return filter_list([job.to_dict() for job in jobs], filters, options)
